package caddymodule

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// hostileApp is an upstream app that does everything that breaks an app in
// an iframe on another site: framing headers, origin-wide headers, Domain
// cookies, absolute redirects, root-relative links, compression it was not
// asked for.
func hostileApp() http.Handler {
	mux := http.NewServeMux()
	hostile := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none', frame-ancestors https://a.example; img-src *")
		h.Set("Content-Security-Policy-Report-Only", "frame-ancestors 'none'")
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("Clear-Site-Data", `"*"`)
		h.Set("Service-Worker-Allowed", "/")
		h.Add("Set-Cookie", "sid=s3cret; Domain=127.0.0.1; Path=/; HttpOnly")
		h.Add("Set-Cookie", "cw_d_session_info=stolen; Path=/")
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hostile(w, r)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><link rel=stylesheet href="/style.css"></head>`+
			`<body><a href="/orders?id=1">orders</a> <a href="http://%s/abs">abs</a> <a href="https://elsewhere.example/x">out</a>`+
			`<img src='/img.png' srcset="/a.png 1x, /b.png 2x"><script>var u = "<a href=/x>";</script></body></html>`, r.Host)
	})
	mux.HandleFunc("/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		io.WriteString(w, `body{background:url(/bg.png)} .x{background:url("http://`+r.Host+`/y.png")}`)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/landing?x=1", http.StatusFound)
	})
	mux.HandleFunc("/redirect-out", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
	})
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"host": r.Host, "path": r.URL.EscapedPath(), "query": r.URL.RawQuery, "header": r.Header})
	}
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/tools/", echo) // the tools app lives under /tools/
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, `<a href="/gz">gz</a>`)
		zw.Close()
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	// A page whose head comes at once and whose body takes seconds, as a
	// server that flushes early sends it: ?enc=gzip compresses it, ?len=1
	// declares its length (then Caddy never flushes).
	mux.HandleFunc("/slow-page", func(w http.ResponseWriter, r *http.Request) {
		const head = `<html><head><link rel="stylesheet" href="/app.css">`
		w.Header().Set("Content-Type", "text/html")
		var out io.Writer = w
		var zw *gzip.Writer
		switch {
		case r.URL.Query().Get("enc") == "gzip":
			w.Header().Set("Content-Encoding", "gzip")
			zw = gzip.NewWriter(w)
			out = zw
		case r.URL.Query().Get("len") != "":
			w.Header().Set("Content-Length", strconv.Itoa(len(head)+100))
		}
		io.WriteString(out, head)
		if zw != nil {
			zw.Flush()
		}
		w.(http.Flusher).Flush()
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	// A page of ?size= bytes, sent in 32 KiB writes, each a chunk:
	// ?trailer=1 declares and sends a trailer, ?trailer=late sends one it
	// did not declare; ?gzip=1 compresses the page; ?pause=<ms> waits
	// that long before the end; ?break=1 cuts the connection halfway.
	mux.HandleFunc("/page-of", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		size, _ := strconv.Atoi(q.Get("size"))
		w.Header().Set("Content-Type", "text/html")
		if q.Get("trailer") == "1" {
			w.Header().Set("Trailer", "X-Checksum")
		}
		page := pageOf(size)
		if q.Get("gzip") != "" {
			page = gzipOf(func(w io.Writer) { w.Write(page) })
			w.Header().Set("Content-Encoding", "gzip")
		}
		if q.Get("break") != "" {
			w.Write(page[:len(page)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		for i := 0; i < len(page); i += 32 << 10 {
			w.Write(page[i:min(i+32<<10, len(page))])
			w.(http.Flusher).Flush()
		}
		pause, _ := strconv.Atoi(q.Get("pause"))
		time.Sleep(time.Duration(pause) * time.Millisecond)
		switch q.Get("trailer") {
		case "1":
			w.Header().Set("X-Checksum", "ok")
		case "late":
			w.Header().Set(http.TrailerPrefix+"X-Checksum", "ok")
		}
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	// A WebSocket-style upgrade: 101, then whatever comes is echoed back.
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Frame-Options: DENY\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	})
	mux.HandleFunc("/asset.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "11000")
		w.Write(bytes.Repeat([]byte("<a href=/x>"), 1000))
	})
	return mux
}

var (
	upstreamsOnce sync.Once
	upstreams     []*httptest.Server
	appServer     *httptest.Server
	framedServer  *httptest.Server
	helpdesk      *httptest.Server
	pageApps      *httptest.Server
)

func startUpstreams() {
	upstreamsOnce.Do(func() {
		appServer = httptest.NewServer(hostileApp())
		framedServer = httptest.NewServer(framedApp())
		helpdesk = httptest.NewServer(testHelpdesk())
		pageApps = httptest.NewServer(conversationApps())
		probeServer = httptest.NewServer(probeApp())
		upstreams = append(upstreams, appServer, framedServer, helpdesk, pageApps, probeServer)
	})
}

func stopUpstreams() {
	for _, s := range upstreams {
		s.Close()
	}
}

const gatewayBase = "http://localhost:9080"

// Test agents of the test helpdesk: agent 7 is an agent in account 1 and
// an administrator in account 2; agent 8 is an agent in account 2 only;
// agent 9 is an agent in account 3 only.
const strictNonce = "r4nd0mN0nce"

const (
	agentCookie      = "hd_session=agent-7"
	otherAgentCookie = "hd_session=agent-9"
	account2Cookie   = "hd_session=bo-account-2"
)

// testHelpdesk stands in for the helpdesk behind the gateway.
func testHelpdesk() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/profile", func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("hd_session")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case c != nil && c.Value == "agent-7", r.Header.Get("Api_access_token") == "token-7":
			io.WriteString(w, `{"id":7,"name":"Support Agent","email":"agent@example.com","account_id":1,"role":"agent","access_token":"SECRET",`+
				`"accounts":[{"id":1,"role":"agent"},{"id":2,"role":"administrator"}]}`)
		case c != nil && c.Value == "bo-account-2":
			io.WriteString(w, `{"id":8,"name":"Bo Agent","email":"bo@example.com","account_id":2,"role":"agent","accounts":[{"id":2,"role":"agent"}]}`)
		case c != nil && c.Value == "agent-9":
			io.WriteString(w, `{"id":9,"name":"Ann Other","email":"ann@example.com","account_id":3,"role":"agent","accounts":[{"id":3,"role":"agent"}]}`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"You need to sign in or sign up before continuing."}`)
		}
	})
	mux.HandleFunc("/app/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "hd_session", Value: r.URL.Query().Get("as"), Path: "/"})
		io.WriteString(w, "signed in")
	})
	mux.HandleFunc("/api/v1/accounts/{account}/conversations/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("hd_session")
		if c == nil || (c.Value != "agent-7" && c.Value != "bo-account-2") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if serveChatwootConversation(w, r) {
			return
		}
		contacts := map[string]string{
			"123": `{"id":456,"name":"Jane Doe","email":"jane@example.com","phone_number":"+1234567890"}`,
			"124": `{"id":457,"name":"John Roe","email":"john@example.com","phone_number":null}`,
		}
		sender, ok := contacts[r.PathValue("id")]
		// Agent 7's conversations are in account 1; in account 2 (agent 7's
		// and agent 8's) there are the same ones, for the account apps.
		account := r.PathValue("account")
		if !ok || !(account == "1" && c.Value == "agent-7" || account == "2") {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%s,"account_id":%s,"inbox_id":1,"status":"open","messages":[{"content":"secret"}],"meta":{"sender":%s}}`, r.PathValue("id"), account, sender)
	})
	mux.HandleFunc("/app/accounts/{account}/conversations/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page := conversationPage
		if r.URL.Query().Has("strict") {
			// A helpdesk with a strict, nonce-based policy.
			w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'nonce-"+strictNonce+"' 'strict-dynamic'; style-src 'self' 'nonce-"+strictNonce+"'; frame-src 'none'; object-src 'none'; base-uri 'none'")
			page = strings.Replace(page, "<style>", `<style nonce="`+strictNonce+`">`, 1)
			page = strings.Replace(page, "</body>", `<script nonce="`+strictNonce+`">window.violations = []; document.addEventListener('securitypolicyviolation', e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));</script></body>`, 1)
		}
		io.WriteString(w, page)
	})
	mux.HandleFunc("/app/post-probe", func(w http.ResponseWriter, r *http.Request) {
		helpdeskPostProbes.Add(1) // an app's script reached the helpdesk
		io.WriteString(w, "reached")
	})
	mux.HandleFunc("/app/frame-test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><title>Helpdesk</title><iframe src="/dashboard-apps/framed/" width="600" height="400"></iframe>`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "helpdesk")
	})
	return mux
}

// helpdeskPostProbes counts the requests that reached the helpdesk's
// /app/post-probe, which only an app's script sends.
var helpdeskPostProbes atomic.Int64

// gatewayConfig is the Caddyfile the integration tests share.
func gatewayConfig() string {
	startUpstreams()
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	persist_config off
	servers {
		# Caddy drops request headers with underscores unless listed;
		# Chatwoot's API token header has them.
		expected_underscore_headers api_access_token
	}
	dashboard_apps {
		app orders "Orders" %[1]s/
		app tools "Tools" %[1]s/tools/
		app slow "Slow" %[1]s/ {
			timeout 300ms
		}
		app down "Down & Out" http://127.0.0.1:1/
		app framed "Framed" %[2]s/
		app seed "Seed" %[4]s/seed/ {
			position -2
		}
		app cw "CW <Card>" %[4]s/cw/ {
			position -1
			message_format json_string
		}
		app ident "Identity" %[4]s/ident/ {
			identity
		}
		app signed "Signed" %[4]s/ident/ {
			identity
			identity_secret 0123456789abcdef0123456789abcdef
		}
		app admins "Admins" %[4]s/ident/ {
			accounts 2
			roles administrator
		}
		app account3 "Account 3" %[4]s/ident/ {
			accounts 3
		}
		app inbox9 "Inbox 9" %[4]s/ident/ {
			inboxes 9
		}
		app wiki "Wiki" %[4]s/ident/ {
			public
		}
		app probe "Probe" %[5]s/
		`+hostileAppsConfig()+`
		`+chatwootAppsConfig()+`
		`+shimAppsConfig()+`
		# The test apps added by administrators (accountapps_test.go) are
		# on loopback, like everything here.
		account_apps {
			allow_networks 127.0.0.1/32
		}
	}
}
http://localhost:9080 {
	dashboard_apps {
		helpdesk_api %[3]s
		sidebar_selector .conversation-sidebar
		forward_headers X-Helpdesk-Token
	}
	# Caddy keeps the connections of a retired config's last requests until
	# their keep-alive times out (2 min by default); short here, so that
	# TestReloadsUnderLoad sees them go.
	reverse_proxy %[3]s {
		transport http {
			keepalive 2s
		}
	}
}
`+originSiteBlock, appServer.URL, framedServer.URL, helpdesk.URL, pageApps.URL, probeServer.URL)
}

// newGateway loads the shared config into the in-process Caddy.
func newGateway(t *testing.T) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(), "caddyfile")
	tester.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tester.Client.Jar = nil // requests say who they are through signedIn
	currentTester = tester
	return tester
}

// currentTester is the client of the running test, whose idle connections
// adminDo drops after a config change.
var currentTester *caddytest.Tester

// restoreGateway loads the shared config again, after a test changed it.
func restoreGateway(t *testing.T) {
	newGateway(t)
	settleReload()
}

// settleReload waits, after a config change, until requests reach only the
// new config, and starts the next ones on new connections. Caddy returns
// from a reload once the old servers have begun to shut down (see its
// http app's Stop): for a moment they may still accept a connection, and
// they serve the connections kept alive to them until the shutdown closes
// them, which net/http does at intervals. Go's transport may also put a
// connection back in its pool just after CloseIdleConnections.
func settleReload() {
	time.Sleep(100 * time.Millisecond)
	http.DefaultClient.CloseIdleConnections()
	if currentTester != nil {
		currentTester.Client.CloseIdleConnections()
	}
}

// get requests path as the signed-in agent 7, unless header carries a
// Cookie of its own (anonymous: "Cookie", "").
func get(t *testing.T, tester *caddytest.Tester, path string, header ...string) (*http.Response, string) {
	t.Helper()
	return send(t, tester, http.MethodGet, path, nil, header...)
}

// send is get with any method and body (a request with a body is not
// resent after a reload closes its connection).
func send(t *testing.T, tester *caddytest.Tester, method, path string, body io.Reader, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, gatewayBase+path, body)
	if err != nil {
		t.Fatal(err)
	}
	hasCookie := false
	for i := 0; i+1 < len(header); i += 2 {
		hasCookie = hasCookie || header[i] == "Cookie"
		if header[i+1] != "" {
			req.Header.Add(header[i], header[i+1])
		}
	}
	if !hasCookie {
		req.Header.Set("Cookie", agentCookie)
	}
	resp, err := doAsBrowser(tester.Client, req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestProxyFixesFramingAndOriginWideHeaders(t *testing.T) {
	tester := newGateway(t)
	resp, body := get(t, tester, "/dashboard-apps/orders/")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	h := resp.Header
	for _, gone := range []string{"X-Frame-Options", "Strict-Transport-Security", "Clear-Site-Data", "Service-Worker-Allowed"} {
		if v := h.Values(gone); len(v) > 0 {
			t.Errorf("%s reached the browser: %q", gone, v)
		}
	}
	if got, want := h.Get("Content-Security-Policy"), "default-src 'self'; frame-ancestors 'self', frame-ancestors 'self'; img-src *"; got != want {
		t.Errorf("CSP = %q, want %q", got, want)
	}
	if got := h.Get("Content-Security-Policy-Report-Only"); got != "frame-ancestors 'self'" {
		t.Errorf("CSP-Report-Only = %q", got)
	}
	cookies := h.Values("Set-Cookie")
	if len(cookies) != 2 {
		t.Fatalf("Set-Cookie = %q", cookies)
	}
	for _, c := range cookies {
		lc := strings.ToLower(c)
		if !strings.HasPrefix(c, "dapp_orders_") || strings.Contains(lc, "domain=") || !strings.Contains(lc, "path=/dashboard-apps/orders/") {
			t.Errorf("Set-Cookie not scoped to the app: %q", c)
		}
	}
	host := strings.TrimPrefix(appServer.URL, "http://")
	for _, want := range []string{
		`href="/dashboard-apps/orders/style.css"`,
		`href="/dashboard-apps/orders/orders?id=1"`,
		`href="/dashboard-apps/orders/abs"`,
		`href="https://elsewhere.example/x"`,
		`src='/dashboard-apps/orders/img.png'`,
		`srcset="/dashboard-apps/orders/a.png 1x, /dashboard-apps/orders/b.png 2x"`,
		`var u = "<a href=/x>";`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(withoutShim(body), host) { // the shim's settings name it (see appshim.go)
		t.Errorf("body still names the app's origin %s:\n%s", host, body)
	}
}

func TestProxyRewritesCSS(t *testing.T) {
	tester := newGateway(t)
	_, body := get(t, tester, "/dashboard-apps/orders/style.css")
	want := `body{background:url(/dashboard-apps/orders/bg.png)} .x{background:url("/dashboard-apps/orders/y.png")}`
	if body != want {
		t.Errorf("CSS = %q, want %q", body, want)
	}
}

func TestProxyDecodesCompressionItDidNotAskFor(t *testing.T) {
	tester := newGateway(t)
	resp, body := get(t, tester, "/dashboard-apps/orders/gzip", "Accept-Encoding", "gzip")
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding = %q after rewriting", ce)
	}
	if withoutShim(body) != `<a href="/dashboard-apps/orders/gz">gz</a>` {
		t.Errorf("body = %q", body)
	}
}

func TestProxyPassesOtherBodiesUntouched(t *testing.T) {
	tester := newGateway(t)
	resp, body := get(t, tester, "/dashboard-apps/orders/asset.bin")
	if want := strings.Repeat("<a href=/x>", 1000); body != want {
		t.Errorf("asset changed: %d bytes", len(body))
	}
	if resp.Header.Get("Content-Length") != "11000" {
		t.Errorf("Content-Length = %q", resp.Header.Get("Content-Length"))
	}
}

func TestProxyMapsRedirects(t *testing.T) {
	tester := newGateway(t)
	resp, _ := get(t, tester, "/dashboard-apps/orders/redirect")
	if got := resp.Header.Get("Location"); got != "/dashboard-apps/orders/landing?x=1" {
		t.Errorf("Location = %q", got)
	}
	resp, _ = get(t, tester, "/dashboard-apps/orders/redirect-out")
	if got := resp.Header.Get("Location"); got != "https://elsewhere.example/" {
		t.Errorf("Location to another origin = %q", got)
	}
	resp, _ = get(t, tester, "/dashboard-apps/orders?a=b")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "/dashboard-apps/orders/?a=b" {
		t.Errorf("bare app path: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestProxyRequestHygiene(t *testing.T) {
	tester := newGateway(t)
	_, body := get(t, tester, "/dashboard-apps/tools/echo?api_access_token=tok&keep=1",
		"Cookie", agentCookie+"; cw_d_session_info=helpdesk-secret; dapp_orders_sid=1; dapp_tools_sid=mine",
		"Cookie", "_chatwoot_session=x",
		"Authorization", "Bearer helpdesk",
		"api_access_token", "helpdesk-token",
		"X-Dashboard-Agent-Id", "1",
		"X-Forwarded-Prefix", "/forged",
		"Origin", gatewayBase,
		"Referer", gatewayBase+"/dashboard-apps/tools/page?q=1",
	)
	var got struct {
		Host, Path, Query string
		Header            http.Header
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	upHost := strings.TrimPrefix(appServer.URL, "http://")
	checks := []struct{ what, got, want string }{
		{"Host", got.Host, upHost},
		{"path", got.Path, "/tools/echo"},
		{"query", got.Query, "keep=1"},
		{"Cookie", strings.Join(got.Header.Values("Cookie"), "; "), "sid=mine"},
		{"Authorization", got.Header.Get("Authorization"), ""},
		{"api_access_token", got.Header.Get("Api_access_token"), ""},
		{"X-Dashboard-Agent-Id", got.Header.Get("X-Dashboard-Agent-Id"), ""},
		{"X-Forwarded-Prefix", got.Header.Get("X-Forwarded-Prefix"), "/dashboard-apps/tools"},
		{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), "localhost:9080"},
		{"Origin", got.Header.Get("Origin"), appServer.URL},
		{"Referer", got.Header.Get("Referer"), appServer.URL + "/tools/page?q=1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s upstream = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestProxyKeepsRequestsInsideTheBasePath(t *testing.T) {
	tester := newGateway(t)
	for _, path := range []string{
		"/dashboard-apps/tools/../echo",
		"/dashboard-apps/tools/%2e%2e/echo",
		"/dashboard-apps/tools/%2E%2E%2Fecho",
		"/dashboard-apps/tools/..%2fecho",
		"/dashboard-apps/tools/..%5cecho",
		"/dashboard-apps/tools/%252e%252e/echo",
		"/dashboard-apps/tools/..;x/echo",
		"/dashboard-apps/tools/a/%2e./%2e./echo",
	} {
		resp, body := get(t, tester, path)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %.200s", path, resp.StatusCode, body)
		}
	}
	// Encoded characters that do not climb are kept as sent.
	_, body := get(t, tester, "/dashboard-apps/tools/echo%20x/a%2Fb")
	if !strings.Contains(body, `"path":"/tools/echo%20x/a%2Fb"`) {
		t.Errorf("escaped path not kept: %s", body)
	}
}

func TestProxyFailuresStayInTheAppsTab(t *testing.T) {
	tester := newGateway(t)
	resp, body := get(t, tester, "/dashboard-apps/down/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "Down &amp; Out is not answering") {
		t.Errorf("down app: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("error page Content-Type %q", ct)
	}
	resp, body = get(t, tester, "/dashboard-apps/slow/slow")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "Slow took too long") {
		t.Errorf("slow app: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, tester, "/dashboard-apps/nope/")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown app: %d", resp.StatusCode)
	}
	resp, body = get(t, tester, "/app/accounts/1")
	if resp.StatusCode != 200 || body != "helpdesk" {
		t.Errorf("helpdesk affected: %d %q", resp.StatusCode, body)
	}
}

func TestProxyStreamsServerSentEvents(t *testing.T) {
	tester := newGateway(t)
	client := &http.Client{Timeout: 2 * time.Second, Transport: tester.Client.Transport}
	req, _ := http.NewRequest(http.MethodGet, gatewayBase+"/dashboard-apps/orders/events", nil)
	req.Header.Set("Cookie", agentCookie)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Errorf("first event not streamed: %q %v", line, err)
	}
}

// TestProxyStreamsRewrittenPages holds the gateway to passing on what a
// page has sent so far: it holds rewritten output for a few
// milliseconds to write it in fewer pieces, never until the page ends.
func TestProxyStreamsRewrittenPages(t *testing.T) {
	tester := newGateway(t)
	client := &http.Client{Timeout: 2 * time.Second, Transport: tester.Client.Transport}
	for _, query := range []string{"", "enc=gzip", "len=1"} {
		req, _ := http.NewRequest(http.MethodGet, gatewayBase+"/dashboard-apps/orders/slow-page?"+query, nil)
		req.Header.Set("Cookie", agentCookie)
		req.Header.Set("Accept-Encoding", "gzip")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		want := `<html><head>` + shimFor(t, "orders", appServer.URL+"/") + `<link rel="stylesheet" href="/dashboard-apps/orders/app.css">`
		got := make([]byte, len(want))
		_, err = io.ReadFull(resp.Body, got)
		resp.Body.Close()
		if err != nil || string(got) != want {
			t.Errorf("%s: the head was not passed on while the page went on: %q %v", query, got, err)
		} else if d := time.Since(start); d > time.Second {
			t.Errorf("%s: the head took %v", query, d)
		}
	}
}

// pageOf is /page-of's page of size bytes: links, as many as fit.
func pageOf(size int) []byte {
	return bytes.Repeat([]byte(`<a href="/x">x</a>`), size/18+1)[:size]
}

// TestProxyPageLength holds the held output to what it tells the browser:
// a rewritten page held whole goes with its length, not chunked; one too
// big to hold, or with a trailer, is chunked; one the app breaks off is
// not passed off as complete with a length of what came.
func TestProxyPageLength(t *testing.T) {
	tester := newGateway(t)
	client := &http.Client{Timeout: 5 * time.Second, Transport: tester.Client.Transport}
	// A page whose end is late is written out (held output is written
	// heldFlushDelay after it came) before Caddy, on the handler's
	// goroutine, goes back to the header for the trailers: under -race
	// these cases catch the two goroutines meeting in the ResponseWriter.
	const late = "&pause=100" // the timer fires 5 ms in, even on a slow machine
	for _, c := range []struct {
		size    int
		more    string // more of the query
		length  bool   // sent with a Content-Length
		broken  bool
		trailer bool
	}{
		{40000, "", true, false, false},
		{0, "", true, false, false},
		{600000, "", false, false, false},
		{40000, "&trailer=1", false, false, true},
		{40000, "&gzip=1", true, false, false},
		{40000, late, false, false, false},
		{40000, "&trailer=late", false, false, true},
		{40000, "&trailer=late" + late, false, false, true},
		{40000, "&trailer=late&gzip=1" + late, false, false, true},
		{600000, "&trailer=late&gzip=1" + late, false, false, true},
		{100000, "&break=1", false, true, false},
		{1000, "&break=1", false, true, false},
	} {
		query := fmt.Sprintf("size=%d%s", c.size, c.more)
		req, _ := http.NewRequest(http.MethodGet, gatewayBase+"/dashboard-apps/orders/page-of?"+query, nil)
		req.Header.Set("Cookie", agentCookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if c.broken {
			// What came is passed on, as Caddy's reverse proxy does, and
			// then the response breaks off.
			if err == nil {
				t.Errorf("%s: a page the app broke off read as complete (%d bytes, Content-Length %d)", query, len(body), resp.ContentLength)
			} else if resp.StatusCode != http.StatusOK || len(body) == 0 {
				t.Errorf("%s: status %d and %d bytes before the break, want 200 and what came", query, resp.StatusCode, len(body))
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if want := strings.Count(string(pageOf(c.size)), `href="/x"`); strings.Count(string(body), `href="/dashboard-apps/orders/x"`) != want {
			t.Errorf("%s: %d links rewritten, want %d", query, strings.Count(string(body), `href="/dashboard-apps/orders/x"`), want)
		}
		if got := resp.ContentLength >= 0; got != c.length {
			t.Errorf("%s: Content-Length %d (chunked: %v), want a length: %v", query, resp.ContentLength, resp.TransferEncoding, c.length)
		} else if c.length && resp.ContentLength != int64(len(body)) {
			t.Errorf("%s: Content-Length %d for %d bytes", query, resp.ContentLength, len(body))
		}
		if c.trailer && (resp.Trailer.Get("X-Checksum") != "ok" || resp.Header.Get("X-Checksum") != "") {
			t.Errorf("%s: trailer %v, header X-Checksum %q; want it a trailer only", query, resp.Trailer, resp.Header.Get("X-Checksum"))
		}
	}
}

// adminDo sends a request to Caddy's admin API and returns its status and body.
func adminDo(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	status, b, err := adminRequest(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if method != http.MethodGet {
		settleReload()
	}
	var apiErr struct{ Error string }
	if json.Unmarshal(b, &apiErr) == nil && apiErr.Error != "" {
		return status, apiErr.Error
	}
	return status, string(b)
}

// adminClient opens a connection per request: a config change restarts the
// admin endpoint, which closes a kept-alive connection under the next
// request, and a request with a body cannot be resent.
var adminClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// adminRequest sends a JSON request to the test Caddy's admin API.
func adminRequest(method, path, body string) (int, []byte, error) {
	req, _ := http.NewRequest(method, "http://localhost:2999"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestAdminAPIManagesAppsAtRuntime(t *testing.T) {
	tester := newGateway(t)
	const path = "/config/apps/dashboard_apps/apps/billing"
	app := fmt.Sprintf(`{"name":"Billing","url":%q}`, appServer.URL+"/")

	if code, body := adminDo(t, http.MethodPut, path, app); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if resp, body := get(t, tester, "/dashboard-apps/billing/echo"); resp.StatusCode != 200 || !strings.Contains(body, `"path":"/echo"`) {
		t.Errorf("new app not served: %d %s", resp.StatusCode, body)
	}
	if code, _ := adminDo(t, http.MethodPut, path, app); code != http.StatusConflict {
		t.Errorf("second PUT: %d, want 409", code)
	}
	code, body := adminDo(t, http.MethodGet, path, "")
	if code != 200 || !strings.Contains(body, `"name":"Billing"`) {
		t.Errorf("GET: %d %s", code, body)
	}
	patched := fmt.Sprintf(`{"name":"Billing 2","url":%q}`, appServer.URL+"/tools/")
	if code, body := adminDo(t, http.MethodPatch, path, patched); code != 200 {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	if _, body := get(t, tester, "/dashboard-apps/billing/echo"); !strings.Contains(body, `"path":"/tools/echo"`) {
		t.Errorf("PATCH not applied: %s", body)
	}

	// An invalid change is refused with a message naming app, field and
	// value, and the running config keeps serving.
	for _, bad := range []struct{ body, want string }{
		{`{"name":"Bad","url":"ftp://x/"}`, `app "billing": url "ftp://x/"`},
		{`{"name":"","url":"http://x/"}`, `app "billing": name ""`},
		{`{"name":"B","url":"http://u:p@x/"}`, `userinfo`},
		{`{"name":"B","url":"http://x/","message_format":"xml"}`, `message_format "xml"`},
		{`{"name":"B","url":"http://x/","accounts":[0]}`, `accounts`},
	} {
		code, body := adminDo(t, http.MethodPatch, path, bad.body)
		if code != http.StatusBadRequest || !strings.Contains(body, bad.want) {
			t.Errorf("PATCH %s: %d %s; want 400 naming %s", bad.body, code, body, bad.want)
		}
	}
	// A change to one field is validated in the context of its app.
	if code, body := adminDo(t, http.MethodPatch, path+"/url", `"javascript:alert(1)"`); code != http.StatusBadRequest || !strings.Contains(body, `app "billing": url "javascript:alert(1)"`) {
		t.Errorf("PATCH url field: %d %s", code, body)
	}
	if code, body := adminDo(t, http.MethodPatch, path, `{"name":"B","url":"http://x/","colour":"red"}`); code != http.StatusBadRequest || !strings.Contains(body, "colour") {
		t.Errorf("unknown field: %d %s", code, body)
	}
	if code, body := adminDo(t, http.MethodPatch, path, `{"name":5,"url":"http://x/"}`); code != http.StatusBadRequest || !strings.Contains(body, `app "billing": name 5: must be a string`) {
		t.Errorf("wrong type: %d %s", code, body)
	}
	if code, body := adminDo(t, http.MethodPut, "/config/apps/dashboard_apps/apps/Bad_Id", app); code != http.StatusBadRequest || !strings.Contains(body, `app "Bad_Id": id must match`) {
		t.Errorf("bad id: %d %s", code, body)
	}
	if _, body := get(t, tester, "/dashboard-apps/billing/echo"); !strings.Contains(body, `"path":"/tools/echo"`) {
		t.Errorf("running config lost after a refused change: %s", body)
	}

	if code, body := adminDo(t, http.MethodDelete, path, ""); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if resp, _ := get(t, tester, "/dashboard-apps/billing/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleted app still served: %d", resp.StatusCode)
	}
}

func TestProxyHeadShowsTheHeadersOfGet(t *testing.T) {
	tester := newGateway(t)
	req, _ := http.NewRequest(http.MethodHead, gatewayBase+"/dashboard-apps/orders/", nil)
	req.Header.Set("Cookie", agentCookie)
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength > 0 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("HEAD of a rewritten page claims the upstream length: %q", resp.Header.Get("Content-Length"))
	}
}

func TestProxyPassesWebSockets(t *testing.T) {
	newGateway(t)
	conn, err := net.DialTimeout("tcp", "localhost:9080", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /dashboard-apps/orders/ws HTTP/1.1\r\nHost: localhost:9080\r\nCookie: %s\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", agentCookie)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp.Header.Get("X-Frame-Options") != "" {
		t.Errorf("the upgrade response kept X-Frame-Options")
	}
	io.WriteString(conn, "ping over the tunnel")
	buf := make([]byte, len("ping over the tunnel"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping over the tunnel" {
		t.Errorf("echo through the upgraded connection: %q %v", buf, err)
	}
}

// doAsBrowser sends req as a browser does: when the connection it went
// on is closed without an answer, a request without a body is sent again,
// on a new connection, a few times. A config reload closes idle kept-alive
// connections; and Caddy binds each config's listener anew with
// SO_REUSEPORT, so the kernel resets the connections still waiting in the
// old socket's accept queue when it closes (under -race, slow to accept,
// one fresh connection in several thousand).
func doAsBrowser(c *http.Client, req *http.Request) (*http.Response, error) {
	resp, _, err := sendRetried(c, req)
	return resp, err
}

// sendRetried is doAsBrowser that also tells whether it retried.
func sendRetried(c *http.Client, req *http.Request) (*http.Response, bool, error) {
	resp, err := c.Do(req)
	if req.Body != nil || !closedUnanswered(err) {
		return resp, false, err
	}
	base := http.DefaultTransport.(*http.Transport)
	if c.Transport != nil {
		var ok bool
		if base, ok = c.Transport.(*http.Transport); !ok {
			return resp, false, err // not a transport this can renew
		}
	}
	fresh := *c
	t := base.Clone()
	t.DisableKeepAlives = true
	fresh.Transport = t
	for range 3 {
		if resp, err = fresh.Do(req); !closedUnanswered(err) {
			break
		}
	}
	return resp, true, err
}

// closedUnanswered reports whether err is a connection closed or reset
// before any answer.
func closedUnanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestSendRetried checks the retry the reload tests lean on, for a client
// with its own transport and for one with none (http.DefaultClient): the
// first two connections are closed without an answer, as a reload closes
// an idle one and the kernel a queued one, and the request must come back
// answered on a new connection.
func TestSendRetried(t *testing.T) {
	var mu sync.Mutex
	served := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served++
		first := served%3 != 0 // the first try and the first retry
		mu.Unlock()
		if first {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, "answered")
	}))
	defer srv.Close()
	for name, client := range map[string]*http.Client{
		"own transport": {Transport: &http.Transport{}},
		"no transport":  {},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, retried, err := sendRetried(client, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !retried || string(body) != "answered" {
			t.Errorf("%s: retried %v, body %q", name, retried, body)
		}
	}
}
