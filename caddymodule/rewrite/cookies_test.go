package rewrite

import (
	"net/url"
	"strings"
	"testing"
)

func TestCookieName(t *testing.T) {
	if got := cookieName("orders", "sid"); got != "dapp_orders_sid" {
		t.Errorf("cookieName = %q", got)
	}
	if got := cookieName("crm-2", "__Host-x"); got != "dapp_crm-2___Host-x" {
		t.Errorf("cookieName = %q", got)
	}
}

func TestScopeSetCookie(t *testing.T) {
	m, doc := hdrTestMapper(t)
	const p = "; Path=/dashboard-apps/orders/"
	tests := []struct {
		name, in, want string // want "" means dropped
	}{
		{"no path: default path of the request", "sid=abc", "dapp_orders_sid=abc; Path=/dashboard-apps/orders/users"},
		{"path /", "sid=abc; Path=/", "dapp_orders_sid=abc" + p},
		{"domain and path removed, the rest kept",
			"sid=abc; Domain=app.internal; Path=/app/; HttpOnly; Secure; SameSite=Lax",
			"dapp_orders_sid=abc; HttpOnly; Secure; SameSite=Lax" + p},
		{"path outside the base", "sid=abc; Path=/other", "dapp_orders_sid=abc" + p},
		{"path sharing the base's spelling", "sid=abc; Path=/application", "dapp_orders_sid=abc" + p},
		{"path of another app", "sid=abc; Path=/dashboard-apps/other/", "dapp_orders_sid=abc" + p},
		{"path under the base", "sid=abc; Path=/app/sub", "dapp_orders_sid=abc; Path=/dashboard-apps/orders/sub"},
		{"path the base without slash", "sid=abc; Path=/app", "dapp_orders_sid=abc" + p},
		{"empty path: default path", "sid=abc; Path=", "dapp_orders_sid=abc; Path=/dashboard-apps/orders/users"},
		{"bare path: default path", "sid=abc; Path", "dapp_orders_sid=abc; Path=/dashboard-apps/orders/users"},
		{"relative path after a valid one", "sid=abc; Path=/app/x; Path=rel", "dapp_orders_sid=abc; Path=/dashboard-apps/orders/users"},
		{"valid path after a relative one", "sid=abc; Path=rel; Path=/app/x", "dapp_orders_sid=abc; Path=/dashboard-apps/orders/x"},
		{"over-long path ignored", "sid=abc; Path=/app/x; Path=/" + strings.Repeat("a", 1024), "dapp_orders_sid=abc; Path=/dashboard-apps/orders/x"},
		{"odd case and spacing", "sid=abc;pAtH = /app/x ;  DOMAIN=.app.internal;hTTPonly",
			"dapp_orders_sid=abc;hTTPonly; Path=/dashboard-apps/orders/x"},
		{"expires with commas", "sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/",
			"dapp_orders_sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0" + p},
		{"unknown attributes kept", "a=1; Partitioned; Secure; SameSite=None; Priority=High; X-Foo=\"b",
			"dapp_orders_a=1; Partitioned; Secure; SameSite=None; Priority=High; X-Foo=\"b; Path=/dashboard-apps/orders/users"},
		{"empty attributes kept", "a=1;;; HttpOnly;", "dapp_orders_a=1;;; HttpOnly;; Path=/dashboard-apps/orders/users"},
		{"helpdesk session name", "cw_d_session_info=%7B%22access-token%22%3A%22x%22%7D; Path=/; Domain=helpdesk.example",
			"dapp_orders_cw_d_session_info=%7B%22access-token%22%3A%22x%22%7D" + p},
		{"another app's name", "dapp_other_x=1; Path=/dashboard-apps/other/", "dapp_orders_dapp_other_x=1" + p},
		{"this app's own prefix", "dapp_orders_x=1", "dapp_orders_dapp_orders_x=1; Path=/dashboard-apps/orders/users"},
		{"__Host- kept with Secure", "__Host-id=1; Secure; Path=/", "dapp_orders___Host-id=1; Secure" + p},
		{"__Host- lower case", "__host-id=1; secure; path=/", "dapp_orders___host-id=1; secure" + p},
		{"__Host- without Secure", "__Host-id=1; Path=/", ""},
		{"__Host- with Domain", "__Host-id=1; Secure; Path=/; Domain=app.internal", ""},
		{"__Host- without Path", "__Host-id=1; Secure", ""},
		{"__Host- with another Path", "__Host-id=1; Secure; Path=/app/", ""},
		{"__Host- with empty Domain", "__Host-id=1; Secure; Path=/; Domain=", "dapp_orders___Host-id=1; Secure" + p},
		{"__Secure- kept with Secure", "__Secure-id=1; Secure; Domain=app.internal; Path=/app/", "dapp_orders___Secure-id=1; Secure" + p},
		{"__Secure- without Secure", "__Secure-id=1; Path=/", ""},
		{"__Http- without HttpOnly", "__Http-id=1; Secure", ""},
		{"__Http- with HttpOnly", "__Http-id=1; Secure; HttpOnly", "dapp_orders___Http-id=1; Secure; HttpOnly; Path=/dashboard-apps/orders/users"},
		{"__Host-Http- without HttpOnly", "__Host-Http-id=1; Secure; Path=/", ""},
		{"__Host-Http- complete", "__Host-Http-id=1; Secure; HttpOnly; Path=/", "dapp_orders___Host-Http-id=1; Secure; HttpOnly" + p},
		{"no equals sign", "novalue", ""},
		{"no equals sign, attributes", "novalue; Path=/", ""},
		{"empty name", "=abc", ""},
		{"blank name", " \t=abc; Path=/", ""},
		{"empty", "", ""},
		{"control character in name", "a\x01b=1", ""},
		{"DEL in name", "a\x7f=1", ""},
		{"empty value", "a=", "dapp_orders_a=; Path=/dashboard-apps/orders/users"},
		{"equals in value", "a=b=c", "dapp_orders_a=b=c; Path=/dashboard-apps/orders/users"},
		{"spaces around name trimmed, value kept", " a = b ; HttpOnly", "dapp_orders_a= b ; HttpOnly; Path=/dashboard-apps/orders/users"},
		{"quoted value", `a="x y"; Path=/`, `dapp_orders_a="x y"` + p},
		{"semicolon-free value with comma", "a=1,b=2; Path=/", "dapp_orders_a=1,b=2" + p},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ScopeSetCookie(tt.in, m, doc, "orders")
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("ScopeSetCookie(%q)\n got %q, %v\nwant %q", tt.in, got, ok, tt.want)
			}
		})
	}
}

func TestScopeSetCookieEdges(t *testing.T) {
	m, _ := hdrTestMapper(t)
	rootURL, _ := url.Parse("http://app.internal:8080/")
	root := NewMapper(rootURL, "/dashboard-apps/tools/")
	tests := []struct {
		name   string
		m      *Mapper
		doc    string // "" for a nil doc
		appID  string
		in     string
		want   string
		wantOK bool
	}{
		{"nil doc", m, "", "orders", "a=1", "dapp_orders_a=1; Path=/dashboard-apps/orders/", true},
		{"doc at the base", m, "http://app.internal:8080/app/", "orders", "a=1", "dapp_orders_a=1; Path=/dashboard-apps/orders/", true},
		{"doc deep", m, "http://app.internal:8080/app/a/b/c", "orders", "a=1", "dapp_orders_a=1; Path=/dashboard-apps/orders/a/b", true},
		{"root base", root, "http://app.internal:8080/x/y", "tools", "a=1; Path=/x", "dapp_tools_a=1; Path=/dashboard-apps/tools/x", true},
		{"root base, path /", root, "http://app.internal:8080/", "tools", "a=1; Path=/", "dapp_tools_a=1; Path=/dashboard-apps/tools/", true},
		{"root base, default path", root, "http://app.internal:8080/x/y", "tools", "a=1", "dapp_tools_a=1; Path=/dashboard-apps/tools/x", true},
		{"empty app id", m, "", "", "a=1", "", false},
		{"semicolon in the request path", m, "http://app.internal:8080/app/x;Path=/;y/z", "orders", "a=1",
			"dapp_orders_a=1; Path=/dashboard-apps/orders/", true},
		{"semicolon deeper in the request path", m, "http://app.internal:8080/app/d/x;Domain=h/z", "orders", "a=1",
			"dapp_orders_a=1; Path=/dashboard-apps/orders/d/", true},
		{"control character in Path", m, "", "orders", "a=1; Path=/app/a/bc",
			"dapp_orders_a=1; Path=/dashboard-apps/orders/a/", true},
		{"app id with underscore", m, "", "a_b", "a=1", "", false},
		{"app id upper case", m, "", "Orders", "a=1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc *url.URL
			if tt.doc != "" {
				doc, _ = url.Parse(tt.doc)
			}
			got, ok := ScopeSetCookie(tt.in, tt.m, doc, tt.appID)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("got %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestScopeSetCookieHuge(t *testing.T) {
	m, doc := hdrTestMapper(t)
	value := strings.Repeat("v", 1<<20)
	got, ok := ScopeSetCookie("a="+value+"; Path=/; HttpOnly", m, doc, "orders")
	if want := "dapp_orders_a=" + value + "; HttpOnly; Path=/dashboard-apps/orders/"; !ok || got != want {
		t.Errorf("huge value mangled: ok=%v len=%d", ok, len(got))
	}
	attrs := strings.Repeat("; Path=/app/x; Domain=y", 20000)
	if got, ok := ScopeSetCookie("a=1"+attrs, m, doc, "orders"); !ok || got != "dapp_orders_a=1; Path=/dashboard-apps/orders/x" {
		t.Errorf("many attributes: got %q, %v", got[:min(len(got), 80)], ok)
	}
}

func TestAppCookies(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
	}{
		{"nil", nil, ""},
		{"helpdesk and other apps dropped",
			[]string{"cw_d_session_info=%7B%7D; dapp_orders_sid=1; dapp_other_sid=2; _ga=GA1.2"}, "sid=1"},
		{"multiple headers", []string{"dapp_orders_a=1", "x=y; dapp_orders_b=2"}, "a=1; b=2"},
		{"only others", []string{"cw_d_session_info=x; _chatwoot_session=y"}, ""},
		{"malformed pairs", []string{"dapp_orders_a; =x; dapp_orders_=z; ;; dapp_orders_b=2;"}, "b=2"},
		{"look-alike ids", []string{"dapp_orders-x_a=1; dapp_order_a=2; dapp_orders_a=3; dapp_ordersa=4; dapp_orders=5"}, "a=3"},
		{"another app's name set through this app", []string{"dapp_orders_dapp_other_x=1"}, "dapp_other_x=1"},
		{"helpdesk's name set through this app", []string{"dapp_orders_cw_d_session_info=1"}, "cw_d_session_info=1"},
		{"prefixed name", []string{"dapp_orders___Host-id=1"}, "__Host-id=1"},
		{"white space", []string{"  dapp_orders_a = 1 ;\tdapp_orders_b=2\t"}, "a=1; b=2"},
		{"equals in value", []string{"dapp_orders_a=b=c"}, "a=b=c"},
		{"empty value", []string{"dapp_orders_a="}, "a="},
		{"names are case-sensitive", []string{"DAPP_ORDERS_a=1; dapp_ORDERS_b=2"}, ""},
		{"duplicates kept in order", []string{"dapp_orders_a=1; dapp_orders_a=2"}, "a=1; a=2"},
		{"comma is not a separator", []string{"dapp_orders_a=1, dapp_orders_b=2"}, "a=1, dapp_orders_b=2"},
		{"empty headers", []string{"", ";", " "}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AppCookies(tt.headers, "orders"); got != tt.want {
				t.Errorf("AppCookies(%q) = %q, want %q", tt.headers, got, tt.want)
			}
		})
	}
	for _, id := range []string{"", "a_b", "-a", strings.Repeat("a", 64)} {
		if got := AppCookies([]string{"dapp_" + id + "_x=1"}, id); got != "" {
			t.Errorf("invalid app id %q: got %q", id, got)
		}
	}
}

// TestCookieRoundTrip checks the two directions against each other: what
// the app sets comes back to it under its own name, and to no other app.
func TestCookieRoundTrip(t *testing.T) {
	m, doc := hdrTestMapper(t)
	for _, sc := range []string{"sid=abc; Path=/", "cw_d_session_info=x", "dapp_other_x=1", "__Host-id=1; Secure; Path=/", `q="a b"`} {
		scoped, ok := ScopeSetCookie(sc, m, doc, "orders")
		if !ok {
			t.Fatalf("%q dropped", sc)
		}
		pair, _, _ := strings.Cut(scoped, ";")
		orig, _, _ := strings.Cut(sc, ";")
		if got := AppCookies([]string{"cw_d_session_info=s; " + pair}, "orders"); got != orig {
			t.Errorf("%q came back as %q", sc, got)
		}
		if got := AppCookies([]string{pair}, "other"); got != "" {
			t.Errorf("%q reached another app as %q", sc, got)
		}
		if got := AppCookies([]string{pair}, "orders-x"); got != "" {
			t.Errorf("%q reached app orders-x as %q", sc, got)
		}
	}
}

// cookieFuzzIDs are the app ids the fuzzers pick from: fuzzed ids would
// mostly be invalid and test nothing but the refusal.
var cookieFuzzIDs = []string{"orders", "orders-x", "o", "0-a"}

func FuzzScopeSetCookie(f *testing.F) {
	for _, s := range []string{
		"sid=1; Path=/; Domain=x; HttpOnly", "novalue", "=x", "__Host-a=1; Secure; Path=/",
		"a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "a=1; pAtH=/app/x;path=", "dapp_other_x=1",
	} {
		f.Add(s, uint8(0), "users/list")
	}
	m, _ := hdrTestMapper(f)
	f.Fuzz(func(t *testing.T, v string, idIndex uint8, docRest string) {
		appID := cookieFuzzIDs[int(idIndex)%len(cookieFuzzIDs)]
		doc := fuzzDoc(m, docRest)
		got, ok := ScopeSetCookie(v, m, doc, appID)
		if !ok {
			if got != "" {
				t.Fatalf("dropped with output %q", got)
			}
			return
		}
		pair, attrs, _ := strings.Cut(got, ";")
		inPair, inAttrs, _ := strings.Cut(v, ";")
		name, value, _ := strings.Cut(pair, "=")
		inName, inValue, _ := strings.Cut(inPair, "=")
		if want := cookieName(appID, cookieTrim(inName)); name != want || value != inValue {
			t.Fatalf("pair %q from %q, want name %q value %q", pair, v, want, inValue)
		}
		if cookieTrim(inName) == "" {
			t.Fatalf("empty name kept: %q", v)
		}
		// Exactly one Path, last, under the app; no Domain; every other
		// attribute as sent, in order.
		var kept []string
		paths := 0
		for a := range strings.SplitSeq(attrs, ";") {
			n, val := cookieAttr(a)
			switch {
			case foldEq(n, "domain"):
				t.Fatalf("Domain kept: %q -> %q", v, got)
			case foldEq(n, "path"):
				paths++
				if a != " Path="+val || !strings.HasPrefix(val, m.Proxied()) ||
					strings.ContainsFunc(val, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
					t.Fatalf("bad Path %q in %q", a, got)
				}
			default:
				if paths > 0 {
					t.Fatalf("attribute after Path: %q", got)
				}
				kept = append(kept, a)
			}
		}
		if paths != 1 {
			t.Fatalf("%d Paths in %q", paths, got)
		}
		var want []string
		if strings.Contains(v, ";") {
			for a := range strings.SplitSeq(inAttrs, ";") {
				if n, _ := cookieAttr(a); !foldEq(n, "path") && !foldEq(n, "domain") {
					want = append(want, a)
				}
			}
		}
		if inAttrs == "" {
			want = nil
		}
		if strings.Join(kept, ";") != strings.Join(want, ";") || len(kept) != len(want) {
			t.Fatalf("attributes %q, want %q", kept, want)
		}
		// It comes back to the app, and to no other.
		for _, id := range cookieFuzzIDs {
			back := AppCookies([]string{pair}, id)
			if id != appID {
				if back != "" {
					t.Fatalf("%q set by %s reached %s as %q", v, appID, id, back)
				}
			} else if wantBack := cookieTrim(inName) + "=" + cookieTrim(inValue); back != wantBack {
				t.Fatalf("%q came back as %q, want %q", v, back, wantBack)
			}
		}
	})
}

func FuzzAppCookies(f *testing.F) {
	for _, s := range []string{
		"cw_d_session_info=x; dapp_orders_sid=1; dapp_other_sid=2", "dapp_orders_a; =x; dapp_orders_=z",
		"dapp_orders-x_a=1; dapp_orders_a=3", "  dapp_orders_a = 1 ;", "",
	} {
		f.Add(s, "dapp_orders_b=2", uint8(0))
	}
	f.Fuzz(func(t *testing.T, h1, h2 string, idIndex uint8) {
		appID := cookieFuzzIDs[int(idIndex)%len(cookieFuzzIDs)]
		got := AppCookies([]string{h1, h2}, appID)
		// Every pair out must be a pair in, with the app's prefix removed.
		var in []string
		for _, h := range []string{h1, h2} {
			for p := range strings.SplitSeq(h, ";") {
				n, v, ok := strings.Cut(p, "=")
				if rest, found := strings.CutPrefix(cookieTrim(n), "dapp_"+appID+"_"); ok && found && rest != "" {
					in = append(in, rest+"="+cookieTrim(v))
				}
			}
		}
		if want := strings.Join(in, "; "); got != want {
			t.Fatalf("AppCookies(%q, %q, %s) = %q, want %q", h1, h2, appID, got, want)
		}
	})
}
