package rewrite

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// The app of these tests lives at http://app.internal:8080/app/ and is
// served as /dashboard-apps/orders/; the response is for /app/users/list.
const (
	hdrTestUpstream = "http://app.internal:8080/app/"
	hdrTestProxied  = "/dashboard-apps/orders/"
	hdrTestDoc      = "http://app.internal:8080/app/users/list"
)

func hdrTestMapper(t testing.TB) (*Mapper, *url.URL) {
	t.Helper()
	up, err := url.Parse(hdrTestUpstream)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := url.Parse(hdrTestDoc)
	if err != nil {
		t.Fatal(err)
	}
	return NewMapper(up, hdrTestProxied), doc
}

func TestRewriteCSP(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"no frame-ancestors", "default-src 'self'; img-src *", "default-src 'self'; img-src *"},
		{"none", "frame-ancestors 'none'", "frame-ancestors 'self'"},
		{"among others, spacing kept",
			"default-src 'self';  frame-ancestors 'none' https://x ;script-src 'nonce-a'",
			"default-src 'self';  frame-ancestors 'self' ;script-src 'nonce-a'"},
		{"upper case name kept", "FRAME-Ancestors https://a", "FRAME-Ancestors 'self'"},
		{"tab separator kept", "frame-ancestors\t\t*", "frame-ancestors\t\t'self'"},
		{"empty value means none", "frame-ancestors", "frame-ancestors 'self'"},
		{"empty value with semicolon", "frame-ancestors;img-src a", "frame-ancestors 'self';img-src a"},
		{"trailing white space kept", "frame-ancestors a  \t", "frame-ancestors 'self'  \t"},
		{"second of two policies",
			"default-src 'self'; img-src a, frame-ancestors 'none'; script-src b",
			"default-src 'self'; img-src a, frame-ancestors 'self'; script-src b"},
		{"first of two policies",
			"frame-ancestors 'none',default-src x",
			"frame-ancestors 'self',default-src x"},
		{"both policies", "frame-ancestors a, frame-ancestors b", "frame-ancestors 'self', frame-ancestors 'self'"},
		{"repeated in one policy", "frame-ancestors a; frame-ancestors b", "frame-ancestors 'self'; frame-ancestors 'self'"},
		{"longer name is another directive", "frame-ancestors-x a; xframe-ancestors b", "frame-ancestors-x a; xframe-ancestors b"},
		{"name only as a value", "script-src frame-ancestors", "script-src frame-ancestors"},
		{"unicode fold is not ASCII fold", "frame-ancestorſ 'none'", "frame-ancestorſ 'none'"},
		{"kelvin sign", "frame-ancestors 'none'; \u212aframe-ancestors x", "frame-ancestors 'self'; \u212aframe-ancestors x"},
		{"separators only", ";;,, ;", ";;,, ;"},
		{"report-uri untouched", "report-uri /csp; frame-ancestors 'none'", "report-uri /csp; frame-ancestors 'self'"},
		{"already self", "frame-ancestors 'self'", "frame-ancestors 'self'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cspRewritten(tt.in); got != tt.want {
				t.Errorf("cspRewritten(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRewriteCSPHugeValue(t *testing.T) {
	big := strings.Repeat("script-src https://a.example 'nonce-x'; ", 50000)
	if got := cspRewritten(big); got != big {
		t.Error("a huge policy without frame-ancestors changed")
	}
	in := big + "frame-ancestors " + strings.Repeat("https://x ", 10000)
	if got, want := cspRewritten(in), big+"frame-ancestors 'self' "; got != want {
		t.Errorf("huge policy: got ...%q", got[len(got)-40:])
	}
}

func TestMapLocation(t *testing.T) {
	m, doc := hdrTestMapper(t)
	tests := []struct{ name, in, want string }{
		{"absolute on app origin", "http://app.internal:8080/app/login?next=/x#f", "/dashboard-apps/orders/login?next=/x#f"},
		{"scheme and host case", "HTTP://APP.Internal:8080/app/", "/dashboard-apps/orders/"},
		{"base without slash", "http://app.internal:8080/app", "/dashboard-apps/orders/"},
		{"base without slash, query", "http://app.internal:8080/app?x=1", "/dashboard-apps/orders/?x=1"},
		{"other scheme", "https://app.internal:8080/app/x", "https://app.internal:8080/app/x"},
		{"other port", "http://app.internal/app/x", "http://app.internal/app/x"},
		{"other origin", "https://sso.example.com/auth?r=http://app.internal:8080/app/", "https://sso.example.com/auth?r=http://app.internal:8080/app/"},
		{"protocol-relative on app", "//app.internal:8080/app/x", "/dashboard-apps/orders/x"},
		{"protocol-relative elsewhere", "//evil.example/app/x", "//evil.example/app/x"},
		{"slash backslash elsewhere", "/\\evil.example/app/x", "/\\evil.example/app/x"},
		{"backslashes elsewhere", "\\\\evil.example/app/x", "\\\\evil.example/app/x"},
		{"backslash authority on app", "http:\\\\app.internal:8080\\app/x", "/dashboard-apps/orders/x"},
		{"userinfo naming the app", "http://app.internal:8080@evil.example/app/", "http://app.internal:8080@evil.example/app/"},
		{"userinfo", "http://app@evil/", "http://app@evil/"},
		{"userinfo before the app", "http://evil@app.internal:8080/app/", "http://evil@app.internal:8080/app/"},
		{"root-relative", "/app/x?y", "/dashboard-apps/orders/x?y"},
		{"root-relative outside base", "/other", "/other"},
		{"already proxied", "/dashboard-apps/orders/x", "/dashboard-apps/orders/x"},
		{"relative", "x/y", "x/y"},
		{"relative climbing back in", "../../app/x", "/dashboard-apps/orders/x"},
		{"relative dots staying inside", "../x", "../x"},
		{"white space kept", "  /app/x\t", "  /dashboard-apps/orders/x\t"},
		{"empty", "", ""},
		{"query only", "?page=2", "?page=2"},
		{"javascript", "javascript:alert(1)", "javascript:alert(1)"},
		{"dots leaving the base", "http://app.internal:8080/app/../../etc", "http://app.internal:8080/app/../../etc"},
		{"dots into another app", "/app/../orders-x/", "/app/../orders-x/"},
		{"dots staying inside", "/app/a/../b?q#f", "/dashboard-apps/orders/b?q#f"},
		{"encoded dots staying inside", "/app/a/%2E%2e/b", "/dashboard-apps/orders/b"},
		{"single backslash root-relative", "\\app\\x", "/dashboard-apps/orders/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MapLocation(tt.in, m, doc); got != tt.want {
				t.Errorf("MapLocation(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMapLink(t *testing.T) {
	m, doc := hdrTestMapper(t)
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"preload", "</app/style.css>; rel=preload; as=style", "</dashboard-apps/orders/style.css>; rel=preload; as=style"},
		{"two links, one elsewhere",
			"<https://cdn.example/x.js>; rel=preload, </app/a.js>; rel=preload; as=script",
			"<https://cdn.example/x.js>; rel=preload, </dashboard-apps/orders/a.js>; rel=preload; as=script"},
		{"no spaces", "</app/a>;rel=x,</app/b>;rel=y", "</dashboard-apps/orders/a>;rel=x,</dashboard-apps/orders/b>;rel=y"},
		{"comma and brackets in a quoted param",
			`</app/a>; title="x, </app/b>", </app/c>`,
			`</dashboard-apps/orders/a>; title="x, </app/b>", </dashboard-apps/orders/c>`},
		{"escaped quote in a quoted param",
			`</app/a>; title="q\", </app/b>", </app/c>`,
			`</dashboard-apps/orders/a>; title="q\", </app/b>", </dashboard-apps/orders/c>`},
		{"unterminated quote", `</app/a>; title="x, </app/b>`, `</dashboard-apps/orders/a>; title="x, </app/b>`},
		{"no closing bracket", "</app/a; rel=x, </app/b", "</app/a; rel=x, </app/b"},
		// As in browsers, the URI runs to the first ">", wherever it is.
		{"missing closing bracket", "</app/a; rel=x, </app/b>", "</dashboard-apps/orders/a; rel=x, </app/b>"},
		{"garbage before a link", "junk </app/a>, </app/b>", "junk </app/a>, </dashboard-apps/orders/b>"},
		{"protocol-relative", "<//app.internal:8080/app/x>; rel=next", "</dashboard-apps/orders/x>; rel=next"},
		{"absolute on app", "<http://app.internal:8080/app/x?p=1>", "</dashboard-apps/orders/x?p=1>"},
		{"userinfo", "<http://app@evil/>; rel=x", "<http://app@evil/>; rel=x"},
		{"relative", "<next.html>; rel=next", "<next.html>; rel=next"},
		{"empty link values", " , ,</app/a>,", " , ,</dashboard-apps/orders/a>,"},
		{"white space inside brackets kept", "< /app/a >", "< /dashboard-apps/orders/a >"},
		{"trailing backslash in quote", `</app/a>; t="\`, `</dashboard-apps/orders/a>; t="\`},
		{"lone bracket", "<", "<"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MapLink(tt.in, m, doc); got != tt.want {
				t.Errorf("MapLink(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestHeaderRefresh pins the MapRefresh semantics the Refresh header relies
// on, whichever file provides it.
func TestHeaderRefresh(t *testing.T) {
	m, doc := hdrTestMapper(t)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"0; url=/app/x", "0; url=/dashboard-apps/orders/x", true},
		{"5;URL='/app/x'", "5;URL='/dashboard-apps/orders/x'", true},
		{`5, url = "/app/x" tail`, `5, url = "/dashboard-apps/orders/x" tail`, true},
		{"3 /app/x", "3 /dashboard-apps/orders/x", true},
		{".5; url=/app/x", ".5; url=/dashboard-apps/orders/x", true},
		{"0; /app/x", "0; /dashboard-apps/orders/x", true},
		{"0;url=http://app.internal:8080/app/x", "0;url=/dashboard-apps/orders/x", true},
		{"  1.5.2 ;  'http://app.internal:8080/app/x'", "  1.5.2 ;  '/dashboard-apps/orders/x'", true},
		{"0; url=https://other.example/", "", false},
		{"3", "", false},
		{"3;", "", false},
		{"abc; url=/app/x", "", false},
		{"0x; url=/app/x", "", false},
		{"0; url /app/x", "", false}, // no "=": the URL is "url /app/x", relative
		{"0; ugly=/x", "", false},
		{"0; url=", "", false},
		{"", "", false},
		{"0; url='", "", false},
	}
	for _, tt := range tests {
		got, ok := MapRefresh(tt.in, m, doc)
		if got != tt.want || ok != tt.ok {
			t.Errorf("MapRefresh(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRewriteResponseHeaders(t *testing.T) {
	m, doc := hdrTestMapper(t)
	tests := []struct {
		name     string
		in, want http.Header
	}{
		{"framing headers", http.Header{
			"X-Frame-Options":                     {"DENY", "SAMEORIGIN"},
			"x-frame-options":                     {"ALLOW-FROM https://x"},
			"Content-Security-Policy":             {"default-src 'self'", "img-src *, frame-ancestors 'none'; script-src 'self'"},
			"Content-Security-Policy-Report-Only": {"frame-ancestors https://a; report-uri /r"},
			"content-security-policy":             {"FRAME-ANCESTORS 'none'"},
		}, http.Header{
			"Content-Security-Policy":             {"default-src 'self'", "img-src *, frame-ancestors 'self'; script-src 'self'"},
			"Content-Security-Policy-Report-Only": {"frame-ancestors 'self'; report-uri /r"},
			"content-security-policy":             {"FRAME-ANCESTORS 'self'"},
		}},
		{"XFO alone becomes frame-ancestors 'self'", http.Header{
			"X-Frame-Options": {"DENY"},
		}, http.Header{
			"Content-Security-Policy": {"frame-ancestors 'self'"},
		}},
		{"XFO with a policy that does not frame", http.Header{
			"X-Frame-Options":                     {"SAMEORIGIN"},
			"Content-Security-Policy":             {"default-src 'self'; script-src frame-ancestors"},
			"Content-Security-Policy-Report-Only": {"frame-ancestors 'none'"},
		}, http.Header{
			"Content-Security-Policy":             {"default-src 'self'; script-src frame-ancestors", "frame-ancestors 'self'"},
			"Content-Security-Policy-Report-Only": {"frame-ancestors 'self'"},
		}},
		{"a policy without frame-ancestors gets one beside it", http.Header{
			"Content-Security-Policy": {"default-src 'self'"},
		}, http.Header{
			"Content-Security-Policy": {"default-src 'self'", "frame-ancestors 'self'"},
		}},
		{"origin-wide headers", http.Header{
			"Strict-Transport-Security": {"max-age=63072000; includeSubDomains; preload"},
			"Clear-Site-Data":           {`"*"`},
			"Service-Worker-Allowed":    {"/"},
			"Origin-Agent-Cluster":      {"?1"},
			"clear-site-data":           {`"cookies"`},
			"Alt-Svc":                   {`h3=":443"`},
			"Nel":                       {`{"report_to":"x","max_age":1}`},
			"Report-To":                 {`{"group":"x"}`},
			"Set-Cookie2":               {"a=1"},
			"Content-Type":              {"text/html"},
			"Permissions-Policy":        {"camera=()"},
		}, http.Header{
			"Content-Type":            {"text/html"},
			"Permissions-Policy":      {"camera=()"},
			"Content-Security-Policy": {"frame-ancestors 'self'"},
		}},
		{"cookies", http.Header{
			"Set-Cookie": {
				"sid=1; Path=/; Domain=app.internal; HttpOnly",
				"novalue",
				"cw_d_session_info=x; Path=/",
				"__Host-a=1; Path=/",
			},
		}, http.Header{
			"Set-Cookie": {
				"dapp_orders_sid=1; HttpOnly; Path=/dashboard-apps/orders/",
				"dapp_orders_cw_d_session_info=x; Path=/dashboard-apps/orders/",
			},
			"Content-Security-Policy": {"frame-ancestors 'self'"},
		}},
		{"only bad cookies", http.Header{"Set-Cookie": {"=x", ""}}, http.Header{"Content-Security-Policy": {"frame-ancestors 'self'"}}},
		{"locations and links", http.Header{
			"Location":         {"http://app.internal:8080/app/done"},
			"Content-Location": {"/app/users/list.json"},
			"Refresh":          {"0; url=/app/next"},
			"Link":             {"</app/a.css>; rel=preload; as=style", "<https://cdn.example/b.js>; rel=preload"},
		}, http.Header{
			"Location":                {"/dashboard-apps/orders/done"},
			"Content-Location":        {"/dashboard-apps/orders/users/list.json"},
			"Refresh":                 {"0; url=/dashboard-apps/orders/next"},
			"Link":                    {"</dashboard-apps/orders/a.css>; rel=preload; as=style", "<https://cdn.example/b.js>; rel=preload"},
			"Content-Security-Policy": {"frame-ancestors 'self'"},
		}},
		{"redirect elsewhere", http.Header{
			"Location": {"https://sso.example/login?return=http%3A%2F%2Fapp.internal%3A8080%2Fapp%2F"},
			"Refresh":  {"5"},
		}, http.Header{
			"Location":                {"https://sso.example/login?return=http%3A%2F%2Fapp.internal%3A8080%2Fapp%2F"},
			"Refresh":                 {"5"},
			"Content-Security-Policy": {"frame-ancestors 'self'"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			RewriteResponseHeaders(h, m, doc, "orders")
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("got  %q\nwant %q", h, tt.want)
			}
		})
	}
}

func TestRewriteResponseHeadersNilAndEmpty(t *testing.T) {
	m, doc := hdrTestMapper(t)
	RewriteResponseHeaders(nil, m, doc, "orders")
	h := http.Header{"Location": {"/app/x"}, "Set-Cookie": {"a=1"}}
	RewriteResponseHeaders(h, m, nil, "orders")
	want := http.Header{"Location": {"/dashboard-apps/orders/x"}, "Set-Cookie": {"dapp_orders_a=1; Path=/dashboard-apps/orders/"}, "Content-Security-Policy": {"frame-ancestors 'self'"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("nil doc: got %q, want %q", h, want)
	}
}

// cspDirectives splits a CSP value as the browser does, independently of
// rewriteCSP's single pass.
func cspDirectives(v string) [][]string {
	var out [][]string
	for _, p := range strings.Split(v, ",") {
		out = append(out, strings.Split(p, ";"))
	}
	return out
}

// cspWantDirective is what one directive must become: frame-ancestors
// (ASCII case-insensitive) gets 'self' after its own name and separator,
// anything else stays as it is.
func cspWantDirective(d string) string {
	lead, core, trail := trimSpace(d)
	name, rest := core, ""
	if i := strings.IndexAny(core, " \t\n\r\f"); i >= 0 {
		name, rest = core[:i], core[i:]
	}
	lower := []byte(name)
	for i, c := range lower {
		if 'A' <= c && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	if string(lower) != "frame-ancestors" {
		return d
	}
	sep := rest[:len(rest)-len(strings.TrimLeft(rest, " \t\n\r\f"))]
	if sep == "" {
		sep = " "
	}
	return lead + name + sep + "'self'" + trail
}

func FuzzRewriteCSP(f *testing.F) {
	for _, s := range []string{
		"", "frame-ancestors 'none'", "default-src 'self', frame-ancestors 'none'; img-src *",
		"FRAME-ANCESTORS\t*;frame-ancestors;", "frame-ancestorſ x", ";,; ,", "script-src frame-ancestors",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := cspRewritten(v)
		if again := cspRewritten(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", v, got, again)
		}
		in, out := cspDirectives(v), cspDirectives(got)
		if len(in) != len(out) {
			t.Fatalf("policy count changed: %q -> %q", v, got)
		}
		for i := range in {
			if len(in[i]) != len(out[i]) {
				t.Fatalf("directive count changed: %q -> %q", v, got)
			}
			for j, d := range in[i] {
				if want := cspWantDirective(d); out[i][j] != want {
					t.Fatalf("directive %q became %q, want %q (in %q)", d, out[i][j], want, v)
				}
			}
		}
	})
}

// fuzzDoc turns fuzz input into an upstream document URL inside the base
// path, as every proxied request is.
func fuzzDoc(m *Mapper, rest string) *url.URL {
	p, err := m.UpstreamPath(strings.TrimLeft(strings.Map(func(r rune) rune {
		if r == '?' || r == '#' || r < 0x21 || r == 0x7f {
			return -1
		}
		return r
	}, rest), "/"))
	if err != nil {
		return nil
	}
	doc, err := url.Parse("http://app.internal:8080" + p)
	if err != nil {
		return nil
	}
	return doc
}

// simpleRef reports whether ref avoids the corners where net/url and
// browsers resolve differently (back slashes, percent escapes, white space,
// controls, non-ASCII), so that net/url can stand in for the browser.
func simpleRef(ref string) bool {
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("/.-_~?#=&:@!$'()*+,;", c) >= 0:
		default:
			return false
		}
	}
	return true
}

const fuzzHelpdesk = "https://helpdesk.example"

// checkMapRefSemantics checks MapRef against the browser's view, with
// net/url standing in for the browser: a mapped reference, resolved against
// the proxied document, lands on the proxied form of what the original
// reference meant upstream; one left alone already does, whenever its
// upstream target is inside the app.
func checkMapRefSemantics(t *testing.T, m *Mapper, doc *url.URL, ref, mapped string, ok bool) {
	// Browsers drop tabs and newlines before anything else.
	read := strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace
	if doc == nil || !simpleRef(read(ref)) {
		return
	}
	r, err := url.Parse(read(ref))
	if err != nil {
		return
	}
	target := doc.ResolveReference(r)
	if target.Scheme != "http" || !strings.EqualFold(target.Host, "app.internal:8080") || target.Opaque != "" || target.User != nil {
		return
	}
	want, inside := m.ProxiedPath(target.EscapedPath())
	if !inside {
		return
	}
	proxiedDocPath, _ := m.ProxiedPath(doc.EscapedPath())
	proxiedDoc, err := url.Parse(fuzzHelpdesk + proxiedDocPath)
	if err != nil {
		t.Fatal(err)
	}
	written := ref
	if ok {
		written = mapped
	}
	w, err := url.Parse(read(written))
	if err != nil {
		t.Fatalf("MapRef(%q) = %q: unparsable: %v", ref, mapped, err)
	}
	got := proxiedDoc.ResolveReference(w)
	if got.Scheme+"://"+got.Host != fuzzHelpdesk || got.EscapedPath() != want ||
		got.RawQuery != target.RawQuery || got.EscapedFragment() != target.EscapedFragment() {
		t.Fatalf("MapRef(%q) on %s = %q, %v: the browser would load %s, not %s (from %s)",
			ref, doc, mapped, ok, got, want, target)
	}
}

// fullyDecoded percent-decodes s until nothing changes, leniently (invalid
// escapes stay), as the most credulous chain of servers would.
func fullyDecoded(s string) string {
	for {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
				i += 2
				continue
			}
			b.WriteByte(s[i])
		}
		if b.String() == s {
			return s
		}
		s = b.String()
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// escapesBase reports whether rest, fully decoded and with every server's
// leniencies (back slashes, ";" parameters, spaces around dots, merged
// slashes), climbs above the directory it is joined to.
func escapesBase(rest string) bool {
	depth := 0
	for _, seg := range strings.FieldsFunc(fullyDecoded(rest), func(r rune) bool { return r == '/' || r == '\\' }) {
		seg, _, _ = strings.Cut(seg, ";")
		switch strings.TrimSpace(seg) {
		case ".", "":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func FuzzMapRef(f *testing.F) {
	for _, s := range [][2]string{
		{"/app/x", "users/list"}, {"http://app.internal:8080/app/x?y#z", ""}, {"//app.internal:8080/app", "a/b/"},
		{"/\\evil.example/", ""}, {"http://app@evil/", ""}, {"../../app/x", "a/b"}, {"../../../x", "a/b"},
		{"  /app/x\t", ""}, {"\\app\\x", ""}, {"/app/../../x", ""}, {"%2e%2e/%2E%2E/app/x", "a/b"},
		{"..%2f..%2fetc", ""}, {"%252e%252e/x", ""}, {"a/..;x/..;y/z", ""}, {"%2525252e%2525252e/x", ""},
		{"/\n/evil.example/x", ""}, {"/ap\tp/x", ""}, {"/app/.\n./x", ""}, {"ht\ttp://app.internal:8080/app/x", ""},
	} {
		f.Add(s[0], s[1])
	}
	m, _ := hdrTestMapper(f)
	f.Fuzz(func(t *testing.T, ref, docRest string) {
		doc := fuzzDoc(m, docRest)
		mapped, ok := m.MapRef(ref, doc)
		if ok {
			lead, _, _ := trimSpace(ref)
			if !strings.HasPrefix(mapped, lead+m.Proxied()) {
				t.Fatalf("MapRef(%q) = %q: not under %q", ref, mapped, m.Proxied())
			}
			if core := mapped[len(lead):]; strings.HasPrefix(core, "//") || strings.HasPrefix(core, "/\\") {
				t.Fatalf("MapRef(%q) = %q: protocol-relative", ref, mapped)
			}
		} else if mapped != "" {
			t.Fatalf("MapRef(%q) = %q, false", ref, mapped)
		}
		checkMapRefSemantics(t, m, doc, ref, mapped, ok)

		p, err := m.UpstreamPath(ref)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, m.Base()) {
			t.Fatalf("UpstreamPath(%q) = %q: not under %q", ref, p, m.Base())
		}
		if escapesBase(ref) {
			t.Fatalf("UpstreamPath(%q) = %q: leaves the base path once decoded", ref, p)
		}
	})
}

// hdrBenchHeaders is a typical HTML response of a Rails or Django app.
func hdrBenchHeaders() http.Header {
	return http.Header{
		"Content-Type":              {"text/html; charset=utf-8"},
		"Cache-Control":             {"max-age=0, private, must-revalidate"},
		"Date":                      {"Tue, 25 Nov 2025 10:00:00 GMT"},
		"Etag":                      {`W/"6f1c3a9e2b8d4f0a7c5e9b1d3f2a4c6e"`},
		"Vary":                      {"Accept, Accept-Encoding"},
		"X-Frame-Options":           {"SAMEORIGIN"},
		"X-Content-Type-Options":    {"nosniff"},
		"Referrer-Policy":           {"strict-origin-when-cross-origin"},
		"Strict-Transport-Security": {"max-age=63072000; includeSubDomains"},
		"X-Request-Id":              {"0b7e0c56-8f3c-4d2b-9a43-5b0c8e1f2a3d"},
		"Content-Security-Policy": {"default-src 'self'; script-src 'self' 'nonce-r4nd0m'; style-src 'self' 'unsafe-inline'; " +
			"img-src 'self' data: https:; connect-src 'self' wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"},
		"Link": {"</app/assets/application-3f2a.css>; rel=preload; as=style, </app/assets/application-9c1d.js>; rel=preload; as=script; nopush"},
		"Set-Cookie": {
			"_orders_session=QmFzZTY0RW5jb2RlZFNlc3Npb25EYXRhLS1hYmNkZWYwMTIzNDU2Nzg5; path=/; HttpOnly; SameSite=Lax",
			"csrf_token=9f86d081884c7d659a2feaa0c55ad015; Path=/app/; Secure; SameSite=Strict; Expires=Wed, 25 Nov 2026 10:00:00 GMT",
		},
	}
}

func BenchmarkRewriteResponseHeaders(b *testing.B) {
	m, doc := hdrTestMapper(b)
	h := hdrBenchHeaders()
	b.ReportAllocs()
	for b.Loop() {
		RewriteResponseHeaders(h.Clone(), m, doc, "orders")
	}
}

// BenchmarkRewriteResponseHeadersRedirect is the login redirect that every
// first visit goes through.
func BenchmarkRewriteResponseHeadersRedirect(b *testing.B) {
	m, doc := hdrTestMapper(b)
	h := http.Header{
		"Content-Type":  {"text/html; charset=utf-8"},
		"Cache-Control": {"no-cache"},
		"Location":      {"http://app.internal:8080/app/login?return_to=%2Fapp%2Fusers%2Flist"},
		"Set-Cookie":    {"_orders_session=abc123; path=/; HttpOnly"},
	}
	b.ReportAllocs()
	for b.Loop() {
		RewriteResponseHeaders(h.Clone(), m, doc, "orders")
	}
}

// BenchmarkHeaderClone is the baseline to subtract from the two above,
// which must copy their input since the rewrite is in place.
func BenchmarkHeaderClone(b *testing.B) {
	h := hdrBenchHeaders()
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Clone()
	}
}

// TestMapRefSemantics runs the browser-equivalence check of FuzzMapRef over
// every short combination of the pieces that matter (dots, slashes, the
// base path's name, the app's origin), from documents at several depths.
func TestMapRefSemantics(t *testing.T) {
	m, _ := hdrTestMapper(t)
	heads := []string{"", "/", "//app.internal:8080/", "http://app.internal:8080/", "HTTP://APP.INTERNAL:8080", "//other.example/"}
	parts := []string{"..", ".", "app", "x", "dashboard-apps", "orders", ""}
	tails := []string{"", "/", "?q=/..", "#/../f"}
	docs := []string{"", "a", "a/", "a/b/c", "app/x"}
	var refs []string
	var build func(prefix string, n int)
	build = func(prefix string, n int) {
		refs = append(refs, prefix)
		if n == 0 {
			return
		}
		for _, p := range parts {
			if prefix == "" || strings.HasSuffix(prefix, "/") {
				build(prefix+p, n-1)
			} else {
				build(prefix+"/"+p, n-1)
			}
		}
	}
	depth := 4
	if testing.Short() {
		depth = 3
	}
	for _, h := range heads {
		build(h, depth)
	}
	for _, d := range docs {
		doc := fuzzDoc(m, d)
		for _, r := range refs {
			for _, tail := range tails {
				ref := r + tail
				mapped, ok := m.MapRef(ref, doc)
				checkMapRefSemantics(t, m, doc, ref, mapped, ok)
			}
		}
	}
}

// linkOutside returns v without the text of each "<...>", the only part
// MapLink may change.
func linkOutside(v string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		b.WriteString(v[:i+1])
		v = v[i+j:]
	}
	b.WriteString(v)
	return b.String()
}

func FuzzMapLink(f *testing.F) {
	for _, s := range []string{
		"</app/a>; rel=preload", `</app/a>; title="x, </app/b>", </app/c>`, "</app/a; rel=x", "<", ",<//app.internal:8080/x>",
		`<http://app@evil/>; t="\`, "junk </app/a>, </app/b>",
	} {
		f.Add(s)
	}
	m, doc := hdrTestMapper(f)
	f.Fuzz(func(t *testing.T, v string) {
		got := MapLink(v, m, doc)
		if linkOutside(got) != linkOutside(v) {
			t.Fatalf("MapLink(%q) = %q: changed bytes outside <...>", v, got)
		}
		if again := MapLink(got, m, doc); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", v, got, again)
		}
	})
}

// cspRewritten is rewriteCSP's new value alone.
func cspRewritten(v string) string {
	r, _ := rewriteCSP(v)
	return r
}

// TestRewriteResponseHeadersOriginWide checks that every header the
// contract names as acting on the whole origin is removed, in any case,
// under several keys and with several values, and that headers which act
// on the one response stay.
func TestRewriteResponseHeadersOriginWide(t *testing.T) {
	m, doc := hdrTestMapper(t)
	for _, name := range []string{
		"Strict-Transport-Security", "Clear-Site-Data", "Service-Worker-Allowed",
		"Set-Login", "Sec-Session-Registration", "Accept-CH", "Critical-CH",
		"Observe-Browsing-Topics", "NEL", "Report-To", "Origin-Agent-Cluster",
	} {
		t.Run(name, func(t *testing.T) {
			h := http.Header{
				http.CanonicalHeaderKey(name): {"a", "b"},
				strings.ToLower(name):         {"c"},
				strings.ToUpper(name):         {"d"},
				name:                          {"e"},
				"Content-Type":                {"text/html"},
				"Reporting-Endpoints":         {`default="/r"`},
				"Permissions-Policy":          {"browsing-topics=()"},
			}
			RewriteResponseHeaders(h, m, doc, "orders")
			for k, v := range h {
				if strings.EqualFold(k, name) {
					t.Errorf("%s: %q kept", k, v)
				}
			}
			for _, kept := range []string{"Content-Type", "Reporting-Endpoints", "Permissions-Policy"} {
				if len(h[kept]) != 1 {
					t.Errorf("%s removed too: %q", kept, h)
				}
			}
		})
	}
}

// TestRewriteResponseHeadersFrameAncestors: every frame-ancestors, in every
// policy of every CSP header, Report-Only too, becomes 'self' and nothing
// else changes; a response whose enforced policies have no frame-ancestors
// gets "Content-Security-Policy: frame-ancestors 'self'", with or without
// X-Frame-Options, and when its only frame-ancestors is in a Report-Only
// policy, which enforces nothing.
func TestRewriteResponseHeadersFrameAncestors(t *testing.T) {
	m, doc := hdrTestMapper(t)
	const added = "frame-ancestors 'self'"
	for _, tc := range []struct {
		name     string
		in, want http.Header
	}{
		{"no policy at all", http.Header{"Content-Type": {"text/html"}},
			http.Header{"Content-Type": {"text/html"}, "Content-Security-Policy": {added}}},
		{"no header at all", http.Header{}, http.Header{"Content-Security-Policy": {added}}},
		{"X-Frame-Options only", http.Header{"X-Frame-Options": {"DENY"}},
			http.Header{"Content-Security-Policy": {added}}},
		{"a policy without frame-ancestors", http.Header{"Content-Security-Policy": {"default-src 'self'; img-src *"}},
			http.Header{"Content-Security-Policy": {"default-src 'self'; img-src *", added}}},
		{"frame-ancestors only as a source", http.Header{"Content-Security-Policy": {"script-src frame-ancestors"}},
			http.Header{"Content-Security-Policy": {"script-src frame-ancestors", added}}},
		{"an empty policy", http.Header{"Content-Security-Policy": {""}},
			http.Header{"Content-Security-Policy": {"", added}}},
		{"Report-Only with frame-ancestors, nothing enforced", http.Header{
			"Content-Security-Policy-Report-Only": {"frame-ancestors 'none'; report-uri /r"},
		}, http.Header{
			"Content-Security-Policy-Report-Only": {"frame-ancestors 'self'; report-uri /r"},
			"Content-Security-Policy":             {added},
		}},
		{"Report-Only in lower case, with X-Frame-Options", http.Header{
			"content-security-policy-report-only": {"default-src 'none', FRAME-ANCESTORS https://a"},
			"X-Frame-Options":                     {"SAMEORIGIN"},
		}, http.Header{
			"content-security-policy-report-only": {"default-src 'none', FRAME-ANCESTORS 'self'"},
			"Content-Security-Policy":             {added},
		}},
		{"Report-Only without frame-ancestors", http.Header{
			"Content-Security-Policy-Report-Only": {"default-src 'self'"},
		}, http.Header{
			"Content-Security-Policy-Report-Only": {"default-src 'self'"},
			"Content-Security-Policy":             {added},
		}},
		{"legacy X-Content-Security-Policy does not count", http.Header{
			"X-Content-Security-Policy": {"frame-ancestors 'none'"},
		}, http.Header{
			"X-Content-Security-Policy": {"frame-ancestors 'self'"},
			"Content-Security-Policy":   {added},
		}},
		{"enforced frame-ancestors in a second policy", http.Header{
			"Content-Security-Policy": {"default-src 'self', img-src a; frame-ancestors https://a https://b; script-src b"},
		}, http.Header{
			"Content-Security-Policy": {"default-src 'self', img-src a; frame-ancestors 'self'; script-src b"},
		}},
		{"enforced frame-ancestors in one of two headers", http.Header{
			"Content-Security-Policy": {"default-src 'self'", "frame-ancestors *"},
		}, http.Header{
			"Content-Security-Policy": {"default-src 'self'", "frame-ancestors 'self'"},
		}},
		{"enforced frame-ancestors under a lower-case key", http.Header{
			"content-security-policy": {"frame-ancestors 'none'"},
			"X-Frame-Options":         {"DENY"},
		}, http.Header{
			"content-security-policy": {"frame-ancestors 'self'"},
		}},
		{"every policy of both kinds", http.Header{
			"Content-Security-Policy":             {"frame-ancestors 'none', frame-ancestors https://a; img-src *", "default-src x"},
			"Content-Security-Policy-Report-Only": {"frame-ancestors https://b, default-src y; frame-ancestors 'none'"},
		}, http.Header{
			"Content-Security-Policy":             {"frame-ancestors 'self', frame-ancestors 'self'; img-src *", "default-src x"},
			"Content-Security-Policy-Report-Only": {"frame-ancestors 'self', default-src y; frame-ancestors 'self'"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.in.Clone()
			RewriteResponseHeaders(h, m, doc, "orders")
			if !reflect.DeepEqual(h, tc.want) {
				t.Errorf("got  %q\nwant %q", h, tc.want)
			}
			// The rules are applied again to a header map Caddy restores
			// after an informational response: nothing more changes.
			RewriteResponseHeaders(h, m, doc, "orders")
			if !reflect.DeepEqual(h, tc.want) {
				t.Errorf("applied twice: %q", h)
			}
		})
	}
}
