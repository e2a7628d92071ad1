package caddymodule

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// The shim app is written for the root of its own origin, as most are:
// its script reads its CSRF cookie by name and sends it back as a header,
// builds root-relative URLs (and one on its own upstream origin, from a
// server template the rewriter does not see, and one with a ".." above
// its root) for fetch, XHR, EventSource, WebSocket and sendBeacon,
// inserts an image, a script, a stylesheet and a frame with root-relative
// URLs, sets a cookie from script, moves its URL with pushState, and
// navigates with location.href = '/page2'. It serves the same page with
// no policy (/), under a nonce + 'strict-dynamic' policy (/nonce) and
// under a hash-only policy (/hash).
var (
	shimOnce    sync.Once
	shimServer  *httptest.Server
	shimBeacons atomic.Int64
)

// shimAppsConfig starts the shim app (once, closed in stopUpstreams) and
// returns its entry for gatewayConfig's dashboard_apps block: in account 2
// only, so that it is no tab of account 1's conversations.
func shimAppsConfig() string {
	shimOnce.Do(func() {
		shimServer = httptest.NewServer(shimApp())
		upstreams = append(upstreams, shimServer)
	})
	return `app shim "Shim" ` + shimServer.URL + `/ {
			accounts 2
		}`
}

const shimNonce = "c2hpbS1ub25jZQ"

// shimAppScript is the app's own script, inline in its pages.
const shimAppScript = `
window.results = {};
const done = (k, v) => { window.results[k] = v; };
window.violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));
const cookie = (name) => {
  const c = document.cookie.split('; ').find((c) => c.startsWith(name + '='));
  return c ? c.slice(name.length + 1) : null;
};
done('cookies', document.cookie);
const token = cookie('csrftoken');
done('token', token);
document.cookie = 'pref=dark; path=/';
done('cookiesAfter', document.cookie);
const json = (r) => r.json();
fetch('/api/echo?via=fetch', {method: 'POST', headers: {'X-CSRFToken': token}, body: 'x'}).then(json).then((j) => done('fetch', j), (e) => done('fetch', String(e)));
fetch(window.API + 'echo?via=absolute', {headers: {'X-CSRFToken': token}}).then(json).then((j) => done('absolute', j), (e) => done('absolute', String(e)));
fetch(location.origin + '/api/echo?via=origin', {headers: {'X-CSRFToken': token}}).then(json).then((j) => done('origin', j), (e) => done('origin', String(e)));
fetch('../../api/echo?via=climb', {headers: {'X-CSRFToken': token}}).then(json).then((j) => done('climb', j), (e) => done('climb', String(e)));
const x = new XMLHttpRequest();
x.open('GET', '/api/echo?via=xhr');
x.setRequestHeader('X-CSRFToken', token);
x.onload = () => done('xhr', JSON.parse(x.responseText));
x.onerror = () => done('xhr', 'error');
x.send();
const es = new EventSource('/api/events');
es.onmessage = (e) => { done('sse', e.data); es.close(); };
es.onerror = () => { if (!window.results.sse) done('sse', 'error'); es.close(); };
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/ws');
ws.onmessage = (e) => { done('ws', e.data); ws.close(); };
ws.onerror = () => done('ws', 'error');
navigator.sendBeacon('/api/beacon', 'b');
const img = new Image();
img.onload = () => done('img', img.naturalWidth);
img.onerror = () => done('img', 'error');
img.src = '/pixel.gif';
document.body.appendChild(img);
const img2 = document.createElement('img');
img2.onload = () => done('imgAttr', img2.getAttribute('src'));
img2.onerror = () => done('imgAttr', 'error');
img2.setAttribute('src', '/pixel.gif?attr');
document.body.appendChild(img2);
const s = document.createElement('script');
s.src = '/dyn.js';
s.onerror = () => done('dyn', 'error');
document.head.appendChild(s);
const l = document.createElement('link');
l.rel = 'stylesheet';
l.href = '/dyn.css';
l.onload = () => done('css', getComputedStyle(document.getElementById('styled')).color);
l.onerror = () => done('css', 'error');
document.head.appendChild(l);
const f = document.createElement('iframe');
f.src = '/inner';
f.onload = () => done('iframe', f.contentDocument ? f.contentDocument.title : 'no document');
document.body.appendChild(f);
document.body.insertAdjacentHTML('beforeend', '<a id="late" href="/page2">late</a>');
history.pushState({}, '', '/deep/link?x=1');
done('pushed', location.pathname + location.search);
document.getElementById('go').addEventListener('click', () => { location.href = '/page2'; });
`

func shimPage(kind string) string {
	return `<!doctype html><html><head><meta charset="utf-8"><title>Shim ` + kind + `</title>` +
		`<script nonce="` + shimNonce + `">window.API = '` + shimServer.URL + `/api/';</script></head>` +
		`<body><p id="styled">styled</p><button id="go">go</button>` +
		`<script nonce="` + shimNonce + `">` + shimAppScript + `</script></body></html>`
}

// shimScriptHash is the hash source of each inline script of shimPage.
func shimScriptHashes() string {
	var out []string
	for _, s := range []string{`window.API = '` + shimServer.URL + `/api/';`, shimAppScript} {
		sum := sha256.Sum256([]byte(s))
		out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	return strings.Join(out, " ")
}

func shimApp() http.Handler {
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, r *http.Request, kind, policy string) {
		http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: "tok-" + kind, Path: "/"})
		if policy != "" {
			w.Header().Set("Content-Security-Policy", policy)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, shimPage(kind))
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) { page(w, r, "plain", "") })
	mux.HandleFunc("/sub/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><title>sub</title><p>a page below the app's root`)
	})
	mux.HandleFunc("/nonce", func(w http.ResponseWriter, r *http.Request) {
		page(w, r, "nonce", "script-src 'nonce-"+shimNonce+"' 'strict-dynamic'; object-src 'none'; base-uri 'none'")
	})
	mux.HandleFunc("/hash", func(w http.ResponseWriter, r *http.Request) {
		page(w, r, "hash", "default-src 'self'; script-src "+shimScriptHashes())
	})
	mux.HandleFunc("/api/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		c, _ := r.Cookie("csrftoken")
		if c == nil || r.Header.Get("X-CSRFToken") != c.Value {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "cookie": r.Header.Get("Cookie")})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "via": r.URL.Query().Get("via"), "cookie": r.Header.Get("Cookie"), "method": r.Method})
	})
	mux.HandleFunc("/api/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: hello-sse\n\n")
	})
	mux.HandleFunc("/api/ws", func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if key == "" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		msg := "hello-ws"
		brw.Write(append([]byte{0x81, byte(len(msg))}, msg...))
		brw.Flush()
		bufio.NewReader(conn).ReadByte() // until the browser closes
	})
	mux.HandleFunc("/api/beacon", func(w http.ResponseWriter, r *http.Request) {
		shimBeacons.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/pixel.gif", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/gif")
		gif, _ := base64.StdEncoding.DecodeString("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
		w.Write(gif)
	})
	mux.HandleFunc("/dyn.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, `window.results.dyn = 'ran';`)
	})
	mux.HandleFunc("/dyn.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, `#styled { color: rgb(4, 5, 6); }`)
	})
	mux.HandleFunc("/inner", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><title>inner</title><p>inner`)
	})
	mux.HandleFunc("/page2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><title>page2</title><script>window.results = {cookies: document.cookie};</script>`)
	})
	return mux
}

// shimFrame is the document of the frame #shim in the browser's page.
func shimFrame(expr string) string {
	return `(() => { const f = document.getElementById('shim'); const w = f && f.contentWindow;` +
		` if (!w || !w.document || !w.document.body) return null; return (` + expr + `); })()`
}

// TestBrowserShimMakesRootAppsWork: the app written for its root works
// under /dashboard-apps/shim/ with no policy, under a nonce +
// 'strict-dynamic' policy and under a hash-only one: its script sees its
// own cookies under its own names (and no one else's), its CSRF header
// matches, every URL it builds reaches it under the prefix without one
// escape, the cookie it writes comes back to its server; and
// location.href = '/page2', which no script can intercept, is redirected
// under the prefix by the gateway and counted.
func TestBrowserShimMakesRootAppsWork(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/")
	// A cookie of another app, set as its Set-Cookie would be.
	eval[any](t, ctx, `(document.cookie = 'dapp_orders_secret=other-app; path=/dashboard-apps/', 1)`)
	escapes := `caddy_dashboard_apps_path_escapes_total{app="shim"}`
	for _, kind := range []string{"plain", "nonce", "hash"} {
		t.Run(kind, func(t *testing.T) {
			before, beacons := adminMetric(t, escapes), shimBeacons.Load()
			path := map[string]string{"plain": "", "nonce": "nonce", "hash": "hash"}[kind]
			eval[any](t, ctx, `(document.body.innerHTML = '<iframe id="shim" src="/dashboard-apps/shim/`+path+`" width="800" height="600"></iframe>', 1)`)
			keys := []string{"fetch", "absolute", "origin", "climb", "xhr", "sse", "ws", "img", "imgAttr", "css", "iframe"}
			if kind != "hash" {
				keys = append(keys, "dyn") // no script may insert one under a hash-only policy, at the app's root either
			}
			all := shimFrame(`w.results && ` + `['` + strings.Join(keys, "','") + `'].every((k) => k in w.results)`)
			if err := waitFor(ctx, all, 15*time.Second); err != nil {
				t.Fatalf("the app's script did not finish: %v; results %v", err, eval[any](t, ctx, shimFrame(`JSON.stringify(w.results)`)))
			}
			res := eval[map[string]any](t, ctx, shimFrame(`w.results`))
			// Its own cookies only, under its own names (pref=dark stays
			// from the run before).
			own := func(v any, wantPref bool) bool {
				got, _ := v.(string)
				parts := strings.Split(got, "; ")
				slices.Sort(parts)
				want := []string{"csrftoken=tok-" + kind}
				if wantPref || slices.Contains(parts, "pref=dark") {
					want = append(want, "pref=dark")
				}
				return slices.Equal(parts, want)
			}
			if !own(res["cookies"], false) {
				t.Errorf("document.cookie in the app: %q, want its own cookies only, under their own names", res["cookies"])
			}
			if !own(res["cookiesAfter"], true) {
				t.Errorf("document.cookie after the app set one: %q", res["cookiesAfter"])
			}
			for _, via := range []string{"fetch", "absolute", "origin", "climb", "xhr"} {
				r, _ := res[via].(map[string]any)
				if r == nil || r["ok"] != true || r["via"] != via || !strings.Contains(r["cookie"].(string), "pref=dark") {
					t.Errorf("%s: %v", via, res[via])
				}
			}
			if r, _ := res["fetch"].(map[string]any); r != nil && r["method"] != "POST" {
				t.Errorf("fetch's method: %v", r["method"])
			}
			for k, want := range map[string]any{"sse": "hello-sse", "ws": "hello-ws", "img": float64(1),
				"imgAttr": "/dashboard-apps/shim/pixel.gif?attr", "css": "rgb(4, 5, 6)", "iframe": "inner", "pushed": "/dashboard-apps/shim/deep/link?x=1"} {
				if res[k] != want {
					t.Errorf("%s: %v, want %v", k, res[k], want)
				}
			}
			if kind != "hash" && res["dyn"] != "ran" {
				t.Errorf("inserted script: %v", res["dyn"])
			}
			if href := eval[string](t, ctx, shimFrame(`w.document.getElementById('late').getAttribute('href')`)); href != "/dashboard-apps/shim/page2" {
				t.Errorf("a link inserted as markup: href %q", href)
			}
			if v := eval[[]any](t, ctx, shimFrame(`w.violations`)); len(v) > 0 && kind != "hash" {
				t.Errorf("CSP violations: %v", v)
			}
			if n := eval[float64](t, ctx, shimFrame(`w.document.querySelectorAll('script[src*="appshim"]').length`)); n != 0 {
				t.Errorf("the shim's tag is still in the app's DOM")
			}
			if got := adminMetric(t, escapes) - before; got != 0 {
				t.Errorf("%v requests escaped the prefix", got)
			}
			deadline := time.Now().Add(5 * time.Second)
			for shimBeacons.Load() == beacons && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if shimBeacons.Load() == beacons {
				t.Errorf("sendBeacon did not reach the app")
			}
			if kind != "plain" {
				return
			}
			screenshot(t, ctx, "shim-app")
			// What no script can intercept: the gateway redirects it.
			eval[any](t, ctx, shimFrame(`(w.document.getElementById('go').click(), 1)`))
			if err := waitFor(ctx, shimFrame(`w.location.pathname === '/dashboard-apps/shim/page2' && w.results && 'cookies' in w.results`), 10*time.Second); err != nil {
				t.Fatalf("location.href = '/page2': %v (frame at %v)", err, eval[any](t, ctx, shimFrame(`w.location.href`)))
			}
			if c := eval[string](t, ctx, shimFrame(`w.results.cookies`)); c != "csrftoken=tok-plain; pref=dark" {
				t.Errorf("document.cookie on page2: %q", c)
			}
			if got := adminMetric(t, escapes) - before; got != 1 {
				t.Errorf("escapes counted: %v, want 1", got)
			}
		})
	}
	// The helpdesk page sees none of it: the app's cookies are its own.
	if c := eval[string](t, ctx, `document.cookie`); strings.Contains(c, "pref") || strings.Contains(c, "csrftoken") {
		t.Errorf("the helpdesk page's cookies: %q", c)
	}
}

// shimTagRE matches the shim's tag in an app's page.
var shimTagRE = regexp.MustCompile(`<script src="/_dashboard_apps/appshim\.js\?v=[0-9a-f]+"[^>]*></script>`)

// withoutShim is an app's page as the HTML rewriter left it: the body
// without the shim's tag, which tests of the rewriting look past.
func withoutShim(body string) string {
	if loc := shimTagRE.FindStringIndex(body); loc != nil {
		return body[:loc[0]] + body[loc[1]:]
	}
	return body
}

// shimFor is the shim's tag in the pages of app id, whose upstream is
// upstream, without nonce or integrity.
func shimFor(t *testing.T, id, upstream string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	return shimTag(loadAssets(), defaultPrefix, id, rewrite.NewMapper(u, defaultPrefix+id+"/")) + `></script>`
}

// TestShimInAppPages: app pages that load as documents get the shim, at
// the start of their head, with the app's settings, the page's nonce or
// its hash, and the policy adapted; HTML fetched by a script (fragments to
// insert), other types and HEAD get none, and every other byte is the
// rewriter's.
func TestShimInAppPages(t *testing.T) {
	tester := newGateway(t)
	tag := shimFor(t, "shim", shimServer.URL+"/")
	if !strings.Contains(tag, `data-app="shim" data-prefix="/dashboard-apps/" data-base="/" data-origin="`+shimServer.URL+`"`) {
		t.Errorf("tag %s", tag)
	}
	resp, body := get(t, tester, "/dashboard-apps/shim/")
	if want := `<!doctype html><html><head><meta charset="utf-8">` + tag + `<title>Shim plain</title>`; !strings.HasPrefix(body, want) {
		t.Errorf("page:\n got %.300s\nwant %s", body, want)
	}
	if withoutShim(body) != shimPage("plain") {
		t.Errorf("the rest of the page changed")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != "frame-ancestors 'self'" {
		t.Errorf("policy %q", csp)
	}
	for dest, wantShim := range map[string]bool{"document": true, "iframe": true, "empty": false, "script": false} {
		_, body := get(t, tester, "/dashboard-apps/shim/", "Sec-Fetch-Dest", dest)
		if strings.Contains(body, "appshim") != wantShim {
			t.Errorf("Sec-Fetch-Dest %s: shim %v, want %v", dest, !wantShim, wantShim)
		}
	}
	resp, body = get(t, tester, "/dashboard-apps/shim/nonce")
	if !strings.Contains(body, strings.TrimSuffix(tag, `></script>`)+` nonce="`+shimNonce+`"></script>`) {
		t.Errorf("nonce page: %.400s", body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "sha256") || strings.Contains(csp, "appshim") {
		t.Errorf("nonce page's policy changed beyond frame-ancestors: %q", csp)
	}
	resp, body = get(t, tester, "/dashboard-apps/shim/hash")
	assets := loadAssets()
	if !strings.Contains(body, strings.TrimSuffix(tag, `></script>`)+` integrity="`+assets.shimIntegrity+`"></script>`) {
		t.Errorf("hash page: %.400s", body)
	}
	want := "default-src 'self'; script-src " + shimScriptHashes() + " '" + assets.shimIntegrity + "' " + gatewayBase + "/_dashboard_apps/appshim.js?v=" + assets.shimVersion
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, want) {
		t.Errorf("hash page's policy:\n got %q\nwant %q...", csp, want)
	}
	if head, _ := send(t, tester, http.MethodHead, "/dashboard-apps/shim/hash", nil); head.Header.Get("Content-Security-Policy") != resp.Header.Get("Content-Security-Policy") {
		t.Errorf("HEAD's policy %q differs from GET's", head.Header.Get("Content-Security-Policy"))
	}
	// The shim itself, cached for good under its version.
	resp, body = get(t, tester, "/_dashboard_apps/appshim.js?v="+assets.shimVersion, "Cookie", "")
	if resp.StatusCode != 200 || body != string(assets.shim.body) || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("appshim.js: %d %q %d bytes", resp.StatusCode, resp.Header.Get("Cache-Control"), len(body))
	}
}

// TestBrowserShimCookiesAsSetCookie: a cookie the app's script writes
// through the shim is stored as the same Set-Cookie from the app would be
// (rewrite.ScopeSetCookie): the same name, value and path in the
// browser's jar, or dropped alike.
func TestBrowserShimCookiesAsSetCookie(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/")
	eval[any](t, ctx, `(document.body.innerHTML = '<iframe id="shim" src="/dashboard-apps/shim/sub/page"></iframe>', 1)`)
	if err := waitFor(ctx, shimFrame(`w.location.pathname === '/dashboard-apps/shim/sub/page' && w.document.readyState === 'complete'`), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse(shimServer.URL + "/")
	m := rewrite.NewMapper(up, "/dashboard-apps/shim/")
	doc := &url.URL{Scheme: up.Scheme, Host: up.Host, Path: "/sub/page"}
	inputs := []string{
		"ck1=a",
		"ck2=b; Path=/",
		"ck3=c; Path=/sub/deeper/",
		"ck4=d; Domain=localhost; Path=/",
		"ck5=e; path=relative",
		"ck6=f; Path=/x; Path=rel",
		" ck7 = g ; Max-Age=600",
		"__Host-ck9=i; Path=/",
		"__Secure-ck10=j",
		"=ck11",
		"ck12",
		"ck13=k; SameSite=Lax; Path=/sub",
	}
	for _, in := range inputs {
		js, _ := json.Marshal(in)
		eval[any](t, ctx, shimFrame(`(w.document.cookie = `+string(js)+`, 1)`))
	}
	res, err := chromedp.Run(ctx, func(ctx context.Context, target *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, target, network.GetCookies, network.GetCookiesParams{
			URLs: []string{gatewayBase + "/dashboard-apps/shim/sub/deeper/x", gatewayBase + "/dashboard-apps/shim/x"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	jar := res.Cookies
	for _, in := range inputs {
		name := strings.TrimSpace(strings.SplitN(strings.SplitN(in, ";", 2)[0], "=", 2)[0])
		var got *network.Cookie
		for _, c := range jar {
			if strings.HasSuffix(c.Name, "_"+name) || name == "" && c.Name == "dapp_shim_" {
				got = c
			}
		}
		out, ok := rewrite.ScopeSetCookie(in, m, doc, "shim")
		if !ok {
			if got != nil {
				t.Errorf("%q: stored as %s path %s; a Set-Cookie from the app would have been dropped", in, got.Name, got.Path)
			}
			continue
		}
		want, err := http.ParseSetCookie(out)
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		if got == nil || got.Name != want.Name || got.Value != strings.TrimSpace(want.Value) || got.Path != want.Path || got.Domain != "localhost" {
			t.Errorf("%q: stored as %+v; as a Set-Cookie from the app: %s", in, got, out)
		}
	}
}
