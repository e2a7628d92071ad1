package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// TestAppURLEntryAndBase: an app's url names its entry page, which may be
// a file with a query; its directory (before any template variable) is
// the base path upstream unless base_path says otherwise; the tab opens
// exactly that page, under the prefix in path mode and on the app's
// origin in origin mode.
func TestAppURLEntryAndBase(t *testing.T) {
	for _, tc := range []struct {
		url, basePath            string
		base, entry, proxied, on string
		vars                     string
	}{
		{"http://db.internal/adminer/sqlite.php?sqlite=", "", "/adminer/", "sqlite.php?sqlite=", "/dashboard-apps/x/sqlite.php?sqlite=", "/adminer/sqlite.php?sqlite=", ""},
		{"http://h/app/", "", "/app/", "", "/dashboard-apps/x/", "/app/", ""},
		{"http://h", "", "/", "", "/dashboard-apps/x/", "/", ""},
		{"http://h/?tab=2", "", "/", "?tab=2", "/dashboard-apps/x/?tab=2", "/?tab=2", ""},
		{"http://h/tools", "", "/", "tools", "/dashboard-apps/x/tools", "/tools", ""},
		{"http://h/a/b/index.html?x=1&y", "", "/a/b/", "index.html?x=1&y", "/dashboard-apps/x/index.html?x=1&y", "/a/b/index.html?x=1&y", ""},
		{"http://h/transmission/web/", "/transmission/", "/transmission/", "web/", "/dashboard-apps/x/web/", "/transmission/web/", ""},
		{"http://h/transmission/web/", "/", "/", "transmission/web/", "/dashboard-apps/x/transmission/web/", "/transmission/web/", ""},
		{"http://h/transmission/web/", "/transmission/web/", "/transmission/web/", "", "/dashboard-apps/x/", "/transmission/web/", ""},
		{"http://h/p%20q/r.php?s=%2F", "", "/p%20q/", "r.php?s=%2F", "/dashboard-apps/x/r.php?s=%2F", "/p%20q/r.php?s=%2F", ""},
		// Template variables: the base path stops before the first.
		{"http://crm/contacts/{contact.id}/view?email={contact.email}", "", "/contacts/", "{contact.id}/view?email={contact.email}",
			"/dashboard-apps/x/{contact.id}/view?email={contact.email}", "/contacts/{contact.id}/view?email={contact.email}", "contact.id,contact.email"},
		{"http://crm/c-{conversation.id}.html", "", "/", "c-{conversation.id}.html", "/dashboard-apps/x/c-{conversation.id}.html", "/c-{conversation.id}.html", "conversation.id"},
		{"http://crm/app/?a={account.id}&i={conversation.inbox_id}&n={contact.name}&p={contact.phone_number}&g={currentAgent.id}&m={currentAgent.email}", "/", "/",
			"app/?a={account.id}&i={conversation.inbox_id}&n={contact.name}&p={contact.phone_number}&g={currentAgent.id}&m={currentAgent.email}", "", "", "account.id,conversation.inbox_id,contact.name,contact.phone_number,currentAgent.id,currentAgent.email"},
		{"http://zq.example/zq/{contact.id}/zqv0zq", "", "/zq/", "{contact.id}/zqv0zq", "/dashboard-apps/x/{contact.id}/zqv0zq", "/zq/{contact.id}/zqv0zq", "contact.id"},
		{"http://h/a/%7Bcontact.id%7D/{contact.id}", "", "/a/%7Bcontact.id%7D/", "{contact.id}", "", "", "contact.id"},
	} {
		a := &AppConfig{Name: "X", URL: tc.url, BasePath: tc.basePath}
		if err := a.validate("x"); err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		p := &appProxy{app: a, mapper: rewrite.NewMapper(a.upstream, defaultPrefix+"x/")}
		if got := a.upstream.EscapedPath(); got != tc.base {
			t.Errorf("%s: base %q, want %q", tc.url, got, tc.base)
		}
		if a.entry != tc.entry {
			t.Errorf("%s: entry %q, want %q", tc.url, a.entry, tc.entry)
		}
		if tc.proxied != "" && p.entryURL() != tc.proxied {
			t.Errorf("%s: tab opens %q in path mode, want %q", tc.url, p.entryURL(), tc.proxied)
		}
		if tc.on != "" && p.entryPath() != tc.on {
			t.Errorf("%s: tab opens %q on the app's origin, want %q", tc.url, p.entryPath(), tc.on)
		}
		if got := strings.Join(a.vars, ","); got != tc.vars {
			t.Errorf("%s: variables %q, want %q", tc.url, got, tc.vars)
		}
	}
}

// TestAppURLRefusals: what an operator gets wrong in url and base_path is
// refused, naming the app, the field and the value.
func TestAppURLRefusals(t *testing.T) {
	for _, tc := range []struct{ url, basePath, want string }{
		{"http://crm/contacts/{contact.age}", "", `app "x": url "http://crm/contacts/{contact.age}": unknown template variable {contact.age} (known: {conversation.id}, {conversation.inbox_id}, {account.id}, {contact.id}, {contact.email}, {contact.name}, {contact.phone_number}, {currentAgent.id}, {currentAgent.email})`},
		{"http://crm/{Contact.id}", "", `unknown template variable {Contact.id}`},
		{"http://crm/{}", "", `unknown template variable {}`},
		{"http://{contact.id}.crm/", "", `app "x": url "http://{contact.id}.crm/": template variable {contact.id} must be in the path or the query, not in the scheme or host`},
		{"http://crm:{contact.id}/", "", `must be in the path or the query`},
		{"http://crm/a{b", "", `app "x": url "http://crm/a{b": has a "{" that opens no template variable`},
		{"http://crm/a}b", "", `has a "}" that closes no template variable`},
		{"http://crm/a/../{contact.id}", "", `path must not have "." or ".." segments`},
		{"http://crm/a/{contact.id}#x", "", `must not have a fragment`},
		{"http://h/transmission/web/", "/nope/", `app "x": base_path "/nope/": must be a prefix of the url's path "/transmission/web/" (before any template variable)`},
		{"http://h/transmission/web/", "/transmission", `app "x": base_path "/transmission": must be an absolute path ending in "/"`},
		{"http://h/transmission/web/", "transmission/", `must be an absolute path ending in "/"`},
		{"http://h/transmission/web/", "/transmission/web/x/", `must be a prefix of the url's path`},
		{"http://h/app", "/app/", `base_path "/app/": must be a prefix of the url's path "/app"`},
		{"http://h/a/b/", "/a/../", `base_path "/a/../": must not have "." or ".." segments`},
		{"http://h/a/%2e%2e/b/", "", `path must not have "." or ".." segments`},
		{"http://h/a//b/", "/a//", `must be a plain path`},
		{"http://h/c/{contact.id}/x/", "/c/{contact.id}/", `base_path "/c/{contact.id}/": must be a plain path`},
		{"http://h/c/{contact.id}/x/", "/c/x/", `must be a prefix of the url's path "/c/" (before any template variable)`},
		{"http://h/a/b?q", "/a/b?/", `must be a plain path`},
	} {
		a := &AppConfig{Name: "X", URL: tc.url, BasePath: tc.basePath}
		if err := a.validate("x"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("url %q, base_path %q: %v, want it to contain %q", tc.url, tc.basePath, err, tc.want)
		}
	}
}

// templateAppsConfig are the shared config's apps with page-named URLs,
// base paths and URL templates (inbox 7, as chatwootAppsConfig's).
func templateAppsConfig() string {
	return strings.ReplaceAll(`app tpl "Template" URL/tpl/contacts/{contact.id}/{contact.name}/view?email={contact.email}&conv={conversation.id}&inbox={conversation.inbox_id}&account={account.id}&phone={contact.phone_number}&agent={currentAgent.id}&agentmail={currentAgent.email} {
			inboxes 7
		}
		app db "Adminer" URL/adminer/sqlite.php?sqlite= {
			inboxes 7
		}
		app trans "Transmission" URL/transmission/web/ {
			inboxes 7
			base_path /transmission/
		}`, "URL", pageApps.URL)
}

// pageAppsLog records every request that reaches the conversation apps'
// upstream outside the pages it serves, and every request of the template
// and page-named apps.
var pageAppsLog = &requestLog{}

// templateAppPages serve the apps of templateAppsConfig: each shows the
// path and query it was asked for, and records the appContext it gets.
func templateAppPages(mux *http.ServeMux) {
	show := func(w http.ResponseWriter, r *http.Request, extra string) {
		pageAppsLog.add(r)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><meta charset=utf-8></head><body><p id="path">%s</p><p id="query">%s</p>%s<script>
window.loadId = Math.random(); window.got = [];
window.addEventListener('message', function (e) {
  const m = typeof e.data === 'string' ? JSON.parse(e.data) : e.data;
  if (m && m.event === 'appContext') window.got.push(m.data.conversation.id);
});
</script></body></html>`, htmlEscape(r.URL.EscapedPath()), htmlEscape(r.URL.RawQuery), extra)
	}
	mux.HandleFunc("/tpl/", func(w http.ResponseWriter, r *http.Request) { show(w, r, "") })
	mux.HandleFunc("/adminer/", func(w http.ResponseWriter, r *http.Request) {
		show(w, r, `<a id="db" href="?sqlite=&amp;db=%2Ftmp%2Fa.db">a.db</a>`)
	})
	// Transmission's web UI calls its RPC endpoint above its directory.
	mux.HandleFunc("/transmission/web/", func(w http.ResponseWriter, r *http.Request) {
		show(w, r, `<p id="rpc">waiting</p><script>
fetch('../rpc', { method: 'POST' }).then((r) => r.text()).then((t) => { document.getElementById('rpc').textContent = t; });
</script>`)
	})
	mux.HandleFunc("/transmission/rpc", func(w http.ResponseWriter, r *http.Request) {
		pageAppsLog.add(r)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"result":"success"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		pageAppsLog.add(r)
		http.NotFound(w, r)
	})
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// TestPageNamedAppsProxied: over HTTP, an app whose url names a page with
// a query is listed at exactly that page, which the gateway serves from
// the page upstream; a base_path app reaches above its entry page's
// directory, and no further.
func TestPageNamedAppsProxied(t *testing.T) {
	tester := newGateway(t)
	urls := map[string]string{}
	_, body := get(t, tester, "/_dashboard_apps/apps?account=1&inbox=7")
	for _, a := range decodeApps(t, body) {
		urls[a.ID] = a.URL
	}
	resp, body := originDo(t, "GET", originHelpdesk+"/_dashboard_apps/apps?account=1&inbox=7", nil, "Cookie", agentCookie)
	if resp.StatusCode != 200 {
		t.Fatalf("origin mode apps: %d %s", resp.StatusCode, body)
	}
	for _, a := range decodeApps(t, body) {
		urls["origin "+a.ID] = a.URL
	}
	for id, want := range map[string]string{
		"db":           "/dashboard-apps/db/sqlite.php?sqlite=",
		"trans":        "/dashboard-apps/trans/web/",
		"tpl":          "/dashboard-apps/tpl/{contact.id}/{contact.name}/view?email={contact.email}&conv={conversation.id}&inbox={conversation.inbox_id}&account={account.id}&phone={contact.phone_number}&agent={currentAgent.id}&agentmail={currentAgent.email}",
		"origin db":    "http://db.helpdesk.localhost:9080/adminer/sqlite.php?sqlite=",
		"origin trans": "http://trans.helpdesk.localhost:9080/transmission/web/",
		"origin tpl":   "http://tpl.helpdesk.localhost:9080/tpl/contacts/{contact.id}/{contact.name}/view?email={contact.email}&conv={conversation.id}&inbox={conversation.inbox_id}&account={account.id}&phone={contact.phone_number}&agent={currentAgent.id}&agentmail={currentAgent.email}",
	} {
		if urls[id] != want {
			t.Errorf("%s is listed at %q, want %q", id, urls[id], want)
		}
	}

	pageAppsLog.reset()
	for _, tc := range []struct {
		path       string
		status     int
		upstream   string // path?query the upstream got, "" for none
		bodyHasAny string
	}{
		{"/dashboard-apps/db/sqlite.php?sqlite=", 200, "/adminer/sqlite.php?sqlite=", `<p id="path">/adminer/sqlite.php</p>`},
		{"/dashboard-apps/db/", 200, "/adminer/?", ""},
		{"/dashboard-apps/db/../x", 400, "", ""},
		{"/dashboard-apps/db/%2e%2e/x", 400, "", ""},
		{"/dashboard-apps/trans/web/", 200, "/transmission/web/?", ""},
		{"/dashboard-apps/trans/rpc", 200, "/transmission/rpc?", `{"result":"success"}`},
		{"/dashboard-apps/trans/..%2Fx", 400, "", ""},
	} {
		before := len(pageAppsLog.matching("/"))
		resp, body := get(t, tester, tc.path)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.bodyHasAny) {
			t.Errorf("%s: %d %.200s, want %d with %q", tc.path, resp.StatusCode, body, tc.status, tc.bodyHasAny)
		}
		reqs := pageAppsLog.matching("/")[before:]
		switch {
		case tc.upstream == "" && len(reqs) > 0:
			t.Errorf("%s reached the app: %s", tc.path, reqs[0].URI)
		case tc.upstream != "" && (len(reqs) != 1 || reqs[0].Path+"?"+reqs[0].Query != tc.upstream):
			t.Errorf("%s reached the app as %v, want %s", tc.path, reqs, tc.upstream)
		}
	}
}

func decodeApps(t *testing.T, body string) []appEntry {
	t.Helper()
	var list []appEntry
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return list
}

// TestBrowserPageNamedApps: the tab of an app whose url names a page with
// a query opens exactly that page, in path mode and in origin mode; a
// base_path app's page reaches its RPC endpoint above its directory.
func TestBrowserPageNamedApps(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/1/conversations/700")
	if err := waitFor(ctx, frameExpr("db", `w.document.getElementById('path') && w.document.readyState === 'complete'`), 15*time.Second); err != nil {
		t.Fatalf("the page-named app did not load: %v", err)
	}
	if got := eval[string](t, ctx, frameExpr("db", `w.location.pathname + w.location.search + ' ' + w.document.getElementById('path').textContent + '?' + w.document.getElementById('query').textContent`)); got != "/dashboard-apps/db/sqlite.php?sqlite= /adminer/sqlite.php?sqlite=" {
		t.Errorf("path mode: the tab opened %q, want /dashboard-apps/db/sqlite.php?sqlite= (upstream /adminer/sqlite.php?sqlite=)", got)
	}
	// A link relative to the page stays on it.
	eval[any](t, ctx, frameExpr("db", `(w.document.getElementById('db').click(), 1)`))
	if err := waitFor(ctx, frameExpr("db", `w.location.search === '?sqlite=&db=%2Ftmp%2Fa.db' && w.document.getElementById('query').textContent === 'sqlite=&db=%2Ftmp%2Fa.db'`), 10*time.Second); err != nil {
		t.Errorf("the page's own link: %v", err)
	}
	eval[any](t, ctx, `(document.getElementById('da-tab-trans').click(), 1)`)
	if err := waitFor(ctx, frameExpr("trans", `w.document.getElementById('rpc') && w.document.getElementById('rpc').textContent === '{"result":"success"}'`), 10*time.Second); err != nil {
		t.Errorf("the base_path app's ../rpc: %v", err)
	}
	if got := eval[string](t, ctx, frameExpr("trans", `w.location.pathname`)); got != "/dashboard-apps/trans/web/" {
		t.Errorf("the base_path app opened at %q", got)
	}

	if err := chromedp.Do(ctx,
		chromedp.Navigate(originHelpdesk+"/app/login?as=agent-7"),
		chromedp.Navigate(originHelpdesk+"/app/accounts/1/conversations/700"),
	); err != nil {
		t.Fatal(err)
	}
	db := "http://db.helpdesk.localhost:9080"
	if err := waitOriginFrame(ctx, db, `location.pathname + location.search === '/adminer/sqlite.php' + '?sqlite=' && document.getElementById('query').textContent === 'sqlite='`, 15*time.Second); err != nil {
		t.Errorf("origin mode: the page-named app did not open at its page: %v", err)
	}
}

// tplQuery is the template app's query, filled for a contact.
func tplQuery(email, conv, phone string) string {
	return "email=" + url.QueryEscape(email) + "&conv=" + conv + "&inbox=7&account=1&phone=" + url.QueryEscape(phone) +
		"&agent=7&agentmail=agent%40example.com"
}

// TestBrowserURLTemplates: an app whose url holds template variables
// opens at the URL filled from the open conversation, each value
// percent-encoded for its place, and moves there again when the agent
// opens another conversation (SPA navigation), where it gets that
// conversation's context; apps without variables keep their frame. A
// value that would climb out of the app stays encoded inside its segment:
// nothing outside the app's path is ever requested. In origin mode too.
func TestBrowserURLTemplates(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	pageAppsLog.reset()
	openSignedIn(t, ctx, "/app/accounts/1/conversations/700")
	where := frameExpr("tpl", `w.location.pathname + w.location.search`)
	atPage := func(conv string) string {
		return frameExpr("tpl", `w.document.readyState === 'complete' && !!w.document.getElementById('path') && w.got.includes(`+conv+`)`)
	}
	if err := waitFor(ctx, atPage("700"), 15*time.Second); err != nil {
		t.Fatalf("the template app did not open for conversation 700: %v (at %v)", err, eval[any](t, ctx, where))
	}
	want := "/dashboard-apps/tpl/4201/Sofia%20Martins/view?" + tplQuery("sofia@example.com", "700", "+351912345678")
	if got := eval[string](t, ctx, where); got != want {
		t.Errorf("the template app opened at\n %s\nwant\n %s", got, want)
	}
	if got := eval[string](t, ctx, frameExpr("tpl", `w.document.getElementById('path').textContent`)); got != "/tpl/contacts/4201/Sofia%20Martins/view" {
		t.Errorf("the app was asked for %q", got)
	}
	if err := waitFor(ctx, frameExpr("strings", `w.got && w.got.length > 0`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	stringsLoad := eval[float64](t, ctx, frameExpr("strings", `(w.__mark = w.__mark || Math.random())`))

	eval[any](t, ctx, `(history.pushState({}, '', '/app/accounts/1/conversations/701'), 1)`)
	if err := waitFor(ctx, atPage("701"), 10*time.Second); err != nil {
		t.Fatalf("the template app did not follow to conversation 701: %v (at %v)", err, eval[any](t, ctx, where))
	}
	want = "/dashboard-apps/tpl/4202/Liam%20O'Connor/view?" + tplQuery("liam@example.com", "701", "+353871234567")
	if got := eval[string](t, ctx, where); got != want {
		t.Errorf("after navigation the template app is at\n %s\nwant\n %s", got, want)
	}
	if got := eval[[]any](t, ctx, frameExpr("tpl", `w.got`)); len(got) == 0 || got[0] != float64(701) {
		t.Errorf("the template app's new page got %v, want conversation 701's context", got)
	}
	if err := waitFor(ctx, frameExpr("strings", `w.got.some((m) => m.conv === 701)`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := eval[float64](t, ctx, frameExpr("strings", `w.__mark`)); got != stringsLoad {
		t.Errorf("an app without variables was reloaded by the navigation")
	}

	// Values that would climb out of the app: a name "../../x" and an
	// email "%2F..@x" (conversation 702), a name ".." (703).
	for conv, segment := range map[string]string{"702": "..%2F..%2Fx", "703": "%252E%252E"} {
		eval[any](t, ctx, `(history.pushState({}, '', '/app/accounts/1/conversations/`+conv+`'), 1)`)
		if err := waitFor(ctx, frameExpr("tpl", `w.location.pathname.includes('/`+segment+`/') && w.document.readyState === 'complete'`), 10*time.Second); err != nil {
			t.Errorf("conversation %s: the frame is at %v, want the value encoded as %s inside its segment: %v", conv, eval[any](t, ctx, where), segment, err)
		}
		if got := eval[string](t, ctx, frameExpr("tpl", `w.location.pathname`)); !strings.HasPrefix(got, "/dashboard-apps/tpl/") {
			t.Errorf("conversation %s: the frame left the app: %s", conv, got)
		}
	}
	for _, r := range pageAppsLog.matching("/") {
		if !strings.HasPrefix(r.Path, "/tpl/") && !strings.HasPrefix(r.Path, "/adminer/") && !strings.HasPrefix(r.Path, "/transmission/") {
			t.Errorf("a request left its app upstream: %s", r.URI)
		}
		if strings.HasPrefix(r.Path, "/tpl/") && !strings.HasPrefix(r.Path, "/tpl/contacts/") {
			t.Errorf("a filled value climbed out of the template: %s", r.URI)
		}
	}

	// Origin mode: the frame on the app's origin follows too.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(originHelpdesk+"/app/login?as=agent-7"),
		chromedp.Navigate(originHelpdesk+"/app/accounts/1/conversations/700"),
	); err != nil {
		t.Fatal(err)
	}
	tpl := "http://tpl.helpdesk.localhost:9080"
	path := `location.pathname + location.search`
	want = "/tpl/contacts/4201/Sofia%20Martins/view?" + tplQuery("sofia@example.com", "700", "+351912345678")
	if err := waitOriginFrame(ctx, tpl, path+` === '`+want+`'`, 15*time.Second); err != nil {
		got, _ := originFrameExpr(ctx, tpl, path)
		t.Fatalf("origin mode: the template app is at %v, want %s: %v", got, want, err)
	}
	eval[any](t, ctx, `(history.pushState({}, '', '/app/accounts/1/conversations/701'), 1)`)
	want = "/tpl/contacts/4202/Liam%20O'Connor/view?" + tplQuery("liam@example.com", "701", "+353871234567")
	if err := waitOriginFrame(ctx, tpl, path+` === "`+want+`" && document.readyState === 'complete'`, 10*time.Second); err != nil {
		got, _ := originFrameExpr(ctx, tpl, path)
		t.Errorf("origin mode: after navigation the template app is at %v, want %s: %v", got, want, err)
	}
}

// TestTemplateVariablesInHostScript: every variable the registry accepts
// is one the host script fills.
func TestTemplateVariablesInHostScript(t *testing.T) {
	b, err := hostFiles.ReadFile("hostjs/host.js")
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, v := range templateVars {
		if !strings.Contains(js, "'"+v+"': (d) =>") {
			t.Errorf("the host script does not fill {%s}", v)
		}
	}
}
