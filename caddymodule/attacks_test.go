package caddymodule

// Attacks on the gateway, through the gateway: an app or a stranger trying
// to get at the helpdesk's credentials, cookies, origin or agents' data.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// rawExchange writes raw bytes to the gateway on a new connection and
// returns the responses it reads back until the connection closes or
// stays quiet for half a second.
func rawExchange(t *testing.T, raw string) []*http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "localhost:9080", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resps, err := readRawResponses(conn, 500*time.Millisecond)
	if err != nil {
		t.Logf("reading responses: %v", err)
	}
	return resps
}

// getNoFollow is get through the client's transport alone, which neither
// follows nor parses a Location.
func getNoFollow(t *testing.T, tester *caddytest.Tester, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, gatewayBase+path, nil)
	req.Header.Set("Cookie", agentCookie)
	resp, err := tester.Client.Transport.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// rawGet sends one GET with a request-target exactly as given, as agent 7.
func rawGet(t *testing.T, target string) *http.Response {
	t.Helper()
	resps := rawExchange(t, "GET "+target+" HTTP/1.1\r\nHost: localhost:9080\r\nCookie: "+agentCookie+"\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 {
		t.Fatalf("GET %s: %d responses", target, len(resps))
	}
	return resps[0]
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// echoed decodes what an echo endpoint of an app saw.
func echoed(t *testing.T, body string) (header http.Header, query string) {
	t.Helper()
	var got struct {
		Header http.Header
		Query  string
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("not an echo: %v: %.300s", err, body)
	}
	return got.Header, got.Query
}

// TestAttackHelpdeskCredentialsNeverReachApps sends the agent's helpdesk
// credentials in every place they travel, to an app on its own origin and
// to one under a base path; the app sees none of them.
// (jupyter-server-proxy GHSA-q52h-2389-h4hv: a user's cookies forwarded to
// another's server; Grafana CVE-2022-39201: auth cookie leaked to plugin
// upstreams.)
func TestAttackHelpdeskCredentialsNeverReachApps(t *testing.T) {
	tester := newGateway(t)
	session := url.QueryEscape(`{"access-token":"SECRET-devise","token-type":"Bearer","client":"c","uid":"a@example.com"}`)
	for _, tc := range []struct {
		name, query string
		header      []string
		regression  string // the bug this case caught (fixed), for the record
	}{
		{"helpdesk session cookie", "", []string{"Cookie", agentCookie + "; _chatwoot_session=SECRET-rails; cw_d_session_info=" + session}, ""},
		{"cookies in two headers", "", []string{"Cookie", agentCookie, "Cookie", "cw_d_session_info=" + session + "; other=SECRET-other"}, ""},
		{"Authorization bearer", "", []string{"Authorization", "Bearer SECRET-bearer"}, ""},
		{"Authorization basic", "", []string{"Authorization", "Basic U0VDUkVULWJhc2ljOng="}, ""},
		{"two Authorization headers", "", []string{"Authorization", "Bearer SECRET-1", "Authorization", "Bearer SECRET-2"}, ""},
		{"api_access_token header", "", []string{"api_access_token", "SECRET-token"}, ""},
		{"api_access_token query", "?api_access_token=SECRET-q&keep=1", nil, ""},
		{"api_access_token query, twice", "?api_access_token=SECRET-q1&keep=1&api_access_token=SECRET-q2", nil, ""},
		{"Proxy-Authorization", "", []string{"Proxy-Authorization", "Basic SECRET-proxy"}, ""},
		{"devise access-token header", "", []string{"Access-Token", "SECRET-devise-header"}, ""},
		{"forward_headers", "", []string{"X-Helpdesk-Token", "SECRET-forwarded"},
			"proxy.go appProxy.cleanRequest removes Authorization, Proxy-Authorization, Api_access_token, X-Dashboard-* and Access-Token*, but not the handler's forward_headers (Handler.credentialHeaders), which README says are removed: a request with X-Helpdesk-Token reaches every app with it"},
		{"api_access_token query, key percent-encoded", "?api%5Faccess%5Ftoken=SECRET-enc&keep=1", nil,
			"proxy.go appProxy.cleanRequest only strips the query parameter when the raw query contains the literal \"api_access_token\"; ?api%5Faccess%5Ftoken=... (which Rails and url.ParseQuery both read as api_access_token) reaches the app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/dashboard-apps/tools/echo", "/dashboard-apps/evil/echo"} {
				resp, body := get(t, tester, path+tc.query, tc.header...)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %.200s", path, resp.StatusCode, body)
				}
				if strings.Contains(body, "SECRET") {
					t.Errorf("%s: a helpdesk credential reached the app: %s", path, body)
				}
				header, query := echoed(t, body)
				if c := header.Values("Cookie"); len(c) > 0 {
					t.Errorf("%s: the app got cookies it never set: %q", path, c)
				}
				for _, name := range []string{"Authorization", "Proxy-Authorization", "Api_access_token", "Access-Token", "X-Helpdesk-Token"} {
					if v := header.Values(name); len(v) > 0 {
						t.Errorf("%s: %s reached the app: %q", path, name, v)
					}
				}
				if strings.Contains(tc.query, "keep=1") && !strings.Contains(query, "keep=1") {
					t.Errorf("%s: the app's own query parameter was lost: %q", path, query)
				}
			}
		})
	}
}

// TestAttackAppCannotTossCookies lets an app set every cookie that would
// sign the agent out of the helpdesk, replace its session (cookie tossing)
// or reach another app, and checks both the headers and what a browser's
// cookie jar makes of them. (JupyterHub GHSA-7r3h-4ph8-w38g: cookie tossing.)
func TestAttackAppCannotTossCookies(t *testing.T) {
	tester := newGateway(t)
	hostile := []string{
		"hd_session=attacker; Path=/",
		"hd_session=attacker; Path=/app",
		"  hd_session  =attacker; Path=/",
		"cw_d_session_info=attacker; Path=/; Domain=localhost",
		"cw_d_session_info=; Max-Age=0; Path=/",
		"hd_session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
		"__Host-session=attacker; Secure; Path=/",
		"__Secure-session=attacker; Secure; Path=/; Domain=localhost",
		"__secure-nosecure=attacker; Path=/",
		"__HOST-withdomain=attacker; Secure; Path=/; Domain=localhost",
		"sid=attacker; Domain=.localhost; Path=/; domain=localhost",
		"sid2=attacker; Path=/dashboard-apps/orders/",
		"sid3=attacker; Path=/dashboard-apps/",
		"sid4=attacker; Path=/dashboard-apps/evil/x; Path=/",
		"sid5=attacker; path=/; PATH=/app/",
		"dapp_orders_sid=attacker; Path=/dashboard-apps/orders/",
		"dapp_orders_sid=attacker; Path=/",
		"sid6=attacker; Path=/%2e%2e/app/",
		"sid7=attacker; Path=/../../app/",
	}
	q := url.Values{"c": hostile}
	resp, body := get(t, tester, "/dashboard-apps/evil/setcookies?"+q.Encode())
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	set := resp.Header.Values("Set-Cookie")
	if len(set) == 0 {
		t.Fatal("no Set-Cookie came through at all")
	}
	for _, c := range set {
		pair, attrs, _ := strings.Cut(c, ";")
		name, _, _ := strings.Cut(pair, "=")
		if !strings.HasPrefix(strings.TrimSpace(name), "dapp_evil_") {
			t.Errorf("cookie outside the app's namespace: %q", c)
		}
		paths := 0
		for _, a := range strings.Split(attrs, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "domain":
				t.Errorf("Domain kept: %q", c)
			case "path":
				paths++
				if !strings.HasPrefix(strings.TrimSpace(v), "/dashboard-apps/evil/") {
					t.Errorf("Path outside the app: %q", c)
				}
			}
		}
		if paths != 1 {
			t.Errorf("%d Path attributes (want exactly 1): %q", paths, c)
		}
	}

	// What a browser keeps: the helpdesk's and the orders app's cookies
	// are as they were; nothing of the evil app's is sent outside it.
	jar, _ := cookiejar.New(nil)
	site, _ := url.Parse(gatewayBase + "/")
	jar.SetCookies(site, []*http.Cookie{{Name: "hd_session", Value: "agent-7", Path: "/"}, {Name: "cw_d_session_info", Value: "original", Path: "/"}})
	orders, _ := url.Parse(gatewayBase + "/dashboard-apps/orders/")
	jar.SetCookies(orders, []*http.Cookie{{Name: "dapp_orders_sid", Value: "original", Path: "/dashboard-apps/orders/"}})
	evilURL, _ := url.Parse(gatewayBase + "/dashboard-apps/evil/setcookies")
	jar.SetCookies(evilURL, resp.Cookies())
	cookiesAt := func(p string) string {
		u, _ := url.Parse(gatewayBase + p)
		var out []string
		for _, c := range jar.Cookies(u) {
			out = append(out, c.Name+"="+c.Value)
		}
		return strings.Join(out, "; ")
	}
	for p, want := range map[string]string{
		"/app/accounts/1/conversations/123":  "hd_session=agent-7; cw_d_session_info=original",
		"/_dashboard_apps/context":           "hd_session=agent-7; cw_d_session_info=original",
		"/dashboard-apps/orders/x":           "dapp_orders_sid=original; hd_session=agent-7; cw_d_session_info=original",
		"/dashboard-apps/evilsub/":           "hd_session=agent-7; cw_d_session_info=original",
		"/dashboard-apps/evil-twin/anything": "hd_session=agent-7; cw_d_session_info=original",
	} {
		if got := cookiesAt(p); got != want {
			t.Errorf("browser cookies for %s:\n got %s\nwant %s", p, got, want)
		}
	}
	if got := cookiesAt("/dashboard-apps/evil/"); !strings.Contains(got, "dapp_evil_sid=attacker") {
		t.Errorf("the app lost its own cookie: %s", got)
	}
}

// TestAttackAppNeverReceivesOtherCookies sends an app every cookie a
// browser might hold on the helpdesk's origin; only its own come through,
// under its own names.
func TestAttackAppNeverReceivesOtherCookies(t *testing.T) {
	tester := newGateway(t)
	jar := agentCookie + "; cw_d_session_info=SECRET1; _chatwoot_session=SECRET2; dapp_orders_sid=SECRET3; dapp_evil-x_sid=SECRET4; " +
		"dapp_evilx_sid=SECRET5; DAPP_evil_sid=SECRET6; dapp_evil_=SECRET7; dapp__evil_sid=SECRET8; dapp_evilsub_sid=SECRET9; " +
		"dapp_evil_own=mine; xdapp_evil_sid=SECRET10; dapp_evil_second=2"
	_, body := get(t, tester, "/dashboard-apps/evil/echo", "Cookie", jar)
	header, _ := echoed(t, body)
	if got := strings.Join(header.Values("Cookie"), "; "); got != "own=mine; second=2" {
		t.Errorf("the app got Cookie %q, want only its own: own=mine; second=2", got)
	}
	_, body = get(t, tester, "/dashboard-apps/evilsub/echo?trav=cookies", "Cookie", jar)
	if strings.Contains(body, "SECRET") {
		t.Errorf("leak to evilsub: %s", body)
	}
	if reqs := faultyLog.withQuery("trav=cookies"); len(reqs) == 0 || strings.Join(reqs[len(reqs)-1].Header.Values("Cookie"), ";") != "sid=SECRET9" {
		t.Errorf("evilsub did not get exactly its own cookie: %+v", reqs)
	}
}

// traversalEscapes reports whether the upstream request-target uri would
// leave base on a server that decodes percent escapes up to four times,
// reads "\" as "/", drops ";" path parameters and trims spaces from
// segments: the most lenient server an app may run on.
func traversalEscapes(uri, base string) bool {
	p, _, _ := strings.Cut(uri, "?")
	for i := 0; i < 4 && strings.Contains(p, "%"); i++ {
		d, err := url.PathUnescape(p)
		if err != nil {
			break
		}
		p = d
	}
	p = strings.ReplaceAll(p, "\\", "/")
	var stack []string
	for _, seg := range strings.Split(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		seg = strings.TrimSpace(strings.Trim(seg, "\x00"))
		switch seg {
		case "", ".":
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		default:
			stack = append(stack, seg)
		}
	}
	return !strings.HasPrefix("/"+strings.Join(stack, "/")+"/", base)
}

// TestAttackPathTraversalStaysInsideTheBase tries to leave an app's base
// path upstream (/sub/) in every spelling, sent as raw bytes; each is
// refused with 400, or reaches the app at a path inside its base.
func TestAttackPathTraversalStaysInsideTheBase(t *testing.T) {
	newGateway(t)
	long := strings.Repeat("a/", 2000) + strings.Repeat("../", 2001)
	for i, rest := range []string{
		"../echo", "..%2fecho", "%2e%2e/echo", "%2E%2e/echo", ".%2e/echo", "%2e./echo", "%2E%2E%2Fecho",
		"..%5cecho", `..\echo`, `a\..\..\echo`, "..%5c..%5cecho",
		"%252e%252e/echo", "%252e%252e%252fecho", "..%252fecho", "%25252e%25252e/echo", "%2525252e%2525252e/echo",
		"..;/echo", "..;jsessionid=1/echo", "..%3b/echo", "%2e%2e%3bx/echo", "..%253b/echo",
		"a/../../echo", "a/%2e%2e/%2e%2e/echo", "./../echo", "a/./../../echo",
		"..%00/echo", "%00/../echo", "..%20/echo", "%20../echo", "..%09/echo",
		"%c0%ae%c0%ae/echo", "%e0%80%ae%e0%80%ae/echo", "..%c0%afecho", "%uff0e%uff0e/echo", "%ef%bc%8e%ef%bc%8e/echo",
		"....//echo", ".../echo", "%", "%2", "%zz/../echo",
		long + "echo", strings.Repeat("%2e%2e/", 500) + "echo",
	} {
		name := rest
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(name, func(t *testing.T) {
			marker := fmt.Sprintf("trav=%d-%s", i, randomID())
			resp := rawGet(t, "/dashboard-apps/evilsub/"+rest+"?"+marker)
			reqs := faultyLog.withQuery(marker)
			if len(reqs) > 0 {
				t.Logf("%d; the app saw %.120s", resp.StatusCode, reqs[0].URI)
			} else {
				t.Logf("%d", resp.StatusCode)
			}
			switch {
			case resp.StatusCode == http.StatusBadRequest:
				if len(reqs) > 0 {
					t.Errorf("refused with 400, yet the app saw %q", reqs[0].URI)
				}
			case len(reqs) == 1:
				if traversalEscapes(reqs[0].URI, "/sub/") {
					t.Errorf("status %d: the app saw %q, outside its base /sub/", resp.StatusCode, reqs[0].URI)
				}
			case len(reqs) == 0 && resp.StatusCode >= 400:
				// Refused before the app (by Go's server: 414/431, ...).
			default:
				t.Errorf("status %d with %d upstream requests", resp.StatusCode, len(reqs))
			}
		})
	}
	// The prefix and the app id themselves, escaped or climbing: never an
	// app, never the helpdesk under another path.
	for _, target := range []string{
		"/%64ashboard-apps/evilsub/echo", "/dashboard-apps%2fevilsub/echo", "/dashboard-apps/evilsub%2f..%2fevil/echo",
		"/dashboard-apps/%65vil/echo", "/dashboard-apps/../app/accounts/1", "/dashboard-apps/..%2f_dashboard_apps/apps?account=1",
		"/dashboard-apps/EVIL/echo", "/dashboard-apps/evil;x/echo",
	} {
		resp := rawGet(t, target)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 400 or 404: %.200s", target, resp.StatusCode, body)
		}
	}
}

// browserURL is what a browser makes of a header URL: leading and trailing
// C0 controls and spaces stripped, tabs and newlines removed, "\" read as
// "/"; resolved against the proxied document.
func browserURL(v string) (*url.URL, error) {
	v = strings.TrimFunc(v, func(r rune) bool { return r <= ' ' })
	v = strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(v)
	base, _ := url.Parse(gatewayBase + "/dashboard-apps/evil/loc")
	ref, err := url.Parse(v)
	if err != nil {
		return nil, err
	}
	return base.ResolveReference(ref), nil
}

// TestAttackOpenRedirectsThroughTheMapping has an app redirect (Location,
// Content-Location, Refresh, Link) to every spelling of another site and
// of its own origin. What the app sent about another origin is left
// alone; what the gateway rewrites stays under the app's prefix on the
// helpdesk's origin. (Jupyter CVE-2019-10856: open redirect.)
func TestAttackOpenRedirectsThroughTheMapping(t *testing.T) {
	tester := newGateway(t)
	app := strings.TrimPrefix(faultyServer.URL, "http://")
	const p = "/dashboard-apps/evil/"
	for _, tc := range []struct{ v, want string }{
		{"//evil.example/", ""},
		{`/\evil.example/`, ""},
		{`\\evil.example`, ""},
		{"https:evil.example", ""},
		{"http:evil.example", ""},
		{"http://evil.example", ""},
		{"http://" + app + "@evil.example/", ""},
		{"http://evil.example@" + app + "/", ""},
		{"http://" + app + "%2f@evil.example/", ""},
		{"http://evil.example\\@" + app + "/", ""},
		{"\t//evil.example/", ""},
		{"/\t/evil.example/", p + "\t/evil.example/"},
		{"/\t\\evil.example/", p + "\t/evil.example/"},
		{"http://" + app + "//evil.example/", p + "/evil.example/"},
		{"http://" + app + `/\evil.example/`, p + "/evil.example/"},
		{"http://" + app + `\@evil.example/`, p + "@evil.example/"},
		{"//" + app + "//evil.example/", p + "/evil.example/"},
		{"http://" + app + "/..//evil.example/", p + "evil.example/"},
		{"/%2e%2e/%2e%2e//evil.example/", p + "evil.example/"},
		{"//" + app + `\..\..\evil.example`, p + "evil.example"},
		{"/%5cevil.example", p + "%5cevil.example"},
		{"HTTP://" + app + "/x", p + "x"},
		{"http://" + app, p},
		{"/dashboard-apps/orders/secret", p + "dashboard-apps/orders/secret"},
		{"/_dashboard_apps/context?account=1&conversation=123", p + "_dashboard_apps/context?account=1&conversation=123"},
		{"../../../../app/accounts/1", p + "app/accounts/1"},
		{`..\..\..\app`, p + "app"},
		{"%2e%2e/%2e%2e/%2e%2e/app", p + "app"},
		{"javascript:alert(document.domain)", ""},
		{"data:text/html,<script>alert(1)</script>", ""},
		{"http://" + app + ":80/x", ""},
	} {
		t.Run(tc.v, func(t *testing.T) {
			resp := getNoFollow(t, tester, "/dashboard-apps/evil/loc?"+url.Values{"v": {tc.v}}.Encode())
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d", resp.StatusCode)
			}
			sent := textproto.TrimString(tc.v) // as Go's server writes header values
			want := tc.want
			if want == "" {
				want = sent
			}
			check := func(header, got, appSent string) {
				if got == appSent {
					return // the app's own choice, untouched
				}
				u, err := browserURL(got)
				if err != nil || u.Host != "localhost:9080" || !strings.HasPrefix(u.Path, p) ||
					!strings.HasPrefix(strings.TrimFunc(got, func(r rune) bool { return r <= ' ' }), p) {
					t.Errorf("%s rewritten off the app's prefix: %q → %q (browser: %v)", header, appSent, got, u)
				}
			}
			loc := resp.Header.Get("Location")
			if loc != want {
				t.Errorf("Location = %q, want %q", loc, want)
			}
			check("Location", loc, sent)
			check("Content-Location", resp.Header.Get("Content-Location"), sent)
			refresh := resp.Header.Get("Refresh")
			if got, ok := strings.CutPrefix(refresh, "0; url="); !ok {
				t.Errorf("Refresh = %q", refresh)
			} else {
				check("Refresh", got, strings.TrimPrefix(textproto.TrimString("0; url="+tc.v), "0; url="))
			}
			link := resp.Header.Get("Link")
			if i, j := strings.IndexByte(link, '<'), strings.LastIndexByte(link, '>'); i != 0 || j < 0 {
				t.Errorf("Link = %q", link)
			} else {
				check("Link", link[1:j], tc.v)
			}
		})
	}

	// A Location with a bare line feed: refused by the proxy, never split.
	resp, body := send(t, tester, http.MethodGet, "/dashboard-apps/evil/raw-location", nil)
	if loc := resp.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, p) || len(resp.Header.Values("Location")) > 1 {
		t.Errorf("raw Location with LF: %d %q", resp.StatusCode, resp.Header.Values("Location"))
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("raw Location with LF: status %d, want the 502 page: %.200s", resp.StatusCode, body)
	}

	// The gateway's own redirect of {prefix}<id> keeps its hostile query
	// behind the app's path.
	for _, target := range []string{
		"/dashboard-apps/orders?//evil.example/", `/dashboard-apps/orders?/\evil.example`, "/dashboard-apps/orders?@evil.example",
		"/dashboard-apps/orders?%0d%0aLocation:%20//evil.example%0d%0aSet-Cookie:%20hd_session=x", "/dashboard-apps/orders?",
		"/dashboard-apps/orders?x=1#//evil", "/dashboard-apps//evil.example", "/dashboard-apps/orders%2f%2fevil.example", `/dashboard-apps/orders\evil.example`,
	} {
		resp := rawGet(t, target)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc := resp.Header.Get("Location")
			if u, err := browserURL(loc); err != nil || !strings.HasPrefix(loc, "/dashboard-apps/orders/") || u.Host != "localhost:9080" || strings.ContainsAny(loc, "\r\n") {
				t.Errorf("%s: redirected to %q", target, loc)
			}
		} else if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d", target, resp.StatusCode)
		}
		if c := resp.Header.Values("Set-Cookie"); len(c) > 0 {
			t.Errorf("%s: header injection: Set-Cookie %q", target, c)
		}
	}
}

// Hostile app names, as configured in hostileAppsConfig.
const (
	xssAppName    = `</script><script>__xss=1</script><img src=x onerror=__xss=2>`
	quotesAppName = `"Q" & 'S' <b>bold</b>`
)

// TestAttackAppNamesAreInertInTheAppsList: app names made of markup leave
// the /apps endpoint as JSON with <, > and & escaped, and decode to exactly
// the configured names.
func TestAttackAppNamesAreInertInTheAppsList(t *testing.T) {
	tester := newGateway(t)
	resp, body := get(t, tester, "/_dashboard_apps/apps?account=2")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if i := strings.IndexAny(body, "<>&"); i >= 0 {
		t.Errorf("raw %q in the JSON at %d: %s", body[i], i, body)
	}
	for _, want := range []string{`\u003c/script\u003e\u003cscript\u003e__xss=1`, `\"Q\" \u0026 'S' \u003cb\u003e`} {
		if !strings.Contains(body, want) {
			t.Errorf("JSON lacks %s: %s", want, body)
		}
	}
	if ct, nosniff := resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"); ct != "application/json" || nosniff != "nosniff" {
		t.Errorf("Content-Type %q, X-Content-Type-Options %q", ct, nosniff)
	}
	var list []appEntry
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, a := range list {
		names[a.ID] = a.Name
		if !strings.HasPrefix(a.URL, "/dashboard-apps/"+a.ID+"/") {
			t.Errorf("app %s url %q is not its proxied path", a.ID, a.URL)
		}
	}
	if names["xss"] != xssAppName || names["quotes"] != quotesAppName {
		t.Errorf("names changed: %q %q", names["xss"], names["quotes"])
	}
	// Ids that are markup never get in.
	if code, body := adminDo(t, http.MethodPut, "/config/apps/dashboard_apps/apps/a%3Cscript%3E", `{"name":"x","url":"http://127.0.0.1:1/"}`); code != http.StatusBadRequest {
		t.Errorf("PUT of an app id with markup: %d %s", code, body)
	}
}

// handlerConfigPath finds the JSON path of the dashboard_apps handler in
// the running config, for admin API changes to its settings.
func handlerConfigPath(t *testing.T) string {
	t.Helper()
	_, body := adminDo(t, http.MethodGet, "/config/", "")
	var cfg any
	if err := json.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, path string) string
	walk = func(v any, path string) string {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "dashboard_apps" {
				return path
			}
			for k, c := range v {
				if p := walk(c, path+"/"+k); p != "" {
					return p
				}
			}
		case []any:
			for i, c := range v {
				if p := walk(c, fmt.Sprintf("%s/%d", path, i)); p != "" {
					return p
				}
			}
		}
		return ""
	}
	p := walk(cfg, "/config")
	if p == "" {
		t.Fatal("no dashboard_apps handler in the running config")
	}
	return p
}

// TestAttackInjectedConfigIsInert sets a sidebar selector and a
// conversation route that close the config's <script> element; the page
// gets them as JSON that cannot leave its element, and decodes to them.
func TestAttackInjectedConfigIsInert(t *testing.T) {
	tester := newGateway(t)
	t.Cleanup(func() { restoreGateway(t) }) // the shared config back
	sidebar := "</script><script>__xss=3</script><!--<script>\u2028 & ]]>"
	route := "/app/accounts/{account}/conversations/{conversation}</script><script>__xss=4</script>"
	handler := handlerConfigPath(t)
	for field, v := range map[string]string{"sidebar_selector": sidebar, "conversation_route": route} {
		b, _ := json.Marshal(v)
		if code, body := adminDo(t, http.MethodPost, handler+"/"+field, string(b)); code != 200 {
			t.Fatalf("POST %s: %d %s", field, code, body)
		}
	}
	resp, page := get(t, tester, "/app/accounts/1/conversations/123")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, page)
	}
	const open = `<script type="application/json" id="dashboard-apps-config">`
	_, rest, ok := strings.Cut(page, open)
	if !ok {
		t.Fatalf("no config block in the page: %s", page)
	}
	block, _, _ := strings.Cut(rest, "</script>")
	if strings.ContainsAny(block, "<>&") {
		t.Errorf("markup characters inside the config element: %s", block)
	}
	var cfg map[string]string
	if err := json.Unmarshal([]byte(block), &cfg); err != nil {
		t.Fatalf("the config element is cut short (%v): %s", err, block)
	}
	if cfg["sidebar"] != sidebar || cfg["route"] != route {
		t.Errorf("config decodes to %q, %q", cfg["sidebar"], cfg["route"])
	}
	if n := strings.Count(page, "<script"); n != strings.Count(conversationPage, "<script")+2 {
		t.Errorf("%d script elements in the page, want the helpdesk's plus 2", n)
	}
}

// TestAttackOriginWideHeadersAreRemoved: an app answers every method, with
// every kind of status and an Early Hints response first, with headers that
// act on the whole origin (the helpdesk's, once proxied); none reaches the
// browser.
func TestAttackOriginWideHeadersAreRemoved(t *testing.T) {
	tester := newGateway(t)
	check := func(what string, h http.Header) {
		for name := range originWideHeaders {
			if v := h.Values(name); len(v) > 0 {
				t.Errorf("%s: %s reached the browser: %q", what, name, v)
			}
		}
	}
	for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		for _, status := range []int{200, 201, 204, 301, 302, 304, 307, 404, 410, 500, 503} {
			what := fmt.Sprintf("%s %d", method, status)
			resp, _ := send(t, tester, method, fmt.Sprintf("/dashboard-apps/evil/origin-wide?status=%d", status), strings.NewReader("x"))
			if resp.StatusCode != status {
				t.Errorf("%s: status %d", what, resp.StatusCode)
			}
			check(what, resp.Header)
		}
	}
	// 103 Early Hints: its headers go to the browser before the response's.
	var early []textproto.MIMEHeader
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		if code == http.StatusEarlyHints {
			early = append(early, h)
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", gatewayBase+"/dashboard-apps/evil/origin-wide?early=1", nil)
	req.Header.Set("Cookie", agentCookie)
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	check("final response after 103", resp.Header)
	mu.Lock()
	defer mu.Unlock()
	if len(early) != 1 {
		t.Fatalf("%d Early Hints responses reached the browser, want 1", len(early))
	}
	check("103 Early Hints", http.Header(early[0]))
	if got := early[0].Get("Link"); got != "</dashboard-apps/evil/style.css>; rel=preload; as=style" {
		t.Errorf("103 Link = %q, want it mapped to the app's prefix", got)
	}
}

// TestAttackHelpdeskCSPStaysStrict runs helpdesk pages with strict
// policies through the injection: each keeps its policy, plus at most the
// documented, path-limited sources and the host script's hash; never a
// wildcard or an unsafe-* keyword; the script tag carries the page's nonce
// or its integrity.
func TestAttackHelpdeskCSPStaysStrict(t *testing.T) {
	assets := loadAssets()
	const origin = "http://hd.test"
	h := &Handler{Prefix: defaultPrefix, assets: assets, snippetConfig: `{}`, injectFailOnce: new(sync.Once), logger: testLogger()}
	allowed := func(tok string) bool {
		return tok == "'"+assets.jsIntegrity+"'" || strings.HasPrefix(tok, origin+"/_dashboard_apps/") || strings.HasPrefix(tok, origin+"/dashboard-apps/")
	}
	parse := func(p string) map[string][]string {
		out := map[string][]string{}
		for _, d := range strings.Split(p, ";") {
			f := strings.Fields(d)
			if len(f) > 0 {
				out[strings.ToLower(f[0])] = f[1:]
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, policy, want string
		nonce              bool
	}{
		{"nonce and strict-dynamic", "script-src 'nonce-R4nd0m' 'strict-dynamic'; default-src 'none'",
			"script-src 'nonce-R4nd0m' 'strict-dynamic'; default-src 'none'; style-src " + origin + "/_dashboard_apps/host.css; connect-src " + origin + "/_dashboard_apps/; frame-src " + origin + "/dashboard-apps/", true},
		{"hashes and strict-dynamic", "script-src 'strict-dynamic' 'sha256-abc='; object-src 'none'; base-uri 'none'; require-trusted-types-for 'script'",
			"script-src 'strict-dynamic' 'sha256-abc=' '" + assets.jsIntegrity + "'; object-src 'none'; base-uri 'none'; require-trusted-types-for 'script'", false},
		{"host list, default none", "default-src 'none'; script-src https://cdn.example; img-src data:",
			"default-src 'none'; script-src https://cdn.example '" + assets.jsIntegrity + "' " + origin + "/_dashboard_apps/host.js; img-src data:; style-src " + origin + "/_dashboard_apps/host.css; connect-src " + origin + "/_dashboard_apps/; frame-src " + origin + "/dashboard-apps/", false},
		{"script-src none", "script-src 'none'; frame-ancestors 'none'", "", false},
		{"nonce only in a second policy", "default-src 'self', script-src 'nonce-Zm9v'", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Content-Type", "text/html")
				w.Header().Set("Content-Security-Policy", tc.policy)
				io.WriteString(w, "<html><head><title>t</title></head><body></body></html>")
				return nil
			})
			rec := httptest.NewRecorder()
			if err := h.serveInjected(rec, httptest.NewRequest("GET", origin+"/app/accounts/1/conversations/1", nil), next); err != nil {
				t.Fatal(err)
			}
			got := rec.Header().Get("Content-Security-Policy")
			if tc.want != "" && got != tc.want {
				t.Errorf("policy:\n got %s\nwant %s", got, tc.want)
			}
			for _, tok := range strings.Fields(strings.NewReplacer(";", " ", ",", " ").Replace(got)) {
				switch strings.ToLower(tok) {
				case "'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'", "*", "http:", "https:", "data:", "blob:", "'self'":
					if !strings.Contains(" "+strings.NewReplacer(";", " ", ",", " ").Replace(tc.policy)+" ", " "+tok+" ") {
						t.Errorf("%s added: %s", tok, got)
					}
				}
			}
			before, after := strings.Split(tc.policy, ","), strings.Split(got, ",")
			if len(before) != len(after) {
				t.Fatalf("%d policies became %d: %s", len(before), len(after), got)
			}
			for i := range before {
				b, a := parse(before[i]), parse(after[i])
				for name, toks := range b {
					if _, ok := a[name]; !ok {
						t.Errorf("directive %s removed", name)
					}
					for _, tok := range toks {
						if tok != "'none'" && !strings.Contains(" "+strings.Join(a[name], " ")+" ", " "+tok+" ") {
							t.Errorf("%s lost %s", name, tok)
						}
					}
				}
				for name, toks := range a {
					for _, tok := range toks {
						if !strings.Contains(" "+strings.Join(b[name], " ")+" "+strings.Join(b["default-src"], " ")+" ", " "+tok+" ") && !allowed(tok) {
							t.Errorf("%s gained %s, which is not a documented addition", name, tok)
						}
					}
				}
			}
			body := rec.Body.String()
			tag := body[strings.Index(body, `<script src="/_dashboard_apps/host.js`):]
			tag = tag[:strings.IndexByte(tag, '>')]
			if tc.nonce != strings.Contains(tag, ` nonce="`) {
				t.Errorf("nonce on the script tag: %s", tag)
			}
			if strings.Contains(tc.policy, "nonce-R4nd0m") && !strings.Contains(tag, `nonce="R4nd0m"`) {
				t.Errorf("the page's nonce is not the tag's: %s", tag)
			}
			if strings.Contains(got, assets.jsIntegrity) && !strings.Contains(tag, `integrity="`+assets.jsIntegrity+`"`) {
				t.Errorf("hash in the policy but no integrity on the tag: %s", tag)
			}
		})
	}
}

// TestAttackWebhookForgery: every wrong way of presenting the webhook
// secret is refused, and nothing is evicted by a refused webhook.
func TestAttackWebhookForgery(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	body := `{"event":"conversation_updated","id":123,"account":{"id":1},"meta":{"sender":{"id":456}}}`
	sha1sum := func(key, b string) string {
		m := hmac.New(sha1.New, []byte(key))
		m.Write([]byte(b))
		return hex.EncodeToString(m.Sum(nil))
	}
	good := hmacHex("hook-secret", body)
	contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a")
	for _, tc := range []struct {
		name, query string
		header      []string
	}{
		{"no secret", "", nil},
		{"wrong secret", "?secret=hook-secrex", nil},
		{"secret prefix", "?secret=hook-secre", nil},
		{"secret with a suffix", "?secret=hook-secret2", nil},
		{"secret in upper case", "?secret=HOOK-SECRET", nil},
		{"empty secret", "?secret=", nil},
		{"wrong secret first", "?secret=x&secret=hook-secret", nil},
		{"secret as the signature", "", []string{"X-Dashboard-Apps-Signature", "hook-secret"}},
		{"secret as sha256=", "", []string{"X-Dashboard-Apps-Signature", "sha256=hook-secret"}},
		{"secret in another header", "", []string{"X-Webhook-Secret", "hook-secret"}},
		{"secret as a bearer token", "", []string{"Authorization", "Bearer hook-secret"}},
		{"secret in a cookie", "", []string{"Cookie", "secret=hook-secret"}},
		{"HMAC of another body", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + hmacHex("hook-secret", body+" ")}},
		{"HMAC with another key", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + hmacHex("hook-secret2", body)}},
		{"sha1 HMAC", "", []string{"X-Dashboard-Apps-Signature", "sha1=" + sha1sum("hook-secret", body)}},
		{"sha256 HMAC with a sha1= label", "", []string{"X-Dashboard-Apps-Signature", "sha1=" + good}},
		{"unlabelled HMAC", "", []string{"X-Dashboard-Apps-Signature", good}},
		{"empty signature", "", []string{"X-Dashboard-Apps-Signature", "sha256="}},
		{"truncated HMAC", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + good[:32]}},
		{"HMAC with a byte more", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + good + "00"}},
		{"not hex", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + strings.Repeat("zz", 32)}},
		{"bad signature beside a good query secret", "?secret=hook-secret", []string{"X-Dashboard-Apps-Signature", "sha256=" + strings.Repeat("00", 32)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c := webhook(h, body, tc.query, tc.header...); c != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", c)
			}
		})
	}
	if w := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a"); w.Header().Get(cacheHeader) != "hit" {
		t.Errorf("a refused webhook evicted the context: %s", w.Header().Get(cacheHeader))
	}
	// The right ones are accepted (so the refusals above are not vacuous).
	if c := webhook(h, body, "", "X-Dashboard-Apps-Signature", "sha256="+strings.ToUpper(good)); c != 200 {
		t.Errorf("upper-case hex HMAC: %d", c)
	}
	if c := webhook(h, body, "?secret=hook-secret"); c != 200 {
		t.Errorf("query secret: %d", c)
	}
}

// TestAttackWebhookReplayOnlyEvicts replays a valid webhook: it evicts the
// context again and does nothing else (no helpdesk call, no other entry
// touched).
func TestAttackWebhookReplayOnlyEvicts(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	body := `{"event":"conversation_updated","id":123,"account":{"id":1},"meta":{"sender":{"id":456}}}`
	sig := "sha256=" + hmacHex("hook-secret", body)
	state := func(conv string) string {
		return contextRequest(h, "account=1&conversation="+conv, "api_access_token", "token-a").Header().Get(cacheHeader)
	}
	state("123")
	state("124")
	for i := 0; i < 3; i++ {
		convCalls, profileCalls := hd.convCalls.Load(), hd.profileCalls.Load()
		if c := webhook(h, body, "", "X-Dashboard-Apps-Signature", sig); c != 200 {
			t.Fatalf("replay %d: %d", i, c)
		}
		if hd.convCalls.Load() != convCalls || hd.profileCalls.Load() != profileCalls {
			t.Errorf("replay %d called the helpdesk", i)
		}
		if got := state("124"); got != "hit" {
			t.Errorf("replay %d evicted another contact's conversation: %s", i, got)
		}
		if got := state("123"); got != "miss" {
			t.Errorf("replay %d did not evict: %s", i, got)
		}
		if hd.profileCalls.Load() != profileCalls {
			t.Errorf("replay %d evicted the agent's profile", i)
		}
	}
}

// TestAttackCrossAgentContext asks for one agent's conversation with other
// credentials: another agent, no credentials, the same secret in another
// place, and many cookie strings that differ from the agent's in one
// value; none shares the agent's cached context.
func TestAttackCrossAgentContext(t *testing.T) {
	tester := newGateway(t)
	const path = "/_dashboard_apps/context?account=1&conversation=123"
	resp, body := get(t, tester, path)
	if resp.StatusCode != 200 || !strings.Contains(body, `"currentAgent":{"id":7`) {
		t.Fatalf("agent 7: %d %s", resp.StatusCode, body)
	}
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"another agent", []string{"Cookie", otherAgentCookie}},
		{"no credentials", []string{"Cookie", ""}},
		{"only an app's cookie", []string{"Cookie", "dapp_orders_hd_session=agent-7"}},
		{"session value one character off", []string{"Cookie", "hd_session=agent-8"}},
		{"session value longer", []string{"Cookie", "hd_session=agent-70"}},
		{"session value shorter", []string{"Cookie", "hd_session=agent-"}},
		{"session name in another case", []string{"Cookie", "HD_session=agent-7"}},
		{"the cookie pair as Authorization", []string{"Cookie", "", "Authorization", agentCookie}},
		{"the cookie pair as a forwarded header", []string{"Cookie", "", "X-Helpdesk-Token", agentCookie}},
		{"the cookie pair as api_access_token", []string{"Cookie", "", "api_access_token", agentCookie}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tester, path, tc.header...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status %d, want 401: %s", resp.StatusCode, body)
			}
			if strings.Contains(body, "Support Agent") || strings.Contains(body, "jane@") || resp.Header.Get(cacheHeader) != "" {
				t.Errorf("agent 7's context leaked (%s): %s", resp.Header.Get(cacheHeader), body)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
	// The same agent with credentials that differ in one cookie's value:
	// each is a cache entry of its own.
	run := randomID()
	for i := 0; i < 40; i++ {
		cookie := fmt.Sprintf("%s; pref=%s%02d", agentCookie, run, i)
		if i%2 == 1 {
			cookie = fmt.Sprintf("pref=%s%02d; %s", run, i, agentCookie)
		}
		resp, body := get(t, tester, path, "Cookie", cookie)
		if resp.StatusCode != 200 || resp.Header.Get(cacheHeader) != "miss" {
			t.Errorf("%q: %d %s, want a miss of its own", cookie, resp.StatusCode, resp.Header.Get(cacheHeader))
		}
		if !strings.Contains(body, `"currentAgent":{"id":7`) {
			t.Errorf("%q: %s", cookie, body)
		}
		if resp, _ := get(t, tester, path, "Cookie", cookie); resp.Header.Get(cacheHeader) != "hit" {
			t.Errorf("%q again: %s, want a hit", cookie, resp.Header.Get(cacheHeader))
		}
	}
}

// TestAttackRequestSmuggling sends requests with ambiguous framing as raw
// bytes, each followed by a request without credentials. The gateway
// either refuses the request or reads it one way and re-frames it for the
// app: the app never sees the hidden request, nor more requests than the
// gateway answered.
func TestAttackRequestSmuggling(t *testing.T) {
	newGateway(t)
	for _, tc := range []struct{ name, framing, body string }{
		{"CL.TE", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"},
		{"TE.CL", "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "8\r\nSMUGGLED\r\n0\r\n\r\n"},
		{"duplicate CL", "Content-Length: 0\r\nContent-Length: 5\r\n", "hello"},
		{"CL list", "Content-Length: 5, 0\r\n", "hello"},
		{"CL with sign", "Content-Length: +5\r\n", "hello"},
		{"negative CL", "Content-Length: -1\r\n", ""},
		{"TE xchunked", "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n", "hello"},
		{"TE chunked, identity", "Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"},
		{"TE twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n"},
		{"TE with tab", "Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"},
		{"TE space before colon", "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"},
		{"TE obs-fold", "X-Pad: x\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"},
		{"chunk size overflow", "Transfer-Encoding: chunked\r\n", "10000000000000000\r\nx\r\n0\r\n\r\n"},
		{"chunk with bare LF", "Transfer-Encoding: chunked\r\n", "5\nhello\n0\n\n"},
		{"GET with a body", "Content-Length: 5\r\n", "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := randomID()
			smuggled := "GET /dashboard-apps/evil/smug/hidden-" + id + " HTTP/1.1\r\nHost: localhost:9080\r\nConnection: close\r\n\r\n"
			method := "POST"
			if strings.HasPrefix(tc.name, "GET") {
				method = "GET"
			}
			raw := method + " /dashboard-apps/evil/smug/outer-" + id + " HTTP/1.1\r\nHost: localhost:9080\r\nCookie: " + agentCookie + "\r\n" +
				tc.framing + "\r\n" + tc.body + smuggled
			resps := rawExchange(t, raw)
			seen := faultyLog.matching("/smug/")
			var outer, hidden []upstreamRequest
			for _, r := range seen {
				if strings.Contains(r.Path, "outer-"+id) {
					outer = append(outer, r)
				}
				if strings.Contains(r.Path, "hidden-"+id) {
					hidden = append(hidden, r)
				}
			}
			var statuses []int
			ok := 0
			for _, r := range resps {
				statuses = append(statuses, r.StatusCode)
				if r.StatusCode == 200 {
					ok++
				}
			}
			t.Logf("gateway answered %v; app saw %d outer, %d hidden", statuses, len(outer), len(hidden))
			if len(hidden) > 0 {
				t.Errorf("the hidden request reached the app: %+v", hidden)
			}
			if len(outer) > 1 || len(outer) > ok && (len(statuses) == 0 || statuses[0] != http.StatusBadGateway) {
				// 502: Caddy sent the request on and its body broke off.
				t.Errorf("the app saw %d requests, the gateway answered %v", len(outer), statuses)
			}
			if len(resps) == 0 || len(resps) > 2 {
				t.Errorf("%d responses", len(resps))
			}
			for i, s := range statuses {
				if i == 0 && s != 200 && s != 400 && s != 501 && s != 411 && s != 502 {
					t.Errorf("first answer %d", s)
				}
				if i == 1 && s != http.StatusUnauthorized {
					t.Errorf("the request without credentials was answered %d, want 401", s)
				}
			}
			for _, r := range outer {
				if te := r.Header.Get("Transfer-Encoding"); te != "" || len(r.Header.Values("Content-Length")) > 1 {
					t.Errorf("ambiguous framing reached the app: %v", r.Header)
				}
				if strings.Contains(r.Body, "HTTP/1.1") {
					t.Logf("the app got the rest as a body (harmless, re-framed): %q", r.Body)
				}
			}
		})
	}
}

// TestBrowserAttackAppNamesAreText opens a conversation of account 2,
// where apps named with markup have tabs: the names show as text, and no
// element, title or script comes of them.
func TestBrowserAttackAppNamesAreText(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/2/conversations/123")
	if err := waitFor(ctx, `!!document.getElementById('da-tab-xss') && !!document.getElementById('da-tab-quotes')`, 15*time.Second); err != nil {
		t.Fatalf("no tabs for the hostile names: %v", err)
	}
	for id, name := range map[string]string{"xss": xssAppName, "quotes": quotesAppName} {
		got := eval[map[string]string](t, ctx, `(() => { const e = document.getElementById('da-tab-`+id+`');
			const f = document.querySelector('#dashboard-apps iframe[data-app-id="`+id+`"]');
			const p = document.getElementById('da-panel-`+id+`');
			return {tab: e.textContent, children: String(e.children.length), frame: f ? f.title : '', title: p.querySelector('.da-title').textContent}; })()`)
		if got["tab"] != name || got["children"] != "0" || got["frame"] != name || got["title"] != name {
			t.Errorf("app %s shown as %v, want the text %q", id, got, name)
		}
	}
	eval[any](t, ctx, `(document.getElementById('da-tab-xss').click(), document.getElementById('da-tab-quotes').click(), 1)`)
	time.Sleep(300 * time.Millisecond)
	state := eval[map[string]any](t, ctx, `({
		flag: typeof window.__xss,
		title: document.title,
		imgs: document.querySelectorAll('img').length,
		bolds: document.querySelectorAll('b').length,
		scripts: [...document.scripts].map(s => s.id || s.getAttribute('src') || 'inline:' + s.textContent.slice(0, 40)),
	})`)
	if state["flag"] != "undefined" || state["title"] != "Ndoto" || state["imgs"] != float64(0) || state["bolds"] != float64(0) {
		t.Errorf("markup in an app name took effect: %v", state)
	}
	for _, s := range state["scripts"].([]any) {
		if s != "dashboard-apps-config" && !strings.HasPrefix(s.(string), "/_dashboard_apps/host.js?v=") {
			t.Errorf("unexpected script element %q", s)
		}
	}
}

// TestBrowserAttackPopupCannotAskForContext: a popup opened by an app's
// frame is on the same origin as the helpdesk and every app, and asks the
// helpdesk page for the context as if it were the frame; the host script
// answers only its own iframes, so the app gets nothing for it.
func TestBrowserAttackPopupCannotAskForContext(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/1/conversations/123")
	if err := waitFor(ctx, frameExpr("seed", `w.received && w.received.length > 0`), 15*time.Second); err != nil {
		t.Fatalf("the seed app got no appContext: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // let the load-time posts settle
	before := eval[float64](t, ctx, frameExpr("seed", `w.received.length`))
	// window.open needs a user gesture: evaluated as one, in the app's realm.
	userGesture := func(p *runtime.EvaluateParams) { p.UserGesture = ptr(true) }
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](frameExpr("seed", `(w.eval("window.__pop = window.open('/dashboard-apps/evil/popup', 'dapopup')"), 1)`), userGesture)); err != nil {
		t.Fatal(err)
	}
	// Polled by hand: chromedp's Poll waits on animation frames, which a
	// page behind a popup may not get.
	until := func(expr string) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
				return true
			}
		}
		return false
	}
	if !until(frameExpr("seed", `!!(w.__pop && w.__pop.document && w.__pop.document.title === 'sent')`)) {
		t.Fatalf("the popup did not post")
	}
	time.Sleep(500 * time.Millisecond)
	if n := eval[float64](t, ctx, frameExpr("seed", `w.received.length`)); n != before {
		t.Errorf("the popup's fetch-info was answered: the app received %v messages, had %v", n, before)
	}
	eval[any](t, ctx, frameExpr("seed", `(w.__pop.close(), 1)`))
	// The same request from the app's own frame is answered: the listener
	// is alive, and the refusal above is the source check.
	eval[any](t, ctx, frameExpr("seed", `(w.eval("parent.postMessage({event: 'fetch-info'}, '*')"), 1)`))
	if !until(frameExpr("seed", `w.received.length > `+fmt.Sprint(before))) {
		t.Errorf("the app's own fetch-info was not answered")
	}
}
