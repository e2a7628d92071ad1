/* Dashboard Apps path-mode shim: the first script of an app's pages served
 * under {prefix}<id>/ on the helpdesk's origin, so that the app's own
 * scripts work there as they do at the root of the app's upstream:
 *   - URLs they build at run time (root-relative, on the app's upstream
 *     origin, or relative with a ".." that would leave the prefix) are
 *     mapped under the prefix, by the rules of the gateway's HTML rewriter
 *     (rewrite.Mapper), in fetch, XMLHttpRequest, WebSocket, EventSource,
 *     sendBeacon, workers, window.open, history, element URL properties
 *     and attributes, form submission, links;
 *   - document.cookie shows this app's cookies under their own names, and
 *     a cookie written from script is scoped as a Set-Cookie from the app
 *     is (rewrite.ScopeSetCookie).
 * Compatibility, not isolation: every app in path mode shares the
 * helpdesk's origin, and a script can always reach the browser's own
 * functions around this one (see SECURITY.md). It defines no global. */
(function () {
  'use strict';
  var me = document.currentScript;
  // Run once, and only as the gateway inserted it (a copy evaluated by a
  // framework has no currentScript).
  if (!me || !me.dataset || Object.getOwnPropertyDescriptor(document, 'cookie')) return;
  var d = me.dataset;
  var APP = d.app, PREFIX = d.prefix, BASE = d.base, UP = d.origin;
  var PROXIED = PREFIX + APP + '/';
  var OWN = '/_dashboard_apps/';
  me.remove(); // the page's DOM stays as the app wrote it
  if (!APP || !PREFIX || !BASE || !UP || location.pathname.indexOf(PROXIED) !== 0) return;

  var URL_ = window.URL;
  var up;
  try { up = new URL_(UP); } catch (e) { return; }

  var family = function (p) { return p === 'ws:' ? 'http:' : p === 'wss:' ? 'https:' : p; };
  var absolute = /^[\u0000-\u0020]*(?:[a-zA-Z][a-zA-Z0-9+.\-]*:|[\/\\][\/\\])/;
  var rootish = /^[\u0000-\u0020]*[\/\\]/;
  var dotted = /(?:^|[\/\\])(?:\.|%2e)/i;
  var trusted = function (v) {
    return typeof v === 'object' && (window.TrustedScriptURL && v instanceof TrustedScriptURL ||
      window.TrustedHTML && v instanceof TrustedHTML || window.TrustedScript && v instanceof TrustedScript);
  };

  // The app's upstream URL of the document's base: where the app thinks
  // its page is.
  function upstreamBase() {
    var b;
    try { b = new URL_(document.baseURI); } catch (e) { return null; }
    if (b.origin === location.origin && b.pathname.indexOf(PROXIED) === 0) {
      return UP + BASE + b.pathname.slice(PROXIED.length) + b.search;
    }
    return b.host === up.host && family(b.protocol) === up.protocol ? b.href : null;
  }

  // The proxied path of t, a URL on the app's upstream, or null when it is
  // outside the app's base path (which the gateway cannot serve).
  function proxiedOf(t) {
    var p = t.pathname;
    if (p.indexOf(BASE) === 0) p = PROXIED + p.slice(BASE.length);
    else if (p + '/' === BASE) p = PROXIED;
    else return null;
    return p + t.search + t.hash;
  }

  // map returns what to use instead of the URL v, or v itself. own: v is
  // a request of the app's own (fetch, XHR, ...), where an absolute URL on
  // the helpdesk's origin outside the prefix is the app's idea of its own
  // origin (location.origin + '/api'); for links, frames and navigations
  // such a URL may be a deliberate link to the helpdesk, and is left alone.
  function map(v, own) {
    if (v === null || v === undefined || trusted(v)) return v; // a Trusted Type keeps its trust
    var s = String(v);
    var abs = absolute.test(s);
    if (!abs && !rootish.test(s) && !dotted.test(s)) return v; // plain relative: stays under the prefix
    var r;
    try { r = new URL_(s, document.baseURI); } catch (e) { return v; }
    var t;
    if (r.host === location.host && family(r.protocol) === location.protocol) {
      var p = r.pathname;
      if (p.indexOf(PROXIED) === 0) return v;
      // Another app's or the gateway's path, written out: not the app's.
      if ((abs || rootish.test(s)) && (p.indexOf(PREFIX) === 0 || p.indexOf(OWN) === 0)) return v;
      if (abs && !own) return v;
      if (abs) {
        t = new URL_(p + r.search + r.hash, UP);
      } else {
        var b = upstreamBase();
        if (!b) return v;
        try { t = new URL_(s, b); } catch (e) { return v; }
        if (t.host !== up.host) return v;
      }
    } else if (r.host === up.host && family(r.protocol) === up.protocol) {
      t = r;
    } else {
      return v;
    }
    var m = proxiedOf(t);
    if (m === null) return v; // left for the gateway to see, and log
    if (!abs) return m;
    var scheme = r.protocol === 'ws:' || r.protocol === 'wss:' ? (location.protocol === 'https:' ? 'wss:' : 'ws:') : location.protocol;
    return scheme + '//' + location.host + m;
  }
  var mapOwn = function (v) { return map(v, true); };
  var mapLink = function (v) { return map(v, false); };

  // srcset: "url descriptors, url descriptors", split as the HTML standard
  // does; everything but the URLs is kept as written.
  function mapSrcset(v) {
    if (v === null || v === undefined || trusted(v)) return v;
    var s = String(v), out = '', i = 0, n = s.length, changed = false;
    while (i < n) {
      var j = i;
      while (j < n && (/[\s,]/.test(s[j]))) j++;
      out += s.slice(i, j);
      if (j >= n) break;
      var k = j;
      while (k < n && !/\s/.test(s[k])) k++;
      var url = s.slice(j, k), tail = '';
      var m = /,+$/.exec(url);
      if (m) { tail = m[0]; url = url.slice(0, m.index); }
      var mapped = mapLink(url);
      if (mapped !== url) changed = true;
      out += mapped + tail;
      i = k;
      if (!m) { // descriptors, up to a comma outside parentheses
        var depth = 0;
        while (k < n && (s[k] !== ',' || depth > 0)) {
          if (s[k] === '(') depth++;
          else if (s[k] === ')' && depth > 0) depth--;
          k++;
        }
        out += s.slice(i, k);
        i = k;
      }
    }
    return changed ? out : v;
  }
  function mapList(v) { // ping: URLs separated by white space
    if (typeof v !== 'string') return v;
    return v.replace(/[^\s]+/g, function (u) { return mapLink(u); });
  }

  var define = Object.defineProperty;
  var wrap = function (obj, name, make) {
    var orig = obj && obj[name];
    if (typeof orig !== 'function') return;
    var f = make(orig);
    try { define(f, 'name', { value: orig.name }); define(f, 'length', { value: orig.length }); } catch (e) { /* keep going */ }
    obj[name] = f;
  };

  // Requests of the app's own.
  wrap(window, 'fetch', function (orig) {
    return function fetch(input, init) {
      if (typeof Request === 'function' && input instanceof Request) {
        var u = mapOwn(input.url);
        if (u !== input.url) input = new Request(u, input);
      } else {
        input = mapOwn(input);
      }
      return orig.call(this, input, init);
    };
  });
  if (window.XMLHttpRequest) {
    wrap(XMLHttpRequest.prototype, 'open', function (orig) {
      return function open(method, url) {
        var args = Array.prototype.slice.call(arguments);
        if (args.length > 1) args[1] = mapOwn(url);
        return orig.apply(this, args);
      };
    });
  }
  if (navigator.sendBeacon) {
    wrap(Navigator.prototype, 'sendBeacon', function (orig) {
      return function sendBeacon(url, data) {
        var args = Array.prototype.slice.call(arguments);
        args[0] = mapOwn(url);
        return orig.apply(this, args);
      };
    });
  }
  // Constructors: a subclass keeps instanceof, the constants and the name.
  var subclass = function (name, mapArg) {
    var Orig = window[name];
    if (typeof Orig !== 'function') return;
    var Sub = class extends Orig {
      constructor() {
        var args = Array.prototype.slice.call(arguments);
        if (args.length > 0) args[0] = mapArg(args[0]);
        super(...args);
      }
    };
    try { define(Sub, 'name', { value: name }); } catch (e) { /* keep going */ }
    window[name] = Sub;
  };
  subclass('WebSocket', mapOwn);
  subclass('EventSource', mapOwn);
  subclass('Worker', mapOwn);
  subclass('SharedWorker', mapOwn);
  if (window.ServiceWorkerContainer) {
    wrap(ServiceWorkerContainer.prototype, 'register', function (orig) {
      return function register(url, options) {
        var args = Array.prototype.slice.call(arguments);
        args[0] = mapOwn(url);
        if (options && options.scope !== undefined) args[1] = Object.assign({}, options, { scope: mapOwn(options.scope) });
        return orig.apply(this, args);
      };
    });
  }

  // Navigations the page can be asked for (location.assign, replace and
  // href cannot be changed by any script: the gateway redirects those).
  wrap(window, 'open', function (orig) {
    return function open(url) {
      var args = Array.prototype.slice.call(arguments);
      if (args.length > 0) args[0] = mapLink(url);
      return orig.apply(this, args);
    };
  });
  ['pushState', 'replaceState'].forEach(function (name) {
    wrap(History.prototype, name, function (orig) {
      return function (state, title, url) {
        var args = Array.prototype.slice.call(arguments);
        if (args.length > 2) args[2] = mapOwn(url); // same-origin only: always the app's
        return orig.apply(this, args);
      };
    });
  });
  if (window.Navigation) {
    wrap(Navigation.prototype, 'navigate', function (orig) {
      return function navigate(url) {
        var args = Array.prototype.slice.call(arguments);
        args[0] = mapLink(url);
        return orig.apply(this, args);
      };
    });
  }

  // Element URL properties and attributes, as the HTML rewriter maps them.
  var kinds = { href: mapLink, src: mapLink, action: mapLink, formaction: mapLink, poster: mapLink,
    cite: mapLink, longdesc: mapLink, manifest: mapLink, background: mapLink, 'xlink:href': mapLink,
    data: mapLink, srcset: mapSrcset, imagesrcset: mapSrcset, ping: mapList };
  var HTML_NS = 'http://www.w3.org/1999/xhtml', SVG_NS = 'http://www.w3.org/2000/svg', XLINK_NS = 'http://www.w3.org/1999/xlink';
  function mapperFor(el, name) {
    var n = typeof name === 'string' ? name : String(name);
    if (n.length < 3 || n.length > 11) return null;
    var ns = el.namespaceURI;
    if (ns !== HTML_NS && ns !== SVG_NS) return null;
    n = n.toLowerCase();
    var f = Object.prototype.hasOwnProperty.call(kinds, n) ? kinds[n] : null;
    if (f === null || n === 'data' && el.localName !== 'object') return null;
    return f;
  }
  var props = [
    ['HTMLAnchorElement', 'href', mapLink], ['HTMLAnchorElement', 'ping', mapList],
    ['HTMLAreaElement', 'href', mapLink], ['HTMLAreaElement', 'ping', mapList],
    ['HTMLLinkElement', 'href', mapLink], ['HTMLLinkElement', 'imageSrcset', mapSrcset],
    ['HTMLBaseElement', 'href', mapLink],
    ['HTMLImageElement', 'src', mapLink], ['HTMLImageElement', 'srcset', mapSrcset],
    ['HTMLSourceElement', 'src', mapLink], ['HTMLSourceElement', 'srcset', mapSrcset],
    ['HTMLScriptElement', 'src', mapLink], ['HTMLIFrameElement', 'src', mapLink],
    ['HTMLFrameElement', 'src', mapLink], ['HTMLEmbedElement', 'src', mapLink],
    ['HTMLObjectElement', 'data', mapLink], ['HTMLMediaElement', 'src', mapLink],
    ['HTMLVideoElement', 'poster', mapLink], ['HTMLTrackElement', 'src', mapLink],
    ['HTMLInputElement', 'src', mapLink], ['HTMLInputElement', 'formAction', mapLink],
    ['HTMLButtonElement', 'formAction', mapLink], ['HTMLFormElement', 'action', mapLink]
  ];
  props.forEach(function (p) {
    var C = window[p[0]];
    var desc = C && Object.getOwnPropertyDescriptor(C.prototype, p[1]);
    if (!desc || !desc.set || !desc.configurable) return;
    var set = desc.set, f = p[2];
    define(C.prototype, p[1], {
      configurable: true, enumerable: desc.enumerable, get: desc.get,
      set: function (v) { set.call(this, f(v)); }
    });
  });
  var setAttribute = Element.prototype.setAttribute;
  wrap(Element.prototype, 'setAttribute', function (orig) {
    return function setAttribute(name, value) {
      var f = arguments.length > 1 && mapperFor(this, name);
      return f ? orig.call(this, name, f(value)) : orig.apply(this, arguments);
    };
  });
  wrap(Element.prototype, 'setAttributeNS', function (orig) {
    return function setAttributeNS(ns, name, value) {
      var local = String(name).replace(/^[^:]*:/, '');
      var f = arguments.length > 2 && (ns === XLINK_NS && local === 'href' ? mapLink : !ns ? mapperFor(this, local) : null);
      return f ? orig.call(this, ns, name, f(value)) : orig.apply(this, arguments);
    };
  });

  // Markup inserted from strings (innerHTML, insertAdjacentHTML,
  // DOMParser imports) is fixed as soon as it is in the document; what
  // starts loading before that (and what CSS set from script loads) the
  // gateway redirects.
  var attrNames = Object.keys(kinds);
  var selector = attrNames.map(function (a) { return '[' + a.replace(':', '\\:') + ']'; }).join(',');
  function fixAttr(el, name) {
    var f = mapperFor(el, name);
    if (!f) return;
    var v = el.getAttribute(name);
    if (v === null) return;
    var m = f(v);
    if (m !== v) setAttribute.call(el, name, m);
  }
  function fixElement(el) {
    for (var i = 0; i < el.attributes.length; i++) fixAttr(el, el.attributes[i].name);
  }
  function fixTree(node) {
    if (node.nodeType !== 1) return;
    fixElement(node);
    var all = node.querySelectorAll(selector);
    for (var i = 0; i < all.length; i++) fixElement(all[i]);
  }
  if (window.MutationObserver) {
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        var rec = records[i];
        if (rec.type === 'attributes') fixAttr(rec.target, rec.attributeName);
        else for (var j = 0; j < rec.addedNodes.length; j++) fixTree(rec.addedNodes[j]);
      }
    }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: attrNames });
  }
  // A link clicked or a form submitted before the observer ran.
  window.addEventListener('click', function (e) {
    var t = e.target;
    var a = t && t.closest ? t.closest('a[href],area[href]') : null;
    if (a) fixAttr(a, 'href');
  }, true);
  var fixForm = function (form, submitter) {
    if (form) fixAttr(form, 'action');
    if (submitter && submitter.nodeType === 1) fixAttr(submitter, 'formaction');
  };
  window.addEventListener('submit', function (e) { fixForm(e.target, e.submitter); }, true);
  wrap(HTMLFormElement.prototype, 'submit', function (orig) {
    return function submit() { fixForm(this); return orig.apply(this, arguments); };
  });
  wrap(HTMLFormElement.prototype, 'requestSubmit', function (orig) {
    return function requestSubmit(submitter) { fixForm(this, submitter); return orig.apply(this, arguments); };
  });

  // document.cookie: this app's cookies under their own names.
  var jar = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
  var CP = 'dapp_' + APP + '_';
  var trim = function (s) { return s.replace(/^[ \t]+|[ \t]+$/g, ''); };
  function readCookies() {
    var all = jar.get.call(document), out = [];
    if (!all) return '';
    all.split(';').forEach(function (pair) {
      pair = pair.replace(/^ +/, '');
      if (pair.indexOf(CP) === 0 && pair.length > CP.length && pair[CP.length] !== '=') out.push(pair.slice(CP.length));
    });
    return out.join('; ');
  }
  // The upstream path of the document's directory: RFC 6265's default path.
  function defaultPath() {
    var p = BASE + location.pathname.slice(PROXIED.length);
    var i = p.lastIndexOf('/');
    return i <= 0 ? '/' : p.slice(0, i);
  }
  // scopeCookie is rewrite.ScopeSetCookie: name prefixed, Domain dropped,
  // Path mapped under the prefix; null when the cookie is to be dropped.
  function scopeCookie(v) {
    var semi = v.indexOf(';');
    var pair = semi < 0 ? v : v.slice(0, semi), attrs = semi < 0 ? '' : v.slice(semi + 1);
    var eq = pair.indexOf('=');
    if (eq < 0) return null;
    var name = trim(pair.slice(0, eq)), value = pair.slice(eq + 1);
    if (name === '' || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(name)) return null;
    var secure = false, httpOnly = false, domain = false, hasPath = false, path = '', pathAttr = false, kept = '';
    (attrs === '' ? [] : attrs.split(';')).forEach(function (attr) {
      var e = attr.indexOf('=');
      var an = trim(e < 0 ? attr : attr.slice(0, e)).toLowerCase(), av = e < 0 ? '' : trim(attr.slice(e + 1));
      if (an !== 'path' && an !== 'domain') kept += ';' + attr;
      if (an === 'secure') secure = true;
      else if (an === 'httponly') httpOnly = true;
      else if (av.length > 1024) { /* ignored, as browsers do */ }
      else if (an === 'domain') { if (av !== '' && av !== '.') domain = true; }
      else if (an === 'path') {
        pathAttr = true;
        if (av !== '' && av[0] === '/') { hasPath = true; path = av; } else { hasPath = false; path = ''; }
      }
    });
    var upPath = hasPath ? path : defaultPath();
    var hostOnly = !domain && pathAttr && upPath === '/';
    var lower = name.toLowerCase();
    if (lower.indexOf('__host-http-') === 0 ? !(secure && httpOnly && hostOnly)
      : lower.indexOf('__host-') === 0 ? !(secure && hostOnly)
        : lower.indexOf('__http-') === 0 ? !(secure && httpOnly)
          : lower.indexOf('__secure-') === 0 && !secure) return null;
    var p = upPath.indexOf(BASE) === 0 ? PROXIED + upPath.slice(BASE.length) : PROXIED;
    var bad = p.search(/[;\u0000-\u001f\u007f]/);
    if (bad >= 0) p = p.slice(0, p.lastIndexOf('/', bad) + 1);
    return CP + name + '=' + value + kept + '; Path=' + p;
  }
  define(document, 'cookie', {
    configurable: true, enumerable: true,
    get: function () { return readCookies(); },
    set: function (v) {
      var c = scopeCookie(String(v));
      if (c !== null) jar.set.call(document, c);
    }
  });
})();
