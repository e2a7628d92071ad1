package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fakeHelpdesk answers the Chatwoot API from fixtures, for two agents
// identified by their api_access_token or their dashboard session cookie.
type fakeHelpdesk struct {
	*httptest.Server
	profileCalls, convCalls atomic.Int64
	delay                   time.Duration
	fail                    atomic.Int64 // status to answer with instead, when non-zero
	lastHeaders             atomic.Pointer[http.Header]
}

var agents = map[string]string{ // token → profile JSON
	"token-a": "", // profile.json
	"token-b": `{"id": 8, "name": "Other Agent", "email": "b@example.com", "access_token": "B-SECRET", "accounts": [{"id": 1, "role": "agent"}]}`,
}

func newFakeHelpdesk(t *testing.T) *fakeHelpdesk { return newFakeHelpdeskTB(t) }

func newFakeHelpdeskB(b *testing.B) *fakeHelpdesk { return newFakeHelpdeskTB(b) }

func newFakeHelpdeskTB(t testing.TB) *fakeHelpdesk {
	t.Helper()
	profileA, err := os.ReadFile("../testdata/fixtures/chatwoot/profile.json")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHelpdesk{}
	agentOf := func(r *http.Request) string {
		tok := r.Header.Get("Api_access_token")
		if tok == "" {
			tok = r.Header.Get("Access-Token") // from the session cookie
		}
		if _, ok := agents[tok]; ok {
			return tok
		}
		return ""
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		f.lastHeaders.Store(&h)
		time.Sleep(f.delay)
		if s := f.fail.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		who := agentOf(r)
		if who == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/profile":
			f.profileCalls.Add(1)
			if who == "token-a" {
				w.Write(profileA)
			} else {
				io.WriteString(w, agents[who])
			}
		case strings.HasPrefix(r.URL.Path, "/api/v1/accounts/1/conversations/"):
			f.convCalls.Add(1)
			switch strings.TrimPrefix(r.URL.Path, "/api/v1/accounts/1/conversations/") {
			case "123":
				http.ServeFile(w, r, "../testdata/fixtures/chatwoot/conversation.json")
			case "124":
				http.ServeFile(w, r, "../testdata/fixtures/chatwoot/conversation-sparse.json")
			case "125":
				io.WriteString(w, `{"id": 125, "inbox_id": 1, "status": "open", "meta": {"sender": {"id": 456}}}`)
			case "200":
				http.ServeFile(w, r, "../testdata/fixtures/chatwoot/conversation-v4.json")
			default:
				w.WriteHeader(http.StatusNotFound)
			}
		case strings.HasPrefix(r.URL.Path, "/api/v1/accounts/"):
			w.WriteHeader(http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// newTestHandler is a handler provisioned by hand, without a Caddy config,
// for testing the endpoints in isolation.
func newTestHandler(t testing.TB, helpdeskURL string, ttl time.Duration) *Handler {
	t.Helper()
	m, err := loadMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { states.Delete(metricsKey) })
	state, key, err := loadState(minCacheSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { states.Delete(key) })
	state.cache.Clear()
	pemBytes, _ := newIdentityKeyPEM()
	identity, err := parseIdentityKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{
		Prefix: defaultPrefix, webhookSecret: "hook-secret",
		helpdesk: newHelpdeskClient(helpdeskURL, m.helpdeskLatency), state: state, ttl: ttl, metrics: m,
		credentialHeaders: []string{"Authorization", "Api_access_token"},
		registry:          &App{identity: identity, state: state}, logger: testLogger(),
		apps: map[string]*appProxy{},
	}
	return h
}

func contextRequest(h *Handler, query string, header ...string) *httptest.ResponseRecorder {
	return ownRequest(h, "context", query, header...)
}

// ownRequest sends a GET to one of the handler's own endpoints, with the
// header name/value pairs given.
func ownRequest(h *Handler, endpoint, query string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/_dashboard_apps/"+endpoint+"?"+query, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.serveOwn(w, r, endpoint)
	return w
}

func TestContextFromChatwootAnswers(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	w := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	// The seed's message first, in its order; then the rest of Chatwoot's
	// records (checked in TestContextCarriesChatwootRecords).
	for _, want := range []string{
		`{"event":"appContext","data":{"conversation":{"id":123,"account_id":1,"inbox_id":1,"status":"open",` +
			`"contact":{"id":456,"name":"Jane Doe","email":"jane@example.com","phone_number":"+1234567890",`,
		`"contact":{"id":456,"name":"Jane Doe","email":"jane@example.com","phone_number":"+1234567890",`,
		`"currentAgent":{"id":7,"name":"Support Agent","email":"agent@example.com"}}}`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("appContext lacks %s:\n%s", want, w.Body)
		}
	}
	if !strings.HasPrefix(w.Body.String(), `{"event":"appContext","data":{"conversation":{"id":123,"account_id":1,"inbox_id":1,"status":"open","contact":{"id":456,`) ||
		!strings.HasSuffix(w.Body.String(), `"currentAgent":{"id":7,"name":"Support Agent","email":"agent@example.com"}}}`) {
		t.Errorf("appContext is not the seed's message in the seed's order:\n%s", w.Body)
	}
	if _, token := splitToken(t, w.Body.String()); token != "" {
		t.Errorf("data.token without ?app=: a token is bound to one app, never given for all of them")
	}
	// Never: the profile's tokens, the messages (no app asked), a token in
	// the helpdesk's conversation record.
	for _, secret := range []string{"SECRET", "PRIVATE", "4111", "SHOULD-NOT-LEAK", "access_token", "pubsub_token", `"messages"`, "last_non_activity_message"} {
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("%q left the gateway", secret)
		}
	}
	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "no-store") || !strings.Contains(cc, "private") {
		t.Errorf("Cache-Control = %q", cc)
	}

	// Missing values are null, never omitted.
	w = contextRequest(h, "account=1&conversation=124", "api_access_token", "token-a")
	var msg map[string]any
	json.Unmarshal(w.Body.Bytes(), &msg)
	c := msg["data"].(map[string]any)["contact"].(map[string]any)
	if v, present := c["email"]; !present || v != nil {
		t.Errorf("missing email must be null: %s", w.Body)
	}
	if acc := msg["data"].(map[string]any)["conversation"].(map[string]any)["account_id"]; acc != float64(1) {
		t.Errorf("account_id from the URL when the helpdesk omits it: %v", acc)
	}
}

// TestContextCarriesChatwootRecords: an app gets Chatwoot's conversation
// record as Chatwoot's API gives it (meta with sender, assignee and team;
// labels, custom and additional attributes, priority, times, SLA...), but
// for its messages, and its contact as the whole meta.sender, in both
// data.contact and conversation.contact; of the agent, id, name and email.
func TestContextCarriesChatwootRecords(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	raw, err := os.ReadFile("../testdata/fixtures/chatwoot/conversation-v4.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixture map[string]any
	if err := json.Unmarshal(raw, &fixture); err != nil {
		t.Fatal(err)
	}
	w := contextRequest(h, "account=1&conversation=200", "api_access_token", "token-a")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var msg struct {
		Event string
		Data  struct {
			Conversation map[string]any
			Contact      map[string]any
			CurrentAgent map[string]any
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &msg); err != nil {
		t.Fatal(err)
	}
	conv := msg.Data.Conversation
	sender := fixture["meta"].(map[string]any)["sender"]
	for k, want := range fixture {
		got, present := conv[k]
		switch k {
		case "messages", "last_non_activity_message":
			if present {
				t.Errorf("conversation.%s reached an app without context_messages", k)
			}
		default:
			if !present || !jsonEqual(got, want) {
				t.Errorf("conversation.%s = %v, want %v as Chatwoot gave it", k, got, want)
			}
		}
	}
	if !jsonEqual(msg.Data.Contact, sender) || !jsonEqual(conv["contact"], sender) {
		t.Errorf("contact = %v\nconversation.contact = %v\nwant meta.sender %v", msg.Data.Contact, conv["contact"], sender)
	}
	if ca := msg.Data.Contact["custom_attributes"].(map[string]any); ca["crm_id"] != "CRM-77" {
		t.Errorf("contact.custom_attributes = %v", ca)
	}
	if !jsonEqual(msg.Data.CurrentAgent, map[string]any{"id": 7.0, "name": "Support Agent", "email": "agent@example.com"}) {
		t.Errorf("currentAgent = %v: only id, name and email of the profile leave the gateway", msg.Data.CurrentAgent)
	}
	for _, secret := range []string{"PRIVATE", "4111", "SECRET"} {
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("%q left the gateway", secret)
		}
	}
	// Numbers as Chatwoot wrote them, not through a float.
	if !strings.Contains(w.Body.String(), `"updated_at":1764100100.123456`) {
		t.Errorf("updated_at not as written: %s", w.Body)
	}
}

// TestContextMessagesOnlyForApps: the conversation's messages reach only
// apps with context_messages, from a variant cached apart; the others,
// and the context endpoint without an app, never get them, before or
// after.
func TestContextMessagesOnlyForApps(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	addTestApp(t, h, "reader", &AppConfig{Name: "Reader", URL: "http://x/", ContextMessages: true})
	addTestApp(t, h, "plain", &AppConfig{Name: "Plain", URL: "http://x/"})
	auth := []string{"api_access_token", "token-a"}
	body := func(query string) string {
		t.Helper()
		w := contextRequest(h, query, auth...)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", query, w.Code, w.Body)
		}
		return w.Body.String()
	}
	for _, order := range [][]string{{"reader", "plain", ""}, {"plain", "", "reader"}} {
		h.state.cache.Clear()
		calls := hd.convCalls.Load()
		for _, app := range order {
			q := "account=1&conversation=200"
			if app != "" {
				q += "&app=" + app
			}
			got := body(q)
			hasMessages := strings.Contains(got, `"messages":[{"id":90210,"content":"PRIVATE MESSAGE BODY`) &&
				strings.Contains(got, `"last_non_activity_message":{"id":90210`)
			if (app == "reader") != hasMessages || (app != "reader" && strings.Contains(got, "4111")) {
				t.Errorf("order %v, app %q: messages %v: %s", order, app, hasMessages, got)
			}
		}
		if n := hd.convCalls.Load() - calls; n != 1 {
			t.Errorf("order %v: %d helpdesk calls, want 1 (both variants from one answer)", order, n)
		}
	}
}

// addTestApp registers an app with a hand-made handler.
func addTestApp(t *testing.T, h *Handler, id string, cfg *AppConfig) {
	t.Helper()
	if err := cfg.validate(id); err != nil {
		t.Fatal(err)
	}
	h.apps[id] = &appProxy{app: cfg, signer: h.registry.identity.signer}
	h.contextMessages = h.contextMessages || cfg.ContextMessages
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestContextStatuses(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	for _, tc := range []struct {
		name, query string
		header      []string
		want        int
	}{
		{"no credentials", "account=1&conversation=123", nil, 401},
		{"unknown credentials", "account=1&conversation=123", []string{"api_access_token", "nobody"}, 401},
		{"bad account", "account=x&conversation=123", []string{"api_access_token", "token-a"}, 400},
		{"zero conversation", "account=1&conversation=0", []string{"api_access_token", "token-a"}, 400},
		{"missing conversation", "account=1", []string{"api_access_token", "token-a"}, 400},
		{"not found", "account=1&conversation=999", []string{"api_access_token", "token-a"}, 404},
		{"forbidden account", "account=2&conversation=1", []string{"api_access_token", "token-a"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := contextRequest(h, tc.query, tc.header...); w.Code != tc.want {
				t.Errorf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
}

func TestContextCacheIsPerAgent(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	a := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a")
	b := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-b")
	if !strings.Contains(a.Body.String(), `"currentAgent":{"id":7`) || !strings.Contains(b.Body.String(), `"currentAgent":{"id":8`) {
		t.Fatalf("each agent must get their own context:\nA %s\nB %s", a.Body, b.Body)
	}
	if a.Header().Get(cacheHeader) != "miss" || b.Header().Get(cacheHeader) != "miss" {
		t.Errorf("B was served A's cache entry")
	}
	again := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a")
	if again.Header().Get(cacheHeader) != "hit" || again.Body.String() != a.Body.String() {
		t.Errorf("second request of A: %s %s", again.Header().Get(cacheHeader), again.Body)
	}
	if n := hd.convCalls.Load(); n != 2 {
		t.Errorf("helpdesk conversation calls = %d, want 2", n)
	}
	// An app's cookie does not change who the agent is.
	withApp := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a", "Cookie", "dapp_orders_sid=1")
	if withApp.Header().Get(cacheHeader) != "hit" {
		t.Errorf("an app cookie changed the credential key")
	}
	// No credentials: never the cached entry.
	if w := contextRequest(h, "account=1&conversation=123"); w.Code != 401 {
		t.Errorf("anonymous: %d", w.Code)
	}
}

func TestContextConcurrentMissesShareOneCall(t *testing.T) {
	hd := newFakeHelpdesk(t)
	hd.delay = 100 * time.Millisecond
	h := newTestHandler(t, hd.URL, time.Minute)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a"); w.Code != 200 {
				t.Errorf("status %d", w.Code)
			}
		}()
	}
	wg.Wait()
	if n := hd.convCalls.Load(); n != 1 {
		t.Errorf("20 concurrent misses made %d conversation calls, want 1", n)
	}
	if n := hd.profileCalls.Load(); n != 1 {
		t.Errorf("20 concurrent misses made %d profile calls, want 1", n)
	}
}

func TestContextServesStaleWhenTheHelpdeskFails(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, 50*time.Millisecond)
	first := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a")
	time.Sleep(60 * time.Millisecond)
	hd.fail.Store(503)
	w := contextRequest(h, "account=1&conversation=123", "api_access_token", "token-a")
	if w.Code != 200 || w.Header().Get(cacheHeader) != "stale" || w.Body.String() != first.Body.String() {
		t.Errorf("stale: %d %q %s", w.Code, w.Header().Get(cacheHeader), w.Body)
	}
	if w := contextRequest(h, "account=1&conversation=124", "api_access_token", "token-a"); w.Code != http.StatusBadGateway {
		t.Errorf("no entry, helpdesk down: %d, want 502", w.Code)
	}
}

// TestEndpointsOnHelpdeskFailures holds the endpoints that act for the
// agent to one way of answering a failing helpdesk: its 401, 403 and 404
// passed on, anything else a 502 with the cause logged, saying what the
// gateway was doing.
func TestEndpointsOnHelpdeskFailures(t *testing.T) {
	for _, c := range []struct {
		endpoint, query, doing string
	}{
		{"context", "account=1&conversation=123", "building appContext"},
		{"apps", "account=1", "listing the agent's apps"},
	} {
		for _, helpdeskStatus := range []int{401, 403, 404, 500, 503} {
			hd := newFakeHelpdesk(t)
			h := newTestHandler(t, hd.URL, time.Minute)
			core, logs := observer.New(zap.ErrorLevel)
			h.logger = zap.New(core)
			hd.fail.Store(int64(helpdeskStatus))
			w := ownRequest(h, c.endpoint, c.query, "api_access_token", "token-a")
			want, wantLogs := helpdeskStatus, 0
			if helpdeskStatus >= 500 {
				want, wantLogs = http.StatusBadGateway, 1
			}
			if w.Code != want {
				t.Errorf("%s, helpdesk %d: answered %d, want %d", c.endpoint, helpdeskStatus, w.Code, want)
			}
			if logs.Len() != wantLogs {
				t.Errorf("%s, helpdesk %d: %d errors logged, want %d", c.endpoint, helpdeskStatus, logs.Len(), wantLogs)
			} else if wantLogs > 0 && !strings.HasPrefix(logs.All()[0].Message, c.doing+":") {
				t.Errorf("%s, helpdesk %d: logged %q, want it to say %q", c.endpoint, helpdeskStatus, logs.All()[0].Message, c.doing)
			}
		}
	}
}

func TestSessionCookieCredentials(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	session := url.QueryEscape(`{"access-token":"token-b","token-type":"Bearer","client":"c1","expiry":"1767225600","uid":"b@example.com"}`)
	w := contextRequest(h, "account=1&conversation=123", "Cookie", "cw_d_session_info="+session+"; dapp_orders_x=1")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"currentAgent":{"id":8`) {
		t.Fatalf("session cookie: %d %s", w.Code, w.Body)
	}
	sent := *hd.lastHeaders.Load()
	for name, want := range map[string]string{"Access-Token": "token-b", "Client": "c1", "Uid": "b@example.com", "Token-Type": "Bearer", "Expiry": "1767225600"} {
		if got := sent.Get(name); got != want {
			t.Errorf("%s to the helpdesk = %q, want %q", name, got, want)
		}
	}
	if strings.Contains(sent.Get("Cookie"), "dapp_") {
		t.Errorf("an app's cookie went to the helpdesk: %q", sent.Get("Cookie"))
	}
}

func webhook(h *Handler, body, query string, header ...string) int {
	r := httptest.NewRequest("POST", "/_dashboard_apps/webhook"+query, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.serveOwn(w, r, "webhook")
	return w.Code
}

func TestWebhookAuthentication(t *testing.T) {
	h := newTestHandler(t, "http://127.0.0.1:1", time.Minute)
	body := `{"event":"conversation_updated","id":123,"account":{"id":1}}`
	if c := webhook(h, body, ""); c != 401 {
		t.Errorf("no secret: %d", c)
	}
	if c := webhook(h, body, "?secret=wrong"); c != 401 {
		t.Errorf("wrong secret: %d", c)
	}
	if c := webhook(h, body, "?secret=hook-secret"); c != 200 {
		t.Errorf("query secret: %d", c)
	}
	if c := webhook(h, body, "", "X-Dashboard-Apps-Signature", "sha256="+hmacHex("hook-secret", body)); c != 200 {
		t.Errorf("HMAC: %d", c)
	}
	if c := webhook(h, body, "", "X-Dashboard-Apps-Signature", "sha256="+hmacHex("hook-secret", body+" ")); c != 401 {
		t.Errorf("HMAC of another body: %d", c)
	}
	if c := webhook(h, "not json", "?secret=hook-secret"); c != 400 {
		t.Errorf("bad JSON: %d", c)
	}
	r := httptest.NewRequest("GET", "/_dashboard_apps/webhook?secret=hook-secret", nil)
	w := httptest.NewRecorder()
	h.serveOwn(w, r, "webhook")
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestWebhookEvicts(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	get := func(conv string) string {
		return contextRequest(h, "account=1&conversation="+conv, "api_access_token", "token-a").Header().Get(cacheHeader)
	}
	warm := func() {
		get("123")
		get("125")
		get("124")
	}
	for _, tc := range []struct {
		name, event string
		evicted     map[string]bool // conversation → expect a miss after the event
	}{
		{"conversation of contact 456", `{"event":"conversation_updated","id":123,"account":{"id":1},"meta":{"sender":{"id":456}}}`,
			map[string]bool{"123": true, "125": true, "124": false}},
		{"internal id only matches by contact", `{"event":"conversation_status_changed","id":99999,"account_id":1,"meta":{"sender":{"id":457}}}`,
			map[string]bool{"123": false, "125": false, "124": true}},
		{"contact, no account: every account", `{"event":"contact_updated","id":456}`,
			map[string]bool{"123": true, "125": true, "124": false}},
		{"contact in another account", `{"event":"contact_deleted","id":456,"account":{"id":2}}`,
			map[string]bool{"123": false, "125": false, "124": false}},
		{"other events ignored", `{"event":"message_created","id":123,"account":{"id":1}}`,
			map[string]bool{"123": false, "125": false, "124": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warm()
			if c := webhook(h, tc.event, "?secret=hook-secret"); c != 200 {
				t.Fatalf("webhook: %d", c)
			}
			for conv, evicted := range tc.evicted {
				got := get(conv)
				if want := map[bool]string{true: "miss", false: "hit"}[evicted]; got != want {
					t.Errorf("conversation %s after %s: %s, want %s", conv, tc.event, got, want)
				}
			}
		})
	}
}

func TestQueryID(t *testing.T) {
	for _, tc := range []struct {
		q    string
		n    int64
		ok   bool
		name string
	}{
		{"account=1&conversation=2", 1, true, "account"},
		{"conversation=2&account=10", 10, true, "account"},
		{"account=-1", -1, false, "account"},
		{"account=", 0, false, "account"},
		{"accounts=1", 0, false, "account"},
		{"account=1x", 0, false, "account"},
	} {
		n, ok := queryID(tc.q, tc.name)
		if ok != tc.ok || (ok && n != tc.n) {
			t.Errorf("queryID(%q) = %d %v", tc.q, n, ok)
		}
	}
}

func hmacHex(secret, body string) string {
	return fmt.Sprintf("%x", hmacSum([]byte(secret), []byte(body)))
}

// splitToken takes data.token out of an appContext message.
func splitToken(t *testing.T, msg string) (rest, token string) {
	t.Helper()
	i := strings.Index(msg, `,"token":"`)
	if i < 0 {
		return msg, ""
	}
	j := strings.Index(msg[i+10:], `"`)
	return msg[:i] + msg[i+10+j+1:], msg[i+10 : i+10+j]
}

// TestHostScriptEncoding holds the host script's gzip to what the browser
// accepts, q-values included (Caddy's reading of Accept-Encoding).
func TestHostScriptEncoding(t *testing.T) {
	tester := newGateway(t)
	for accept, gz := range map[string]bool{
		"gzip, deflate, br":  true,
		"br;q=1, gzip;q=0.5": true,
		"gzip; q = 0.5":      true,
		"gzip;q=0":           false,
		"gzip;Q=0.0":         false,
		"identity":           false,
		"":                   false,
	} {
		// Go's transport asks for gzip itself, and undoes it, when a
		// request names no Accept-Encoding; this one sends what it is given.
		transport := tester.Client.Transport.(*http.Transport).Clone()
		transport.DisableCompression = true
		req, _ := http.NewRequest(http.MethodGet, gatewayBase+"/_dashboard_apps/host.js", nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		resp, err := (&http.Client{Transport: transport}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		transport.CloseIdleConnections()
		if got := resp.Header.Get("Content-Encoding") == "gzip"; resp.StatusCode != http.StatusOK || got != gz {
			t.Errorf("Accept-Encoding %q: status %d, gzipped %v, want %v", accept, resp.StatusCode, got, gz)
		}
	}
}

func TestBarePrefixIsNoApp(t *testing.T) {
	tester := newGateway(t)
	if resp, body := get(t, tester, "/dashboard-apps"); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "No such app") {
		t.Errorf("/dashboard-apps: %d %q", resp.StatusCode, body)
	}
}
