package caddymodule

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// signInAs signs the browser in as a test agent (the test helpdesk's
// hd_session value), then opens page.
func signInAs(t *testing.T, ctx context.Context, session, page string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(gatewayBase+"/app/login?as="+session),
		chromedp.Navigate(gatewayBase+page),
	); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserAccountApps is the seed's flow for a helpdesk administrator:
// from the tab bar's link to the settings page, Add new → name, URL →
// Create, with the inline error of a bad URL first; an agent of the
// account, whose conversation page was open all along, sees the new tab on
// the next conversation opened, without a page load and without a reload
// of the gateway; an agent without the role sees no link and is refused
// by the API.
func TestBrowserAccountApps(t *testing.T) {
	newAccountGateway(t)

	// An agent (not an administrator) of account 2 has a conversation open.
	agent := newBrowser(t)
	signInAs(t, agent, "bo-account-2", "/app/accounts/2/conversations/123")
	if err := waitFor(agent, `document.querySelectorAll('#dashboard-apps [role=tab]').length > 0`, 15*time.Second); err != nil {
		t.Fatalf("the agent's tabs: %v", err)
	}
	if eval[bool](t, agent, `!!document.getElementById('da-tab-knowledge-base')`) {
		t.Fatalf("the app exists before it was added")
	}
	if eval[bool](t, agent, `!document.getElementById('da-manage').hidden`) {
		t.Errorf("an agent who is not an administrator sees the settings link")
	}
	eval[any](t, agent, `(window.__notReloaded = true, 1)`)

	// The administrator follows the tab bar's link.
	admin := newBrowser(t)
	openSignedIn(t, admin, "/app/accounts/2/conversations/123")
	if err := waitFor(admin, `(() => { const m = document.getElementById('da-manage'); return !!m && !m.hidden && m.getClientRects().length > 0; })()`, 15*time.Second); err != nil {
		t.Fatalf("no settings link for the administrator: %v", err)
	}
	if label := eval[string](t, admin, `document.getElementById('da-manage').getAttribute('aria-label')`); label != "Manage dashboard apps" {
		t.Errorf("link label %q", label)
	}
	screenshot(t, admin, "account-apps-link")
	if err := chromedp.Do(admin, chromedp.Click("#da-manage")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(admin, `location.pathname === '/_dashboard_apps/settings' && !!document.getElementById('loading') && document.getElementById('loading').hidden`, 15*time.Second); err != nil {
		t.Fatalf("the settings page did not load its list: %v", err)
	}
	if got := eval[string](t, admin, `location.search`); got != "?account=2&return=%2Fapp%2Faccounts%2F2%2Fconversations%2F123" {
		t.Errorf("settings link %q", got)
	}
	if n := eval[float64](t, admin, `document.querySelectorAll('#apps li[data-app-id="orders"]').length`); n != 1 {
		t.Errorf("the config app orders is not listed")
	}
	if n := eval[float64](t, admin, `document.querySelectorAll('#apps li[data-app-id="orders"] button').length`); n != 0 {
		t.Errorf("a config app has controls")
	}

	// Add new: the form opens with the focus on its first field.
	if err := chromedp.Do(admin, chromedp.Click("#add-open")); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, admin, `document.activeElement.id + ' ' + document.getElementById('add-open').getAttribute('aria-expanded')`); got != "add-name true" {
		t.Errorf("after Add new: focus and state %q", got)
	}
	if err := chromedp.Do(admin,
		chromedp.SendKeys("#add-name", "Knowledge base"),
		chromedp.SendKeys("#add-url", "ftp://kb.example/"),
		chromedp.KeyEvent(kb.Enter),
	); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(admin, `!document.getElementById('add-url-error').hidden`, 10*time.Second); err != nil {
		t.Fatalf("no inline error for a bad URL: %v", err)
	}
	state := eval[map[string]string](t, admin, `({
		error: document.getElementById('add-url-error').textContent,
		invalid: String(document.getElementById('add-url').getAttribute('aria-invalid')),
		describedby: document.getElementById('add-url').getAttribute('aria-describedby'),
		focus: document.activeElement.id,
		nameInvalid: String(document.getElementById('add-name').getAttribute('aria-invalid')),
		alert: String(document.getElementById('alert').hidden),
	})`)
	if !strings.HasPrefix(state["error"], "URL must be an absolute http or https URL") || state["invalid"] != "true" ||
		!strings.Contains(state["describedby"], "add-url-error") || state["focus"] != "add-url" || state["nameInvalid"] != "null" || state["alert"] != "true" {
		t.Errorf("the bad URL's error: %v", state)
	}
	screenshot(t, admin, "account-apps-error")

	// The right URL, then Create.
	eval[any](t, admin, `(document.getElementById('add-url').value = '', 1)`)
	if err := chromedp.Do(admin,
		chromedp.SendKeys("#add-url", pageApps.URL+"/seed/"),
		chromedp.Click(`#add-form button[type=submit]`),
	); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(admin, `!!document.querySelector('#apps li[data-app-id="knowledge-base"]') && document.getElementById('status').textContent !== ''`, 10*time.Second); err != nil {
		t.Fatalf("the new app is not listed: %v", err)
	}
	state = eval[map[string]string](t, admin, `({
		status: document.getElementById('status').textContent,
		focus: document.activeElement.id,
		form: String(document.getElementById('add').hidden),
		url: document.querySelector('#apps li[data-app-id="knowledge-base"] .app-url').textContent,
		edit: document.querySelector('#apps li[data-app-id="knowledge-base"] [data-edit]').getAttribute('aria-label'),
	})`)
	if !strings.Contains(state["status"], "Knowledge base was added") || state["focus"] != "app-knowledge-base-name" || state["form"] != "true" ||
		state["url"] != pageApps.URL+"/seed/" || state["edit"] != "Edit Knowledge base" {
		t.Errorf("after Create: %v", state)
	}
	screenshot(t, admin, "account-apps-added")

	// The agent opens the next conversation: the new tab is there, and its
	// app gets that conversation's context; no page load, no reload.
	eval[any](t, agent, `(history.pushState({}, '', '/app/accounts/2/conversations/124'), 1)`)
	if err := waitFor(agent, `!!document.getElementById('da-tab-knowledge-base')`, 10*time.Second); err != nil {
		t.Fatalf("the agent sees no new tab on the next conversation: %v", err)
	}
	if err := waitFor(agent, frameExpr("knowledge-base", `!!w.received && w.received.some((r) => r.msg.data.conversation.id === 124 && r.msg.data.conversation.account_id === 2)`), 10*time.Second); err != nil {
		t.Errorf("the new app got no context: %v", err)
	}
	if got := eval[string](t, agent, `document.getElementById('da-tab-knowledge-base').textContent + ' ' + window.__notReloaded`); got != "Knowledge base true" {
		t.Errorf("the new tab: %q", got)
	}
	screenshot(t, agent, "account-apps-agent")

	// Edit in place: the focus goes to the name, and back to Edit after
	// Save; the agent's next conversation shows the new name.
	if err := chromedp.Do(admin, chromedp.Click(`#apps li[data-app-id="knowledge-base"] [data-edit]`)); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, admin, `document.activeElement.id`); got != "edit-knowledge-base-name" {
		t.Errorf("Edit: focus on %q", got)
	}
	eval[any](t, admin, `(document.activeElement.value = '', 1)`)
	if err := chromedp.Do(admin, chromedp.SendKeys("#edit-knowledge-base-name", "Help articles"), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(admin, `document.getElementById('status').textContent.includes('Saved Help articles')`, 10*time.Second); err != nil {
		t.Fatalf("no Saved notice: %v", err)
	}
	if got := eval[string](t, admin, `document.activeElement.getAttribute('aria-label')`); got != "Edit Help articles" {
		t.Errorf("after Save: focus on %q", got)
	}
	eval[any](t, agent, `(history.pushState({}, '', '/app/accounts/2/conversations/123'), 1)`)
	if err := waitFor(agent, `document.getElementById('da-tab-knowledge-base').textContent === 'Help articles'`, 10*time.Second); err != nil {
		t.Errorf("the agent's tab is not renamed on the next conversation: %v", err)
	}

	// Remove asks first, in a modal dialog whose Escape gives the focus
	// back; confirmed, the app goes, and the agent's tab with it.
	remove := `#apps li[data-app-id="knowledge-base"] [data-remove]`
	if err := chromedp.Do(admin, chromedp.Click(remove)); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, admin, `document.getElementById('confirm').open + ' ' + document.activeElement.id + ' ' + document.getElementById('confirm-title').textContent`); got != "true confirm-cancel Remove Help articles?" {
		t.Errorf("Remove: dialog state %q", got)
	}
	if err := chromedp.Do(admin, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, admin, `document.getElementById('confirm').open + ' ' + document.activeElement.getAttribute('aria-label')`); got != "false Remove Help articles" {
		t.Errorf("Escape: dialog state %q", got)
	}
	if err := chromedp.Do(admin, chromedp.Click(remove), chromedp.Click("#confirm-remove")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(admin, `!document.querySelector('#apps li[data-app-id="knowledge-base"]') && document.activeElement.id === 'list-title'`, 10*time.Second); err != nil {
		t.Fatalf("not removed, or the focus is lost: %v", err)
	}
	if err := waitFor(admin, `document.getElementById('status').textContent.includes('Help articles was removed')`, 5*time.Second); err != nil {
		t.Errorf("after Remove: no notice: %v", err)
	}
	eval[any](t, agent, `(history.pushState({}, '', '/app/accounts/2/conversations/124'), 1)`)
	if err := waitFor(agent, `!document.getElementById('da-tab-knowledge-base')`, 10*time.Second); err != nil {
		t.Errorf("the removed app's tab stays on the next conversation: %v", err)
	}

	// An agent without the role: no link, and the API refuses.
	signInAs(t, agent, "agent-9", "/app/accounts/3/conversations/123")
	if err := waitFor(agent, `document.querySelectorAll('#dashboard-apps [role=tab]').length > 0`, 15*time.Second); err != nil {
		t.Fatalf("agent 9's tabs: %v", err)
	}
	if eval[bool](t, agent, `!document.getElementById('da-manage').hidden`) {
		t.Errorf("agent 9 sees the settings link")
	}
	statuses, err := chromedp.Run(agent, chromedp.Evaluate[[]float64](`Promise.all([
		fetch('/_dashboard_apps/accounts/3/apps', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'Mine', url: 'https://mine.example/'})}),
		fetch('/_dashboard_apps/accounts/2/apps/knowledge-base', {method: 'DELETE'}),
		fetch('/_dashboard_apps/accounts/2/apps'),
	]).then((rs) => rs.map((r) => r.status))`, chromedp.EvalAwaitPromise))
	if err != nil || len(statuses) != 3 || statuses[0] != 403 || statuses[1] != 403 || statuses[2] != 403 {
		t.Errorf("agent 9's API calls: %v %v, want 403s", statuses, err)
	}
}

// darkMode makes the page prefer a dark color scheme, or not.
func darkMode(t *testing.T, ctx context.Context, on bool) {
	t.Helper()
	value := "light"
	if on {
		value = "dark"
	}
	_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (any, error) {
		return cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: value}},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBrowserDemoAccountApps is the README's tour of the settings page, on
// the demo itself: the demo agent, an administrator of Acme Shop, follows
// the tab bar's link, adds the Help center from the page, and goes back
// to the conversation, where its tab shows the open conversation; in
// Globex Support, where the agent is not an administrator, there is no
// link and no Help center.
func TestBrowserDemoAccountApps(t *testing.T) {
	runDemo(t)
	wipeAccountApps(t)
	t.Cleanup(func() { wipeAccountApps(t) })
	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(demoHelpdesk+"/app/login")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, `(() => { const m = document.getElementById('da-manage'); return !!m && !m.hidden && m.getClientRects().length > 0; })()`, 20*time.Second); err != nil {
		t.Fatalf("no settings link for the demo agent in Acme Shop: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#da-manage")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, `location.pathname === '/_dashboard_apps/settings' && document.getElementById('loading').hidden`, 15*time.Second); err != nil {
		t.Fatalf("the settings page: %v", err)
	}
	if got := eval[string](t, ctx, `document.querySelector('.lead strong').textContent`); got != "Acme Shop" {
		t.Errorf("the page names the account %q", got)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click("#add-open"),
		chromedp.SendKeys("#add-name", "Help center"),
		chromedp.SendKeys("#add-url", "http://127.0.0.1:9106/"),
		chromedp.KeyEvent(kb.Enter),
	); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, `!!document.querySelector('#apps li[data-app-id="help-center"]')`, 10*time.Second); err != nil {
		t.Fatalf("Help center not added: %v", err)
	}
	time.Sleep(400 * time.Millisecond) // the notice's fade-in
	screenshot(t, ctx, "demo-settings")
	darkMode(t, ctx, true)
	screenshot(t, ctx, "demo-settings-dark")
	if bg := eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(17, 19, 24)" {
		t.Errorf("dark mode background %s", bg)
	}
	darkMode(t, ctx, false)

	if err := chromedp.Do(ctx, chromedp.Click("a.back")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, `!!document.getElementById('da-tab-help-center')`, 15*time.Second); err != nil {
		t.Fatalf("no Help center tab back in the conversation: %v", err)
	}
	eval[any](t, ctx, `(document.getElementById('da-tab-help-center').click(), 1)`)
	if err := waitOriginFrame(ctx, "http://help-center.helpdesk.localhost:8080", `document.getElementById('for').textContent.includes('Sofia Mart')`, 15*time.Second); err != nil {
		t.Errorf("the Help center does not show the open conversation: %v", err)
	}
	screenshot(t, ctx, "demo-help-center")

	if err := chromedp.Do(ctx, chromedp.Navigate(demoHelpdesk+"/app/accounts/2/conversations/1")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, `!!document.getElementById('da-tab-billing')`, 15*time.Second); err != nil {
		t.Fatalf("no tabs in Globex Support: %v", err)
	}
	if eval[bool](t, ctx, `!document.getElementById('da-manage').hidden || !!document.getElementById('da-tab-help-center')`) {
		t.Errorf("Globex Support shows the settings link or Acme Shop's app")
	}
}
