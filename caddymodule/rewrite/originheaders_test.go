package rewrite

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

func TestRewriteOriginResponseHeaders(t *testing.T) {
	up, _ := url.Parse("http://127.0.0.1:9101/")
	m := NewMapper(up, "/")
	doc, _ := url.Parse("http://127.0.0.1:9101/admin/page.php?x=1")
	const helpdesk = "https://support.example.com"
	for _, tc := range []struct {
		name     string
		in, want http.Header
	}{
		{"framing refused by XFO becomes the helpdesk alone",
			http.Header{"X-Frame-Options": {"DENY"}},
			http.Header{"Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
		{"no framing policy at all: the helpdesk alone",
			http.Header{"Content-Type": {"text/html"}},
			http.Header{"Content-Type": {"text/html"}, "Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
		{"every frame-ancestors, report-only too; nothing else changes",
			http.Header{
				"Content-Security-Policy":             {"default-src 'self'; frame-ancestors 'none', script-src 'nonce-abc' 'strict-dynamic'"},
				"Content-Security-Policy-Report-Only": {"frame-ancestors *"},
			},
			http.Header{
				"Content-Security-Policy":             {"default-src 'self'; frame-ancestors " + helpdesk + ", script-src 'nonce-abc' 'strict-dynamic'"},
				"Content-Security-Policy-Report-Only": {"frame-ancestors " + helpdesk},
			}},
		{"a report-only frame-ancestors does not stand in for an enforced one",
			http.Header{"Content-Security-Policy-Report-Only": {"frame-ancestors 'none'"}},
			http.Header{
				"Content-Security-Policy-Report-Only": {"frame-ancestors " + helpdesk},
				"Content-Security-Policy":             {"frame-ancestors " + helpdesk},
			}},
		{"cookies keep name and path, lose Domain",
			http.Header{"Set-Cookie": {
				"csrftoken=abc; Domain=example.com; Path=/; SameSite=Lax",
				"sid=1; domain=.example.com; HttpOnly",
				"plain=2; Path=/admin",
			}, "Content-Security-Policy": {"frame-ancestors 'self'"}},
			http.Header{"Set-Cookie": {
				"csrftoken=abc; Path=/; SameSite=Lax",
				"sid=1; HttpOnly",
				"plain=2; Path=/admin",
			}, "Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
		{"the gateway's session cookie cannot be set by the app, in any case",
			http.Header{"Set-Cookie": {"Dashboard_Apps_Session=forged; Path=/", "ok=1"}, "Content-Security-Policy": {"frame-ancestors 'self'"}},
			http.Header{"Set-Cookie": {"ok=1"}, "Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
		{"a __Host- cookie that breaks its rules is refused as the browser would",
			http.Header{"Set-Cookie": {"__Host-a=1; Secure; Path=/; Domain=example.com", "__Host-b=1; Secure; Path=/"}, "Content-Security-Policy": {"frame-ancestors 'self'"}},
			http.Header{"Set-Cookie": {"__Host-b=1; Secure; Path=/"}, "Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
		{"redirects on the upstream origin stay on the app's origin; others are left",
			http.Header{
				"Location":                {"http://127.0.0.1:9101/login?next=%2F"},
				"Content-Location":        {"/admin/page.php"},
				"Refresh":                 {"5; url=http://127.0.0.1:9101/admin/"},
				"Link":                    {`<http://127.0.0.1:9101/app.css>; rel=preload; as=style, <https://cdn.example.net/x.js>; rel=preload`},
				"Content-Security-Policy": {"frame-ancestors 'self'"},
			},
			http.Header{
				"Location":                {"/login?next=%2F"},
				"Content-Location":        {"/admin/page.php"},
				"Refresh":                 {"5; url=/admin/"},
				"Link":                    {`</app.css>; rel=preload; as=style, <https://cdn.example.net/x.js>; rel=preload`},
				"Content-Security-Policy": {"frame-ancestors " + helpdesk},
			}},
		{"a redirect elsewhere (single sign-on) is the app's business",
			http.Header{"Location": {"https://sso.example.net/auth?r=1"}, "Content-Security-Policy": {"frame-ancestors 'self'"}},
			http.Header{"Location": {"https://sso.example.net/auth?r=1"}, "Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
		{"HSTS removed; Clear-Site-Data keeps what acts on the app's origin alone",
			http.Header{
				"Strict-Transport-Security": {"max-age=31536000; includeSubDomains"},
				"Clear-Site-Data":           {`"cache", "cookies"`, `"storage", "*", "executionContexts"`},
				"Content-Security-Policy":   {"frame-ancestors 'self'"},
			},
			http.Header{
				"Clear-Site-Data":         {`"cache", "storage", "executionContexts"`},
				"Content-Security-Policy": {"frame-ancestors " + helpdesk},
			}},
		{"Clear-Site-Data of cookies alone goes away",
			http.Header{"Clear-Site-Data": {`"cookies"`}, "Content-Security-Policy": {"frame-ancestors 'self'"}},
			http.Header{"Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
		{"headers that act on the app's own origin are the app's",
			http.Header{
				"Service-Worker-Allowed":  {"/"},
				"Origin-Agent-Cluster":    {"?1"},
				"Content-Length":          {"123"},
				"Content-Encoding":        {"gzip"},
				"Content-Security-Policy": {"frame-ancestors 'self'"},
			},
			http.Header{
				"Service-Worker-Allowed":  {"/"},
				"Origin-Agent-Cluster":    {"?1"},
				"Content-Length":          {"123"},
				"Content-Encoding":        {"gzip"},
				"Content-Security-Policy": {"frame-ancestors " + helpdesk},
			}},
		{"non-canonical keys are matched as the browser reads them",
			http.Header{"x-frame-options": {"SAMEORIGIN"}, "strict-transport-security": {"max-age=1"}},
			http.Header{"Content-Security-Policy": {"frame-ancestors " + helpdesk}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.in.Clone()
			RewriteOriginResponseHeaders(h, m, doc, helpdesk, []string{"dashboard_apps_session", "__Host-dashboard_apps_session"})
			if !reflect.DeepEqual(h, tc.want) {
				t.Errorf("\n got %q\nwant %q", h, tc.want)
			}
		})
	}
}

func TestHostOnlySetCookie(t *testing.T) {
	doc, _ := url.Parse("http://app.internal/a/b")
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"a=1", "a=1", true},
		{"a=1; Domain=example.com", "a=1", true},
		{"a=1;Domain=example.com;Path=/x;Domain=.example.com; Secure", "a=1;Path=/x; Secure", true},
		{"a=1; DOMAIN = example.com ; HttpOnly", "a=1; HttpOnly", true},
		{"a=1; Path=/; Max-Age=60", "a=1; Path=/; Max-Age=60", true},
		{"novalue", "", false},
		{"=x", "", false},
		{"__Secure-s=1", "", false},
		{"__Secure-s=1; Secure; Domain=example.com", "__Secure-s=1; Secure", true},
		{"dashboard_apps_session=x", "", false},
	} {
		got, ok := HostOnlySetCookie(tc.in, doc, []string{"dashboard_apps_session"})
		if got != tc.want || ok != tc.ok {
			t.Errorf("HostOnlySetCookie(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// BenchmarkRewriteOriginResponseHeaders is an app origin's static page:
// no header to rewrite, only the framing policy to add.
func BenchmarkRewriteOriginResponseHeaders(b *testing.B) {
	m := NewMapper(&url.URL{Scheme: "http", Host: "app.internal:8080", Path: "/"}, "/")
	doc := &url.URL{Scheme: "http", Host: "app.internal:8080", Path: "/page.html"}
	h := http.Header{
		"Accept-Ranges":  {"bytes"},
		"Content-Length": {"131072"},
		"Content-Type":   {"text/html; charset=utf-8"},
		"Date":           {"Sat, 05 Dec 2026 06:00:00 GMT"},
		"Etag":           {`"1a2b3c4d"`},
		"Last-Modified":  {"Fri, 04 Dec 2026 10:00:00 GMT"},
	}
	b.ReportAllocs()
	for b.Loop() {
		RewriteOriginResponseHeaders(h.Clone(), m, doc, "https://helpdesk.example.com", []string{"__Host-dashboard_apps_session"})
	}
}
