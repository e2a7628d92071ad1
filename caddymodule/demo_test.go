package caddymodule

import (
	"encoding/json"
	"net"
	"os"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/chromedp/chromedp"
)

// TestBrowserDemo runs the demo Caddyfile itself, as `go run ./cmd/caddy
// run` does, signs in as the demo agent and checks that the tabs' apps
// show the open conversation's contact, across SPA navigation and
// accounts.
func TestBrowserDemo(t *testing.T) {
	runDemo(t)
	ctx := newBrowser(t)

	// The README's first URL lands in the demo, on the helpdesk's name.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://localhost:8080/")); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, ctx, `location.origin`); got != demoHelpdesk {
		t.Errorf("http://localhost:8080/ landed on %s, want %s", got, demoHelpdesk)
	}
	screenshot(t, ctx, "demo-landing")
	if err := chromedp.Do(ctx, chromedp.Navigate(demoHelpdesk+"/app/login")); err != nil {
		t.Fatal(err)
	}
	// Each app on its own origin (origin mode): the checks run in the
	// app's frame, which the helpdesk page itself cannot reach.
	orders := "http://orders.helpdesk.localhost:8080"
	if err := waitOriginFrame(ctx, orders, `document.body.innerText.includes('#1042')`, 20*time.Second); err != nil {
		t.Fatalf("the Orders tab does not show Sofia's orders: %v", err)
	}
	screenshot(t, ctx, "demo-conversation")

	// Another conversation, SPA style: the apps follow without reloading.
	if _, err := originFrameExpr(ctx, orders, `document.documentElement.dataset.testMark = 'kept'`); err != nil {
		t.Fatal(err)
	}
	eval[any](t, ctx, `(document.querySelector('a[href="/app/accounts/1/conversations/2"]').click(), 1)`)
	if err := waitOriginFrame(ctx, orders, `document.body.innerText.includes('#1051')`, 10*time.Second); err != nil {
		t.Fatalf("the Orders tab does not follow to Liam's conversation: %v", err)
	}
	if got, _ := originFrameExpr(ctx, orders, `document.documentElement.dataset.testMark`); got != "kept" {
		t.Errorf("the Orders app reloaded on navigation")
	}
	eval[any](t, ctx, `(document.getElementById('da-tab-crm').click(), 1)`)
	if err := waitOriginFrame(ctx, "http://crm.helpdesk.localhost:8080", `document.body.innerText.includes("Liam O'Connor")`, 10*time.Second); err != nil {
		t.Errorf("the CRM tab does not show Liam: %v", err)
	}

	// Notes: its script reads its CSRF cookie by name and calls its
	// root-relative API with it, on its own origin, untouched.
	eval[any](t, ctx, `(document.getElementById('da-tab-notes').click(), 1)`)
	notes := "http://notes.helpdesk.localhost:8080"
	if err := waitOriginFrame(ctx, notes, `document.querySelector('#cookie.ok') && document.querySelector('#api.ok') && !document.getElementById('form').hidden`, 10*time.Second); err != nil {
		t.Errorf("the Notes app's script does not work in its tab: %v", err)
	}
	screenshot(t, ctx, "demo-notes")

	// Account 2 has the Billing app; account 1 does not.
	if eval[bool](t, ctx, `!!document.getElementById('da-tab-billing') && !document.getElementById('da-tab-billing').hidden`) {
		t.Errorf("Billing shows in account 1")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(demoHelpdesk+"/app/accounts/2/conversations/1")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, `!!document.getElementById('da-tab-billing')`, 15*time.Second); err != nil {
		t.Errorf("no Billing tab in account 2: %v", err)
	}
	screenshot(t, ctx, "demo-account-2")
}

// demoHelpdesk is where the demo serves the helpdesk.
const demoHelpdesk = "http://helpdesk.localhost:8080"

// runDemo serves the demo Caddyfile itself, as `go run ./cmd/caddy run`
// does, through the tests' Caddy (its admin endpoint, and the demo's
// relative file paths resolved from the repository root), and unloads it
// afterwards, so that the next test finds the demo's ports free. With a
// port taken (the demo running) the test is skipped, except in CI.
func runDemo(t *testing.T) {
	t.Helper()
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:9101", "127.0.0.1:9105", "127.0.0.1:9106"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the demo's port %s is taken: %v", addr, err)
			}
			t.Skipf("the demo's port %s is taken (is the demo running?): %v", addr, err)
		}
		ln.Close()
	}
	src, err := os.ReadFile("../Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	cfgJSON, warnings, err := adaptCaddyfile(src, "Caddyfile")
	if err != nil || len(warnings) > 0 {
		t.Fatalf("adapting the demo: %v %v", err, warnings)
	}
	var cfg map[string]any
	json.Unmarshal(cfgJSON, &cfg)
	cfg["admin"] = map[string]any{"listen": "localhost:2999"}
	cfgJSON, _ = json.Marshal(cfg)
	wd, _ := os.Getwd()
	if err := os.Chdir(".."); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
	tester := caddytest.NewTester(t)
	tester.InitServer(string(cfgJSON), "json")
	t.Cleanup(func() { tester.InitServer(`{"admin": {"listen": "localhost:2999"}}`, "json") })
}
