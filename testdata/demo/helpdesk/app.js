/* Stand-in Ndoto dashboard: a small single-page app over the helpdesk's
 * Chatwoot-compatible API (static JSON in this demo). Navigation between
 * conversations and accounts uses history.pushState, like Chatwoot's
 * dashboard, so the Dashboard Apps host script follows it without a reload.
 * The conversation sidebar (.conversation-sidebar) is rendered once; only its
 * contact panel is updated, so the apps' tabs placed in it stay put. */
(() => {
  'use strict';

  // The dataset is a snapshot taken at DATA_NOW; times are shown as if it
  // were live, so the inbox always looks fresh.
  const DATA_NOW = 1795685400;
  const SHIFT = Math.floor(Date.now() / 1000) - DATA_NOW;

  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, cls, text) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  };
  const svg = (d, extra) => {
    const w = document.createElement('span');
    w.className = 'ico' + (extra ? ' ' + extra : '');
    w.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true">' + d + '</svg>'; // constant markup only
    return w;
  };
  const ICONS = {
    'Channel::WebWidget': '<circle cx="12" cy="12" r="9"/><path d="M3 12h18M12 3a14 14 0 0 1 0 18M12 3a14 14 0 0 0 0 18"/>',
    'Channel::Email': '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="m3 7 9 6 9-6"/>',
    'Channel::Whatsapp': '<path d="M20.5 11.6a8.5 8.5 0 0 1-12.6 7.5L3.5 20.5l1.4-4.3a8.5 8.5 0 1 1 15.6-4.6Z"/><path d="M9 8.5c0 3.5 3 6.5 6.5 6.5l1-1.7-2-1-1 1a4 4 0 0 1-2.8-2.8l1-1-1-2Z"/>',
    mail: '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="m3 7 9 6 9-6"/>',
    phone: '<path d="M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1.9.4 1.8.7 2.7a2 2 0 0 1-.5 2.1L8 9.8a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.7.7a2 2 0 0 1 1.7 2Z"/>',
    pin: '<path d="M20 10c0 6-8 12-8 12s-8-6-8-12a8 8 0 0 1 16 0Z"/><circle cx="12" cy="10" r="3"/>',
    building: '<rect x="4" y="2" width="16" height="20" rx="2"/><path d="M9 22v-4h6v4M8 6h.01M16 6h.01M12 6h.01M12 10h.01M12 14h.01M16 10h.01M16 14h.01M8 10h.01M8 14h.01"/>',
    user: '<circle cx="12" cy="8" r="4"/><path d="M4 21a8 8 0 0 1 16 0"/>',
    lock: '<rect x="4" y="11" width="16" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>',
    check: '<path d="M20 6 9 17l-5-5"/>',
    reopen: '<path d="M3 12a9 9 0 1 0 3-6.7L3 8M3 3v5h5"/>',
    copy: '<rect x="9" y="9" width="12" height="12" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>',
    tag: '<path d="M20.6 13.4 13.4 20.6a2 2 0 0 1-2.8 0L2 12V2h10l8.6 8.6a2 2 0 0 1 0 2.8Z"/><path d="M7 7h.01"/>',
    inbox: '<path d="M22 12h-6l-2 3h-4l-2-3H2"/><path d="M5.5 5.1 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.5-6.9A2 2 0 0 0 16.8 4H7.2a2 2 0 0 0-1.7 1.1Z"/>',
  };

  const PALETTE = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'];
  const initials = (name) => String(name || '?').trim().split(/\s+/).slice(0, 2).map((w) => w[0]).join('').toUpperCase();
  const tone = (name) => {
    let h = 0;
    for (const ch of String(name || '')) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return PALETTE[h % PALETTE.length];
  };
  const avatar = (name, size) => {
    const a = el('span', 'avatar ' + tone(name) + (size ? ' ' + size : ''), initials(name));
    a.setAttribute('aria-hidden', 'true');
    return a;
  };

  const live = (ts) => new Date((ts + SHIFT) * 1000);
  const ago = (ts) => {
    const s = Math.max(0, Date.now() / 1000 - (ts + SHIFT));
    if (s < 60) return 'now';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  };
  const clock = (ts) => live(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const dayLabel = (ts) => {
    const d = live(ts);
    const today = new Date();
    const y = new Date(today);
    y.setDate(today.getDate() - 1);
    if (d.toDateString() === today.toDateString()) return 'Today';
    if (d.toDateString() === y.toDateString()) return 'Yesterday';
    return d.toLocaleDateString([], { weekday: 'long', month: 'short', day: 'numeric' });
  };
  const STATUS = { open: 'Open', pending: 'Pending', resolved: 'Resolved', snoozed: 'Snoozed' };

  // ---- API ----
  const api = (path) => fetch('/api/v1/' + path, {
    credentials: 'same-origin', headers: { Accept: 'application/json' },
  }).then((r) => {
    if (r.status === 401) { location.assign('/'); return new Promise(() => {}); }
    if (!r.ok) return Promise.reject(r.status);
    return r.json();
  });
  const memo = new Map();
  const cached = (path) => {
    if (!memo.has(path)) {
      const p = api(path);
      memo.set(path, p);
      p.catch(() => memo.delete(path));
    }
    return memo.get(path);
  };

  const state = {
    profile: null,
    account: null,
    conv: null,      // open conversation id
    filter: 'all',
    mode: 'reply',
    local: new Map(), // "account/id" -> {messages: [], status}
    nav: 0,
  };
  const key = (a, c) => a + '/' + c;
  const local = (a, c) => {
    const k = key(a, c);
    if (!state.local.has(k)) state.local.set(k, { messages: [], status: null, read: false });
    return state.local.get(k);
  };
  const statusOf = (c) => local(c.account_id, c.id).status || c.status;
  const convURL = (a, c) => '/app/accounts/' + a + '/conversations/' + c;

  // ---- toast ----
  let toastTimer = 0;
  const toast = (text) => {
    const t = $('#toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 2600);
  };

  // ---- navigation ----
  // Chatwoot remembers the agent's active account on the server (the
  // profile's account_id and role follow it); the stand-in keeps it in a
  // cookie, set before the URL changes so every request after it agrees.
  const ACCOUNT_IN_PATH = /^\/app\/accounts\/(\d+)(?:\/|$)/;
  const setActiveAccount = (path) => {
    const m = ACCOUNT_IN_PATH.exec(path);
    if (m) document.cookie = 'ndoto_active_account=' + m[1] + '; Path=/; SameSite=Lax';
  };
  setActiveAccount(location.pathname);
  const navigate = (href, replace) => {
    if (href === location.pathname) return;
    setActiveAccount(href);
    history[replace ? 'replaceState' : 'pushState']({}, '', href);
    route();
  };
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a[data-nav]');
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const u = new URL(a.href, location.href);
    if (u.origin !== location.origin) return;
    ev.preventDefault();
    navigate(u.pathname);
  });
  window.addEventListener('popstate', () => { setActiveAccount(location.pathname); route(); });

  const ROUTE = /^\/app\/accounts\/(\d+)(?:\/conversations(?:\/(\d+))?)?\/?$/;

  const route = () => {
    const p = state.profile;
    const m = ROUTE.exec(location.pathname);
    const account = m ? +m[1] : null;
    if (!account || !p.accounts.some((a) => a.id === account)) {
      navigate('/app/accounts/' + p.account_id + '/conversations', true);
      return;
    }
    const conv = m && m[2] ? +m[2] : null;
    const nav = ++state.nav;
    const accountChanged = state.account !== account;
    state.account = account;
    state.conv = conv;
    renderAccounts();
    if (accountChanged) renderListLoading();
    cached('accounts/' + account + '/inboxes').then((inboxes) => {
      state.inboxes = new Map((inboxes.payload || []).map((i) => [i.id, i]));
      return cached('accounts/' + account + '/conversations');
    }).then((list) => {
      if (nav !== state.nav) return;
      const items = (list.data && list.data.payload) || [];
      state.items = items;
      if (!conv) {
        if (items[0]) navigate(convURL(account, items[0].id), true);
        else renderEmptyAccount();
        return;
      }
      renderList();
      openConversation(account, conv, nav);
    }).catch((err) => {
      if (nav !== state.nav) return;
      $('#conv-list').replaceChildren(el('li', 'list-error', 'Conversations could not be loaded (' + err + ').'));
    });
  };

  // ---- rail ----
  const renderAccounts = () => {
    const box = $('#accounts');
    box.replaceChildren(...state.profile.accounts.map((a) => {
      const link = el('a', 'acct ' + tone(a.name) + (a.id === state.account ? ' active' : ''));
      link.href = '/app/accounts/' + a.id + '/conversations';
      link.dataset.nav = '';
      link.title = a.name + ' (' + a.role + ')';
      link.textContent = initials(a.name);
      if (a.id === state.account) link.setAttribute('aria-current', 'true');
      const label = el('span', 'sr-only', 'Switch to ' + a.name);
      link.appendChild(label);
      return link;
    }));
    const acc = state.profile.accounts.find((a) => a.id === state.account);
    $('#account-name').textContent = acc ? acc.name : '';
    $('#me-role').textContent = acc ? cap(acc.role) + ' · ' + acc.name : '';
  };
  const cap = (s) => String(s || '').charAt(0).toUpperCase() + String(s || '').slice(1);

  // ---- list ----
  const renderListLoading = () => {
    $('#conv-list').replaceChildren(el('li', 'skeleton'), el('li', 'skeleton'), el('li', 'skeleton'));
  };
  const filtered = () => (state.items || []).filter((c) => {
    const who = c.meta && c.meta.assignee;
    if (state.filter === 'mine') return who && who.id === state.profile.id;
    if (state.filter === 'unassigned') return !who;
    return true;
  });
  const renderList = () => {
    const items = state.items || [];
    const counts = {
      mine: items.filter((c) => c.meta.assignee && c.meta.assignee.id === state.profile.id).length,
      unassigned: items.filter((c) => !c.meta.assignee).length,
      all: items.length,
    };
    document.querySelectorAll('#list-tabs [data-filter]').forEach((b) => {
      b.setAttribute('aria-selected', String(b.dataset.filter === state.filter));
      b.querySelector('.count').textContent = counts[b.dataset.filter];
    });
    const shown = filtered();
    if (!shown.length) {
      $('#conv-list').replaceChildren(el('li', 'list-empty', 'Nothing here. Nice work!'));
      return;
    }
    $('#conv-list').replaceChildren(...shown.map((c) => {
      const li = el('li');
      const a = el('a', 'conv-item');
      a.href = convURL(c.account_id, c.id);
      a.dataset.nav = '';
      const l = local(c.account_id, c.id);
      const sel = c.id === state.conv;
      if (sel) { a.classList.add('active'); a.setAttribute('aria-current', 'page'); }
      const contact = c.meta.sender || {};
      const inbox = state.inboxes.get(c.inbox_id) || {};
      const last = l.messages[l.messages.length - 1] || c.last_non_activity_message || (c.messages || [])[0] || {};
      const unread = sel || l.read ? 0 : c.unread_count;
      if (unread) a.classList.add('unread');

      const body = el('div', 'ci-body');
      const top = el('div', 'ci-top');
      const badge = el('span', 'inbox-badge');
      badge.append(svg(ICONS[inbox.channel_type] || ICONS.inbox), document.createTextNode(inbox.name || 'Inbox'));
      const time = el('time', 'ci-time', ago(last.created_at || c.last_activity_at));
      time.dateTime = live(last.created_at || c.last_activity_at).toISOString();
      top.append(badge, time);
      const nameRow = el('div', 'ci-name-row');
      nameRow.append(el('span', 'ci-name', contact.name || 'Unknown contact'));
      const st = statusOf(c);
      if (st !== 'open') nameRow.append(el('span', 'pill pill-' + st, STATUS[st] || st));
      const prev = el('div', 'ci-preview');
      if (last.message_type === 1) {
        prev.append(svg(last.private ? ICONS.lock : '<path d="M9 14 4 9l5-5"/><path d="M4 9h10.5a5.5 5.5 0 0 1 0 11H11"/>', 'ico-sm'));
      }
      prev.append(document.createTextNode((last.content || '').replace(/\s+/g, ' ')));
      const bottom = el('div', 'ci-bottom');
      bottom.append(prev);
      if (unread) bottom.append(el('span', 'unread-count', String(unread)));
      body.append(top, nameRow, bottom);
      a.append(avatar(contact.name), body);
      li.append(a);
      return li;
    }));
  };
  $('#list-tabs').addEventListener('click', (ev) => {
    const b = ev.target.closest('[data-filter]');
    if (!b) return;
    state.filter = b.dataset.filter;
    renderList();
  });

  const renderEmptyAccount = () => {
    $('#conv-list').replaceChildren(el('li', 'list-empty', 'No conversations in this account yet.'));
    $('#conv-head').replaceChildren();
    $('#thread').replaceChildren(el('div', 'thread-empty', 'Pick a conversation.'));
    $('#contact-panel').replaceChildren();
  };

  // ---- conversation ----
  const openConversation = (account, id, nav) => {
    const l = local(account, id);
    l.read = true;
    const pending = cached('accounts/' + account + '/conversations/' + id);
    let shown = false;
    const t = setTimeout(() => { if (!shown) renderThreadLoading(); }, 120);
    pending.then((conv) => {
      shown = true;
      clearTimeout(t);
      if (nav !== state.nav) return;
      renderConversation(conv);
    }, (err) => {
      shown = true;
      clearTimeout(t);
      if (nav !== state.nav) return;
      renderNotFound(err);
    });
  };

  const renderThreadLoading = () => {
    $('#thread').replaceChildren(el('div', 'thread-loading', 'Loading conversation…'));
  };

  const renderNotFound = (err) => {
    $('#conv-head').replaceChildren();
    const box = el('div', 'thread-empty');
    box.append(el('strong', '', err === 404 ? 'Conversation not found' : 'Could not load this conversation'),
      el('span', '', err === 404 ? 'It may have been deleted, or it belongs to another account.' : 'HTTP ' + err));
    $('#thread').replaceChildren(box);
    $('#contact-panel').replaceChildren();
    $('#composer').hidden = true;
    document.title = 'Not found · Ndoto';
  };

  const renderConversation = (conv) => {
    const contact = conv.meta.sender || {};
    const inbox = state.inboxes.get(conv.inbox_id) || {};
    const acc = state.profile.accounts.find((a) => a.id === conv.account_id) || {};
    document.title = (contact.name || 'Conversation') + ' · ' + (acc.name || 'Ndoto') + ' · Ndoto';
    $('#composer').hidden = false;

    // Header
    const head = $('#conv-head');
    const who = el('div', 'ch-who');
    const names = el('div', 'ch-names');
    names.append(el('h2', 'ch-name', contact.name || 'Unknown contact'));
    const sub = el('div', 'ch-sub');
    sub.append(svg(ICONS[inbox.channel_type] || ICONS.inbox, 'ico-sm'), document.createTextNode((inbox.name || 'Inbox') + ' · #' + conv.id));
    names.append(sub);
    who.append(avatar(contact.name, 'md'), names);
    const actions = el('div', 'ch-actions');
    const assignee = conv.meta.assignee;
    const chip = el('span', 'chip');
    chip.title = 'Assignee';
    if (assignee) chip.append(avatar(assignee.name, 'xs'), document.createTextNode(assignee.name));
    else chip.append(svg(ICONS.user, 'ico-sm'), document.createTextNode('Unassigned'));
    const st = statusOf(conv);
    const pill = el('span', 'pill pill-' + st, STATUS[st] || st);
    const btn = el('button', 'btn ' + (st === 'resolved' ? 'btn-ghost' : 'btn-success'));
    btn.type = 'button';
    btn.append(svg(st === 'resolved' ? ICONS.reopen : ICONS.check, 'ico-sm'), document.createTextNode(st === 'resolved' ? 'Reopen' : 'Resolve'));
    btn.addEventListener('click', () => {
      local(conv.account_id, conv.id).status = st === 'resolved' ? 'open' : 'resolved';
      renderConversation(conv);
      renderList();
      toast(st === 'resolved' ? 'Conversation reopened (demo: not saved)' : 'Conversation resolved (demo: not saved)');
    });
    actions.append(chip, pill, btn);
    head.replaceChildren(who, actions);

    // Thread
    const thread = $('#thread');
    const frag = document.createDocumentFragment();
    const subject = conv.additional_attributes && conv.additional_attributes.mail_subject;
    if (subject) {
      const s = el('div', 'subject');
      s.append(el('span', 'subject-label', 'Subject'), el('span', '', subject));
      frag.append(s);
    }
    let day = '';
    const all = (conv.messages || []).concat(local(conv.account_id, conv.id).messages);
    all.forEach((m) => {
      const d = dayLabel(m.created_at);
      if (d !== day) { day = d; frag.append(el('div', 'day', d)); }
      frag.append(message(m, contact));
    });
    thread.replaceChildren(frag);
    thread.scrollTop = thread.scrollHeight;

    renderContact(conv, contact);
    $('#reply').placeholder = state.mode === 'note'
      ? 'This note is only visible to agents.'
      : 'Reply to ' + (contact.name || 'the contact') + '. Shift + enter for new line.';
  };

  const message = (m, contact) => {
    if (m.message_type === 2) {
      const a = el('div', 'activity');
      a.append(el('span', '', m.content), el('time', '', clock(m.created_at)));
      return a;
    }
    const out = m.message_type === 1;
    const row = el('div', 'msg ' + (out ? 'msg-out' : 'msg-in') + (m.private ? ' msg-note' : '') + (m.demo ? ' msg-demo' : ''));
    const name = (m.sender && m.sender.name) || (out ? 'Agent' : contact.name);
    const bubble = el('div', 'bubble');
    if (m.private) {
      const tag = el('span', 'note-tag');
      tag.append(svg(ICONS.lock, 'ico-xs'), document.createTextNode('Private note'));
      bubble.append(tag);
    }
    bubble.append(el('div', 'bubble-text', m.content));
    const meta = el('div', 'msg-meta');
    meta.append(el('span', 'msg-author', name), el('time', '', clock(m.created_at)));
    if (m.demo) meta.append(el('span', 'msg-demo-tag', 'not sent (demo)'));
    const col = el('div', 'msg-col');
    col.append(bubble, meta);
    row.append(out ? col : avatar(name, 'sm'), out ? avatar(name, 'sm') : col);
    return row;
  };

  const renderContact = (conv, c) => {
    const panel = $('#contact-panel');
    const head = el('div', 'cp-head');
    const who = el('div');
    who.append(el('div', 'cp-name', c.name || 'Unknown contact'));
    const aa = c.additional_attributes || {};
    const where = [aa.city, aa.country].filter(Boolean).join(', ');
    who.append(el('div', 'cp-sub', where || 'Location unknown'));
    head.append(avatar(c.name, 'lg'), who);

    const rows = el('dl', 'cp-rows');
    const row = (icon, label, value, copy) => {
      const r = el('div', 'cp-row');
      const dt = el('dt');
      dt.append(svg(icon, 'ico-sm'), el('span', 'sr-only', label));
      const dd = el('dd', value ? '' : 'muted', value || 'Not available');
      r.append(dt, dd);
      if (value && copy) {
        const b = el('button', 'icon-btn');
        b.type = 'button';
        b.title = 'Copy ' + label.toLowerCase();
        b.append(svg(ICONS.copy, 'ico-xs'));
        b.addEventListener('click', () => {
          const done = () => toast(label + ' copied');
          if (navigator.clipboard) navigator.clipboard.writeText(value).then(done, done); else done();
        });
        r.append(b);
      }
      rows.append(r);
    };
    row(ICONS.mail, 'Email', c.email, true);
    row(ICONS.phone, 'Phone', c.phone_number, true);
    if (aa.company_name) row(ICONS.building, 'Company', aa.company_name, false);
    const labels = el('div', 'cp-labels');
    (conv.labels || []).forEach((l) => {
      const chip = el('span', 'label');
      chip.append(el('i', 'label-dot'), document.createTextNode(l));
      labels.append(chip);
    });
    panel.replaceChildren(head, rows, labels);
  };

  // ---- composer ----
  const composer = $('#composer');
  composer.addEventListener('click', (ev) => {
    const b = ev.target.closest('[data-mode]');
    if (!b) return;
    state.mode = b.dataset.mode;
    composer.classList.toggle('note-mode', state.mode === 'note');
    composer.querySelectorAll('[data-mode]').forEach((x) => x.setAttribute('aria-selected', String(x === b)));
    $('#send').firstChild.textContent = state.mode === 'note' ? 'Add note ' : 'Send ';
    $('#reply').placeholder = state.mode === 'note' ? 'This note is only visible to agents.' : 'Shift + enter for new line.';
    $('#reply').focus();
  });
  $('#reply').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      composer.requestSubmit();
    }
  });
  composer.addEventListener('submit', (ev) => {
    ev.preventDefault(); // nothing is sent anywhere: the demo keeps replies in this tab
    const text = $('#reply').value.trim();
    if (!text || !state.conv) return;
    const me = state.profile;
    local(state.account, state.conv).messages.push({
      id: 'local-' + Date.now(), content: text, message_type: 1, private: state.mode === 'note', demo: true,
      created_at: Math.floor(Date.now() / 1000) - SHIFT, sender: { id: me.id, name: me.name, type: 'user' },
    });
    $('#reply').value = '';
    cached('accounts/' + state.account + '/conversations/' + state.conv).then((conv) => {
      if (conv.id === state.conv && conv.account_id === state.account) renderConversation(conv);
      renderList();
    });
  });

  // ---- profile menu and "not in this demo" buttons ----
  const meBtn = $('#me');
  const menu = $('#me-menu');
  const setMenu = (open) => { menu.hidden = !open; meBtn.setAttribute('aria-expanded', String(open)); };
  meBtn.addEventListener('click', (ev) => { ev.stopPropagation(); setMenu(menu.hidden); });
  document.addEventListener('click', (ev) => { if (!menu.hidden && !menu.contains(ev.target)) setMenu(false); });
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') setMenu(false); });
  document.querySelectorAll('[data-soon]').forEach((b) => b.addEventListener('click', () => toast(b.dataset.soon + ' is not part of this demo')));

  // ---- start ----
  api('profile').then((p) => {
    state.profile = p;
    $('#me-avatar').textContent = initials(p.name);
    $('#me-avatar').classList.add(tone(p.name));
    $('#me-name').textContent = p.name;
    $('#me-email').textContent = p.email;
    $('#shell').removeAttribute('aria-busy');
    route();
  }, (err) => {
    $('#thread').replaceChildren(el('div', 'thread-empty', 'The helpdesk API is not answering (' + err + ').'));
  });
})();
