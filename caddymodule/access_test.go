package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestProfileAccess(t *testing.T) {
	one, two := int64(1), int64(2)
	agent := &profile{AccountID: &one, Accounts: []profileAccount{{ID: 1, Role: RoleAgent}, {ID: 2, Role: RoleAdministrator}}}
	legacy := &profile{AccountID: &two, Role: ptr(RoleAdministrator)} // no accounts list
	for _, tc := range []struct {
		name    string
		p       *profile
		app     AppConfig
		account int64
		role    string
		ok      bool
	}{
		{"any app, current account", agent, AppConfig{}, 1, RoleAgent, true},
		{"app in account 2 only", agent, AppConfig{Accounts: []int{2}}, 2, RoleAdministrator, true},
		{"app in an account the agent lacks", agent, AppConfig{Accounts: []int{3}}, 0, "", false},
		{"admins anywhere", agent, AppConfig{Roles: []string{RoleAdministrator}}, 2, RoleAdministrator, true},
		{"admins of account 1", agent, AppConfig{Accounts: []int{1}, Roles: []string{RoleAdministrator}}, 0, "", false},
		{"legacy profile", legacy, AppConfig{Roles: []string{RoleAdministrator}}, 2, RoleAdministrator, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			account, role, ok := tc.p.accountFor(&tc.app)
			if account != tc.account || role != tc.role || ok != tc.ok {
				t.Errorf("accountFor = %d %q %v, want %d %q %v", account, role, ok, tc.account, tc.role, tc.ok)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestAgentOnlyAccess(t *testing.T) {
	tester := newGateway(t)
	for _, tc := range []struct {
		name, path string
		header     []string
		status     int
		body       string
	}{
		{"anonymous", "/dashboard-apps/ident/", []string{"Cookie", ""}, 401, "Sign in to the helpdesk"},
		{"unknown credentials", "/dashboard-apps/ident/", []string{"Cookie", "hd_session=nobody"}, 401, "Sign in to the helpdesk"},
		{"anonymous asset", "/dashboard-apps/orders/style.css", []string{"Cookie", ""}, 401, ""},
		{"anonymous websocket", "/dashboard-apps/orders/ws", []string{"Cookie", "", "Connection", "Upgrade", "Upgrade", "websocket"}, 401, ""},
		{"signed in", "/dashboard-apps/ident/", nil, 200, ""},
		{"agent token header", "/dashboard-apps/ident/", []string{"Cookie", "", "api_access_token", "token-7"}, 200, ""},
		{"wrong account", "/dashboard-apps/account3/", nil, 403, "not available in your accounts"},
		{"right account", "/dashboard-apps/account3/", []string{"Cookie", otherAgentCookie}, 200, ""},
		{"administrator of account 2", "/dashboard-apps/admins/", nil, 200, ""},
		{"wrong role", "/dashboard-apps/admins/", []string{"Cookie", otherAgentCookie}, 403, ""},
		{"public app, anonymous", "/dashboard-apps/wiki/", []string{"Cookie", ""}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tester, tc.path, tc.header...)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("%d %.300s; want %d with %q", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
	for _, path := range []string{"/_dashboard_apps/apps?account=1", "/_dashboard_apps/context?account=1&conversation=123"} {
		if resp, _ := get(t, tester, path, "Cookie", ""); resp.StatusCode != 401 {
			t.Errorf("%s anonymous: %d, want 401", path, resp.StatusCode)
		}
	}
}

func TestForgedIdentityHeadersNeverReachApps(t *testing.T) {
	tester := newGateway(t)
	forged := []string{"X-Dashboard-Agent-Id", "999", "X-Dashboard-Agent-Email", "ceo@example.com", "X-Dashboard-Agent-Assertion", "forged"}
	_, body := get(t, tester, "/dashboard-apps/wiki/", append([]string{"Cookie", ""}, forged...)...)
	if strings.Contains(body, "data-header") {
		t.Errorf("a public app received X-Dashboard-* headers: %s", body)
	}
	_, body = get(t, tester, "/dashboard-apps/ident/", forged...)
	if strings.Contains(body, "999") || strings.Contains(body, "ceo@") || strings.Contains(body, ">forged<") {
		t.Errorf("forged identity reached the identity app: %s", body)
	}
	if !strings.Contains(body, `data-header="X-Dashboard-Agent-Id">7<`) {
		t.Errorf("verified identity missing: %s", body)
	}
}

// headerOf reads a header value from the /ident/ test app's page.
func headerOf(body, name string) string {
	_, rest, ok := strings.Cut(body, `data-header="`+name+`">`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, "<")
	return v
}

func fetchJWKS(t *testing.T, tester interface{}) jose.JSONWebKeySet {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, gatewayBase+"/_dashboard_apps/jwks.json", nil)
	resp, err := doAsBrowser(http.DefaultClient, req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].KeyID == "" || !set.Keys[0].IsPublic() {
		t.Fatalf("JWKS: %+v", set)
	}
	return set
}

// verify checks a compact JWT as an app's backend would, and returns its
// claims.
func verify(t *testing.T, token string, key any, alg jose.SignatureAlgorithm, audience string) agentClaims {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("parsing %q: %v", token, err)
	}
	var std jwt.Claims
	var claims agentClaims
	if err := parsed.Claims(key, &std, &claims); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := std.Validate(jwt.Expected{AnyAudience: jwt.Audience{audience}, Time: time.Now()}); err != nil {
		t.Errorf("claims: %v", err)
	}
	if err := std.Validate(jwt.Expected{Time: time.Now().Add(assertionLifetime + 2*time.Minute)}); err == nil {
		t.Errorf("token still valid after its lifetime")
	}
	if claims.Expiry-claims.IssuedAt > int64(assertionLifetime/time.Second) {
		t.Errorf("lifetime %ds, more than 5 minutes", claims.Expiry-claims.IssuedAt)
	}
	return claims
}

func TestIdentityAssertions(t *testing.T) {
	tester := newGateway(t)
	jwks := fetchJWKS(t, tester)

	_, body := get(t, tester, "/dashboard-apps/ident/")
	claims := verify(t, headerOf(body, "X-Dashboard-Agent-Assertion"), jwks.Keys[0].Key, jose.EdDSA, "ident")
	if claims.Subject != "7" || *claims.Email != "agent@example.com" || claims.Account != 1 || claims.Role != RoleAgent {
		t.Errorf("EdDSA assertion claims: %+v", claims)
	}

	_, body = get(t, tester, "/dashboard-apps/signed/")
	secret := []byte("0123456789abcdef0123456789abcdef")
	claims = verify(t, headerOf(body, "X-Dashboard-Agent-Assertion"), secret, jose.HS256, "signed")
	if claims.Subject != "7" {
		t.Errorf("HS256 assertion claims: %+v", claims)
	}
	// An app's secret does not verify another app's assertion.
	_, body = get(t, tester, "/dashboard-apps/ident/")
	parsed, _ := jwt.ParseSigned(headerOf(body, "X-Dashboard-Agent-Assertion"), []jose.SignatureAlgorithm{jose.EdDSA})
	if parsed.Claims(secret, &agentClaims{}) == nil {
		t.Errorf("an HS256 secret verified an EdDSA assertion")
	}
}

func TestContextTokens(t *testing.T) {
	tester := newGateway(t)
	jwks := fetchJWKS(t, tester)
	for _, tc := range []struct {
		app string
		key any
		alg jose.SignatureAlgorithm
	}{
		{"ident", jwks.Keys[0].Key, jose.EdDSA},
		{"signed", []byte("0123456789abcdef0123456789abcdef"), jose.HS256},
	} {
		resp, body := get(t, tester, "/_dashboard_apps/context?account=1&conversation=123&app="+tc.app)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tc.app, resp.StatusCode, body)
		}
		var msg appContext
		json.Unmarshal([]byte(body), &msg)
		claims := verify(t, msg.Data.Token, tc.key, tc.alg, tc.app)
		if claims.Conversation == nil || *claims.Conversation != 123 || claims.Contact == nil || *claims.Contact != 456 || claims.Subject != "7" {
			t.Errorf("%s token claims: %+v", tc.app, claims)
		}
	}
	if resp, _ := get(t, tester, "/_dashboard_apps/context?account=1&conversation=123&app=account3"); resp.StatusCode != 403 {
		t.Errorf("token for an app the agent may not use: %d", resp.StatusCode)
	}
	// Without ?app= there is no token at all: never one whose audience
	// lists every app, which any of them could replay to the others.
	if resp, body := get(t, tester, "/_dashboard_apps/context?account=1&conversation=123"); resp.StatusCode != 200 || strings.Contains(body, `"token"`) {
		t.Errorf("context without ?app=: %d %s, want no token", resp.StatusCode, body)
	}
}

func TestAppsListFiltersByInbox(t *testing.T) {
	tester := newGateway(t)
	ids := func(query string) string {
		_, body := get(t, tester, "/_dashboard_apps/apps?account=1"+query)
		var list []appEntry
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		var out []string
		for _, a := range list {
			out = append(out, a.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids("&inbox=9"); !strings.Contains(got, "inbox9") {
		t.Errorf("inbox 9: %s", got)
	}
	if got := ids("&inbox=1"); strings.Contains(got, "inbox9") || strings.Contains(got, "admins") || strings.Contains(got, "account3") {
		t.Errorf("inbox 1: %s", got)
	}
	if resp, _ := get(t, tester, "/_dashboard_apps/apps?account=1&inbox=x"); resp.StatusCode != 400 {
		t.Errorf("bad inbox: %d", resp.StatusCode)
	}
}

func TestIdentityKeyPersists(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	first, err := loadIdentityKey(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	// A restart (a new load from the same storage) signs with the same key.
	second, err := loadIdentityKey(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if string(first.jwks) != string(second.jwks) {
		t.Errorf("key changed across loads: %s vs %s", first.jwks, second.jwks)
	}
	other, _ := loadIdentityKey(context.Background(), &certmagic.FileStorage{Path: t.TempDir()})
	if string(other.jwks) == string(first.jwks) {
		t.Errorf("two storages share a key")
	}
}

func TestIdentityKeySurvivesReload(t *testing.T) {
	tester := newGateway(t)
	before := fetchJWKS(t, tester).Keys[0].KeyID
	if code, body := adminDo(t, http.MethodPut, "/config/apps/dashboard_apps/apps/reloaded", `{"name":"R","url":"http://127.0.0.1:1/"}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	defer adminDo(t, http.MethodDelete, "/config/apps/dashboard_apps/apps/reloaded", "")
	if after := fetchJWKS(t, tester).Keys[0].KeyID; after != before {
		t.Errorf("key changed across a reload: %s → %s", before, after)
	}
}

// TestAssertionFollowsAccountAndRole holds a reused identity assertion to
// what the X-Dashboard-* headers of the same request say: when the
// agent's profile changes the account, role, email or name, a new one is
// signed.
func TestAssertionFollowsAccountAndRole(t *testing.T) {
	h := newTestHandler(t, "http://127.0.0.1:1", time.Minute)
	p := &appProxy{app: &AppConfig{id: "orders"}, signer: h.registry.identity.signer, state: h.state}
	cred := credentialKey{1}
	one, two := int64(1), int64(2)
	ana, anna, mail := "Ana", "Anna", "ana@example.com"
	for _, step := range []struct {
		agent *profile
		want  string // account/role/email/name in both the headers and the assertion
	}{
		{&profile{AccountID: &one, Name: &ana, Accounts: []profileAccount{{ID: 1, Role: RoleAgent}, {ID: 2, Role: RoleAgent}}}, "1/agent//Ana"},
		{&profile{AccountID: &two, Name: &ana, Accounts: []profileAccount{{ID: 1, Role: RoleAgent}, {ID: 2, Role: RoleAgent}}}, "2/agent//Ana"},
		{&profile{AccountID: &two, Name: &ana, Accounts: []profileAccount{{ID: 1, Role: RoleAgent}, {ID: 2, Role: RoleAdministrator}}}, "2/administrator//Ana"},
		{&profile{AccountID: &two, Name: &anna, Accounts: []profileAccount{{ID: 1, Role: RoleAgent}, {ID: 2, Role: RoleAdministrator}}}, "2/administrator//Anna"},
		{&profile{AccountID: &two, Name: &anna, Email: &mail, Accounts: []profileAccount{{ID: 1, Role: RoleAgent}, {ID: 2, Role: RoleAdministrator}}}, "2/administrator/ana@example.com/Anna"},
	} {
		hd := http.Header{}
		if err := p.addIdentity(hd, agent{cred, step.agent}); err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseSigned(hd.Get("X-Dashboard-Agent-Assertion"), []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		var claims agentClaims
		if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
			t.Fatal(err)
		}
		headers := strings.Join([]string{hd.Get("X-Dashboard-Account-Id"), hd.Get("X-Dashboard-Agent-Role"), hd.Get("X-Dashboard-Agent-Email"), hd.Get("X-Dashboard-Agent-Name")}, "/")
		if asserted := fmt.Sprintf("%d/%s/%s/%s", claims.Account, claims.Role, headerSafe(claims.Email), headerSafe(claims.Name)); headers != step.want || asserted != step.want {
			t.Errorf("headers say %s, assertion %s; want %s", headers, asserted, step.want)
		}
	}
}
