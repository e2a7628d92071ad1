package caddymodule

import (
	"strings"
	"testing"
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
		{"bad format", "a", func(a *AppConfig) { a.MessageFormat = "JSON" }, `message_format "JSON"`},
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
