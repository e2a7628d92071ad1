package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is truthy.
func waitFor(ctx context.Context, expr string, timeout time.Duration) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[any](expr, chromedp.WithPollingTimeout(timeout)))
	return err
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
	if err := chromedp.Do(ctx, chromedp.Navigate(gatewayBase+"/app/frame-test")); err != nil {
		t.Fatal(err)
	}
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
