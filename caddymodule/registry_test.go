package caddymodule

import (
	"net/http"
	"strings"
	"testing"
	"unicode"
)

func TestAppValidation(t *testing.T) {
	ok := func() *AppConfig { return &AppConfig{Name: "Orders", URL: "http://127.0.0.1:9101/"} }
	for _, tc := range []struct {
		name, id string
		edit     func(*AppConfig)
		want     string // "" means valid
	}{
		{"valid", "orders", func(*AppConfig) {}, ""},
		{"valid https with tls", "crm", func(a *AppConfig) { a.URL = "https://crm.internal/app/"; a.TLS = &AppTLS{CAFile: "/ca.pem"} }, ""},
		{"id upper case", "Orders", func(*AppConfig) {}, `app "Orders": id must match`},
		{"id leading dash", "-x", func(*AppConfig) {}, `app "-x": id must match`},
		{"id too long", strings.Repeat("a", 64), func(*AppConfig) {}, "id must match"},
		{"id with slash", "a/b", func(*AppConfig) {}, "id must match"},
		{"empty name", "a", func(a *AppConfig) { a.Name = "" }, `app "a": name "": must be 1 to 64`},
		{"blank name", "a", func(a *AppConfig) { a.Name = "   " }, `name "   "`},
		{"long name", "a", func(a *AppConfig) { a.Name = strings.Repeat("é", 65) }, "must be 1 to 64"},
		{"64-char name", "a", func(a *AppConfig) { a.Name = strings.Repeat("é", 64) }, ""},
		{"no url", "a", func(a *AppConfig) { a.URL = "" }, `url "": is required`},
		{"relative url", "a", func(a *AppConfig) { a.URL = "/orders" }, `url "/orders": must be an absolute http or https URL`},
		{"ftp url", "a", func(a *AppConfig) { a.URL = "ftp://x/" }, "must be an absolute http or https URL"},
		{"javascript url", "a", func(a *AppConfig) { a.URL = "javascript:alert(1)" }, "must be an absolute http or https URL"},
		{"no host", "a", func(a *AppConfig) { a.URL = "http:///x" }, "must have a host"},
		{"userinfo", "a", func(a *AppConfig) { a.URL = "http://u:p@x/" }, "must not carry userinfo"},
		{"fragment", "a", func(a *AppConfig) { a.URL = "http://x/#f" }, "must not have a fragment"},
		{"bad account", "a", func(a *AppConfig) { a.Accounts = []int{1, -2} }, `accounts []int{1, -2}: account ids are positive integers, not -2`},
		{"bad format", "a", func(a *AppConfig) { a.MessageFormat = "JSON" }, `app "a": message_format "JSON": must be "auto", "object" or "json_string"`},
		{"auto format", "a", func(a *AppConfig) { a.MessageFormat = "auto" }, ""},
		{"object format", "a", func(a *AppConfig) { a.MessageFormat = "object" }, ""},
		{"json_string format", "a", func(a *AppConfig) { a.MessageFormat = "json_string" }, ""},
		{"negative timeout", "a", func(a *AppConfig) { a.Timeout = -1 }, `timeout "-1ns"`},
		{"tls on http", "a", func(a *AppConfig) { a.TLS = &AppTLS{} }, "TLS settings apply only to https apps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := ok()
			tc.edit(a)
			err := a.validate(tc.id)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAppOrder(t *testing.T) {
	apps := map[string]*AppConfig{
		"c": {Name: "Zeta", URL: "http://x/", Position: 1},
		"a": {Name: "Beta", URL: "http://x/", Position: 2},
		"b": {Name: "Alpha", URL: "http://x/", Position: 2},
		"d": {Name: "Alpha", URL: "http://x/", Position: 2},
		"e": {Name: "First", URL: "http://x/", Position: -5},
	}
	ordered, err := validateApps(apps)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range ordered {
		ids = append(ids, a.id)
	}
	if got := strings.Join(ids, ","); got != "e,c,b,d,a" {
		t.Errorf("order = %s, want e,c,b,d,a (position, then name, then id)", got)
	}
}

func TestValidateAppsNull(t *testing.T) {
	if _, err := validateApps(map[string]*AppConfig{"x": nil}); err == nil || !strings.Contains(err.Error(), `app "x": has no configuration`) {
		t.Errorf("null app: %v", err)
	}
}

func TestAccessFieldValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*AppConfig)
		want string
	}{
		{"roles", func(a *AppConfig) { a.Roles = []string{"agent", "administrator"} }, ""},
		{"bad role", func(a *AppConfig) { a.Roles = []string{"admin"} }, `app "a": roles []string{"admin"}: roles are "agent" or "administrator", not "admin"`},
		{"bad inbox", func(a *AppConfig) { a.Inboxes = []int{0} }, `app "a": inboxes []int{0}`},
		{"short secret", func(a *AppConfig) { a.IdentitySecret = "short" }, `identity_secret "(hidden)": must be at least 32 characters`},
		{"good secret", func(a *AppConfig) { a.IdentitySecret = strings.Repeat("s", 32) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &AppConfig{Name: "A", URL: "http://x/"}
			tc.edit(a)
			err := a.validate("a")
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAppURLAndNameRules covers the contract's limits on an app's url
// (port 1..65535, no userinfo, no fragment, no "." or ".." segment in any
// spelling a server decodes) and name (no control, line-separator or
// bidirectional-formatting characters), with the whole error an operator
// sees.
func TestAppURLAndNameRules(t *testing.T) {
	for _, tc := range []struct {
		name, url, label string
		want             string // the whole error, "" when valid
	}{
		{"port too big", "http://h:99999/", "A", `app "x": url "http://h:99999/": port must be 1 to 65535`},
		{"port 65536", "http://h:65536/", "A", `app "x": url "http://h:65536/": port must be 1 to 65535`},
		{"port 0", "http://h:0/", "A", `app "x": url "http://h:0/": port must be 1 to 65535`},
		{"port 00", "http://h:00/", "A", `app "x": url "http://h:00/": port must be 1 to 65535`},
		{"port beyond int", "http://h:99999999999999999999999/", "A", `app "x": url "http://h:99999999999999999999999/": port must be 1 to 65535`},
		{"empty port", "http://h:/", "A", `app "x": url "http://h:/": port must be 1 to 65535`},
		{"IPv6 port too big", "http://[::1]:70000/", "A", `app "x": url "http://[::1]:70000/": port must be 1 to 65535`},
		{"port 1", "http://h:1/", "A", ""},
		{"port 65535", "https://h:65535/app/", "A", ""},
		{"IPv6 with port", "http://[::1]:8080/", "A", ""},
		{"IPv6 without port", "http://[::1]/", "A", ""},
		{"port not a number", "http://h:80a/", "A", `app "x": url "http://h:80a/": is not a URL: parse "http://h:80a/": invalid port ":80a" after host`},
		{"empty userinfo", "http://@h/", "A", `app "x": url "http://@h/": must not carry userinfo`},
		{"empty fragment", "http://h/app/#", "A", `app "x": url "http://h/app/#": must not have a fragment`},

		{"dot-dot segment", "http://h/app/../admin/", "A", `app "x": url "http://h/app/../admin/": path must not have "." or ".." segments, in any encoding`},
		{"trailing dot-dot", "http://h/app/..", "A", `segments`},
		{"dot segment", "http://h/./app/", "A", `segments`},
		{"trailing dot", "http://h/app/.", "A", `segments`},
		{"encoded dot-dot", "http://h/app/%2e%2e/admin/", "A", `app "x": url "http://h/app/%2e%2e/admin/": path must not have "." or ".." segments, in any encoding`},
		{"encoded dot-dot, upper case", "http://h/app/%2E%2E/", "A", `segments`},
		{"half-encoded dot-dot", "http://h/app/.%2e/", "A", `segments`},
		{"half-encoded dot-dot, other half", "http://h/app/%2E./", "A", `segments`},
		{"encoded dot", "http://h/%2e/app/", "A", `segments`},
		{"double-encoded dot-dot", "http://h/app/%252e%252e/", "A", `segments`},
		{"dot-dot between encoded slashes", "http://h/app%2f..%2fadmin/", "A", `segments`},
		{"dot-dot between backslashes", `http://h/app\..\admin/`, "A", `segments`},
		{"dot-dot between encoded backslashes", "http://h/app%5c..%5cadmin/", "A", `segments`},
		{"dot-dot with a path parameter", "http://h/app/..;x/admin/", "A", `segments`},
		{"dots in names", "http://h/.well-known/a.b/.../a..b/", "A", ""},
		{"dot-dot in the query", "http://h/adminer/sqlite.php?file=../db", "A", ""},
		{"no path", "http://h", "A", ""},

		{"NUL in name", "http://h/", "A\x00B", `app "x": name "A\x00B": must not contain control, line-separator or bidirectional-formatting characters (has U+0000)`},
		{"RLO in name", "http://h/", "Invoice\u202efdp.exe", `app "x": name "Invoice\u202efdp.exe": must not contain control, line-separator or bidirectional-formatting characters (has U+202E)`},
		{"LRE in name", "http://h/", "A\u202aB", `(has U+202A)`},
		{"PDF in name", "http://h/", "A\u202cB", `(has U+202C)`},
		{"LRI in name", "http://h/", "A\u2066B", `(has U+2066)`},
		{"PDI in name", "http://h/", "A\u2069B", `(has U+2069)`},
		{"LRM in name", "http://h/", "A\u200eB", `(has U+200E)`},
		{"RLM in name", "http://h/", "A\u200fB", `(has U+200F)`},
		{"Arabic letter mark in name", "http://h/", "A\u061cB", `(has U+061C)`},
		{"newline in name", "http://h/", "A\nB", `(has U+000A)`},
		{"tab in name", "http://h/", "A\tB", `(has U+0009)`},
		{"DEL in name", "http://h/", "A\x7fB", `(has U+007F)`},
		{"C1 control in name", "http://h/", "A\u0085B", `(has U+0085)`},
		{"line separator in name", "http://h/", "A\u2028B", `(has U+2028)`},
		{"paragraph separator in name", "http://h/", "A\u2029B", `(has U+2029)`},
		{"right-to-left name", "http://h/", "הזמנות", ""},
		{"Arabic name", "http://h/", "الطلبات", ""},
		{"emoji sequence with a zero-width joiner", "http://h/", "👩\u200d💻 Support", ""},
		{"accents and spaces", "http://h/", "Café orders (EU)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &AppConfig{Name: tc.label, URL: tc.url}
			err := a.validate("x")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted; want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error = %v\nwant it to contain %s", err, tc.want)
			case err != nil && strings.ContainsFunc(err.Error(), func(r rune) bool {
				return r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Bidi_Control, r)
			}):
				t.Errorf("the error carries a character it refuses, unescaped: %q", err)
			}
		})
	}
}

// TestAdminAPIRefusesBadURLsAndNames sends the admin API the values it
// once accepted: each is refused with a 400 naming the app, the field and
// the value, and no app is created.
func TestAdminAPIRefusesBadURLsAndNames(t *testing.T) {
	tester := newGateway(t)
	const path = "/config/apps/dashboard_apps/apps/spoof"
	for _, bad := range []struct{ body, want string }{
		{`{"name":"S","url":"http://127.0.0.1:99999/"}`, `app "spoof": url "http://127.0.0.1:99999/": port must be 1 to 65535`},
		{`{"name":"S","url":"http://127.0.0.1:9101/app/../admin/"}`, `app "spoof": url "http://127.0.0.1:9101/app/../admin/": path must not have "." or ".." segments`},
		{`{"name":"S","url":"http://127.0.0.1:9101/app/%2e%2e/admin/"}`, `app "spoof": url "http://127.0.0.1:9101/app/%2e%2e/admin/": path must not have "." or ".." segments`},
		{`{"name":"S","url":"http://127.0.0.1:9101/./"}`, `app "spoof": url "http://127.0.0.1:9101/./": path must not have "." or ".." segments`},
		{`{"name":"A\u0000B","url":"http://127.0.0.1:9101/"}`, `app "spoof": name "A\x00B": must not contain control`},
		{`{"name":"Invoice\u202efdp.exe","url":"http://127.0.0.1:9101/"}`, `app "spoof": name "Invoice\u202efdp.exe": must not contain control, line-separator or bidirectional-formatting characters (has U+202E)`},
		{`{"name":"A\u200fB","url":"http://127.0.0.1:9101/"}`, `app "spoof": name "A\u200fB"`},
	} {
		code, body := adminDo(t, http.MethodPut, path, bad.body)
		if code != http.StatusBadRequest || !strings.Contains(body, bad.want) {
			t.Errorf("PUT %s: %d %s\nwant 400 with %s", bad.body, code, body, bad.want)
		}
	}
	if resp, _ := get(t, tester, "/dashboard-apps/spoof/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a refused app is served: %d", resp.StatusCode)
	}
}
