/* Dashboard Apps host script, injected into the helpdesk's pages: on a
 * conversation route, one tab (iframe) per app, and appContext posted to
 * each. Only global: window.__dashboardApps. Entry points are wrapped in
 * safe() so nothing ever throws into the helpdesk. CSP-safe: no eval, no
 * style attributes in markup. */
(() => {
  'use strict';
  if (window.__dashboardApps) return; // injected twice: the first copy wins

  const VERSION = '1.0.0';
  const script = document.currentScript; // only valid during this first run
  const nonce = (script && script.nonce) || '';

  const warn = (e) => console.warn('[dashboard-apps]', e);
  const safe = (fn) => function (...args) {
    try { return fn.apply(this, args); } catch (e) { warn(e); }
  };
  const attempt = (fn) => { try { return fn(); } catch (_) { return null; } };
  // localStorage may be missing or throw (privacy modes, sandboxes).
  const store = (key, value) => attempt(() => (value === undefined
    ? localStorage.getItem('dashboardApps.' + key) : localStorage.setItem('dashboardApps.' + key, value)));

  let cur = null;     // {account, conversation} of the open conversation, or null
  let list = null;    // apps of listAccount, in tab order
  let listAccount = null;
  let listErr = '', ctxErr = '';
  let ctx = { key: '', msg: null }; // msg: appContext of conversation `key`, once fetched
  let inbox = null;   // the open conversation's inbox_id (string)
  let posts = 0;
  let root, body, strip, tablist, errEl, panels, toggle, handle, manage, emptyEl;
  let settingsHref = null; // the account's settings page: its administrators only (the gateway says)
  let mode = 'panel';
  let collapsed = store('collapsed') === '1';
  let width = +store('width') || 380;
  // app id -> {id, app, origin, tab, panel, frame, load, loaded, want,
  //   form, askedAt, loadedAt, target, session}
  const entries = new Map();
  const appsCache = new Map(); // account -> Promise of its app list
  let bodyMargin = null;

  const keyOf = (c) => c.account + '/' + c.conversation;
  const shown = (a) => !Array.isArray(a.inboxes) || !a.inboxes.length ||
    (inbox !== null && a.inboxes.map(String).includes(inbox));
  const visible = () => (list || []).filter(shown).map((a) => entries.get(String(a.id))).filter((e) => e && e.tab);

  window.__dashboardApps = Object.freeze({
    version: VERSION,
    state: () => ({
      account: cur ? +cur.account : null,
      conversation: cur ? +cur.conversation : null,
      apps: cur && root && !root.hidden ? visible().map((e) => e.id) : [],
      contextPosts: posts,
    }),
  });

  let cfg;
  try {
    cfg = JSON.parse(document.getElementById('dashboard-apps-config').textContent);
  } catch (e) { warn('no usable #dashboard-apps-config'); return; }
  const ep = cfg.endpoint || '/_dashboard_apps/';

  // Route -> regexp: each {name} is one segment of digits; trailing slash allowed.
  const names = [];
  const routeRe = new RegExp('^' + String(cfg.route || '').replace(/\/+$/, '').split(/\{(\w+)\}/)
    .map((s, i) => (i % 2 ? (names.push(s), '(\\d+)') : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('') + '/?$');
  const match = (path) => {
    const m = cfg.route && routeRe.exec(path);
    if (!m) return null;
    const g = {};
    names.forEach((n, i) => { g[n] = m[i + 1]; });
    return g.account && g.conversation ? { account: g.account, conversation: g.conversation } : null;
  };

  const getJSON = (path) => fetch(ep + path, {
    credentials: 'include', cache: 'no-store', headers: { Accept: 'application/json' },
  }).then((r) => (r.ok ? r.json() : Promise.reject(r.status)));
  const errText = (what, err) => (err === 401 ? '' : what + (typeof err === 'number' ? ' (HTTP ' + err + ').' : '.'));

  // CSS via <link> with the script's nonce (a strict CSP allows no inline styles).
  const cssReady = new Promise((done) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = cfg.css || ep + 'host.css';
    if (nonce) link.nonce = nonce;
    link.onload = link.onerror = () => done();
    setTimeout(done, 3000);
    document.head.appendChild(link);
  });

  // URL template variables, filled from the open conversation's
  // appContext; a missing value is empty.
  const contactOf = (d) => d.contact || (d.conversation && d.conversation.contact) || {};
  const VARS = {
    'conversation.id': (d) => d.conversation.id,
    'conversation.inbox_id': (d) => d.conversation.inbox_id,
    'account.id': (d) => d.conversation.account_id,
    'contact.id': (d) => contactOf(d).id,
    'contact.email': (d) => contactOf(d).email,
    'contact.name': (d) => contactOf(d).name,
    'contact.phone_number': (d) => contactOf(d).phone_number,
    'currentAgent.id': (d) => d.currentAgent.id,
    'currentAgent.email': (d) => d.currentAgent.email,
  };
  const VAR_RE = new RegExp('\\{(' + Object.keys(VARS).map((k) => k.replace('.', '\\.')).join('|') + ')\\}', 'g');
  const valueOf = (d, name) => {
    const v = attempt(() => VARS[name](d));
    return v == null || typeof v === 'object' ? '' : String(v);
  };
  // Fills url's variables from d (appContext's data), each percent-encoded
  // for its place: a path segment or a query value. A path segment that
  // filling leaves all dots ("..", ".%2e"...) would be resolved by the
  // browser and climb out of the app: its dots are encoded twice, so that
  // it stays a segment of its own (which the gateway, in path mode,
  // refuses rather than resolve).
  const fill = (url, d) => {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const put = (m, name) => encodeURIComponent(valueOf(d, name));
    return path.split('/').map((seg) => {
      if (seg.indexOf('{') < 0) return seg;
      const f = seg.replace(VAR_RE, put);
      return /^(\.|%2e){1,2}$/i.test(f) ? f.replace(/\.|%2e/gi, '%252E') : f;
    }).join('/') + (q < 0 ? '' : url.slice(q).replace(VAR_RE, put));
  };
  // An app with template variables follows the open conversation: its
  // frame moves to the URL filled from the conversation's context whenever
  // that differs from the one it was given last, and gets the context on
  // that load. Returns whether the frame moved.
  const follow = (e) => {
    if (!e.app.vars.length || !e.frame) return false;
    if (!cur || listAccount !== cur.account || !ctx.msg || ctx.key !== keyOf(cur) || !shown(e.app)) return false;
    const u = new URL(fill(e.app.url, ctx.msg.data || {}), location.href);
    if (u.origin !== e.app.origin) return false; // never anywhere else
    if (e.target && e.target.href === u.href) return false;
    e.target = { href: u.href, path: u.pathname + u.search };
    e.open.href = u.href;
    e.loaded = false;
    e.want = false;
    navigate(e, e.target.path);
    return true;
  };

  // Post only the open conversation's context, only to apps listed for its
  // account and shown for its inbox, only to the app's exact origin.
  const postTo = safe((e) => {
    const ready = cur && listAccount === cur.account && ctx.msg && ctx.key === keyOf(cur) &&
      e.frame && shown(e.app) && entries.get(e.id) === e;
    if (!ready) { e.want = true; return; } // posted when the context arrives
    const w = e.frame.contentWindow;
    if (!w || !showsItsApp(e)) return;
    e.want = false;
    // Each app gets the message with its own token (aud = its id), fetched
    // once per conversation; the gateway answers it from its cache. An app
    // whose own message cannot be had gets nothing: never another app's,
    // nor one without its token.
    const c = ctx;
    const p = c.per.get(e.id) || getJSON(c.url + '&app=' + encodeURIComponent(e.id)).catch(() => null);
    c.per.set(e.id, p);
    p.then(safe((msg) => {
      if (!msg || ctx !== c || !e.frame || e.frame.contentWindow !== w) return; // none, or moved on meanwhile
      // The form as of the post: a request that came meanwhile counts.
      const f = formOf(e);
      if (f !== 'string') w.postMessage(msg, e.origin);
      if (f !== 'object') w.postMessage(JSON.stringify(msg), e.origin);
      posts++;
    }));
  });
  // Apps whose url has template variables move to the filled URL instead:
  // they get the context on that load.
  const postAll = () => entries.forEach((e) => { if (!follow(e) && (e.loaded || e.want)) postTo(e); });

  // Message formats: 'object' (the helpdesk's documented form), 'string'
  // (the same JSON.stringify-ed, as Chatwoot posts it), or, for an app in
  // message_format auto that has not asked yet in this document, 'both'.
  const formOf = (e) => {
    const f = e.app.message_format;
    return f === 'object' ? 'object' : f === 'json_string' ? 'string' : (e.form || 'both');
  };
  // An app asked in form f. In auto, that is its form for this document:
  // a request counts for the document that sent it, whether it came
  // before the frame's load event (then it is the new document's) or
  // after; a document that never asks gets both forms again. A forced
  // format the app did not ask in is reported to the gateway, which warns
  // the operator once.
  const reported = new Set();
  const askLatency = 500; // ms: longer than a request takes to arrive, shorter than a person takes to navigate
  const learn = (e, f) => {
    const forced = e.app.message_format;
    if (forced !== 'object' && forced !== 'json_string') {
      e.form = f;
      e.askedAt = performance.now();
      return;
    }
    if ((forced === 'object') === (f === 'object') || reported.has(e.id)) return;
    reported.add(e.id);
    postJSON('message-format', { app: e.id, asked: f === 'object' ? 'object' : 'json_string' }).catch(() => {});
  };

  // Whether a frame still shows its own app. On an origin of its own the
  // targetOrigin of every post says so; under the helpdesk's origin every
  // app shares it, so the frame's location must be under the app's prefix:
  // a frame navigated to another app, or to the helpdesk, gets nothing.
  const showsItsApp = (e) => {
    if (e.app.own) return true;
    const root = (cfg.prefix || '/dashboard-apps/') + e.id + '/';
    return !!attempt(() => {
      const loc = e.frame.contentWindow.location;
      return loc.origin === location.origin && loc.pathname.startsWith(root);
    });
  };

  // Origin mode: a frame opens through a one-time ticket that the gateway
  // gives this page for the signed-in agent, and the page renews the app's
  // session while it is open.
  const postJSON = (path, body) => fetch(ep + path, {
    method: 'POST', credentials: 'include', cache: 'no-store',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  }).then((r) => (r.ok ? r.json() : Promise.reject(r.status)));
  const openSession = (e, to) => postJSON('session', { app: e.id, to: to || entryOf(e).path }).then((a) => {
    if (!a || typeof a.url !== 'string') return Promise.reject(0);
    const u = new URL(a.url, location.href);
    if (u.origin !== e.app.origin) return Promise.reject(0); // only ever the app's own origin
    return { href: u.href, renew: a.renew, every: a.renew_in };
  });
  // Renews the frame's session while the page is open; started once the
  // frame has loaded, that is, once its ticket is spent.
  const keepAlive = (e) => {
    clearInterval(e.renewer);
    const s = e.session;
    if (!s || !s.renew || !(s.every > 0)) return;
    e.renewer = setInterval(safe(() => {
      postJSON('session', { app: e.id, renew: s.renew }).catch((err) => {
        if (err === 410 || err === 401 || err === 403) { clearInterval(e.renewer); s.ended = true; }
      });
    }), s.every);
  };
  // Where the app's frame opens: its entry page, or for an app with
  // template variables the page last filled in for the open conversation
  // (href: for the frame, path: on the app's own origin).
  const entryOf = (e) => e.target || { href: e.app.href, path: e.app.path };
  // Points the frame at its page (path mode) or at a ticket for it (origin
  // mode; a frame whose session is live, its ticket spent and this page
  // renewing it, goes to another page of its app directly); errors show
  // inside the app's tab only.
  const navigate = (e, to) => {
    e.load.hidden = false;
    e.load.textContent = 'Loading…';
    if (!e.app.own) { e.frame.src = entryOf(e).href; return; }
    if (to && e.session && e.session.live && !e.session.ended) { e.frame.src = e.app.origin + to; return; }
    openSession(e, to).then(safe((s) => {
      if (entries.get(e.id) !== e) return;
      clearInterval(e.renewer);
      e.session = s;
      e.frame.src = s.href;
    }), safe((err) => {
      e.load.textContent = err === 401 ? 'Sign in to the helpdesk to use this app.'
        : err === 403 ? 'This app is not available to you.' : 'This app could not be opened. Reload to try again.';
    }));
  };

  // fetch-info requests: only from our iframes' own windows at the app's origin.
  window.addEventListener('message', safe((ev) => {
    if (!ev.source) return;
    let e = null;
    entries.forEach((x) => { if (x.frame && x.frame.contentWindow === ev.source) e = x; });
    if (!e || ev.origin !== e.origin) return;
    // The object {"event": "fetch-info"} asks for objects; the string
    // 'chatwoot-dashboard-app:fetch-info' (or a JSON string of either
    // event) for strings.
    let d = ev.data, f = 'object';
    if (typeof d === 'string') {
      f = 'string';
      if (d === 'chatwoot-dashboard-app:fetch-info') d = { event: 'fetch-info' };
      else if (d[0] === '{') { try { d = JSON.parse(d); } catch (_) { return; } }
    }
    if (!d || typeof d !== 'object' || (d.event !== 'fetch-info' && !(f === 'string' && d.event === 'chatwoot-dashboard-app:fetch-info'))) return;
    learn(e, f);
    postTo(e);
  }));

  // The account's apps, asked again on every conversation opened, so that
  // apps added or removed meanwhile show (their tabs kept otherwise). The
  // answer's header names the account's settings page for administrators.
  let appsSeq = 0;
  const loadApps = (account, fresh) => {
    if (fresh) appsCache.delete(account);
    let p = appsCache.get(account);
    if (!p) {
      p = fetch(ep + 'apps?account=' + encodeURIComponent(account), {
        credentials: 'include', cache: 'no-store', headers: { Accept: 'application/json' },
      }).then((r) => (r.ok ? r.json().then((apps) => ({ apps, settings: r.headers.get('X-Dashboard-Apps-Settings') }))
        : Promise.reject(r.status)));
      appsCache.set(account, p);
      p.catch(() => appsCache.delete(account)); // failures are retried
    }
    const seq = ++appsSeq;
    Promise.all([p, cssReady]).then(safe(([{ apps, settings }]) => {
      if (!cur || cur.account !== account || seq !== appsSeq) return;
      // Only ever a page of the gateway's own, never a javascript: link.
      settingsHref = typeof settings === 'string' && settings.startsWith(ep + 'settings?') ? settings : null;
      list = (Array.isArray(apps) ? apps : []).filter((a) => {
        if (!a || a.id == null || !a.url) return false;
        try {
          a.url = String(a.url);
          a.vars = a.url.match(VAR_RE) || []; // template variables, filled per conversation
          const u = new URL(a.vars.length ? fill(a.url, {}) : a.url, location.href);
          a.origin = u.origin;
          a.own = u.origin !== location.origin; // origin mode: the app on an origin of its own
          a.href = a.vars.length ? u.href : a.url; // with its variables empty until a conversation fills them
          a.path = u.pathname + u.search;
          return /^https?:$/.test(u.protocol); // never a javascript: tab
        } catch (_) { return false; }
      });
      listAccount = account;
      listErr = '';
      render();
      postAll();
    }), safe((err) => {
      if (!cur || cur.account !== account || seq !== appsSeq) return;
      if (listAccount === account && fresh) return; // keep the tabs shown; asked again at the next conversation
      list = [];
      settingsHref = null;
      listAccount = account;
      listErr = errText('Dashboard apps could not be loaded', err);
      render();
    }));
  };

  const loadContext = (c) => {
    const key = keyOf(c);
    const url = 'context?account=' + encodeURIComponent(c.account) +
      '&conversation=' + encodeURIComponent(c.conversation);
    ctx = { key, msg: null, url, per: new Map() }; // drop the previous conversation's context at once
    ctxErr = '';
    getJSON(url).then((msg) => (msg && msg.event === 'appContext' ? msg : Promise.reject(0))).then(safe((msg) => {
      if (ctx.key !== key) return; // a later navigation won
      const conv = msg.data && msg.data.conversation;
      ctx.msg = msg;
      inbox = conv && conv.inbox_id != null ? String(conv.inbox_id) : null;
      render();
      postAll();
    }), safe((err) => {
      if (ctx.key !== key) return;
      inbox = null; // and no context: nothing stale is ever posted
      ctxErr = errText('Conversation details for the apps could not be loaded', err);
      render();
    }));
  };

  const el = (tag, cls, attrs) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    for (const k in attrs || {}) n.setAttribute(k, attrs[k]);
    return n;
  };
  const icon = (d, cls) => {
    const ns = 'http://www.w3.org/2000/svg';
    const s = document.createElementNS(ns, 'svg');
    const p = document.createElementNS(ns, 'path');
    s.setAttribute('viewBox', '0 0 16 16');
    s.setAttribute('class', 'da-ico' + (cls ? ' ' + cls : ''));
    s.setAttribute('aria-hidden', 'true');
    p.setAttribute('d', d);
    s.appendChild(p);
    return s;
  };

  const clampW = (w) => Math.max(280, Math.min(w, innerWidth * 0.7));

  const createRoot = () => {
    root = el('section', 'da-root', { id: 'dashboard-apps', 'aria-label': 'Dashboard apps' });
    root.hidden = true;
    handle = el('div', 'da-resize', {
      role: 'separator', 'aria-orientation': 'vertical', 'aria-label': 'Resize dashboard apps',
      'aria-valuemin': '280', tabindex: '0',
    });
    toggle = el('button', 'da-toggle', { type: 'button', 'aria-controls': 'da-body' });
    const label = el('span', 'da-tlabel');
    label.textContent = 'Apps';
    toggle.append(icon('M6 3.5 10.5 8 6 12.5', 'da-chev'), label);
    body = el('div', 'da-body', { id: 'da-body' });
    strip = el('div', 'da-strip');
    tablist = el('div', 'da-tablist', { role: 'tablist', 'aria-label': 'Dashboard apps' });
    errEl = el('p', 'da-error', { role: 'status' });
    errEl.hidden = true;
    panels = el('div', 'da-panels');
    // The account's settings page, for its administrators only.
    manage = el('a', 'da-btn da-manage', { id: 'da-manage', title: 'Manage dashboard apps', 'aria-label': 'Manage dashboard apps' });
    manage.appendChild(icon('M1.5 4h8M12.5 4h2M1.5 8h2M6.5 8h8M1.5 12h6M10.5 12h4M9.5 4a1.5 1.5 0 1 0 3 0a1.5 1.5 0 1 0-3 0M3.5 8a1.5 1.5 0 1 0 3 0a1.5 1.5 0 1 0-3 0M7.5 12a1.5 1.5 0 1 0 3 0a1.5 1.5 0 1 0-3 0'));
    manage.hidden = true;
    emptyEl = el('p', 'da-empty');
    emptyEl.hidden = true;
    strip.append(tablist, manage);
    body.append(strip, errEl, emptyEl, panels);
    root.append(handle, toggle, body);

    toggle.addEventListener('click', safe(() => {
      collapsed = !collapsed;
      store('collapsed', collapsed ? 1 : 0);
      layout();
    }));
    // WAI-ARIA tabs: arrows move and activate (wrapping), Home/End.
    tablist.addEventListener('keydown', safe((ev) => {
      const tabs = visible();
      const i = tabs.findIndex((e) => e.tab === ev.target);
      const k = ev.key;
      if (i < 0 || !tabs.length) return;
      const j = k === 'ArrowRight' ? (i + 1) % tabs.length : k === 'ArrowLeft' ? (i - 1 + tabs.length) % tabs.length
        : k === 'Home' ? 0 : k === 'End' ? tabs.length - 1 : -1;
      if (j < 0) return;
      ev.preventDefault();
      select(tabs[j].id, true, true);
    }));
    // Pointer capture keeps the drag going over iframes.
    handle.addEventListener('pointerdown', safe((ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      handle.setPointerCapture(ev.pointerId);
      root.classList.add('da-dragging');
    }));
    handle.addEventListener('pointermove', safe((ev) => {
      if (!handle.hasPointerCapture(ev.pointerId)) return;
      width = clampW(innerWidth - ev.clientX);
      layout();
    }));
    handle.addEventListener('lostpointercapture', safe(() => {
      root.classList.remove('da-dragging');
      store('width', Math.round(width));
    }));
    handle.addEventListener('keydown', safe((ev) => {
      const d = ev.key === 'ArrowLeft' ? 20 : ev.key === 'ArrowRight' ? -20 : 0;
      if (!d) return;
      ev.preventDefault();
      width = clampW(clampW(width) + d);
      store('width', Math.round(width));
      layout();
    }));
    window.addEventListener('resize', safe(layout));
    // The SPA may (re-)render its sidebar after us: re-place, once per frame.
    let queued = false;
    new MutationObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(safe(() => { queued = false; if (!root.hidden) { place(); layout(); } }));
    }).observe(document.body, { childList: true, subtree: true });
  };

  const build = (e) => {
    const id = e.id;
    e.tab = el('button', 'da-tab', {
      type: 'button', role: 'tab', id: 'da-tab-' + id, 'aria-controls': 'da-panel-' + id,
      'aria-selected': 'false', tabindex: '-1', 'data-app-id': id,
    });
    e.tab.addEventListener('click', safe(() => select(id, true)));
    e.panel = el('div', 'da-panel', {
      role: 'tabpanel', id: 'da-panel-' + id, 'aria-labelledby': 'da-tab-' + id, 'data-app-id': id,
    });
    e.panel.hidden = true;
    const bar = el('div', 'da-bar');
    e.title = el('span', 'da-title');
    e.open = el('a', 'da-btn da-open', {
      href: entryOf(e).href, target: '_blank', rel: 'noopener', title: 'Open in new tab', 'aria-label': 'Open in new tab',
    });
    e.open.appendChild(icon('M9.5 2.5h4v4M13.5 2.5 8 8M11.5 9.5v4h-9v-9h4'));
    e.open.addEventListener('click', safe((ev) => {
      if (!e.app.own) return;
      // A new tab needs a session of its own: open it through a ticket.
      ev.preventDefault();
      const tab = window.open('', '_blank');
      if (tab) tab.opener = null;
      openSession(e, entryOf(e).path).then((s) => { if (tab) tab.location.replace(s.href); }, () => { if (tab) tab.close(); });
    }));
    const reload = el('button', 'da-btn da-reload', { type: 'button', title: 'Reload', 'aria-label': 'Reload' });
    reload.appendChild(icon('M13.5 8a5.5 5.5 0 1 1-1.6-3.9M12.5 1.5v3h-3'));
    reload.addEventListener('click', safe(() => {
      if (e.app.own) { navigate(e); return; } // a new ticket: the session may have ended
      e.load.hidden = false;
      // Reload the app's current page; if it left our origin, restart it.
      try { e.frame.contentWindow.location.reload(); } catch (_) { e.frame.src = entryOf(e).href; }
    }));
    bar.append(e.title, e.open, reload);
    const wrap = el('div', 'da-wrap');
    e.load = el('div', 'da-loading', { role: 'status' });
    e.load.textContent = 'Loading…';
    // src before insertion: no about:blank load first (origin mode: the
    // frame's first load is about:blank while the ticket comes, and gets
    // nothing: its origin is not the app's; likewise for an app whose URL
    // waits for the conversation to fill its template variables).
    const later = e.app.own || e.app.vars.length;
    e.frame = el('iframe', 'da-frame', later ? { 'data-app-id': id } : { src: e.app.url, 'data-app-id': id });
    e.frame.addEventListener('load', safe(() => {
      if (!e.frame.getAttribute('src')) return;
      if (e.app.own && e.session && !e.session.live) {
        e.session.live = true;
        keepAlive(e);
      }
      e.loaded = true;
      e.load.hidden = true;
      // A new document: in message_format auto it gets both forms until
      // it asks, unless it asked already, while it loaded. A request that
      // came just after the previous load is the previous document's,
      // late (the parent may see a frame's load before the messages its
      // document sent while loading); one that came later, this one's.
      const now = performance.now();
      if (!(e.askedAt > e.loadedAt + askLatency)) e.form = null;
      e.loadedAt = now;
      // Every load, including navigations inside the app; after the tasks
      // already queued, so that a request the new document sent while it
      // loaded is seen first and it gets only the form it asked for.
      setTimeout(() => postTo(e), 0);
    }));
    wrap.append(e.load, e.frame);
    e.panel.append(bar, wrap);
    panels.appendChild(e.panel);
    if (e.app.vars.length) follow(e);
    else if (e.app.own) navigate(e);
  };

  const drop = (e) => {
    clearInterval(e.renewer);
    if (e.tab) { e.tab.remove(); e.panel.remove(); }
    entries.delete(e.id);
  };

  const select = (id, user, focus) => {
    const tabs = visible();
    const t = tabs.find((e) => e.id === id) || tabs[0];
    entries.forEach((e) => {
      if (!e.tab) return;
      const on = e === t;
      e.tab.setAttribute('aria-selected', String(on));
      e.tab.tabIndex = on ? 0 : -1;
      e.panel.hidden = !on; // hidden, never removed: the iframe keeps its state
    });
    if (t && user) store('selected', t.id);
    if (t && focus) t.tab.focus();
  };

  // Into the helpdesk's sidebar if present, else an own panel. Moving an
  // iframe reloads it, so move only when needed.
  const place = () => {
    const p = root.parentElement;
    const inSidebar = cfg.sidebar && p && p !== document.body && root.isConnected && attempt(() => p.matches(cfg.sidebar));
    if (!inSidebar) {
      const sb = cfg.sidebar && attempt(() => document.querySelector(cfg.sidebar));
      const target = sb && !root.contains(sb) ? sb : document.body;
      if (p !== target) target.appendChild(root);
    }
    mode = root.parentElement === document.body ? 'panel' : 'sidebar';
  };

  // Own panel: fixed on the right, its width reserved on <body> (if the
  // viewport is wide enough) so it covers nothing.
  const layout = () => {
    if (!root) return;
    const panel = mode === 'panel' && !root.hidden;
    const w = Math.round(clampW(width));
    root.classList.toggle('da-mode-panel', mode === 'panel');
    root.classList.toggle('da-mode-sidebar', mode === 'sidebar');
    root.classList.toggle('da-collapsed', panel && collapsed);
    root.style.width = panel && !collapsed ? w + 'px' : '';
    toggle.setAttribute('aria-expanded', String(!collapsed));
    toggle.setAttribute('aria-label', collapsed ? 'Show dashboard apps' : 'Hide dashboard apps');
    handle.setAttribute('aria-valuenow', String(w));
    // The panel keeps an empty strip for its toggle; the sidebar doesn't.
    strip.hidden = mode === 'sidebar' && !visible().length && manage.hidden;
    handle.setAttribute('aria-valuemax', String(Math.round(innerWidth * 0.7)));
    const bs = document.body.style;
    if (bodyMargin === null) bodyMargin = bs.marginRight;
    const m = panel && !collapsed && innerWidth - w >= 600 ? w + 'px' : bodyMargin;
    if (bs.marginRight !== m) bs.marginRight = m;
  };

  const render = () => {
    if (!root) {
      if (!cur) return;
      createRoot();
    }
    // Reconcile with the list: drop unlisted apps, keep the others' iframes.
    const apps = list || [];
    const ids = new Set(apps.map((a) => String(a.id)));
    entries.forEach((e) => { if (!ids.has(e.id)) drop(e); });
    apps.forEach((a) => {
      const id = String(a.id);
      let e = entries.get(id);
      if (e && e.app.url !== a.url) { drop(e); e = null; }
      if (!e) entries.set(id, e = { id, origin: a.origin, loaded: false, want: false, form: null, askedAt: -Infinity, loadedAt: -Infinity });
      e.app = a;
      if (!e.tab && shown(a)) build(e); // iframes only for apps shown here
      if (e.tab) {
        const name = String(a.name == null ? id : a.name);
        e.tab.textContent = name; // text, never HTML
        e.title.textContent = name;
        e.frame.title = name;
        e.tab.hidden = !shown(a);
      }
    });
    apps.map((a) => entries.get(String(a.id)).tab).filter(Boolean).forEach((t, i) => {
      if (tablist.children[i] !== t) tablist.insertBefore(t, tablist.children[i] || null);
    });
    const tabs = visible();
    const want = [store('selected'), (tabs.find((e) => e.tab.tabIndex === 0) || {}).id]
      .find((id) => tabs.some((e) => e.id === id));
    select(want, false);
    const err = listErr || ctxErr;
    errEl.textContent = err;
    errEl.hidden = !err;
    const href = cur && listAccount === cur.account && settingsHref;
    manage.hidden = !href;
    if (href) manage.href = href + '&return=' + encodeURIComponent(location.pathname + location.search);
    // An administrator of an account without apps gets the way to add one.
    emptyEl.hidden = !href || tabs.length > 0;
    if (!emptyEl.firstChild) {
      const add = el('a', 'da-link');
      add.textContent = 'Add one';
      emptyEl.append('No dashboard apps in this account yet. ', add);
    }
    if (href) emptyEl.lastChild.href = manage.href;
    root.hidden = !cur || !(tabs.length || err || href);
    if (!root.hidden) place();
    layout();
  };

  const sync = safe(() => {
    const prev = cur;
    cur = match(location.pathname);
    if (cur) {
      if (!prev || keyOf(prev) !== keyOf(cur)) loadApps(cur.account, true);
      if (!prev || keyOf(prev) !== keyOf(cur)) loadContext(cur);
    }
    render();
  });

  const start = safe(() => {
    // SPA navigation: history API, back/forward, Navigation API.
    ['pushState', 'replaceState'].forEach((k) => {
      const orig = history[k];
      if (typeof orig !== 'function') return;
      history[k] = function (...args) {
        const r = orig.apply(this, args);
        sync();
        return r;
      };
    });
    window.addEventListener('popstate', sync);
    attempt(() => window.navigation && navigation.addEventListener('navigatesuccess', sync));
    sync();
  });

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
