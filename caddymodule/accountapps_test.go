package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const account2Apps = "/_dashboard_apps/accounts/2/apps"

// asAdmin is agent 7, an administrator of account 2, on the helpdesk's
// own page.
var asAdmin = []string{"Cookie", agentCookie, "Origin", gatewayBase, "Content-Type", "application/json"}

// runningApp is the dashboard_apps app of the test Caddy's running config.
func runningApp(t *testing.T) *App {
	t.Helper()
	app, err := caddy.ActiveContext().App("dashboard_apps")
	if err != nil {
		t.Fatal(err)
	}
	return app.(*App)
}

// wipeAccountApps removes every account app from storage and makes the
// running gateway forget them; newAccountGateway does it before and
// after each test, which share the storage.
func wipeAccountApps(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := caddy.DefaultStorage.Delete(ctx, accountAppsDir); err != nil {
		t.Fatal(err)
	}
	caddy.DefaultStorage.Store(ctx, accountAppsVersion, newVersion())
	if err := runningApp(t).accounts.reload(ctx); err != nil {
		t.Fatal(err)
	}
}

func newAccountGateway(t *testing.T) *caddytest.Tester {
	t.Helper()
	tester := newGateway(t)
	wipeAccountApps(t)
	t.Cleanup(func() { wipeAccountApps(t) })
	return tester
}

func decodeJSON[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return v
}

// addApp adds an app to account 2 as its administrator.
func addApp(t *testing.T, tester *caddytest.Tester, body string) map[string]any {
	t.Helper()
	resp, text := send(t, tester, http.MethodPost, account2Apps, strings.NewReader(body), asAdmin...)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", body, resp.StatusCode, text)
	}
	return decodeJSON[map[string]any](t, text)
}

// appIDs lists the ids of an /apps answer.
func appIDs(t *testing.T, tester *caddytest.Tester, query string, header ...string) []string {
	t.Helper()
	resp, body := get(t, tester, "/_dashboard_apps/apps?"+query, header...)
	if resp.StatusCode != 200 {
		t.Fatalf("/apps?%s: %d %s", query, resp.StatusCode, body)
	}
	var ids []string
	for _, a := range decodeJSON[[]appEntry](t, body) {
		ids = append(ids, a.ID)
	}
	return ids
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAccountAppsLifecycle: an administrator of account 2 adds an app; it
// is served and listed to the agents of account 2 at once, like a config
// app (signed-in agents only, in its account only), changed and removed
// without a reload.
func TestAccountAppsLifecycle(t *testing.T) {
	tester := newAccountGateway(t)
	app := addApp(t, tester, fmt.Sprintf(`{"name": "Knowledge base", "url": %q}`, appServer.URL+"/tools/"))
	if app["id"] != "knowledge-base" || app["name"] != "Knowledge base" || app["url"] != appServer.URL+"/tools/" ||
		app["source"] != "account" || app["editable"] != true || app["account"] != float64(2) {
		t.Errorf("created app = %v", app)
	}
	if _, ok := app["accounts"]; ok {
		t.Errorf("the answer shows accounts: %v", app)
	}

	// Served as a config app is: the proxy, the access checks, the lists.
	for _, c := range []struct {
		who    []string
		status int
	}{
		{[]string{"Cookie", agentCookie}, 200},    // administrator of account 2
		{[]string{"Cookie", account2Cookie}, 200}, // agent of account 2
		{[]string{"Cookie", otherAgentCookie}, http.StatusForbidden},
		{[]string{"Cookie", ""}, http.StatusUnauthorized},
	} {
		resp, body := get(t, tester, "/dashboard-apps/knowledge-base/echo", c.who...)
		if resp.StatusCode != c.status || (c.status == 200 && !strings.Contains(body, `"path":"/tools/echo"`)) {
			t.Errorf("%v: %d %.200s, want %d", c.who, resp.StatusCode, body, c.status)
		}
	}
	if ids := appIDs(t, tester, "account=2", "Cookie", account2Cookie); !contains(ids, "knowledge-base") {
		t.Errorf("account 2's agent does not see the app: %v", ids)
	}
	if ids := appIDs(t, tester, "account=1"); contains(ids, "knowledge-base") {
		t.Errorf("the app shows in account 1: %v", ids)
	}

	// Any agent of the account reads the list: the config apps shown in
	// it, read-only and without their upstream, and the account's own.
	resp, body := get(t, tester, account2Apps, "Cookie", account2Cookie)
	if resp.StatusCode != 200 {
		t.Fatalf("GET list: %d %s", resp.StatusCode, body)
	}
	list := decodeJSON[[]map[string]any](t, body)
	byID := map[string]map[string]any{}
	var order []string
	for _, a := range list {
		byID[a["id"].(string)] = a
		order = append(order, a["id"].(string))
	}
	if a := byID["orders"]; a == nil || a["source"] != "config" || a["editable"] != false || a["url"] != nil {
		t.Errorf("config app orders in the list: %v", a)
	}
	if a := byID["admins"]; a == nil || fmt.Sprint(a["roles"]) != "[administrator]" {
		t.Errorf("config app of account 2 with roles: %v", a)
	}
	if byID["account3"] != nil {
		t.Errorf("account 3's config app listed in account 2")
	}
	if a := byID["knowledge-base"]; a == nil || a["editable"] != true || a["url"] != appServer.URL+"/tools/" {
		t.Errorf("account app in the list: %v", a)
	}
	var tabs []string
	for _, id := range appIDs(t, tester, "account=2") {
		if byID[id] != nil {
			tabs = append(tabs, id)
		}
	}
	if got := strings.Join(order, ","); !strings.Contains(got, strings.Join(tabs, ",")) {
		t.Errorf("list order %s is not the tab order %s", got, tabs)
	}

	// One app, and a change: tab order, name, URL.
	if resp, body := get(t, tester, account2Apps+"/knowledge-base", "Cookie", account2Cookie); resp.StatusCode != 200 || !strings.Contains(body, `"name":"Knowledge base"`) {
		t.Errorf("GET one: %d %s", resp.StatusCode, body)
	}
	resp, body = send(t, tester, http.MethodPatch, account2Apps+"/knowledge-base", strings.NewReader(fmt.Sprintf(`{"name": "KB", "position": -9, "url": %q}`, appServer.URL+"/")), asAdmin...)
	if resp.StatusCode != 200 || !strings.Contains(body, `"name":"KB"`) || !strings.Contains(body, `"position":-9`) {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, body)
	}
	if ids := appIDs(t, tester, "account=2"); len(ids) == 0 || ids[0] != "knowledge-base" {
		t.Errorf("position -9 is not first: %v", ids)
	}
	if _, body := get(t, tester, "/dashboard-apps/knowledge-base/echo"); !strings.Contains(body, `"path":"/echo"`) {
		t.Errorf("the new URL is not served: %.200s", body)
	}
	// A merge patch: null resets a field, what is not given stays.
	resp, body = send(t, tester, http.MethodPatch, account2Apps+"/knowledge-base", strings.NewReader(`{"position": null}`), asAdmin...)
	if resp.StatusCode != 200 || !strings.Contains(body, `"position":0`) || !strings.Contains(body, `"name":"KB"`) {
		t.Errorf("PATCH null: %d %s", resp.StatusCode, body)
	}

	resp, body = send(t, tester, http.MethodDelete, account2Apps+"/knowledge-base", nil, asAdmin...)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, tester, "/dashboard-apps/knowledge-base/echo"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed app still served: %d", resp.StatusCode)
	}
	if resp, _ := get(t, tester, account2Apps+"/knowledge-base"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed app still readable: %d", resp.StatusCode)
	}
	if ids := appIDs(t, tester, "account=2"); contains(ids, "knowledge-base") {
		t.Errorf("removed app still listed: %v", ids)
	}
}

// TestAccountAppsWhoMayChange: reading is for the account's agents,
// changing for its administrators, from the helpdesk's own pages.
func TestAccountAppsWhoMayChange(t *testing.T) {
	tester := newAccountGateway(t)
	body := func() io.Reader {
		return strings.NewReader(fmt.Sprintf(`{"name": "Notes", "url": %q}`, appServer.URL+"/"))
	}
	for _, c := range []struct {
		name, method, path string
		header             []string
		status             int
	}{
		{"read, no credentials", "GET", account2Apps, []string{"Cookie", ""}, 401},
		{"add, no credentials", "POST", account2Apps, []string{"Cookie", "", "Origin", gatewayBase}, 401},
		{"add, no credentials, no origin", "POST", account2Apps, []string{"Cookie", ""}, 401},
		{"read, agent of another account", "GET", account2Apps, []string{"Cookie", otherAgentCookie}, 403},
		{"read, the account's agent", "GET", account2Apps, []string{"Cookie", account2Cookie}, 200},
		{"add, the account's agent", "POST", account2Apps, []string{"Cookie", account2Cookie, "Origin", gatewayBase}, 403},
		{"add, administrator elsewhere, agent here", "POST", "/_dashboard_apps/accounts/1/apps", []string{"Cookie", agentCookie, "Origin", gatewayBase}, 403},
		{"add, agent of another account", "POST", account2Apps, []string{"Cookie", otherAgentCookie, "Origin", gatewayBase}, 403},
		{"add, no Origin", "POST", account2Apps, []string{"Cookie", agentCookie}, 403},
		{"add, another origin", "POST", account2Apps, []string{"Cookie", agentCookie, "Origin", "http://evil.example"}, 403},
		{"add, an app's origin", "POST", account2Apps, []string{"Cookie", agentCookie, "Origin", "http://orders.helpdesk.localhost:9080"}, 403},
		{"add, null origin", "POST", account2Apps, []string{"Cookie", agentCookie, "Origin", "null"}, 403},
		{"add, cross-site fetch", "POST", account2Apps, []string{"Cookie", agentCookie, "Sec-Fetch-Site", "cross-site"}, 403},
		{"add, same-site fetch", "POST", account2Apps, []string{"Cookie", agentCookie, "Sec-Fetch-Site", "same-site"}, 403},
		{"add, same-origin fetch without Origin", "POST", account2Apps, []string{"Cookie", agentCookie, "Sec-Fetch-Site", "same-origin"}, 201},
		{"add, from the helpdesk's page", "POST", account2Apps, asAdmin, 201},
		{"remove, no Origin", "DELETE", account2Apps + "/notes", []string{"Cookie", agentCookie}, 403},
		{"change, the account's agent", "PATCH", account2Apps + "/notes", []string{"Cookie", account2Cookie, "Origin", gatewayBase}, 403},
		{"remove, the account's agent", "DELETE", account2Apps + "/notes", []string{"Cookie", account2Cookie, "Origin", gatewayBase}, 403},
		{"method", "PUT", account2Apps + "/notes", asAdmin, 405},
		{"bad account", "GET", "/_dashboard_apps/accounts/two/apps", nil, 400},
		{"bad account, zero", "GET", "/_dashboard_apps/accounts/02/apps", nil, 400},
		{"no such endpoint", "GET", "/_dashboard_apps/accounts/2/things", nil, 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b io.Reader
			if c.method == "POST" || c.method == "PATCH" {
				b = body()
			}
			resp, text := send(t, tester, c.method, c.path, b, c.header...)
			if resp.StatusCode != c.status {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, text, c.status)
			}
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 204 && ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
	// The two adds that were let through made notes and notes-2; nothing
	// else was changed.
	var ids []string
	for _, a := range decodeJSON[[]map[string]any](t, mustGet(t, tester, account2Apps)) {
		if a["source"] == "account" {
			ids = append(ids, a["id"].(string))
		}
	}
	if strings.Join(ids, ",") != "notes,notes-2" {
		t.Errorf("account apps = %v", ids)
	}
}

func mustGet(t *testing.T, tester *caddytest.Tester, path string, header ...string) string {
	t.Helper()
	resp, body := get(t, tester, path, header...)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

// TestAccountAppsRefusals: bad input is 400 naming the field (and value),
// with the registry's own messages; config apps are not changed here
// (409); other accounts' apps are not found (404).
func TestAccountAppsRefusals(t *testing.T) {
	tester := newAccountGateway(t)
	ok := fmt.Sprintf("%q", appServer.URL+"/")
	registry := func(cfg AppConfig) string { return cfg.validate("x").Error() } // the registry's message, for id "x"
	for _, c := range []struct {
		body, field, want string
	}{
		{`{"name": "X", "url": "ftp://x.example/"}`, "url", `url "ftp://x.example/": must be an absolute http or https URL`},
		{`{"name": "X", "url": "http://u:p@x.example/"}`, "url", `userinfo`},
		{`{"name": "X", "url": "http://x.example:99999/"}`, "url", `port must be 1 to 65535`},
		{`{"name": "X", "url": "http://x.example/a/%2e%2e/b"}`, "url", `segments`},
		{`{"name": "X"}`, "url", `url "": is required`},
		{`{"name": "", "url": ` + ok + `}`, "name", `name "": must be 1 to 64 characters`},
		{`{"name": "a\u202eb", "url": ` + ok + `}`, "name", `U+202E`},
		{`{"name": "X", "url": ` + ok + `, "message_format": "xml"}`, "message_format", `message_format "xml"`},
		{`{"name": "X", "url": ` + ok + `, "roles": ["owner"]}`, "roles", `roles`},
		{`{"name": "X", "url": ` + ok + `, "inboxes": [0]}`, "inboxes", `inboxes`},
		{`{"name": "X", "url": ` + ok + `, "identity_secret": "short"}`, "identity_secret", `at least 32 characters`},
		{`{"name": "X", "url": ` + ok + `, "accounts": [1]}`, "accounts", `accounts [1]: cannot be set`},
		{`{"name": "X", "url": ` + ok + `, "id": "mine"}`, "id", `derived from the name`},
		{`{"name": 5, "url": ` + ok + `}`, "name", `name 5: must be a string`},
		{`{"name": "X", "url": ` + ok + `, "colour": "red"}`, "colour", `colour "red": unknown field`},
		{`{"name": "X", "url": ` + ok + `, "timeout": "soon"}`, "timeout", `timeout "soon"`},
		// What only the gateway's operator may set.
		{`{"name": "X", "url": ` + ok + `, "identity_secret": "{env.HOME}{env.HOME}{env.HOME}{env.HOME}{env.HOME}"}`, "identity_secret", `placeholders are for the gateway's operator`},
		{`{"name": "X", "url": "https://x.example/", "tls": {"ca_file": "/etc/shadow"}}`, "tls", `ca_file names a file on the gateway`},
		// Addresses an account app may not reach (the test config allows
		// 127.0.0.1 only).
		{`{"name": "X", "url": "http://127.0.0.2:2019/"}`, "url", `127.0.0.2 is not a public address`},
		{`{"name": "X", "url": "http://[::1]:2019/"}`, "url", `::1 is not a public address`},
		{`{"name": "X", "url": "http://169.254.169.254/latest/"}`, "url", `169.254.169.254 is not a public address`},
		{`{"name": "X", "url": "http://10.1.2.3/"}`, "url", `10.1.2.3 is not a public address`},
		{`{"name": "X", "url": "http://[::ffff:10.1.2.3]/"}`, "url", `not a public address`},
	} {
		resp, body := send(t, tester, http.MethodPost, account2Apps, strings.NewReader(c.body), asAdmin...)
		e := decodeJSON[map[string]string](t, body)
		if resp.StatusCode != http.StatusBadRequest || e["field"] != c.field || !strings.Contains(e["error"], c.want) {
			t.Errorf("POST %s: %d %s; want 400 naming %s: %s", c.body, resp.StatusCode, body, c.field, c.want)
		}
	}
	// The registry's validator, word for word.
	resp, body := send(t, tester, http.MethodPost, account2Apps, strings.NewReader(`{"name": "X", "url": "ftp://x.example/"}`), asAdmin...)
	if want := registry(AppConfig{Name: "X", URL: "ftp://x.example/"}); resp.StatusCode != 400 || decodeJSON[map[string]string](t, body)["error"] != want {
		t.Errorf("not the registry's message %q: %s", want, body)
	}
	for _, c := range []struct{ body, status string }{
		{`not json`, "400"},
		{`[1]`, "400"},
		{`{"name": "X", "url": "` + strings.Repeat("x", maxAccountAppBody) + `"}`, "413"},
	} {
		resp, body := send(t, tester, http.MethodPost, account2Apps, strings.NewReader(c.body), asAdmin...)
		if fmt.Sprint(resp.StatusCode) != c.status {
			t.Errorf("POST %.40s: %d %.200s, want %s", c.body, resp.StatusCode, body, c.status)
		}
	}

	// Config apps: read-only here, whatever the account.
	for _, c := range []struct{ method, path, body string }{
		{"PATCH", account2Apps + "/orders", `{"name": "Mine"}`},
		{"DELETE", account2Apps + "/orders", ""},
		{"PATCH", account2Apps + "/admins", `{"name": "Mine"}`},
		{"DELETE", account2Apps + "/account3", ""},
	} {
		resp, body := send(t, tester, c.method, c.path, strings.NewReader(c.body), asAdmin...)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "gateway's config") {
			t.Errorf("%s %s: %d %s, want 409", c.method, c.path, resp.StatusCode, body)
		}
	}
	if _, body := get(t, tester, "/dashboard-apps/orders/echo"); !strings.Contains(body, `"path":"/echo"`) {
		t.Errorf("config app orders changed: %.200s", body)
	}

	// An account app's id is its own: changing it is a conflict; a bad
	// change leaves the app as it was.
	addApp(t, tester, `{"name": "Notes", "url": `+ok+`}`)
	resp, body = send(t, tester, http.MethodPatch, account2Apps+"/notes", strings.NewReader(`{"id": "other"}`), asAdmin...)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "cannot be changed") {
		t.Errorf("PATCH id: %d %s", resp.StatusCode, body)
	}
	resp, body = send(t, tester, http.MethodPatch, account2Apps+"/notes", strings.NewReader(`{"id": "notes", "url": "gopher://x/"}`), asAdmin...)
	if e := decodeJSON[map[string]string](t, body); resp.StatusCode != 400 || e["field"] != "url" || !strings.Contains(e["error"], `app "notes": url "gopher://x/"`) {
		t.Errorf("PATCH bad url: %d %s", resp.StatusCode, body)
	}
	if a := decodeJSON[map[string]any](t, mustGet(t, tester, account2Apps+"/notes")); a["url"] != appServer.URL+"/" {
		t.Errorf("a refused change changed the app: %v", a)
	}

	// Another account's app is not found through account 2.
	other := newAccountStore(caddy.DefaultStorage, &netPolicy{}, zap.NewNop(), nil)
	if err := other.update(context.Background(), 3, func(f *accountFile, _ func(string) bool) error {
		f.Apps["elsewhere"] = &AppConfig{Name: "Elsewhere", URL: appServer.URL + "/"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runningApp(t).accounts.reload(context.Background())
	for _, method := range []string{"GET", "PATCH", "DELETE"} {
		resp, body := send(t, tester, method, account2Apps+"/elsewhere", strings.NewReader(`{"name": "Mine"}`), asAdmin...)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s account 3's app through account 2: %d %s", method, resp.StatusCode, body)
		}
	}
	if _, body := get(t, tester, "/dashboard-apps/elsewhere/echo", "Cookie", otherAgentCookie); !strings.Contains(body, `"path":"/echo"`) {
		t.Errorf("account 3's app is not served to its agent: %.200s", body)
	}

	// At most maxAccountApps apps per account.
	if err := other.update(context.Background(), 2, func(f *accountFile, _ func(string) bool) error {
		for i := len(f.Apps); i < maxAccountApps; i++ {
			f.Apps[fmt.Sprintf("filler-%d", i)] = &AppConfig{Name: "Filler", URL: appServer.URL + "/"}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runningApp(t).accounts.reload(context.Background())
	resp, body = send(t, tester, http.MethodPost, account2Apps, strings.NewReader(`{"name": "One more", "url": `+ok+`}`), asAdmin...)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "the most it may have") {
		t.Errorf("app %d: %d %s", maxAccountApps+1, resp.StatusCode, body)
	}
}

// TestAccountAppIDs: ids derived from names, unique among config and
// account apps.
func TestAccountAppIDs(t *testing.T) {
	none := func(string) bool { return false }
	for name, want := range map[string]string{
		"Knowledge base":         "knowledge-base",
		"  CRM / Sales!! ":       "crm-sales",
		"Ünïcödé Tööls":          "unicode-tools",
		"Straße & Café":          "strasse-cafe",
		"Søren's Æble-Øl":        "sorens-aeble-ol",
		"ﬁnance Ⅻ":               "finance-xii",
		"Ｆｕｌｌｗｉｄｔｈ 123":          "fullwidth-123",
		"🚀 Launch 🚀":             "launch",
		"日本語":                    "app",
		"---":                    "app",
		"Orders v2.1":            "orders-v2-1",
		strings.Repeat("ab", 40): strings.Repeat("ab", 31) + "a",
	} {
		if got := appIDFor(name, none); got != want || !appIDPattern.MatchString(got) {
			t.Errorf("appIDFor(%q) = %q, want %q", name, got, want)
		}
	}
	taken := map[string]bool{"orders": true, "orders-2": true, strings.Repeat("a", 63): true}
	if got := appIDFor("Orders", func(id string) bool { return taken[id] }); got != "orders-3" {
		t.Errorf("taken orders, orders-2: %q", got)
	}
	if got := appIDFor(strings.Repeat("a", 70), func(id string) bool { return taken[id] }); got != strings.Repeat("a", 61)+"-2" {
		t.Errorf("long and taken: %q", got)
	}

	tester := newAccountGateway(t)
	for _, c := range []struct{ name, want string }{
		{"Orders", "orders-2"}, // a config app's id
		{"Knowledge base", "knowledge-base"},
		{"Knowledge base", "knowledge-base-2"},
		{"Knowledge  BASE!", "knowledge-base-3"},
		{"Ünïcödé", "unicode"},
		{"日本語", "app"},
		{"🙂", "app-2"},
		{"Seed", "seed-2"},
	} {
		app := addApp(t, tester, fmt.Sprintf(`{"name": %q, "url": %q}`, c.name, appServer.URL+"/"))
		if app["id"] != c.want || app["name"] != c.name {
			t.Errorf("%q: id %v name %v, want %s", c.name, app["id"], app["name"], c.want)
		}
	}
	if resp, _ := get(t, tester, "/dashboard-apps/orders-2/echo"); resp.StatusCode != 200 {
		t.Errorf("orders-2: %d", resp.StatusCode)
	}
}

// TestAccountStoreAcrossAccountsAndInstances: several instances share a
// storage: ids stay unique across accounts and instances (changes are
// made under the storage's lock), an id an account retired is not given
// to another account, and every instance sees every change within 5 s.
func TestAccountStoreAcrossAccountsAndInstances(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	newStore := func() *accountStore {
		s := newAccountStore(st, &netPolicy{}, zap.NewNop(), func(id string) bool { return id == "orders" })
		if err := s.reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := newStore(), newStore()
	add := func(s *accountStore, account int64, name string) string {
		var id string
		err := s.update(context.Background(), account, func(f *accountFile, taken func(string) bool) error {
			id = appIDFor(name, taken)
			cfg := &AppConfig{Name: name, URL: "https://" + id + ".example/"}
			if err := validateAccountApp(id, account, cfg); err != nil {
				return err
			}
			f.Apps[id] = cfg
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Four at once on two instances, in two accounts, one name.
	var wg sync.WaitGroup
	ids := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := []*accountStore{a, b}[i%2]
			ids <- add(s, int64(1+i%2), "Wiki")
		}(i)
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("id %s given twice", id)
		}
		seen[id] = true
	}
	if !seen["wiki"] || !seen["wiki-4"] || len(seen) != 4 {
		t.Errorf("ids: %v", seen)
	}

	// b sees a's changes within 5 s by polling alone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.poll(ctx)
	id := add(a, 1, "Fresh")
	start := time.Now()
	for b.snapshot().byID[id] == nil {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("instance b did not see %s within 5 s", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("another instance saw the new app after %v", time.Since(start).Round(time.Millisecond))
	if err := a.update(context.Background(), 1, func(f *accountFile, _ func(string) bool) error {
		delete(f.Apps, id)
		f.Retired = append(f.Retired, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); b.snapshot().byID[id] != nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("instance b still serves %s 5 s after its removal", id)
		}
	}
	// The retired id goes to its own account again, never to another.
	if got := add(b, 2, "Fresh"); got != "fresh-2" {
		t.Errorf("another account got %s", got)
	}
	if got := add(b, 1, "Fresh"); got != "fresh" {
		t.Errorf("the account that retired it got %s", got)
	}

	// A restart: a new instance reads everything from storage.
	c := newStore()
	if len(c.snapshot().byID) != len(b.snapshot().byID) || len(c.snapshot().byID) != 6 {
		t.Errorf("after a restart: %d apps, the running instance has %d", len(c.snapshot().byID), len(b.snapshot().byID))
	}
	// An unchanged storage publishes nothing new: handlers keep their
	// proxies.
	gen := c.snapshot().gen
	if c.refresh(context.Background()) || c.reload(context.Background()) != nil || c.snapshot().gen != gen {
		t.Errorf("a reload of unchanged storage moved the generation")
	}
	// A change keeps the other apps' configs (and so their proxies).
	before := map[string]*AppConfig{}
	for id, app := range c.snapshot().byID {
		before[id] = app.cfg
	}
	add(a, 2, "Another")
	if !c.refresh(context.Background()) || c.snapshot().byID["another"] == nil {
		t.Fatalf("the new app was not read")
	}
	for id, cfg := range before {
		if c.snapshot().byID[id].cfg != cfg {
			t.Errorf("app %s was parsed again", id)
		}
	}
	if err := c.reloadAccount(context.Background(), 2); err != nil {
		t.Fatal(err)
	}

	// A record edited by hand into something invalid is left out, and
	// logged; the account's other apps stay.
	raw, _ := st.Load(context.Background(), accountAppsKey(1))
	var f map[string]any
	json.Unmarshal(raw, &f)
	f["apps"].(map[string]any)["bad"] = map[string]any{"name": "Bad", "url": "ftp://x/"}
	raw, _ = json.Marshal(f)
	st.Store(context.Background(), accountAppsKey(1), raw)
	core, logs := observer.New(zap.ErrorLevel)
	d := newAccountStore(st, &netPolicy{}, zap.New(core), nil)
	d.reload(context.Background())
	if d.snapshot().byID["bad"] != nil || d.snapshot().byID["wiki"] == nil || logs.FilterMessageSnippet("invalid app").Len() != 1 {
		t.Errorf("invalid record: served %v, logs %v", d.snapshot().byID["bad"] != nil, logs.All())
	}
}

// TestAccountAppsSurviveReloadsAndRestarts: account apps live in storage,
// not in the config: an admin API change (a reload) and a new load of the
// whole config (a restart: a new App and handlers over the same storage)
// keep them; an app another instance adds is served within 5 s, at once
// when asked for by id.
func TestAccountAppsSurviveReloadsAndRestarts(t *testing.T) {
	tester := newAccountGateway(t)
	addApp(t, tester, fmt.Sprintf(`{"name": "Kept", "url": %q, "identity": true}`, pageApps.URL+"/ident/"))
	served := func(what string) {
		t.Helper()
		resp, body := get(t, tester, "/dashboard-apps/kept/")
		if resp.StatusCode != 200 || !strings.Contains(body, "X-Dashboard-Agent-Id") {
			t.Errorf("%s: the account app is not served with its identity headers: %d %.300s", what, resp.StatusCode, body)
		}
		if ids := appIDs(t, tester, "account=2"); !contains(ids, "kept") {
			t.Errorf("%s: not listed: %v", what, ids)
		}
	}
	served("added")

	if code, body := adminDo(t, http.MethodPut, "/config/apps/dashboard_apps/apps/reloaded", `{"name":"R","url":"http://127.0.0.1:1/"}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	served("after a reload")
	if code, body := adminDo(t, http.MethodDelete, "/config/apps/dashboard_apps/apps/reloaded", ""); code != 200 {
		t.Fatalf("DELETE: %d %s", code, body)
	}

	// A restart: the gateway's config unloaded, then loaded anew.
	caddytest.NewTester(t).InitServer(`{"admin": {"listen": "localhost:2999"}}`, "json")
	tester = newGateway(t)
	settleReload()
	served("after a restart")

	// Another instance adds an app to the storage: it is served here
	// within 5 s, and at once when a request names it.
	other := newAccountStore(caddy.DefaultStorage, &netPolicy{}, zap.NewNop(), nil)
	other.reload(context.Background())
	addOther := func(id string) {
		if err := other.update(context.Background(), 2, func(f *accountFile, _ func(string) bool) error {
			f.Apps[id] = &AppConfig{Name: "From elsewhere", URL: appServer.URL + "/"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	addOther("polled")
	start := time.Now()
	for !contains(appIDs(t, tester, "account=2"), "polled") {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("an app another instance added is not listed within 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("listed %v after another instance added it", time.Since(start).Round(time.Millisecond))
	time.Sleep(missRefreshEvery)
	addOther("asked")
	if resp, body := get(t, tester, "/dashboard-apps/asked/echo"); resp.StatusCode != 200 {
		t.Errorf("an app another instance just added, asked for by id: %d %.200s", resp.StatusCode, body)
	}
}

// TestAccountAppsChangesAreLogged: every change is logged at INFO with
// the agent, the account, the app and what changed; never a secret.
func TestAccountAppsChangesAreLogged(t *testing.T) {
	newAccountGateway(t)
	h := testSiteHandler(t)
	core, logs := observer.New(zap.InfoLevel)
	h.logger = zap.New(core)
	do := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://localhost:9080"+path, strings.NewReader(body))
		for i := 0; i+1 < len(asAdmin); i += 2 {
			r.Header.Set(asAdmin[i], asAdmin[i+1])
		}
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, noNext); err != nil {
			t.Fatal(err)
		}
		return w
	}
	secret := strings.Repeat("s3cr3t-", 6)
	if w := do("POST", account2Apps, fmt.Sprintf(`{"name": "Logged", "url": %q, "identity_secret": %q}`, appServer.URL+"/", secret)); w.Code != 201 {
		t.Fatalf("POST: %d %s", w.Code, w.Body)
	} else if strings.Contains(w.Body.String(), secret) || !strings.Contains(w.Body.String(), `"identity_secret_set":true`) {
		t.Errorf("the answer shows the secret: %s", w.Body)
	}
	if w := do("PATCH", account2Apps+"/logged", `{"name": "Logged 2", "identity_secret": "`+strings.Repeat("x", 40)+`"}`); w.Code != 200 {
		t.Fatalf("PATCH: %d %s", w.Code, w.Body)
	}
	if w := do("DELETE", account2Apps+"/logged", ""); w.Code != 204 {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	want := []struct{ msg, changes string }{
		{"account app added", `"name":"Logged"`},
		{"account app changed", `"name":{"from":"Logged","to":"Logged 2"}`},
		{"account app removed", `"url":"` + appServer.URL + `/"`},
	}
	entries := logs.FilterMessageSnippet("account app").All()
	if len(entries) != len(want) {
		t.Fatalf("log entries: %v", entries)
	}
	for i, e := range entries {
		f := e.ContextMap()
		changes, _ := json.Marshal(f["changes"])
		if e.Level != zap.InfoLevel || e.Message != want[i].msg || f["agent"] != int64(7) || f["account"] != int64(2) || f["app"] != "logged" ||
			!strings.Contains(string(changes), want[i].changes) {
			t.Errorf("log %d: %s %s %v, want %s with %s", i, e.Level, e.Message, f, want[i].msg, want[i].changes)
		}
		if strings.Contains(string(changes), secret) || strings.Contains(string(changes), "xxxxxxxx") {
			t.Errorf("a secret in the log: %s", changes)
		}
		if i == 1 && !strings.Contains(string(changes), `"identity_secret":{"from":"(hidden)","to":"(hidden)"}`) {
			t.Errorf("the secret's change is not logged as one: %s", changes)
		}
	}
}

// testSiteHandler provisions a dashboard_apps site handler in the running
// config, over its registry and storage, for tests that look inside.
func testSiteHandler(t *testing.T) *Handler {
	t.Helper()
	mod, err := caddy.ActiveContext().LoadModuleByID("http.handlers.dashboard_apps", json.RawMessage(`{"helpdesk_api": "`+helpdesk.URL+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	h := mod.(*Handler)
	t.Cleanup(func() { h.Cleanup() })
	return h
}

// TestAccountAppProxiesAreReleased: an account app's reverse proxy is set
// up when the app comes and released (its context ended, its upstreams
// and connections closed) when it is replaced, removed, or the handler
// cleaned up; apps that did not change keep theirs.
func TestAccountAppProxiesAreReleased(t *testing.T) {
	tester := newAccountGateway(t)
	h := testSiteHandler(t)
	addApp(t, tester, `{"name": "One", "url": "`+appServer.URL+`/"}`)
	addApp(t, tester, `{"name": "Two", "url": "`+appServer.URL+`/"}`)
	proxyOf := func(id string) *accountProxy {
		p, ok := h.lookupApp(id)
		if !ok {
			t.Fatalf("%s not found", id)
		}
		for _, ap := range h.accounts.built {
			if ap.p == p {
				return ap
			}
		}
		t.Fatalf("%s has no account proxy", id)
		return nil
	}
	closed := func(ap *accountProxy) bool {
		select {
		case <-ap.done:
			return true
		default:
			return false
		}
	}
	one, two := proxyOf("one"), proxyOf("two")
	send(t, tester, http.MethodPatch, account2Apps+"/one", strings.NewReader(`{"name": "One!"}`), asAdmin...)
	if newOne := proxyOf("one"); newOne == one || !closed(one) || closed(newOne) || newOne.p.app.Name != "One!" {
		t.Errorf("replaced app: old released %v, new one %v", closed(one), newOne != one)
	}
	if proxyOf("two") != two || closed(two) {
		t.Errorf("an unchanged app's proxy was replaced")
	}
	one = proxyOf("one")
	send(t, tester, http.MethodDelete, account2Apps+"/two", nil, asAdmin...)
	if _, ok := h.lookupApp("two"); ok || !closed(two) {
		t.Errorf("removed app: still found %v, released %v", ok, closed(two))
	}
	h.Cleanup()
	if !closed(one) {
		t.Errorf("the handler's cleanup left a proxy")
	}
	// After its cleanup a handler builds nothing more.
	addApp(t, tester, `{"name": "Three", "url": "`+appServer.URL+`/"}`)
	if _, ok := h.lookupApp("three"); ok || len(h.accounts.built) != 0 {
		t.Errorf("a cleaned-up handler built a proxy")
	}
}

// TestAccountAppsOriginMode: an account app in origin mode, on its own
// origin, with a session opened by the helpdesk page; the TLS permission
// allows its host while it exists.
func TestAccountAppsOriginMode(t *testing.T) {
	newAccountGateway(t)
	resp, body := originDo(t, "POST", originHelpdesk+account2Apps, strings.NewReader(`{"name": "Probe two", "url": "`+probeServer.URL+`/"}`),
		"Cookie", agentCookie, "Origin", originHelpdesk, "Content-Type", "application/json")
	if resp.StatusCode != 201 {
		t.Fatalf("POST on the origin-mode site: %d %s", resp.StatusCode, body)
	}
	origin := "http://probe-two.helpdesk.localhost:9080"
	resp, body = originDo(t, "GET", originHelpdesk+"/_dashboard_apps/apps?account=2", nil, "Cookie", agentCookie)
	if !strings.Contains(body, `"url":"`+origin+`/"`) {
		t.Errorf("/apps does not give the app's origin: %s", body)
	}
	if resp, _ := originDo(t, "GET", origin+"/echo", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a session: %d", resp.StatusCode)
	}
	session := enter(t, openTicket(t, "probe-two", "/echo").URL)
	if resp, body := originDo(t, "GET", origin+"/echo", nil, "Cookie", session.Name+"="+session.Value); resp.StatusCode != 200 || !strings.Contains(body, `"path":"/echo"`) {
		t.Errorf("with a session: %d %.200s", resp.StatusCode, body)
	}
	perm := &TLSPermission{registry: runningApp(t)}
	if err := perm.CertificateAllowed(context.Background(), "probe-two.helpdesk.localhost"); err != nil {
		t.Errorf("TLS permission: %v", err)
	}
	resp, _ = originDo(t, "DELETE", originHelpdesk+account2Apps+"/probe-two", nil, "Cookie", agentCookie, "Origin", originHelpdesk)
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if err := perm.CertificateAllowed(context.Background(), "probe-two.helpdesk.localhost"); err == nil {
		t.Errorf("TLS permission for a removed app")
	}
	if resp, _ := originDo(t, "GET", origin+"/echo", nil, "Cookie", session.Name+"="+session.Value); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a removed app's origin: %d", resp.StatusCode)
	}
	// An app another instance has just added gets its certificate here
	// before this instance's next poll.
	other := newAccountStore(caddy.DefaultStorage, &netPolicy{}, zap.NewNop(), nil)
	if err := other.update(context.Background(), 2, func(f *accountFile, _ func(string) bool) error {
		f.Apps["elsewhere"] = &AppConfig{Name: "Elsewhere", URL: probeServer.URL + "/"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(missRefreshEvery)
	if err := perm.CertificateAllowed(context.Background(), "elsewhere.helpdesk.localhost"); err != nil {
		t.Errorf("TLS permission for an app just added on another instance: %v", err)
	}
}

// TestAccountAppsReachOnlyAllowedAddresses: an account app whose address
// is not one the operator allows is never connected to, even when its
// record got past the API (a name that resolves elsewhere later, storage
// written by hand).
func TestAccountAppsReachOnlyAllowedAddresses(t *testing.T) {
	tester := newAccountGateway(t)
	var reached atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })}
	go srv.Serve(ln)
	defer srv.Close()
	raw, _ := json.Marshal(accountFile{Apps: map[string]*AppConfig{"inside": {Name: "Inside", URL: "http://" + ln.Addr().String() + "/", Accounts: []int{2}}}})
	caddy.DefaultStorage.Store(context.Background(), accountAppsKey(2), raw)
	runningApp(t).accounts.reload(context.Background())
	resp, body := get(t, tester, "/dashboard-apps/inside/")
	if resp.StatusCode != http.StatusBadGateway || reached.Load() != 0 {
		t.Errorf("an app on 127.0.0.2: %d %.200s; reached %d times", resp.StatusCode, body, reached.Load())
	}

	p := &netPolicy{}
	for addr, want := range map[string]bool{
		"93.184.215.14": true, "2606:4700::1111": true, "8.8.8.8": true,
		"127.0.0.1": false, "10.0.0.1": false, "172.16.5.4": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "255.255.255.255": false, "224.0.0.1": false, "198.18.0.1": false,
		"::1": false, "::": false, "fe80::1": false, "fd00:ec2::254": false, "::ffff:127.0.0.1": false,
		"64:ff9b::a00:1": false, "2002:a00:1::": false, "2001:db8::1": false,
	} {
		if got := p.allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: allowed %v, want %v", addr, got, want)
		}
	}
	p, err = newNetPolicy(&AccountAppsConfig{AllowNetworks: []string{"10.0.0.0/8", "192.168.1.7"}})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"10.9.9.9": true, "192.168.1.7": true, "192.168.1.8": false, "127.0.0.1": false} {
		if got := p.allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("allow_networks: %s: allowed %v, want %v", addr, got, want)
		}
	}
	if _, err := newNetPolicy(&AccountAppsConfig{AllowNetworks: []string{"10.0.0.0/33"}}); err == nil || !strings.Contains(err.Error(), `allow_networks "10.0.0.0/33"`) {
		t.Errorf("bad network: %v", err)
	}
	if code, body := adminDo(t, http.MethodPatch, "/config/apps/dashboard_apps/account_apps", `{"allow_networks": ["intranet"]}`); code != 400 || !strings.Contains(body, `allow_networks "intranet"`) {
		t.Errorf("admin API, bad network: %d %s", code, body)
	}
}

// TestSettingsPage: the page is for the account's agents, with the
// controls for its administrators, under a CSP that lets only its own
// script and style run.
func TestSettingsPage(t *testing.T) {
	tester := newAccountGateway(t)
	resp, body := get(t, tester, "/_dashboard_apps/settings?account=2&return=/app/accounts/2/conversations/123")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("settings page: %d %.300s", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	script := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindStringSubmatch(body)
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	if script == nil || style == nil || !strings.Contains(csp, "script-src "+hash(script[1])+";") || !strings.Contains(csp, "style-src "+hash(style[1])+";") {
		t.Errorf("CSP %q does not name the page's script and style by hash", csp)
	}
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %s: %s", want, csp)
		}
	}
	if strings.Contains(csp, "unsafe") || regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
		t.Errorf("unsafe CSP or inline handlers")
	}
	for name, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q", name, got)
		}
	}
	if !strings.Contains(body, `"admin":true`) || !strings.Contains(body, `"api":"/_dashboard_apps/accounts/2/apps"`) ||
		!strings.Contains(body, `href="/app/accounts/2/conversations/123"`) {
		t.Errorf("page config or back link: %s", body)
	}
	if _, body := get(t, tester, "/_dashboard_apps/settings?account=2", "Cookie", account2Cookie); !strings.Contains(body, `"admin":false`) {
		t.Errorf("an agent of the account gets the controls")
	}
	for _, ret := range []string{"//evil.example/", "javascript:alert(1)", "https://evil.example/", "/_dashboard_apps/settings?account=2", "/%5Cevil"} {
		if _, body := get(t, tester, "/_dashboard_apps/settings?account=2&return="+ret); !strings.Contains(body, `href="/app/accounts/2/"`) {
			t.Errorf("return=%s was not replaced by the account's page", ret)
		}
	}
	for _, c := range []struct {
		query  string
		header []string
		status int
	}{
		{"account=2", []string{"Cookie", ""}, 401},
		{"account=2", []string{"Cookie", otherAgentCookie}, 403},
		{"account=x", nil, 400},
	} {
		if resp, _ := get(t, tester, "/_dashboard_apps/settings?"+c.query, c.header...); resp.StatusCode != c.status {
			t.Errorf("%s %v: %d, want %d", c.query, c.header, resp.StatusCode, c.status)
		}
	}

	// The host script learns of the page from /apps, for administrators.
	for _, c := range []struct {
		query, cookie, want string
	}{
		{"account=2", agentCookie, "/_dashboard_apps/settings?account=2"},
		{"account=1", agentCookie, ""},
		{"account=2", account2Cookie, ""},
		{"account=3", otherAgentCookie, ""},
	} {
		resp, body := get(t, tester, "/_dashboard_apps/apps?"+c.query, "Cookie", c.cookie)
		if got := resp.Header.Get(settingsHeader); got != c.want || !strings.HasPrefix(body, "[") {
			t.Errorf("/apps?%s as %s: %s %q, want %q", c.query, c.cookie, settingsHeader, got, c.want)
		}
	}
}

// TestAccountAppsCaddyfileErrors: the account_apps block of the global
// option (its adapted JSON is testdata/caddyfile_adapt/account_apps.json).
func TestAccountAppsCaddyfileErrors(t *testing.T) {
	for src, want := range map[string]string{
		"{\n dashboard_apps {\n account_apps {\n colour red\n }\n }\n}\n:80\n":          `unrecognized account_apps option "colour"`,
		"{\n dashboard_apps {\n account_apps {\n allow_networks\n }\n }\n}\n:80\n":      `wrong argument count`,
		"{\n dashboard_apps {\n account_apps on {\n allow_networks x\n }\n }\n}\n:80\n": `wrong argument count`,
	} {
		_, _, err := caddyfile.Adapter{ServerType: httpServerType()}.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error = %v, want %q", src, err, want)
		}
	}
	// A bad network is refused when the config is validated, naming it.
	app := &App{Apps: map[string]*AppConfig{}, AccountApps: &AccountAppsConfig{AllowNetworks: []string{"10.0.0.0/8", "intranet"}}}
	if err := app.Validate(); err == nil || !strings.Contains(err.Error(), `account_apps: allow_networks "intranet"`) {
		t.Errorf("Validate: %v", err)
	}
}
