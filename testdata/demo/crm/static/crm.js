/* Acme CRM contact card, written the Chatwoot way: it asks its parent with
 * the string 'chatwoot-dashboard-app:fetch-info' and receives the appContext
 * as a JSON string (the gateway's message_format json_string). */
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  };
  var records = fetch('data/contacts.json', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
    .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status)); });

  var money = function (v, c) {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency: c || 'USD', maximumFractionDigits: 0 }).format(v);
  };
  var month = function (iso) {
    return iso ? new Date(iso + 'T12:00:00').toLocaleDateString('en-US', { month: 'short', year: 'numeric' }) : '—';
  };
  var day = function (iso) {
    return new Date(iso + 'T12:00:00').toLocaleDateString('en-US', { month: 'short', day: 'numeric' });
  };
  var initials = function (name) {
    return String(name || '?').trim().split(/\s+/).slice(0, 2).map(function (w) { return w[0]; }).join('').toUpperCase();
  };

  var shown = null;
  var render = function (contact, agent) {
    contact = contact || {};
    shown = contact.id;
    $('loading').hidden = true;
    $('card').hidden = false;
    $('avatar').textContent = initials(contact.name);
    $('name').textContent = contact.name || 'Unknown contact';
    $('email').textContent = contact.email || '—';
    $('phone').textContent = contact.phone_number || '—';
    $('phone').classList.toggle('none', !contact.phone_number);
    $('email').classList.toggle('none', !contact.email);
    $('contact-id').textContent = contact.id != null ? '#' + contact.id : '—';
    $('agent').textContent = agent && agent.name ? 'Viewing as ' + agent.name : '';
    $('subtitle').textContent = '';
    $('plan').hidden = true;
    $('crm').hidden = true;
    $('no-record').hidden = true;

    records.then(function (d) {
      if (shown !== contact.id) return;
      var email = String(contact.email || '').toLowerCase();
      var rec = (d.contacts || []).find(function (r) { return r.contact_id === contact.id; }) ||
        (email && (d.contacts || []).find(function (r) { return String(r.email).toLowerCase() === email; }));
      if (!rec) { $('no-record').hidden = false; return; }
      $('subtitle').textContent = [rec.company, [rec.city, rec.country].filter(Boolean).join(', ')].filter(Boolean).join(' · ');
      $('plan').textContent = rec.plan;
      $('plan').hidden = false;
      $('ltv').textContent = money(rec.lifetime_value, rec.currency);
      $('since').textContent = month(rec.customer_since);
      $('owner').textContent = rec.account_owner || 'Unassigned';
      $('owner').classList.toggle('none', !rec.account_owner);
      $('tags').replaceChildren.apply($('tags'), (rec.tags || []).map(function (t) { return el('li', 'tag', t); }));
      $('activity').replaceChildren.apply($('activity'), (rec.activity || []).map(function (a) {
        var li = el('li');
        li.append(el('span', 'act-text', a.text), el('time', 'act-date', day(a.date)));
        return li;
      }));
      $('crm').hidden = false;
    }, function (err) {
      $('error').textContent = 'CRM records could not be loaded (' + err.message + ').';
      $('error').hidden = false;
    });
  };

  // Chatwoot-style: messages are JSON strings.
  window.addEventListener('message', function (event) {
    if (event.source !== window.parent || typeof event.data !== 'string') return;
    var msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    if (!msg || msg.event !== 'appContext' || !msg.data) return;
    var contact = msg.data.contact || (msg.data.conversation && msg.data.conversation.contact);
    render(contact, msg.data.currentAgent);
  });

  if (window.parent !== window) {
    window.parent.postMessage('chatwoot-dashboard-app:fetch-info', '*');
  } else {
    $('loading-text').textContent = 'Open this app from a conversation in the helpdesk.';
    document.querySelector('.pulse').hidden = true;
  }
})();
