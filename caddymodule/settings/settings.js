/* Dashboard Apps settings page: lists the account's apps and, for its
 * administrators, adds, edits and removes the account's own, through
 * /_dashboard_apps/accounts/N/apps. Plain script, run under a CSP that
 * allows only itself: no inline handlers, no HTML strings (every name and
 * URL is set as text). */
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const cfg = JSON.parse($('settings-config').textContent);
  const labels = { name: 'Name', url: 'URL' };
  let apps = [];
  let busy = false;

  const el = (tag, cls, text, attrs) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    for (const k in attrs || {}) n.setAttribute(k, attrs[k]);
    return n;
  };

  // ---- talking to the gateway ----
  const request = (method, path, body) => fetch(path, {
    method, credentials: 'same-origin', cache: 'no-store',
    headers: body ? { Accept: 'application/json', 'Content-Type': 'application/json' } : { Accept: 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  }).then((r) => (r.status === 204 ? Promise.resolve(null) : r.json().catch(() => null)).then((data) => ({ ok: r.ok, status: r.status, data })),
    () => ({ ok: false, status: 0, data: null }));
  const itemPath = (id) => cfg.api + '/' + encodeURIComponent(id);
  const problem = (res) => {
    if (res.status === 0) return 'The gateway could not be reached. Check your connection and try again.';
    if (res.status === 401) return 'Your helpdesk session has ended. Sign in to the helpdesk again, then reload this page.';
    const msg = res.data && res.data.error;
    return (msg ? msg.charAt(0).toUpperCase() + msg.slice(1) : 'The gateway answered HTTP ' + res.status) + '.';
  };

  // ---- messages: a polite status for results, an alert for failures ----
  const alertEl = $('alert');
  const statusEl = $('status');
  const announce = (text) => {
    alertEl.hidden = true;
    statusEl.textContent = '';
    // A fresh text node, a moment later, is announced even when the
    // text is the same as the last one.
    setTimeout(() => { statusEl.textContent = text; }, 30);
  };
  const fail = (text) => {
    statusEl.textContent = '';
    alertEl.textContent = text;
    alertEl.hidden = false;
  };

  // ---- field errors: aria-invalid, and the message in the description ----
  const describe = (input, withError) => {
    const ids = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter((x) => x && x !== input.id + '-error');
    if (withError) ids.push(input.id + '-error');
    input.setAttribute('aria-describedby', ids.join(' '));
  };
  const setError = (input, text) => {
    const err = $(input.id + '-error');
    err.textContent = text;
    err.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    describe(input, true);
  };
  const clearErrors = (form) => {
    for (const input of form.querySelectorAll('input')) {
      const err = $(input.id + '-error');
      if (err) { err.textContent = ''; err.hidden = true; }
      input.removeAttribute('aria-invalid');
      describe(input, false);
    }
  };
  // A refusal: next to its field when the form has it (and focus there),
  // else in the alert.
  const refused = (form, res) => {
    const d = res.data || {};
    const input = res.status === 400 && d.field && form.elements.namedItem(d.field);
    if (input) {
      setError(input, labels[d.field] + ' ' + (d.reason || d.error) + (/[.!?]$/.test(d.reason || '') ? '' : '.'));
      statusEl.textContent = '';
      alertEl.hidden = true;
      input.focus();
      return;
    }
    fail(problem(res));
  };
  const values = (form) => ({ name: form.elements.name.value.trim(), url: form.elements.url.value.trim() });
  const submitting = (form, on) => {
    busy = on;
    for (const b of form.querySelectorAll('button')) b.disabled = on;
    form.setAttribute('aria-busy', String(on));
  };

  // ---- the list ----
  const list = $('apps');
  const focusApp = (id, what) => {
    const row = list.querySelector('[data-app-id="' + id + '"]');
    const target = row && (what ? row.querySelector(what) : row.querySelector('h3'));
    if (target) target.focus(); else $('list-title').focus();
  };
  const render = () => {
    $('loading').hidden = true;
    $('empty').hidden = apps.length > 0;
    $('count').textContent = apps.length ? String(apps.length) : '';
    list.replaceChildren(...apps.map(row));
  };
  const row = (a) => {
    const li = el('li', 'app', null, { 'data-app-id': a.id });
    const main = el('div', 'app-main');
    const h = el('h3', null, null, { tabindex: '-1', id: 'app-' + a.id + '-name' });
    h.append(document.createTextNode(a.name));
    main.append(h);
    if (a.editable) {
      main.append(el('p', 'app-url', a.url, { title: a.url }));
    } else {
      h.append(el('span', 'badge', 'Gateway config'));
      main.append(el('p', 'app-note', "Set up by the gateway's operator; it cannot be changed here."));
    }
    li.append(main);
    if (cfg.admin && a.editable) {
      const actions = el('div', 'app-actions');
      const edit = el('button', 'btn btn-link', 'Edit', { type: 'button', 'data-edit': '', 'aria-label': 'Edit ' + a.name });
      const remove = el('button', 'btn btn-link danger', 'Remove', { type: 'button', 'data-remove': '', 'aria-label': 'Remove ' + a.name });
      edit.addEventListener('click', () => startEdit(li, a));
      remove.addEventListener('click', () => confirmRemove(a));
      actions.append(edit, remove);
      li.append(actions);
    }
    return li;
  };
  const load = () => request('GET', cfg.api).then((res) => {
    if (!res.ok || !Array.isArray(res.data)) {
      $('loading').hidden = true;
      fail(problem(res));
      return false;
    }
    apps = res.data;
    render();
    return true;
  });

  // ---- adding: the seed's flow, Add new → name, URL → Create ----
  const addSection = $('add');
  const addForm = $('add-form');
  const addOpen = $('add-open');
  const openAdd = (open) => {
    addSection.hidden = !open;
    addOpen.setAttribute('aria-expanded', String(open));
    if (open) {
      $('add-name').focus();
    } else {
      addForm.reset();
      clearErrors(addForm);
      addOpen.focus();
    }
  };
  addOpen.addEventListener('click', () => openAdd(addSection.hidden));
  addForm.querySelector('[data-cancel]').addEventListener('click', () => openAdd(false));
  addForm.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.preventDefault(); openAdd(false); } });
  addForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (busy) return;
    clearErrors(addForm);
    submitting(addForm, true);
    request('POST', cfg.api, values(addForm)).then((res) => {
      submitting(addForm, false);
      if (res.status !== 201 || !res.data) { refused(addForm, res); return; }
      const app = res.data;
      addForm.reset();
      addSection.hidden = true;
      addOpen.setAttribute('aria-expanded', 'false');
      load().then(() => {
        focusApp(app.id);
        announce(app.name + ' was added. Agents see its tab the next time they open a conversation.');
      });
    });
  });

  // ---- editing, in place ----
  const field = (prefix, name, value, hint) => {
    const f = el('div', 'field');
    const input = el('input', null, null, {
      id: prefix + '-' + name, name, type: name === 'url' ? 'url' : 'text', autocomplete: 'off',
      'aria-describedby': prefix + '-' + name + '-hint',
    });
    if (name === 'url') { input.setAttribute('spellcheck', 'false'); input.setAttribute('inputmode', 'url'); }
    if (name === 'name') input.setAttribute('maxlength', '64');
    input.value = value;
    const err = el('p', 'error', null, { id: prefix + '-' + name + '-error' });
    err.hidden = true;
    f.append(el('label', null, labels[name], { for: prefix + '-' + name }), input, el('p', 'hint', hint, { id: prefix + '-' + name + '-hint' }), err);
    return f;
  };
  const startEdit = (li, a) => {
    const prefix = 'edit-' + a.id;
    const form = el('form', null, null, { novalidate: '', 'aria-label': 'Edit ' + a.name });
    const grid = el('div', 'field-row');
    grid.append(field(prefix, 'name', a.name, "Shown on the app's tab."), field(prefix, 'url', a.url, 'The page to embed.'));
    const actions = el('div', 'actions');
    const save = el('button', 'btn btn-primary', 'Save', { type: 'submit' });
    const cancel = el('button', 'btn btn-ghost', 'Cancel', { type: 'button' });
    actions.append(save, cancel);
    form.append(grid, actions);
    const stop = () => { render(); focusApp(a.id, '[data-edit]'); };
    cancel.addEventListener('click', stop);
    form.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.preventDefault(); stop(); } });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (busy) return;
      clearErrors(form);
      const v = values(form);
      const patch = {};
      if (v.name !== a.name) patch.name = v.name;
      if (v.url !== a.url) patch.url = v.url;
      if (!Object.keys(patch).length) { stop(); return; }
      submitting(form, true);
      request('PATCH', itemPath(a.id), patch).then((res) => {
        submitting(form, false);
        if (!res.ok || !res.data) { refused(form, res); return; }
        load().then(() => {
          focusApp(a.id, '[data-edit]');
          announce('Saved ' + res.data.name + '. Agents see the change the next time they open a conversation.');
        });
      });
    });
    li.replaceChildren(form);
    form.elements.name.focus();
  };

  // ---- removing, after a confirmation ----
  const dialog = $('confirm');
  let removing = null;
  const confirmRemove = (a) => {
    removing = a;
    $('confirm-title').textContent = 'Remove ' + a.name + '?';
    dialog.showModal();
  };
  $('confirm-cancel').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    if (dialog.open) return; // the close of an earlier opening, fired late
    if (removing) focusApp(removing.id, '[data-remove]');
    removing = null;
  });
  $('confirm-remove').addEventListener('click', () => {
    const a = removing;
    if (!a || busy) return;
    busy = true;
    request('DELETE', itemPath(a.id)).then((res) => {
      busy = false;
      if (res.status !== 204 && res.status !== 404) {
        dialog.close();
        fail(problem(res));
        return;
      }
      removing = null;
      dialog.close();
      load().then(() => {
        $('list-title').focus();
        announce(a.name + ' was removed. Agents no longer see its tab.');
      });
    });
  });

  // ---- start ----
  addOpen.hidden = !cfg.admin;
  $('readonly').hidden = !!cfg.admin;
  load();
})();
