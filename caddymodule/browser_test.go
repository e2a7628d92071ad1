package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// newBrowser starts headless Chromium for a test and returns a context
// driving one tab. Without Chromium the test is skipped, except in CI
// (CI=true), where the browser tests are required.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium is required in CI: apt-get install -y chromium")
		}
		t.Skip("browser test skipped: no chromium on PATH (apt-get install -y chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	// The first call starts the browser and must not carry a timeout: it
	// would stop the browser; the timeout goes on a derived context.
	if err := chromedp.Do(browserCtx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	ctx, cancelTimeout := context.WithTimeout(browserCtx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx
}

// eval evaluates a JavaScript expression in the page; a promise is
// awaited.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is truthy. A poll that
// starts while a navigation replaces the page loses its JavaScript context
// ("Cannot find context with specified id"); it is started again.
func waitFor(ctx context.Context, expr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[any](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves a PNG of the page when SCREENSHOT_DIR is set, for a
// person to look at.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; below it, JPEG
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	os.WriteFile(dir+"/"+name+".png", png, 0o644)
}

// framedApp is an app that refuses to be framed and assumes it owns its
// origin: an absolute redirect to its start page, a Domain cookie,
// root-relative stylesheet, script and links.
func framedApp() http.Handler {
	mux := http.NewServeMux()
	hostile := func(w http.ResponseWriter) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/home", http.StatusFound)
	})
	mux.HandleFunc("/home", func(w http.ResponseWriter, r *http.Request) {
		hostile(w)
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "agent-session", Domain: "127.0.0.1", Path: "/"})
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><html><head><link rel="stylesheet" href="/app.css"><script src="/app.js" defer></script></head>`+
			`<body><h1 id="title">Orders</h1><a id="next" href="/next">next</a></body></html>`)
	})
	mux.HandleFunc("/app.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, `#title { color: rgb(1, 2, 3); }`)
	})
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.body.dataset.script = "ran";`)
	})
	mux.HandleFunc("/next", func(w http.ResponseWriter, r *http.Request) {
		hostile(w)
		c, _ := r.Cookie("sid")
		val := "none"
		if c != nil {
			val = c.Value
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><p id="cookie">%s</p>`, val)
	})
	return mux
}

// TestBrowserFramesAHostileApp loads, in a page of the helpdesk's site, an
// iframe of an app that forbids framing, and checks that it loads, styles,
// runs its script, keeps its cookie and follows its links.
func TestBrowserFramesAHostileApp(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	frameJS := func(expr string) string {
		return `(() => { const d = document.querySelector("iframe").contentDocument; return d ? (` + expr + `) : "no document"; })()`
	}
	openSignedIn(t, ctx, "/app/frame-test")
	if err := waitFor(ctx, frameJS(`d.getElementById("title") !== null && d.body.dataset.script === "ran"`), 15*time.Second); err != nil {
		t.Fatalf("the framed app did not load: %v", err)
	}
	title := eval[string](t, ctx, frameJS(`d.getElementById("title").textContent`))
	color := eval[string](t, ctx, frameJS(`getComputedStyle(d.getElementById("title")).color`))
	script := eval[string](t, ctx, frameJS(`d.body.dataset.script`))
	frameURL := eval[string](t, ctx, frameJS(`d.location.pathname`))
	screenshot(t, ctx, "framed-app")
	if title != "Orders" || color != "rgb(1, 2, 3)" || script != "ran" || frameURL != "/dashboard-apps/framed/home" {
		t.Errorf("framed app: title %q, color %q, script %q, at %q", title, color, script, frameURL)
	}
	eval[string](t, ctx, frameJS(`(d.getElementById("next").click(), "clicked")`))
	if err := waitFor(ctx, frameJS(`d.getElementById("cookie") !== null`), 10*time.Second); err != nil {
		t.Fatalf("following the app's root-relative link: %v", err)
	}
	cookie := eval[string](t, ctx, frameJS(`d.getElementById("cookie").textContent`))
	if cookie != "agent-session" {
		t.Errorf("the app's cookie did not come back to it: %q", cookie)
	}
	if pageCookies := eval[string](t, ctx, `document.cookie`); strings.Contains(pageCookies, "agent-session") {
		t.Errorf("the app's cookie is visible to the helpdesk page: %q", pageCookies)
	}
}

// frameExpr evaluates expr with w bound to the window of app id's iframe.
func frameExpr(id, expr string) string {
	return `(() => { const f = document.querySelector('#dashboard-apps iframe[data-app-id="` + id + `"]');` +
		` const w = f && f.contentWindow; if (!w || !w.document || !w.document.body) return null; return (` + expr + `); })()`
}

// openSignedIn signs the browser in as agent 7, then opens page.
func openSignedIn(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(gatewayBase+"/app/login?as=agent-7"),
		chromedp.Navigate(gatewayBase+page),
	); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserConversationTabs opens a conversation of the test helpdesk
// through the gateway and checks what an agent sees and what apps receive.
func TestBrowserConversationTabs(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/1/conversations/123")
	if err := waitFor(ctx, `document.querySelectorAll('#dashboard-apps [role=tab]').length > 0`, 15*time.Second); err != nil {
		t.Fatalf("no tabs appeared: %v", err)
	}

	// Tabs: inside the sidebar, in order, only the apps agent 7 may use in
	// account 1 and inbox 1, names as text.
	tabs := eval[[]string](t, ctx, `[...document.querySelectorAll('#dashboard-apps [role=tab]')].filter(t => !t.hidden).map(t => t.dataset.appId)`)
	want := []string{"seed", "cw", "down", "framed", "ident", "orders", "probe", "signed", "slow", "tools", "wiki"}
	if strings.Join(tabs, ",") != strings.Join(want, ",") {
		t.Errorf("tabs = %v, want %v", tabs, want)
	}
	if !eval[bool](t, ctx, `!!document.querySelector('.conversation-sidebar #dashboard-apps [role=tablist]')`) {
		t.Errorf("the tabs are not inside the sidebar")
	}
	if got := eval[string](t, ctx, `document.getElementById('da-tab-cw').textContent`); !strings.Contains(got, "CW <Card>") {
		t.Errorf("app name not shown as text: %q", got)
	}

	// The seed's listener receives the seed's payload, on load.
	if err := waitFor(ctx, frameExpr("seed", `w.received && w.received.length > 0`), 10*time.Second); err != nil {
		t.Fatalf("the seed app got no appContext: %v", err)
	}
	msg := eval[map[string]any](t, ctx, frameExpr("seed", `w.received[0].msg`))
	data := msg["data"].(map[string]any)
	conv := data["conversation"].(map[string]any)
	contact := conv["contact"].(map[string]any)
	agent := data["currentAgent"].(map[string]any)
	if msg["event"] != "appContext" || conv["id"] != float64(123) || contact["email"] != "jane@example.com" || agent["id"] != float64(7) || data["token"] == nil {
		t.Errorf("appContext = %v", msg)
	}
	delay := eval[float64](t, ctx, frameExpr("seed", `w.received[0].at - w.loadedAt`))
	t.Logf("iframe load to first appContext: %.1f ms", delay)
	if out := eval[string](t, ctx, frameExpr("seed", `w.document.getElementById('out').textContent`)); out != "jane@example.com for Support Agent" {
		t.Errorf("seed app shows %q", out)
	}

	// The Chatwoot-style app asked with the string form and gets strings.
	if err := waitFor(ctx, frameExpr("cw", `w.received && w.received.length > 0`), 10*time.Second); err != nil {
		t.Fatalf("the json_string app got no appContext: %v", err)
	}
	if n := eval[float64](t, ctx, frameExpr("cw", `w.objects`)); n != 0 {
		t.Errorf("the json_string app got %v objects", n)
	}

	// fetch-info is answered to its requester only; messages from the page
	// itself or from a frame nested in an app are ignored.
	seedBefore := eval[float64](t, ctx, frameExpr("seed", `w.received.length`))
	cwBefore := eval[float64](t, ctx, frameExpr("cw", `w.received.length`))
	// w.eval runs in the app's own realm, so the app is event.source.
	eval[any](t, ctx, frameExpr("cw", `(w.eval("parent.postMessage({event: 'fetch-info'}, '*')"), 1)`))
	if err := waitFor(ctx, frameExpr("cw", `w.received.length > `+fmt.Sprint(cwBefore)), 5*time.Second); err != nil {
		t.Fatalf("fetch-info not answered: %v", err)
	}
	eval[any](t, ctx, `(window.postMessage({event: 'fetch-info'}, '*'), window.postMessage('chatwoot-dashboard-app:fetch-info', '*'), 1)`)
	eval[any](t, ctx, frameExpr("seed", `(() => { const n = w.document.createElement('iframe'); n.srcdoc = "<script>parent.parent.postMessage({event:'fetch-info'}, '*'); parent.parent.postMessage('chatwoot-dashboard-app:fetch-info', '*')<\/script>"; w.document.body.appendChild(n); return 1; })()`))
	time.Sleep(500 * time.Millisecond)
	if n := eval[float64](t, ctx, frameExpr("seed", `w.received.length`)); n != seedBefore {
		t.Errorf("seed app received %v messages it did not ask for (had %v)", n, seedBefore)
	}

	// SPA navigation: the open conversation changes, apps get the new
	// context without reloading.
	loadID := eval[float64](t, ctx, frameExpr("seed", `w.loadId`))
	eval[any](t, ctx, `(history.pushState({}, '', '/app/accounts/1/conversations/124'), 1)`)
	if err := waitFor(ctx, frameExpr("seed", `w.received.length > 0 && w.received[w.received.length-1].msg.data.conversation.id === 124`), 10*time.Second); err != nil {
		t.Fatalf("no context after SPA navigation: %v", err)
	}
	if got := eval[float64](t, ctx, frameExpr("seed", `w.loadId`)); got != loadID {
		t.Errorf("the seed app was reloaded by the navigation")
	}
	if err := waitFor(ctx, frameExpr("cw", `w.received[w.received.length-1].data.contact.name === "John Roe"`), 10*time.Second); err != nil {
		got := eval[string](t, ctx, frameExpr("cw", `w.received[w.received.length-1].data.contact.name`))
		t.Errorf("json_string app shows %q after navigation", got)
	}

	// A down app shows its error inside its own tab; the rest work.
	eval[any](t, ctx, `(document.getElementById('da-tab-down').click(), 1)`)
	if err := waitFor(ctx, frameExpr("down", `w.document.title === 'App unavailable'`), 10*time.Second); err != nil {
		t.Errorf("the down app's tab shows no error page: %v", err)
	}
	eval[any](t, ctx, `(document.getElementById('da-tab-seed').click(), 1)`)
	screenshot(t, ctx, "conversation-tabs")
	if sel := eval[string](t, ctx, `document.querySelector('#dashboard-apps [role=tab][aria-selected=true]').dataset.appId`); sel != "seed" {
		t.Errorf("selected tab = %q", sel)
	}
}

// TestBrowserAgentOnlyAppsAndIdentity: an anonymous iframe shows the
// sign-in page; a signed-in agent's identity app sees its verified headers
// and nothing a client sent.
func TestBrowserAgentOnlyAppsAndIdentity(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(gatewayBase+"/dashboard-apps/ident/")); err != nil {
		t.Fatal(err)
	}
	if body := eval[string](t, ctx, `document.body.innerText`); !strings.Contains(body, "Sign in to the helpdesk") {
		t.Errorf("anonymous visitor sees %q", body)
	}
	screenshot(t, ctx, "sign-in-page")
	openSignedIn(t, ctx, "/app/accounts/1/conversations/123")
	if err := waitFor(ctx, frameExpr("ident", `!!w.document.getElementById('who')`), 15*time.Second); err != nil {
		t.Fatalf("identity app did not load: %v", err)
	}
	headers := eval[map[string]string](t, ctx, frameExpr("ident",
		`Object.fromEntries([...w.document.querySelectorAll('[data-header]')].map(p => [p.dataset.header, p.textContent]))`))
	for name, want := range map[string]string{
		"X-Dashboard-Agent-Id": "7", "X-Dashboard-Agent-Email": "agent@example.com", "X-Dashboard-Agent-Name": "Support Agent",
		"X-Dashboard-Agent-Role": "agent", "X-Dashboard-Account-Id": "1",
	} {
		if headers[name] != want {
			t.Errorf("%s = %q, want %q", name, headers[name], want)
		}
	}
	if a := headers["X-Dashboard-Agent-Assertion"]; strings.Count(a, ".") != 2 {
		t.Errorf("assertion %q", a)
	}
}

// TestBrowserStrictHelpdeskCSP: on a helpdesk page whose CSP allows only
// nonce'd scripts and no frames, the injected host script still runs (with
// the page's nonce), its stylesheet loads, its API calls and app frames
// are let through, and the browser reports no violation.
func TestBrowserStrictHelpdeskCSP(t *testing.T) {
	newGateway(t)
	ctx := newBrowser(t)
	openSignedIn(t, ctx, "/app/accounts/1/conversations/123?strict")
	if err := waitFor(ctx, frameExpr("seed", `w.received && w.received.length > 0`), 15*time.Second); err != nil {
		t.Fatalf("no app got its context under a strict CSP: %v", err)
	}
	if v := eval[[]string](t, ctx, `window.violations`); len(v) > 0 {
		t.Errorf("CSP violations: %v", v)
	}
	if n := eval[string](t, ctx, `document.querySelector('script[src^="/_dashboard_apps/host.js"]').nonce`); n != strictNonce {
		t.Errorf("host script nonce %q", n)
	}
	if bg := eval[string](t, ctx, `getComputedStyle(document.querySelector('#dashboard-apps [role=tablist]')).display`); bg == "" || bg == "inline" {
		t.Errorf("host stylesheet not applied (tablist display %q)", bg)
	}
}

// originFrameExpr evaluates a JavaScript expression in the document of the
// page's frame on origin (an app on an origin of its own, which the page's
// scripts cannot reach), in an isolated world of that frame: it shares the
// frame's DOM, not its scripts' globals. It returns nil while there is no
// such frame or document. A promise is awaited.
func originFrameExpr(ctx context.Context, origin, expr string) (any, error) {
	return chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (any, error) {
		tree, err := cdp.Call(ctx, t, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		var find func(*page.FrameTree) *cdp.Frame
		find = func(ft *page.FrameTree) *cdp.Frame {
			if ft == nil {
				return nil
			}
			if ft.Frame != nil && ft.Frame.ParentID != "" && strings.HasPrefix(ft.Frame.URL, origin+"/") {
				return ft.Frame
			}
			for _, c := range ft.ChildFrames {
				if f := find(c); f != nil {
					return f
				}
			}
			return nil
		}
		f := find(tree.FrameTree)
		if f == nil {
			return nil, nil
		}
		world, err := cdp.Call(ctx, t, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: f.ID, WorldName: "test"})
		if err != nil {
			return nil, err
		}
		yes := true
		r, err := cdp.Call(ctx, t, runtime.Evaluate, runtime.EvaluateParams{Expression: expr, ContextID: world.ExecutionContextID, ReturnByValue: &yes, AwaitPromise: &yes})
		if err != nil {
			return nil, err
		}
		if r.ExceptionDetails != nil {
			return nil, fmt.Errorf("%s: %s", expr, r.ExceptionDetails.Text)
		}
		var v any
		if len(r.Result.Value) > 0 {
			err = json.Unmarshal(r.Result.Value, &v)
		}
		return v, err
	})
}

// waitOriginFrame polls originFrameExpr until it is truthy.
func waitOriginFrame(ctx context.Context, origin, expr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		v, err := originFrameExpr(ctx, origin, expr)
		if err == nil && v != nil && v != false && v != "" {
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s on %s: not true within %v (last error: %v)", expr, origin, timeout, last)
}
