// Notes: an internal tool written for its own root, as most are. Its script
// reads its CSRF cookie by name and calls its API root-relatively; the
// gateway serves it so that both work (origin mode: untouched on an origin
// of its own; path mode: the gateway's run-time shim).
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const csrf = () => (document.cookie.split('; ').find((c) => c.startsWith('notes_csrf=')) || '').slice('notes_csrf='.length);
  let contact = null;

  const mark = (el, ok, text) => { el.textContent = text; el.className = ok ? 'ok' : 'bad'; };
  const token = csrf();
  mark($('cookie'), !!token, token ? 'found (' + token.slice(0, 8) + '…)' : 'not found');

  const key = () => 'notes.' + (contact && contact.id);
  const show = (ctx) => {
    const c = ctx && ctx.data && (ctx.data.contact || ctx.data.conversation.contact);
    if (!c) return;
    contact = c;
    $('title').textContent = 'Notes: ' + (c.name || 'customer');
    $('who').textContent = [c.email, c.phone_number].filter(Boolean).join(' · ') || 'No contact details';
    $('note').value = localStorage.getItem(key()) || '';
    $('status').textContent = '';
    $('form').hidden = false;
  };
  window.addEventListener('message', (e) => {
    if (e.source !== window.parent) return;
    let m = e.data;
    if (typeof m === 'string') { try { m = JSON.parse(m); } catch (_) { return; } }
    if (m && m.event === 'appContext') show(m);
  });
  window.parent.postMessage({ event: 'fetch-info' }, '*');

  const save = (text) => fetch('/api/notes', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() },
    body: JSON.stringify({ contact: contact && contact.id, text }),
  }).then((r) => (r.ok ? r.json() : Promise.reject(r.status)));

  // One call on load, so the page says at once whether its API works.
  save(null).then(() => mark($('api'), true, 'accepted'), (s) => mark($('api'), false, 'refused (' + s + ')'));

  $('form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('note').value;
    save(text).then(() => {
      localStorage.setItem(key(), text);
      mark($('status'), true, 'Saved');
    }, (s) => mark($('status'), false, 'Not saved (' + s + ')'));
  });
})();
