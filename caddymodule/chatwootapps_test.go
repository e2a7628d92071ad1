package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Apps written for Chatwoot's Dashboard Apps, as they are found in the
// wild, in the shared config: shown only in inbox 7 (conversations 700 to
// 702 of the test helpdesk, in Chatwoot's shapes), so that the other tests'
// tabs stay as they are. None sets message_format.
func chatwootAppsConfig() string {
	return templateAppsConfig() + `
		` + strings.ReplaceAll(`app strings "Strings" URL/strings/ {
			inboxes 7
		}
		app objects "Objects" URL/objects/ {
			inboxes 7
		}`, "URL", pageApps.URL)
}

// chatwootAppPages are the pages of those apps, served by
// conversationApps. Each records what it receives: window.got holds
// {kind, conv} for every appContext message, by form, and window.shown
// what the app displays from Chatwoot's records.
var chatwootAppPages = map[string]string{
	// Accepts only strings, as Chatwoot posts them, and asks as Chatwoot
	// apps do: JSON.parse on whatever arrives, with no type check (an
	// object makes it throw, which it counts).
	"/strings/": `<p id="out">waiting</p><script>
window.got = []; window.throws = 0;
window.addEventListener('message', function (e) {
  let m;
  try { m = JSON.parse(e.data); } catch (_) { window.throws++; return; }
  if (m.event !== 'appContext') return;
  const d = m.data;
  window.got.push({ kind: 'string', conv: d.conversation.id });
  window.shown = { crm: d.contact.custom_attributes.crm_id, sender: d.conversation.meta.sender.email,
    labels: d.conversation.labels.join(','), team: d.conversation.meta.team.name, city: d.contact.additional_attributes.city };
  document.getElementById('out').textContent = d.contact.name;
});
window.parent.postMessage('chatwoot-dashboard-app:fetch-info', '*');
</script><a id="quiet" href="quiet">another page</a>`,
	// Another page of it, which does not ask.
	"/strings/quiet": `<script>
window.got = [];
window.addEventListener('message', function (e) {
  const m = typeof e.data === 'string' ? JSON.parse(e.data) : e.data;
  if (m && m.event === 'appContext') window.got.push({ kind: typeof e.data, conv: m.data.conversation.id });
});
</script>`,
	// Accepts only objects, as the helpdesk documents them, and asks with
	// the object form.
	"/objects/": `<p id="out">waiting</p><script>
window.got = []; window.strings = 0;
window.addEventListener('message', function (e) {
  if (typeof e.data === 'string') { window.strings++; return; }
  if (!e.data || e.data.event !== 'appContext') return;
  const d = e.data.data;
  window.got.push({ kind: 'object', conv: d.conversation.id });
  window.shown = { crm: d.contact.custom_attributes.crm_id, sender: d.conversation.meta.sender.email,
    labels: d.conversation.labels.join(','), team: d.conversation.meta.team.name, city: d.contact.additional_attributes.city };
  document.getElementById('out').textContent = d.contact.name;
});
window.parent.postMessage({ event: 'fetch-info' }, '*');
</script>`,
}

// chatwootConversation answers the test helpdesk's conversations of
// inbox 7 in Chatwoot's shape (conversation-v4.json): 700 is Sofia's, 701
// Liam's, with his own attributes and labels.
func chatwootConversation(id string) ([]byte, bool) {
	contacts := map[string]map[string]any{
		"700": nil,
		"701": {"id": 4202, "name": "Liam O'Connor", "email": "liam@example.com", "phone_number": "+353871234567",
			"custom_attributes":     map[string]any{"plan": "starter", "crm_id": "CRM-78"},
			"additional_attributes": map[string]any{"city": "Cork"}},
		// Values that would climb out of an app's URL template.
		"702": {"id": 4203, "name": "../../x", "email": "%2F..@x"},
		"703": {"id": 4204, "name": ".."},
	}
	sender, ok := contacts[id]
	if !ok {
		return nil, false
	}
	fixture := loadChatwootFixture()
	var conv map[string]any
	json.Unmarshal(fixture, &conv)
	var n int
	fmt.Sscan(id, &n)
	conv["id"], conv["inbox_id"] = n, 7
	if sender != nil {
		meta := conv["meta"].(map[string]any)
		s := meta["sender"].(map[string]any)
		for k, v := range sender {
			s[k] = v
		}
		conv["labels"] = []string{"refund"}
	}
	b, _ := json.Marshal(conv)
	return b, true
}

var loadChatwootFixture = sync.OnceValue(func() []byte {
	b, err := os.ReadFile("../testdata/fixtures/chatwoot/conversation-v4.json")
	if err != nil {
		panic(err)
	}
	return b
})

// TestBrowserChatwootAppsUnderAutoFormat: with no message_format set, an
// app that reads only strings (as Chatwoot posts them) and one that reads
// only objects (as the helpdesk documents them) both get their context,
// on load and after an SPA navigation, each only in the form it asked
// for; each reads what Chatwoot's records carry (contact custom and
// additional attributes, conversation.meta.sender and team, labels). A
// page of the app that does not ask gets both forms again.
func TestBrowserChatwootAppsUnderAutoFormat(t *testing.T) {
	tester := newGateway(t)
	_, body := get(t, tester, "/_dashboard_apps/apps?account=1&inbox=7")
	var list []appEntry
	json.Unmarshal([]byte(body), &list)
	formats := map[string]string{}
	for _, a := range list {
		formats[a.ID] = a.MessageFormat
	}
	if formats["strings"] != "auto" || formats["objects"] != "auto" || formats["cw"] != "json_string" {
		t.Errorf("the apps list gives message formats %v, want the effective ones: auto by default", formats)
	}

	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/1/conversations/700")
	for _, id := range []string{"strings", "objects"} {
		if err := waitFor(ctx, frameExpr(id, `w.got && w.got.some((m) => m.conv === 700)`), 15*time.Second); err != nil {
			t.Fatalf("%s: no context on load: %v", id, err)
		}
	}
	eval[any](t, ctx, `(history.pushState({}, '', '/app/accounts/1/conversations/701'), 1)`)
	for _, id := range []string{"strings", "objects"} {
		if err := waitFor(ctx, frameExpr(id, `w.got.some((m) => m.conv === 701)`), 10*time.Second); err != nil {
			t.Fatalf("%s: no context after SPA navigation: %v", id, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // any message still on its way
	if n := eval[float64](t, ctx, frameExpr("strings", `w.throws`)); n != 0 {
		t.Errorf("the strings-only app was posted %v messages it cannot parse (objects), after asking for strings", n)
	}
	if n := eval[float64](t, ctx, frameExpr("objects", `w.strings`)); n != 0 {
		t.Errorf("the objects-only app was posted %v strings, after asking for objects", n)
	}
	want := map[string]any{"crm": "CRM-78", "sender": "liam@example.com", "labels": "refund", "team": "billing", "city": "Cork"}
	for _, id := range []string{"strings", "objects"} {
		if got := eval[map[string]any](t, ctx, frameExpr(id, `w.shown`)); !jsonEqual(got, want) {
			t.Errorf("%s shows %v from Chatwoot's records, want %v", id, got, want)
		}
		if got := eval[string](t, ctx, frameExpr(id, `w.document.getElementById('out').textContent`)); got != "Liam O'Connor" {
			t.Errorf("%s shows %q", id, got)
		}
	}

	// Another page of the strings app, which does not ask: a new
	// document, which gets both forms.
	eval[any](t, ctx, frameExpr("strings", `(w.document.getElementById('quiet').click(), 1)`))
	if err := waitFor(ctx, frameExpr("strings", `w.location.pathname.endsWith('/quiet') && w.got.some((m) => m.kind === 'string') && w.got.some((m) => m.kind === 'object')`), 10*time.Second); err != nil {
		t.Errorf("a page that does not ask did not get both forms: %v", err)
	}
}

// TestBrowserForcedFormatAskedOtherwise: an app whose message_format
// forces one form and that asks in the other is still posted its forced
// form, and the host script tells the gateway once per page.
func TestBrowserForcedFormatAskedOtherwise(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/1/conversations/123")
	if err := waitFor(ctx, frameExpr("cw", `w.received && w.received.length > 0`), 15*time.Second); err != nil {
		t.Fatalf("the json_string app got no appContext: %v", err)
	}
	before := eval[float64](t, ctx, frameExpr("cw", `w.received.length`))
	for i := 0; i < 3; i++ {
		eval[any](t, ctx, frameExpr("cw", `(w.eval("parent.postMessage({event: 'fetch-info'}, '*')"), 1)`))
	}
	if err := waitFor(ctx, frameExpr("cw", `w.received.length >= `+fmt.Sprint(before+3)), 5*time.Second); err != nil {
		t.Errorf("asked with objects, the json_string app got no strings: %v", err)
	}
	if n := eval[float64](t, ctx, frameExpr("cw", `w.objects`)); n != 0 {
		t.Errorf("the json_string app got %v objects", n)
	}
	reports := `performance.getEntriesByType('resource').filter((r) => r.name.endsWith('/_dashboard_apps/message-format')).length`
	if err := waitFor(ctx, reports+` === 1`, 5*time.Second); err != nil {
		t.Errorf("reports to the gateway: %v, want 1", eval[float64](t, ctx, reports))
	}
}

// TestFormatReport: the gateway warns once per app (per config), naming
// the app and what to set, when the host script reports an app asking in
// the other form than its forced message_format; it takes reports only
// from the helpdesk's own pages, and says nothing of apps in auto or
// asking in their own form.
func TestFormatReport(t *testing.T) {
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Minute)
	core, logs := observer.New(zapcore.WarnLevel)
	h.logger = zap.New(core)
	addTestApp(t, h, "crm", &AppConfig{Name: "CRM", URL: "http://x/", MessageFormat: FormatJSONString})
	addTestApp(t, h, "docs", &AppConfig{Name: "Docs", URL: "http://x/", MessageFormat: FormatObject})
	addTestApp(t, h, "any", &AppConfig{Name: "Any", URL: "http://x/"})
	report := func(method, body string, header ...string) int {
		r := httptest.NewRequest(method, "/_dashboard_apps/message-format", strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.serveOwn(w, r, "message-format")
		return w.Code
	}
	same := []string{"Origin", "http://example.com"}
	for _, tc := range []struct {
		name, method, body string
		header             []string
		want               int
	}{
		{"GET", "GET", "", same, 405},
		{"another origin", "POST", `{"app":"crm","asked":"object"}`, []string{"Origin", "http://evil.example"}, 403},
		{"no origin", "POST", `{"app":"crm","asked":"object"}`, nil, 403},
		{"not JSON", "POST", `crm`, same, 400},
		{"no such app", "POST", `{"app":"nope","asked":"object"}`, same, 400},
		{"bad form", "POST", `{"app":"crm","asked":"xml"}`, same, 400},
		{"own form", "POST", `{"app":"crm","asked":"json_string"}`, same, 204},
		{"auto", "POST", `{"app":"any","asked":"object"}`, same, 204},
	} {
		if got := report(tc.method, tc.body, tc.header...); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if logs.Len() != 0 {
		t.Fatalf("logged without a mismatch: %v", logs.All())
	}
	for i := 0; i < 3; i++ {
		if got := report("POST", `{"app":"crm","asked":"object"}`, same...); got != 204 {
			t.Errorf("mismatch report: %d", got)
		}
	}
	report("POST", `{"app":"docs","asked":"json_string"}`, "Sec-Fetch-Site", "same-origin")
	all := logs.All()
	if len(all) != 2 {
		t.Fatalf("%d warnings for two apps reported three and one times, want one each: %v", len(all), all)
	}
	for i, want := range []struct{ app, format, asked string }{{"crm", "json_string", "object"}, {"docs", "object", "json_string"}} {
		e := all[i]
		f := e.ContextMap()
		if e.Level != zapcore.WarnLevel || f["app"] != want.app || f["message_format"] != want.format || f["asked"] != want.asked ||
			!strings.Contains(e.Message, "message_format to "+want.asked) {
			t.Errorf("warning %d: %s %q %v", i, e.Level, e.Message, f)
		}
	}
}

// The conversations of inbox 7 in the test helpdesk.
func serveChatwootConversation(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("account") != "1" {
		return false
	}
	b, ok := chatwootConversation(r.PathValue("id"))
	if !ok {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
	return true
}

// TestMessageFormatDefault: with no message_format an app is in auto.
func TestMessageFormatDefault(t *testing.T) {
	for set, want := range map[string]string{"": "auto", "auto": "auto", "object": "object", "json_string": "json_string"} {
		if got := (&AppConfig{MessageFormat: set}).format(); got != want {
			t.Errorf("message_format %q: effective %q, want %q", set, got, want)
		}
	}
}
