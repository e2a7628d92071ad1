/* Globex Billing: subscription and invoices of the conversation's contact. */
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  };
  var subs = fetch('data/subscriptions.json', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
    .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status)); });

  var money = function (v, c) { return new Intl.NumberFormat('en-US', { style: 'currency', currency: c || 'USD' }).format(v); };
  var date = function (iso) {
    return new Date(iso + 'T12:00:00').toLocaleDateString('en-US', { month: 'short', day: 'numeric', year: 'numeric' });
  };
  var STATUS = { active: 'Active', past_due: 'Past due', trialing: 'Trial', canceled: 'Canceled' };
  var INVOICE = { paid: 'Paid', open: 'Open', failed: 'Failed', void: 'Void' };

  var current = null;
  var render = function (contact) {
    contact = contact || {};
    current = contact.id;
    subs.then(function (d) {
      if (current !== contact.id) return;
      $('loading').hidden = true;
      var email = String(contact.email || '').toLowerCase();
      var s = (d.subscriptions || []).find(function (x) { return x.contact_id === contact.id; }) ||
        (email && (d.subscriptions || []).find(function (x) { return String(x.email).toLowerCase() === email; }));
      if (!s) {
        $('sub').hidden = true;
        $('none').hidden = false;
        $('none-title').textContent = 'No subscription for ' + (contact.email || contact.name || 'this contact');
        return;
      }
      $('none').hidden = true;
      $('sub').hidden = false;
      $('company').textContent = s.company;
      $('who').textContent = 'Billing contact: ' + (contact.name || s.email);
      $('status').textContent = STATUS[s.status] || s.status;
      $('status').className = 'status status-' + s.status;

      var alert = $('alert');
      alert.hidden = true;
      if (s.status === 'past_due') {
        alert.textContent = 'Last payment failed. The workspace is read-only until the invoice is paid.';
        alert.hidden = false;
      } else if (s.status === 'trialing' && s.trial_ends_on) {
        var left = Math.ceil((new Date(s.trial_ends_on + 'T12:00:00') - Date.now()) / 864e5);
        alert.textContent = left > 0 ? 'Trial ends ' + date(s.trial_ends_on) + ' (' + left + (left === 1 ? ' day' : ' days') + ' left). No payment method yet.' : 'Trial ended ' + date(s.trial_ends_on) + '.';
        alert.className = 'alert alert-info';
        alert.hidden = false;
      }
      if (s.status === 'past_due') alert.className = 'alert';

      $('plan').textContent = s.plan;
      $('price').textContent = money(s.price_per_seat, s.currency) + ' per seat / ' + s.interval;
      $('amount').textContent = money(s.price_per_seat * s.seats, s.currency);
      $('seats-text').textContent = s.seats_used + ' of ' + s.seats + ' seats in use';
      $('seats-fill').className = 'fill-' + Math.round(10 * s.seats_used / s.seats);
      $('next-label').textContent = s.status === 'trialing' ? 'Trial ends' : 'Renews';
      $('next').textContent = date(s.status === 'trialing' ? s.trial_ends_on : s.renews_on);
      var pm = s.payment_method;
      $('payment').textContent = pm ? pm.brand + ' •••• ' + pm.last4 + ' · exp ' + pm.expires + (pm.expired ? ' (expired)' : '') : 'None on file';
      $('payment').className = pm && !pm.expired ? '' : 'warn';

      var rows = (s.invoices || []).map(function (inv) {
        var tr = el('tr');
        var st = el('span', 'badge badge-' + inv.status, INVOICE[inv.status] || inv.status);
        var stTd = el('td', 'num');
        stTd.append(st);
        tr.append(el('td', 'mono', inv.number), el('td', '', date(inv.date)), el('td', 'num', money(inv.amount, s.currency)), stTd);
        return tr;
      });
      $('invoice-rows').replaceChildren.apply($('invoice-rows'), rows);
      $('invoices').hidden = rows.length === 0;
      $('no-invoices').hidden = rows.length !== 0;
    }, function (err) {
      $('loading').hidden = true;
      $('error').textContent = 'Billing data could not be loaded (' + err.message + ').';
      $('error').hidden = false;
    });
  };

  window.addEventListener('message', function (event) {
    if (event.source !== window.parent || !event.data || event.data.event !== 'appContext') return;
    var data = event.data.data || {};
    render(data.contact || (data.conversation && data.conversation.contact));
  });
  if (window.parent === window) {
    $('loading-text').textContent = 'Open this app from a conversation in the helpdesk.';
  } else {
    window.parent.postMessage({ event: 'fetch-info' }, location.origin);
  }
})();
