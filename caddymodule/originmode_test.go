package caddymodule

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Origin mode in the shared config: the helpdesk at helpdesk.localhost,
// each app at <id>.helpdesk.localhost (Chromium resolves *.localhost to
// loopback; Go's client dials originDial).
const (
	originHelpdesk  = "http://helpdesk.localhost:9080"
	originLifetime  = 3 * time.Second // session_lifetime of the origin-mode site
	probeAppOrigin  = "http://probe.helpdesk.localhost:9080"
	originSiteBlock = `
http://helpdesk.localhost:9080, http://*.helpdesk.localhost:9080 {
	dashboard_apps {
		helpdesk_api %[3]s
		sidebar_selector .conversation-sidebar
		forward_headers X-Helpdesk-Token
		app_domain helpdesk.localhost
		session_lifetime 3s
	}
	reverse_proxy %[3]s
}
`
)

// probeLog records every request that reaches the probe app, and what its
// pages report from inside their frames.
var probeLog = &requestLog{}

// probeApp is an app written for its own origin: a page that reports, to
// its own server, what it can and cannot reach from its frame; its own
// cookie, read back by script; an echo of what reaches it; a gzipped body.
func probeApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		probeLog.add(r)
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"host": r.Host, "path": r.URL.EscapedPath(), "query": r.URL.RawQuery, "header": r.Header})
		case "/report":
			w.WriteHeader(http.StatusNoContent)
		case "/gzip":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(probeGzip)
		case "/set":
			http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: "tok-1", Path: "/", Domain: "helpdesk.localhost", SameSite: http.SameSiteLaxMode})
			w.Header().Add("Set-Cookie", sessionCookieHTTP+"=forged; Path=/")
			http.Redirect(w, r, "http://"+r.Host+"/home?after=set", http.StatusFound)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("X-Frame-Options", "DENY")
			io.WriteString(w, probePage)
		}
	})
	return mux
}

var probeGzip = func() []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	io.WriteString(zw, `<a href="/root-relative">untouched</a>`)
	zw.Close()
	return b.Bytes()
}()

// probePage tries, from inside its frame on the app origin, what a hostile
// app's script would, and reports each result to its own server. Like a
// hostile script, it uses the browser's own functions, which nothing a
// page runs first can take away (path mode's shim is compatibility, not
// isolation): the cookie accessor of Document.prototype, and the fetch
// of a fresh frame of its own, sent with no Referer.
const probePage = `<!doctype html><html><head><meta charset="utf-8"><title>Probe</title></head><body><p id="out">probe</p><script>
const report = (k, v) => fetch('report?k=' + encodeURIComponent(k), {method: 'POST', body: JSON.stringify(v)});
const jar = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
const rawCookies = () => jar.get.call(document);
const own = document.createElement('iframe');
own.hidden = true;
document.body.appendChild(own);
const rawFetch = (u, o) => own.contentWindow.fetch(u, Object.assign({referrerPolicy: 'no-referrer'}, o));
// On its own origin (origin mode) the helpdesk is elsewhere; under a path
// of the helpdesk's site (path mode) it is this page's own origin.
const helpdesk = location.hostname.endsWith('.helpdesk.localhost') ? 'http://helpdesk.localhost:9080' : location.origin;
window.addEventListener('message', (e) => {
  let frame = null;
  try { frame = window.frameElement && window.frameElement.dataset.appId; } catch (_) {}
  report('message', {origin: e.origin, kind: typeof e.data, frame: frame, data: e.data});
  const m = typeof e.data === 'string' ? JSON.parse(e.data) : e.data;
  if (m && m.event === 'appContext') document.getElementById('out').textContent = m.data.contact.email;
});
document.cookie = 'probe_pref=dark; path=/';
report('cookies', rawCookies());
let parentDOM;
try { parentDOM = 'reached: ' + parent.document.title; } catch (e) { parentDOM = 'blocked'; }
report('parentDOM', parentDOM);
rawFetch(helpdesk + '/api/v1/profile', {credentials: 'include'}).then((r) => r.text()).then((t) => report('api', t), (e) => report('api', 'blocked')).then(() => {
  // Then shadow the helpdesk's session cookie on its API's path.
  jar.set.call(document, 'hd_session=evil; path=/api/');
  report('shadowed', rawCookies());
});
rawFetch(helpdesk + '/app/post-probe', {method: 'POST', credentials: 'include', mode: 'no-cors', body: 'x'}).then(() => report('post', 'sent'), () => report('post', 'failed'));
parent.postMessage({event: 'fetch-info'}, '*');
parent.postMessage('chatwoot-dashboard-app:fetch-info', '*');
report('loaded', location.href);
</script></body></html>`

// probeReports returns the reports of kind k, as sent.
func probeReports(k string) []string {
	var out []string
	for _, r := range probeLog.matching("/report") {
		if r.Query == "k="+k {
			out = append(out, r.Body)
		}
	}
	return out
}

// originClient reaches the gateway's origin-mode site under any host name.
func originClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:9080")
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// originDo sends a request with the header name/value pairs given.
func originDo(t *testing.T, method, target string, body io.Reader, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := originClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// openTicket asks for a ticket as the helpdesk page's host script does.
func openTicket(t *testing.T, app, to string) sessionAnswer {
	t.Helper()
	body, _ := json.Marshal(sessionRequest{App: app, To: to})
	resp, text := originDo(t, "POST", originHelpdesk+"/_dashboard_apps/session", bytes.NewReader(body),
		"Cookie", agentCookie, "Origin", originHelpdesk, "Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("session for %s: %d %s", app, resp.StatusCode, text)
	}
	var a sessionAnswer
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// enter spends a ticket and returns the session cookie.
func enter(t *testing.T, ticketURL string) *http.Cookie {
	t.Helper()
	resp, body := originDo(t, "GET", ticketURL, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("enter: %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookieHTTP {
			return c
		}
	}
	t.Fatalf("enter set no session cookie: %q", resp.Header["Set-Cookie"])
	return nil
}

func TestOriginModeTicketsAndSessions(t *testing.T) {
	newGateway(t)
	a := openTicket(t, "probe", "/echo?x=1")
	u, _ := url.Parse(a.URL)
	if u.Host != "probe.helpdesk.localhost:9080" || u.Path != enterPath || a.Renew == "" || a.RenewIn <= 0 || a.RenewIn > originLifetime.Milliseconds() {
		t.Fatalf("answer %+v", a)
	}

	// No session: the sign-in page, and nothing reaches the app.
	before := len(probeLog.matching("/echo"))
	resp, body := originDo(t, "GET", probeAppOrigin+"/echo", nil, "Cookie", agentCookie)
	if resp.StatusCode != 401 || !strings.Contains(body, "Sign in") || len(probeLog.matching("/echo")) != before {
		t.Errorf("without a session: %d %.200s", resp.StatusCode, body)
	}

	// Spending the ticket: the gateway's cookie (host-only, HttpOnly,
	// SameSite=Lax), and a redirect to the page without the ticket.
	resp, body = originDo(t, "GET", a.URL, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/echo?x=1" {
		t.Fatalf("enter: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	sc := strings.Join(resp.Header["Set-Cookie"], "\n")
	for _, want := range []string{sessionCookieHTTP + "=", "Path=/", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Errorf("session cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(strings.ToLower(sc), "domain") {
		t.Errorf("session cookie is not host-only: %q", sc)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q", rp)
	}
	session := resp.Cookies()[0]

	// Replayed: refused.
	if resp, _ := originDo(t, "GET", a.URL, nil); resp.StatusCode != 401 {
		t.Errorf("replayed ticket: %d", resp.StatusCode)
	}
	// A ticket for one app is no good on another's origin.
	b := openTicket(t, "orders", "/")
	other := strings.Replace(b.URL, "orders.helpdesk", "probe.helpdesk", 1)
	if resp, _ := originDo(t, "GET", other, nil); resp.StatusCode != 401 {
		t.Errorf("orders' ticket on probe's origin: %d", resp.StatusCode)
	}
	// Nor is the session cookie.
	if resp, _ := originDo(t, "GET", "http://orders.helpdesk.localhost:9080/echo", nil, "Cookie", session.Name+"="+session.Value); resp.StatusCode != 401 {
		t.Errorf("probe's session on orders' origin: %d", resp.StatusCode)
	}

	// With the session: proxied; the app never saw a ticket.
	resp, body = originDo(t, "GET", probeAppOrigin+"/echo?x=1", nil, "Cookie", session.Name+"="+session.Value+"; own=1")
	if resp.StatusCode != 200 {
		t.Fatalf("with the session: %d %s", resp.StatusCode, body)
	}
	for _, r := range probeLog.matching("/") {
		if strings.Contains(r.URI, "ticket") || strings.Contains(r.Path, "_dashboard_apps") {
			t.Errorf("the app saw %s", r.URI)
		}
	}
	h, _ := echoed(t, body)
	if c := h.Get("Cookie"); c != "own=1" {
		t.Errorf("the app got Cookie %q, want only its own", c)
	}

	// Expiry: past the lifetime without renewal, the session is over; a
	// renewed one lives on.
	c := openTicket(t, "probe", "/echo")
	renewed := enter(t, c.URL)
	deadline := time.Now().Add(originLifetime + 700*time.Millisecond)
	for time.Now().Before(deadline) {
		time.Sleep(originLifetime / 3)
		body, _ := json.Marshal(sessionRequest{App: "probe", Renew: c.Renew})
		if resp, text := originDo(t, "POST", originHelpdesk+"/_dashboard_apps/session", bytes.NewReader(body),
			"Cookie", agentCookie, "Origin", originHelpdesk); resp.StatusCode != 200 {
			t.Fatalf("renewal: %d %s", resp.StatusCode, text)
		}
	}
	if resp, _ := originDo(t, "GET", probeAppOrigin+"/echo", nil, "Cookie", session.Name+"="+session.Value); resp.StatusCode != 401 {
		t.Errorf("a session past its lifetime: %d, want 401", resp.StatusCode)
	}
	if resp, _ := originDo(t, "GET", probeAppOrigin+"/echo", nil, "Cookie", renewed.Name+"="+renewed.Value); resp.StatusCode != 200 {
		t.Errorf("a renewed session: %d, want 200", resp.StatusCode)
	}
	// An agent who signed out renews nothing.
	renewal, _ := json.Marshal(sessionRequest{App: "probe", Renew: c.Renew})
	if resp, _ := originDo(t, "POST", originHelpdesk+"/_dashboard_apps/session", bytes.NewReader(renewal), "Origin", originHelpdesk); resp.StatusCode != 401 {
		t.Errorf("renewal without credentials: %d", resp.StatusCode)
	}
}

func TestOriginModeSessionEndpointRefusals(t *testing.T) {
	newGateway(t)
	post := func(body string, header ...string) int {
		resp, _ := originDo(t, "POST", originHelpdesk+"/_dashboard_apps/session", strings.NewReader(body), header...)
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name   string
		body   string
		header []string
		want   int
	}{
		{"another site's page", `{"app":"probe"}`, []string{"Cookie", agentCookie, "Origin", "http://evil.localhost:9080"}, 403},
		{"an app origin's page", `{"app":"probe"}`, []string{"Cookie", agentCookie, "Origin", probeAppOrigin}, 403},
		{"no Origin nor Fetch Metadata", `{"app":"probe"}`, []string{"Cookie", agentCookie}, 403},
		{"Fetch Metadata same-origin", `{"app":"probe"}`, []string{"Cookie", agentCookie, "Sec-Fetch-Site", "same-origin"}, 200},
		{"not signed in", `{"app":"probe"}`, []string{"Origin", originHelpdesk}, 401},
		{"an app the agent may not use", `{"app":"account3"}`, []string{"Cookie", agentCookie, "Origin", originHelpdesk}, 403},
		{"no such app", `{"app":"nope"}`, []string{"Cookie", agentCookie, "Origin", originHelpdesk}, 400},
		{"a page on another host", `{"app":"probe","to":"//evil.example/"}`, []string{"Cookie", agentCookie, "Origin", originHelpdesk}, 400},
		{"not JSON", `app=probe`, []string{"Cookie", agentCookie, "Origin", originHelpdesk}, 400},
	} {
		if got := post(tc.body, tc.header...); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if resp, _ := originDo(t, "GET", originHelpdesk+"/_dashboard_apps/session", nil, "Cookie", agentCookie); resp.StatusCode != 405 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestOriginModeProxiesUntouched(t *testing.T) {
	newGateway(t)
	session := enter(t, openTicket(t, "probe", "/").URL)
	cookie := session.Name + "=" + session.Value

	// The body, its length and its coding are the app's.
	resp, body := originDo(t, "GET", probeAppOrigin+"/gzip", nil, "Cookie", cookie, "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || body != string(probeGzip) || resp.Header.Get("Content-Length") != fmt.Sprint(len(probeGzip)) {
		t.Errorf("gzip body: %q %q, %d bytes", resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Length"), len(body))
	}
	resp, body = originDo(t, "GET", probeAppOrigin+"/home", nil, "Cookie", cookie)
	if body != probePage {
		t.Errorf("the page was changed")
	}
	if xfo, csp := resp.Header.Get("X-Frame-Options"), resp.Header.Get("Content-Security-Policy"); xfo != "" || csp != "frame-ancestors "+originHelpdesk {
		t.Errorf("framing: XFO %q CSP %q", xfo, csp)
	}

	// The app's cookies keep their names and lose Domain; the gateway's
	// session cookie is not the app's to set; redirects stay on its origin.
	resp, _ = originDo(t, "GET", probeAppOrigin+"/set", nil, "Cookie", cookie)
	if sc := resp.Header["Set-Cookie"]; len(sc) != 1 || !strings.HasPrefix(sc[0], "csrftoken=tok-1; Path=/") || strings.Contains(strings.ToLower(sc[0]), "domain") {
		t.Errorf("Set-Cookie %q", sc)
	}
	if loc := resp.Header.Get("Location"); loc != "/home?after=set" {
		t.Errorf("Location %q", loc)
	}

	// Never sent upstream: the helpdesk's credentials and cookies, the
	// gateway's session cookie, forged X-Dashboard-* headers.
	session7 := url.QueryEscape(`{"access-token":"SECRET-devise","uid":"a@example.com"}`)
	_, body = originDo(t, "GET", probeAppOrigin+"/echo?api_access_token=SECRET-q&keep=1", nil,
		"Cookie", cookie+"; cw_d_session_info="+session7+"; csrftoken=tok-1",
		"Authorization", "Bearer SECRET-auth", "Api_access_token", "SECRET-h", "X-Helpdesk-Token", "SECRET-fwd",
		"X-Dashboard-Agent-Id", "1", "Origin", probeAppOrigin, "Referer", probeAppOrigin+"/home")
	h, q := echoed(t, body)
	if strings.Contains(body, "SECRET") || strings.Contains(body, session.Value) || h.Get("X-Dashboard-Agent-Id") != "" {
		t.Errorf("something of the helpdesk's reached the app: %s", body)
	}
	if h.Get("Cookie") != "csrftoken=tok-1" || q != "keep=1" {
		t.Errorf("Cookie %q, query %q", h.Get("Cookie"), q)
	}
	// Its own pages' Origin and Referer are shown as its upstream's, for
	// its CSRF checks.
	up, _ := url.Parse(probeServer.URL)
	if h.Get("Origin") != "http://"+up.Host || h.Get("Referer") != "http://"+up.Host+"/home" {
		t.Errorf("Origin %q Referer %q", h.Get("Origin"), h.Get("Referer"))
	}

	// An unknown app's host is not proxied anywhere.
	if resp, _ := originDo(t, "GET", "http://nope.helpdesk.localhost:9080/", nil); resp.StatusCode != 404 {
		t.Errorf("unknown app host: %d", resp.StatusCode)
	}
	// A public app needs no session.
	if resp, _ := originDo(t, "GET", "http://wiki.helpdesk.localhost:9080/ident/", nil); resp.StatusCode != 200 {
		t.Errorf("public app: %d", resp.StatusCode)
	}
	// The path-mode address of an app goes to its origin.
	resp, _ = originDo(t, "GET", originHelpdesk+"/dashboard-apps/tools/a/b?c=1", nil, "Cookie", agentCookie)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 307 || loc != "http://tools.helpdesk.localhost:9080/tools/a/b?c=1" {
		t.Errorf("path-mode address: %d %q", resp.StatusCode, loc)
	}
	// The app list gives each app's URL on its origin.
	_, body = originDo(t, "GET", originHelpdesk+"/_dashboard_apps/apps?account=1", nil, "Cookie", agentCookie)
	if !strings.Contains(body, `"url":"http://probe.helpdesk.localhost:9080/"`) || !strings.Contains(body, `"url":"http://tools.helpdesk.localhost:9080/tools/"`) {
		t.Errorf("apps: %s", body)
	}
}

// TestOriginModeRefusesRequestsFromApps: the helpdesk's SameSite cookies
// ride along on requests from its sibling origins, so the gateway refuses
// what an app origin's pages send to the helpdesk, navigations excepted.
func TestOriginModeRefusesRequestsFromApps(t *testing.T) {
	newGateway(t)
	for _, tc := range []struct {
		name   string
		method string
		header []string
		want   int
	}{
		{"fetch with the app's Origin", "POST", []string{"Origin", probeAppOrigin, "Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "cors"}, 403},
		{"no-cors GET with the app's Referer", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors", "Referer", probeAppOrigin + "/"}, 403},
		{"same-site with its Referer withheld", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors"}, 403},
		{"a form posted to the top", "POST", []string{"Origin", probeAppOrigin, "Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}, 403},
		{"the app framing the helpdesk", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe", "Referer", probeAppOrigin + "/"}, 403},
		{"a link to the helpdesk", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Referer", probeAppOrigin + "/"}, 200},
		{"the helpdesk's own page", "POST", []string{"Origin", originHelpdesk, "Sec-Fetch-Site", "same-origin"}, 200},
	} {
		resp, body := originDo(t, tc.method, originHelpdesk+"/anything", nil, append([]string{"Cookie", agentCookie}, tc.header...)...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %.100s, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
	}
}

// TestOriginModeSessionsOutliveReloads: sessions live in Caddy's storage,
// not in the config that opened them.
func TestOriginModeSessionsOutliveReloads(t *testing.T) {
	newGateway(t)
	session := enter(t, openTicket(t, "probe", "/").URL)
	ticket := openTicket(t, "probe", "/")
	adminDo(t, "PUT", "/config/apps/dashboard_apps/apps/reloaded", `{"name":"Reloaded","url":"http://127.0.0.1:1/"}`)
	settleReload()
	defer restoreGateway(t)
	if resp, body := originDo(t, "GET", probeAppOrigin+"/echo", nil, "Cookie", session.Name+"="+session.Value); resp.StatusCode != 200 {
		t.Errorf("session after a reload: %d %.200s", resp.StatusCode, body)
	}
	enter(t, ticket.URL) // a ticket issued before the reload
}

func TestTLSPermission(t *testing.T) {
	a := &App{Apps: map[string]*AppConfig{"crm": {}, "orders": {}}, appDomains: new(domainSet)}
	a.addAppDomain("apps.example.com")
	p := &TLSPermission{registry: a}
	for name, ok := range map[string]bool{
		"crm.apps.example.com":      true,
		"CRM.Apps.Example.com.":     true,
		"orders.apps.example.com":   true,
		"apps.example.com":          false,
		"nope.apps.example.com":     false,
		"x.crm.apps.example.com":    false,
		"crm.apps.example.com.evil": false,
		"crm.example.com":           false,
	} {
		if err := p.CertificateAllowed(context.Background(), name); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", name, err, ok)
		}
	}
}

func TestAppHostID(t *testing.T) {
	h := &Handler{AppDomain: "apps.example.com"}
	for host, want := range map[string]string{
		"crm.apps.example.com":        "crm",
		"crm.apps.example.com:8443":   "crm",
		"CRM.APPS.example.com.":       "crm",
		"apps.example.com":            "",
		"example.com":                 "",
		"crm.apps.example.com.evil":   "",
		"crmapps.example.com":         "",
		"[::1]:8443":                  "",
		"a.b.apps.example.com":        "a.b", // under app_domain, and no registered app
		"crm.apps.example.com:notnum": "crm",
	} {
		id, ok := h.appHostID(host)
		if (want != "") != ok || id != want {
			t.Errorf("%s: %q %v, want %q", host, id, ok, want)
		}
	}
}

var probeServer *httptest.Server

// TestBrowserOriginMode opens a conversation on the origin-mode site in
// Chromium and checks, from inside the probe app's frame on its own
// origin, what the app receives and what it cannot reach.
func TestBrowserOriginMode(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	probeLog.reset()
	posts := helpdeskPostProbes.Load()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(originHelpdesk+"/app/login?as=agent-7"),
		chromedp.Navigate(originHelpdesk+"/app/accounts/1/conversations/123"),
	); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, `document.querySelector('#dashboard-apps iframe[data-app-id="probe"]')?.src.startsWith('`+probeAppOrigin+`')`, 15*time.Second); err != nil {
		t.Fatalf("no probe frame on its origin: %v", err)
	}
	waitReport := func(k, want string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, r := range probeReports(k) {
				if strings.Contains(r, want) {
					return r
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("no %s report with %q; got %q", k, want, probeReports(k))
		return ""
	}
	// The app gets its context from the helpdesk page, with its own token,
	// on load and when it asks.
	msg := waitReport("message", "jane@example.com")
	var got struct {
		Origin, Kind string
		Data         json.RawMessage
	}
	json.Unmarshal([]byte(msg), &got)
	if got.Kind == "string" { // the probe asks in both forms (message_format auto)
		var s string
		json.Unmarshal(got.Data, &s)
		got.Data = json.RawMessage(s)
	}
	var ctxMsg appContext
	if err := json.Unmarshal(got.Data, &ctxMsg); err != nil || got.Origin != originHelpdesk || ctxMsg.Data.Token == "" {
		t.Errorf("appContext: %s (%v)", msg, err)
	}
	// Out of its reach: the helpdesk's cookies (only its own shows, under
	// its own name), the parent page, the helpdesk's API; and what its
	// script posts to the helpdesk never arrives.
	if got := waitReport("cookies", "probe_pref"); got != `"probe_pref=dark"` {
		t.Errorf("document.cookie in the app: %s", got)
	}
	if got := waitReport("parentDOM", ""); got != `"blocked"` {
		t.Errorf("parent DOM: %s", got)
	}
	if got := waitReport("api", ""); strings.Contains(got, "Support Agent") || strings.Contains(got, "SECRET") {
		t.Errorf("the helpdesk API answered the app: %s", got)
	}
	waitReport("post", "")
	if n := helpdeskPostProbes.Load() - posts; n != 0 {
		t.Errorf("the app's credentialed POST reached the helpdesk %d times", n)
	}
	// Its attempt to shadow the helpdesk's session cookie on the API's path
	// stayed on its own origin: the helpdesk's own calls still work.
	waitReport("shadowed", "")
	if got := eval[float64](t, ctx, `fetch('/api/v1/profile', {credentials: 'include'}).then((r) => r.status)`); got != 200 {
		t.Errorf("the helpdesk page's API call after the app tried to shadow its cookie: %v", got)
	}
	// The app's page was opened without the ticket, which it never saw.
	if got := waitReport("loaded", probeAppOrigin); got != `"`+probeAppOrigin+`/"` {
		t.Errorf("the app's page: %s", got)
	}
	for _, r := range probeLog.matching("/") {
		if strings.Contains(r.URI, "ticket") {
			t.Errorf("the app saw %s", r.URI)
		}
	}

	// SPA navigation: the next conversation's context follows, across
	// origins.
	eval[any](t, ctx, `history.pushState({}, '', '/app/accounts/1/conversations/124')`)
	waitReport("message", "john@example.com")
	screenshot(t, ctx, "origin-mode")

	// The open page renews the session: past its lifetime the app still
	// answers in its frame.
	time.Sleep(originLifetime + time.Second)
	status, err := originFrameExpr(ctx, probeAppOrigin, `fetch('/echo').then((r) => r.status)`)
	if err != nil || status != float64(200) {
		t.Errorf("the app in its frame %v after it opened: %v %v, want 200", originLifetime+time.Second, status, err)
	}
}

// TestBrowserPathModeTrustsAppScripts holds SECURITY.md's table to what
// path mode is: the same probe app, under a path of the helpdesk's own
// origin, reaches everything that origin mode keeps from it, the shim in
// its page notwithstanding. If this test ever fails, path mode got safer
// and the documentation must say so.
func TestBrowserPathModeTrustsAppScripts(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	probeLog.reset()
	posts := helpdeskPostProbes.Load()
	openSignedIn(t, ctx, "/app/accounts/1/conversations/123")
	wait := func(k string) string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if r := probeReports(k); len(r) > 0 {
				return r[0]
			}
		}
		t.Fatalf("no %s report", k)
		return ""
	}
	if got := wait("cookies"); !strings.Contains(got, "hd_session=agent-7") {
		t.Errorf("path mode: the app's script did not see the helpdesk's cookie: %s", got)
	}
	if got := wait("parentDOM"); !strings.HasPrefix(got, `"reached`) {
		t.Errorf("path mode: the app's script did not reach the helpdesk page: %s", got)
	}
	if got := wait("api"); !strings.Contains(got, "access_token") {
		t.Errorf("path mode: the app's script did not read the agent's profile through the helpdesk API: %s", got)
	}
	wait("post")
	if helpdeskPostProbes.Load() == posts {
		t.Errorf("path mode: the app's credentialed POST did not reach the helpdesk")
	}
	wait("shadowed")
	if got := eval[float64](t, ctx, `fetch('/api/v1/profile', {credentials: 'include'}).then((r) => r.status)`); got != 401 {
		t.Errorf("path mode: the app's script did not shadow the helpdesk's session cookie (the helpdesk's own call got %v)", got)
	}
}

// TestBrowserFrameShowingAnotherAppGetsNothing: in path mode every app
// shares the helpdesk's origin, so targetOrigin cannot tell one app's frame
// from another; the host script checks where a frame is before it posts. A
// frame navigated to another app's page (as a hostile app's script could
// do to a neighbour's frame) gets nothing, on load or when it asks.
func TestBrowserFrameShowingAnotherAppGetsNothing(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/1/conversations/123")
	if err := waitFor(ctx, frameExpr("seed", `w.received && w.received.length > 0`), 15*time.Second); err != nil {
		t.Fatalf("the seed app got no context: %v", err)
	}
	probeLog.reset()
	eval[any](t, ctx, `(document.querySelector('#dashboard-apps iframe[data-app-id="seed"]').src = '/dashboard-apps/probe/', 1)`)
	if err := waitFor(ctx, frameExpr("seed", `w.location.pathname === '/dashboard-apps/probe/' && w.document.readyState === 'complete'`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the load's post, and the answers to both fetch-info forms
	for _, m := range probeReports("message") {
		if strings.Contains(m, `"frame":"seed"`) {
			t.Errorf("the seed app's frame, showing another app, got: %s", m)
		}
	}
	if len(probeReports("loaded")) == 0 {
		t.Errorf("the other app's page did not load in the frame")
	}
}

// TestOriginModePassesWebSockets: an upgrade on an app's origin needs the
// session like any request, and then passes through.
func TestOriginModePassesWebSockets(t *testing.T) {
	newGateway(t)
	session := enter(t, openTicket(t, "orders", "/").URL)
	upgrade := func(cookie string) (*http.Response, *bufio.Reader, net.Conn) {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:9080", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: orders.helpdesk.localhost:9080\r\nCookie: %s\r\nOrigin: http://orders.helpdesk.localhost:9080\r\n"+
			"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", cookie)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp, br, conn
	}
	resp, _, conn := upgrade(agentCookie) // the helpdesk's cookie is no key to an app origin
	conn.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("upgrade without a session: %d", resp.StatusCode)
	}
	resp, br, conn := upgrade(session.Name + "=" + session.Value)
	defer conn.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade with the session: %d", resp.StatusCode)
	}
	io.WriteString(conn, "ping over the tunnel")
	buf := make([]byte, len("ping over the tunnel"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping over the tunnel" {
		t.Errorf("echo through the upgraded connection: %q %v", buf, err)
	}
}

// TestOriginModeAppsCannotActOnEachOther: apps share the site, so an app's
// session cookie rides along on requests another app's pages send it; the
// gateway refuses them, and a cookie of the session's name tossed onto the
// parent domain by another app does not lock an app out.
func TestOriginModeAppsCannotActOnEachOther(t *testing.T) {
	newGateway(t)
	session := enter(t, openTicket(t, "probe", "/").URL)
	cookie := session.Name + "=" + session.Value
	for _, tc := range []struct {
		name   string
		method string
		header []string
		want   int
	}{
		{"fetch from another app", "POST", []string{"Origin", "http://orders.helpdesk.localhost:9080", "Sec-Fetch-Site", "same-site"}, 403},
		{"no-cors from another app's page", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors", "Referer", "http://orders.helpdesk.localhost:9080/x"}, 403},
		{"the app's own page", "POST", []string{"Origin", probeAppOrigin, "Sec-Fetch-Site", "same-origin"}, 200},
		{"the helpdesk page framing it", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe", "Referer", originHelpdesk + "/app/accounts/1/conversations/123"}, 200},
		{"a link from another app, at the top", "GET", []string{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Referer", "http://orders.helpdesk.localhost:9080/"}, 200},
		{"a tossed cookie of the session's name first", "GET", []string{"Cookie", sessionCookieHTTP + "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 200},
	} {
		header := append([]string{"Cookie", cookie}, tc.header...)
		if len(tc.header) > 0 && tc.header[0] == "Cookie" {
			header = []string{"Cookie", tc.header[1] + "; " + cookie}
		}
		resp, body := originDo(t, tc.method, probeAppOrigin+"/echo", nil, header...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %.100s, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	// The gateway's paths on an app origin are never the app's.
	before := len(probeLog.matching("/_dashboard_apps"))
	if resp, _ := originDo(t, "GET", probeAppOrigin+"/_dashboard_apps/apps?account=1", nil, "Cookie", cookie); resp.StatusCode != 404 || len(probeLog.matching("/_dashboard_apps")) != before {
		t.Errorf("/_dashboard_apps/ on an app origin: %d, or it reached the app", resp.StatusCode)
	}
}

func TestCutPort(t *testing.T) {
	for host, want := range map[string][2]string{
		"helpdesk.example.com":       {"helpdesk.example.com", ""},
		"helpdesk.example.com:8443":  {"helpdesk.example.com", ":8443"},
		"helpdesk.example.com:":      {"helpdesk.example.com", ""},
		"orders.apps.localhost:9080": {"orders.apps.localhost", ":9080"},
		"[::1]:9080":                 {"[::1]", ":9080"},
		"[::1]":                      {"[::1]", ""},
		"host:80x":                   {"host", ""},
		"":                           {"", ""},
	} {
		if name, port := cutPort(host); name != want[0] || port != want[1] {
			t.Errorf("cutPort(%q) = %q, %q, want %q, %q", host, name, port, want[0], want[1])
		}
	}
}
