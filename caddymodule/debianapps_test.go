package caddymodule

// Real third-party web apps, installed from Debian's packages, behind the
// gateway in Chromium: in origin mode (each app on its own origin, nothing
// but its URL registered) and in path mode (under /dashboard-apps/<id>/ on
// the helpdesk's origin), where what breaks today is named, not failed.
//
// Each app runs on 127.0.0.1 only, with its data in the test's temporary
// directory, and is stopped by the test. Without its package the test is
// skipped, except in CI (CI=true), where .ci/run installs it.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// requireDebianPackage skips the test unless pkg's files are installed;
// in CI a missing package fails it.
func requireDebianPackage(t *testing.T, pkg string, files ...string) {
	t.Helper()
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI (apt-get install -y %s): %v", f, pkg, err)
			}
			t.Skipf("Debian app test skipped: %s missing (apt-get install -y %s)", f, pkg)
		}
	}
}

// lockedBuffer collects a daemon's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon runs an app's server in its own process group until the test
// ends, then stops the group (SIGTERM, then SIGKILL). Its output is logged
// when the test fails.
func startDaemon(t *testing.T, env []string, name string, args ...string) (pgid int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), tail(out.String(), 4000))
		}
	})
	return cmd.Process.Pid
}

// loopbackOnly fails the test if a process of group pgid has a socket
// bound to an address other than loopback (TCP listening, or UDP).
func loopbackOnly(t *testing.T, pgid int) {
	t.Helper()
	inodes := map[string]bool{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		stat, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 3 || f[2] != fmt.Sprint(pgid) {
			continue
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			}
		}
	}
	bound := 0
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, _ := os.ReadFile("/proc/net/" + table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] || strings.HasPrefix(table, "tcp") && f[3] != "0A" {
				continue
			}
			bound++
			addr := f[1][:strings.IndexByte(f[1], ':')]
			if addr != "0100007F" && addr != "00000000000000000000000001000000" {
				t.Errorf("%s socket bound to %s (hex), not loopback", table, f[1])
			}
		}
	}
	if bound == 0 {
		t.Errorf("no listening socket found for process group %d", pgid)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// waitHTTP waits until url answers with any HTTP status.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// registerDebianApp adds the app to the shared config through Caddy's admin
// API, with nothing but its name and URL, first in the tab order; the
// shared config is loaded again when the test ends.
func registerDebianApp(t *testing.T, id, name, appURL string, extra ...any) {
	t.Helper()
	cfg := map[string]any{"name": name, "url": appURL, "position": -10}
	for i := 0; i+1 < len(extra); i += 2 {
		cfg[extra[i].(string)] = extra[i+1]
	}
	body, _ := json.Marshal(cfg)
	if status, msg := adminDo(t, "PUT", "/config/apps/dashboard_apps/apps/"+id, string(body)); status != 200 {
		t.Fatalf("registering %s: %d %s", id, status, msg)
	}
	t.Cleanup(func() { restoreGateway(t) })
}

// openAppTab signs agent 7 in on the helpdesk at base (gatewayBase: path
// mode; originHelpdesk: origin mode), opens conversation 123 and selects
// app id's tab.
func openAppTab(t *testing.T, ctx context.Context, base, id string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/app/login?as=agent-7"),
		chromedp.Navigate(base+"/app/accounts/1/conversations/123"),
	); err != nil {
		t.Fatal(err)
	}
	tab := `document.getElementById('da-tab-` + id + `')`
	if err := waitFor(ctx, `!!`+tab, 15*time.Second); err != nil {
		t.Fatalf("no tab for %s: %v", id, err)
	}
	eval[any](t, ctx, `(`+tab+`.click(), 1)`)
}

// appFrame evaluates JavaScript inside the frame of app id, on whatever
// origin it is: Chromium keeps a frame of the same site (the helpdesk's
// *.localhost subdomains and localhost alike) in the page's process, and
// chromedp knows the execution context of each of the page's frames, so
// the expression runs in the app's own realm with the app's globals.
type appFrame struct {
	t   *testing.T
	ctx context.Context
	id  string
}

// poll waits until expr is truthy in the app's frame and returns its value.
// A poll that meets a navigation of the frame starts again.
func appPoll[T any](f appFrame, expr string, timeout time.Duration) (T, error) {
	var zero T
	deadline := time.Now().Add(timeout)
	sel := `#dashboard-apps iframe[data-app-id="` + f.id + `"]`
	for {
		nodes, err := chromedp.Run(f.ctx, chromedp.Nodes(chromedp.CSS(sel), chromedp.AtLeast(0)))
		if err == nil && len(nodes) == 0 {
			err = fmt.Errorf("no frame %s", sel)
		}
		if err == nil {
			var v T
			left := time.Until(deadline)
			if left <= 0 {
				left = time.Millisecond
			}
			v, err = chromedp.Run(f.ctx, chromedp.Poll[T](expr, chromedp.WithPollingInFrame(nodes[0]),
				chromedp.WithPollingTimeout(min(left, 2*time.Second)), chromedp.WithPollingInterval(100*time.Millisecond)))
			if err == nil {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			return zero, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wait fails the test unless expr becomes truthy in the frame in time.
func (f appFrame) wait(what, expr string, timeout time.Duration) bool {
	f.t.Helper()
	if _, err := appPoll[any](f, expr, timeout); err != nil {
		state, _ := appPoll[any](f, `({href: location.href, title: document.title, text: document.body?.innerText.slice(0, 300)})`, time.Second)
		f.t.Errorf("%s: %s: not so within %v (%v); the frame: %v", f.id, what, timeout, err, state)
		return false
	}
	return true
}

// value returns expr's value in the frame, whatever it is.
func frameValue[T any](f appFrame, expr string) T {
	f.t.Helper()
	v, err := appPoll[struct{ V T }](f, `({V: (`+expr+`)})`, 5*time.Second)
	if err != nil {
		f.t.Fatalf("%s: evaluating %s: %v", f.id, expr, err)
	}
	return v.V
}

// debianApp is one app under test: how to start it, and what it must do
// in its frame.
type debianApp struct {
	id, name string
	// start checks that the package is installed, starts the app and
	// returns its entry URL, as an operator would register it.
	start func(t *testing.T) string
}

// appRun is an app opened in its tab: its frame, the requests of the
// page and its frames, and the URL it was registered with.
type appRun struct {
	appFrame
	net *netRecorder
	url string
}

// openDebianApp starts app, registers it with nothing but its name and URL
// (plus extra fields, if any) and opens its tab on the helpdesk at base.
func openDebianApp(t *testing.T, app debianApp, base string, extra ...any) appRun {
	t.Helper()
	newGateway(t)
	ctx := newBrowser(t)
	rec := recordNetwork(t, ctx)
	appURL := app.start(t)
	registerDebianApp(t, app.id, app.name, appURL, extra...)
	openAppTab(t, ctx, base, app.id)
	return appRun{appFrame: appFrame{t: t, ctx: ctx, id: app.id}, net: rec, url: appURL}
}

// outside returns the requests of the app's frame whose URL is not under
// prefix: in path mode, what escaped the app's prefix.
func (a appRun) outside(prefix string) []string {
	a.t.Helper()
	nodes, err := chromedp.Run(a.ctx, chromedp.Nodes(chromedp.CSS(`#dashboard-apps iframe[data-app-id="`+a.id+`"]`)))
	if err != nil || len(nodes) == 0 {
		a.t.Fatalf("no frame for %s: %v", a.id, err)
	}
	frame := string(nodes[0].FrameID)
	var out []string
	for _, e := range a.net.matching("") {
		if e.Frame == frame && !strings.HasPrefix(e.URL, prefix) && !strings.HasPrefix(e.URL, "data:") &&
			!strings.Contains(e.URL, ownPrefix) && !slices.Contains(out, e.String()) { // the gateway's own files (the shim) are not escapes
			out = append(out, e.String())
		}
	}
	return out
}

// shot saves a PNG of the helpdesk page with the app's tab when
// SCREENSHOT_DIR is set, once the frame has painted what was checked.
func (a appRun) shot(name string) {
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	appPoll[any](a.appFrame, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))`, 2*time.Second)
	png, err := chromedp.Run(a.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		a.t.Logf("screenshot: %v", err)
		return
	}
	os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}

// netEntry is one request the browser sent, and how it ended.
type netEntry struct {
	Method, URL, Type string
	Status            int64
	Failed            string
	Frame             string
}

func (e *netEntry) String() string {
	end := fmt.Sprint(e.Status)
	if e.Failed != "" {
		end = e.Failed
	}
	return fmt.Sprintf("%s %s (%s) -> %s", e.Method, e.URL, e.Type, end)
}

// netRecorder keeps every request of the tab, its frames' included.
type netRecorder struct {
	mu      sync.Mutex
	entries []*netEntry
	byID    map[network.RequestID]*netEntry
}

func recordNetwork(t *testing.T, ctx context.Context) *netRecorder {
	t.Helper()
	r := &netRecorder{byID: map[network.RequestID]*netEntry{}}
	err := chromedp.Listen(ctx, func(ev any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if prev := r.byID[ev.RequestID]; prev != nil && ev.RedirectResponse != nil {
				prev.Status = ev.RedirectResponse.Status
			}
			e := &netEntry{Method: ev.Request.Method, URL: ev.Request.URL, Type: string(ev.Type), Frame: string(ev.FrameID)}
			r.byID[ev.RequestID] = e
			r.entries = append(r.entries, e)
		case *network.EventResponseReceived:
			if e := r.byID[ev.RequestID]; e != nil {
				e.Status = ev.Response.Status
			}
		case *network.EventLoadingFailed:
			if e := r.byID[ev.RequestID]; e != nil {
				e.Failed = ev.ErrorText
				if ev.BlockedReason != "" {
					e.Failed += " (blocked: " + string(ev.BlockedReason) + ")"
				}
			}
		}
	})
	if err != nil { // chromedp enables the Network domain of every tab
		t.Fatal(err)
	}
	return r
}

// matching returns the requests whose URL starts with prefix.
func (r *netRecorder) matching(prefix string) []*netEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*netEntry
	for _, e := range r.entries {
		if strings.HasPrefix(e.URL, prefix) {
			c := *e
			out = append(out, &c)
		}
	}
	return out
}

// failures returns the requests under prefix that failed or were answered
// with a status of 400 or more, except those in ok.
func (r *netRecorder) failures(prefix string, ok ...int64) []string {
	var out []string
	for _, e := range r.matching(prefix) {
		// A request the page itself dropped by navigating away is no failure.
		if e.Failed != "" && e.Failed != "net::ERR_ABORTED" || e.Status >= 400 && !slices.Contains(ok, e.Status) {
			out = append(out, e.String())
		}
	}
	return out
}

func md5hex(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }

// transmission: the daemon's web UI at /transmission/web/ calls its RPC at
// ../rpc, above the page's directory, and answers the first call with 409
// and an X-Transmission-Session-Id that every later call must carry.
var transmissionApp = debianApp{id: "transmission", name: "Transmission", start: func(t *testing.T) string {
	requireDebianPackage(t, "transmission-daemon", "/usr/bin/transmission-daemon", "/usr/share/transmission/web/index.html")
	dir := t.TempDir()
	port := loopbackPort(t)
	pg := startDaemon(t, nil, "/usr/bin/transmission-daemon", "--foreground", "--config-dir", dir+"/config",
		"--port", fmt.Sprint(port), "--rpc-bind-address", "127.0.0.1", "--no-auth", "--allowed", "127.0.0.1",
		"--download-dir", dir+"/downloads", "--no-watch-dir", "--no-portmap", "--no-dht", "--no-lpd", "--no-utp",
		"--peerport", fmt.Sprint(loopbackPort(t)), "--bind-address-ipv4", "127.0.0.1", "--bind-address-ipv6", "::1",
		"--no-blocklist", "--log-error")
	u := fmt.Sprintf("http://127.0.0.1:%d/transmission/web/", port)
	waitHTTP(t, u)
	loopbackOnly(t, pg)
	return u
}}

// testTorrent is the metainfo of a one-file torrent, base64-encoded as
// torrent-add takes it; no tracker, so nothing leaves the machine.
func testTorrent() string {
	piece := bytes.Repeat([]byte("x"), 1000)
	sum := sha1.Sum(piece)
	info := fmt.Sprintf("d6:lengthi%de4:name%d:%s12:piece lengthi16384e6:pieces20:%se", len(piece), len("order-4711.pdf"), "order-4711.pdf", sum[:])
	return base64.StdEncoding.EncodeToString([]byte("d4:info" + info + "e"))
}

// transmissionChecks: styled, scripted, the 409 session-id exchange done,
// and the app's own RPC client adding a torrent (listed by the UI from
// torrent-get) and reading the session's statistics.
func transmissionChecks(t *testing.T, f appFrame) {
	f.wait("the stylesheet applied", `getComputedStyle(document.getElementById('toolbar')).backgroundImage !== 'none'`, 5*time.Second)
	if !f.wait("the X-Transmission-Session-Id from the 409 kept", `window.transmission && transmission.remote._token.length > 10`, 20*time.Second) {
		return
	}
	frameValue[any](f, `(transmission.remote.sendRequest({method: 'torrent-add', arguments: {metainfo: '`+testTorrent()+`', paused: true}},
		r => { window.debianAdded = r; transmission.refreshTorrents(); }), 1)`)
	f.wait("the added torrent listed", `[...document.querySelectorAll('.torrent_name')].some(e => e.textContent === 'order-4711.pdf')`, 20*time.Second)
	frameValue[any](f, `(transmission.remote.loadDaemonStats(r => window.debianStats = r), 1)`)
	if stats, err := appPoll[map[string]any](f, `window.debianStats`, 5*time.Second); err != nil || stats["result"] != "success" {
		t.Errorf("session-stats through the app's RPC client: %v %v", stats, err)
	}
}

func TestBrowserDebianTransmissionOriginMode(t *testing.T) {
	a := openDebianApp(t, transmissionApp, originHelpdesk)
	origin := "http://transmission.helpdesk.localhost:9080"
	if !a.wait("the web UI on its own origin", `location.href === '`+origin+`/transmission/web/' && typeof transmission === 'object'`, 15*time.Second) {
		return
	}
	transmissionChecks(t, a.appFrame)
	a.shot("debian-transmission-origin")
	// The first RPC call's 409 is the app's CSRF exchange; nothing else failed.
	if bad := a.net.failures(origin, 409); len(bad) > 0 {
		t.Errorf("failed requests on the app's origin: %q", bad)
	}
	if rpc := a.net.matching(origin + "/transmission/rpc"); len(rpc) < 3 {
		t.Errorf("RPC calls at ../rpc: %v", rpc)
	}
}

// TestBrowserDebianTransmissionPathMode: registered with its URL alone,
// the web UI loads, styled and scripted, under /dashboard-apps/transmission/,
// but its RPC at ../rpc climbs out of the app's prefix.
func TestBrowserDebianTransmissionPathMode(t *testing.T) {
	a := openDebianApp(t, transmissionApp, gatewayBase)
	prefix := gatewayBase + "/dashboard-apps/transmission/"
	if !a.wait("the web UI under the prefix, scripted", `location.href === '`+prefix+`' && typeof Transmission === 'function' && !!document.getElementById('filter-count')`, 15*time.Second) {
		return
	}
	a.wait("the stylesheet applied", `getComputedStyle(document.getElementById('toolbar')).backgroundImage !== 'none'`, 5*time.Second)
	rpcURL := frameValue[string](a.appFrame, `new URL(RPC._Root, location.href).href`)
	_, err := appPoll[any](a.appFrame, `window.transmission && transmission.remote._token`, 5*time.Second)
	a.shot("debian-transmission-path")
	if err == nil {
		t.Logf("path mode: the RPC works at %s", rpcURL)
		transmissionChecks(t, a.appFrame)
		return
	}
	var rpc []string
	for _, e := range a.net.matching(rpcURL) {
		rpc = append(rpc, e.String())
	}
	dialog := frameValue[string](a.appFrame, `document.getElementById('dialog_heading')?.textContent || ''`)
	t.Logf("path mode gap (../rpc above the page's directory): the page %s calls RPC._Root %q = %s, outside the app's prefix; requests: %q; the app shows %q",
		prefix, "../rpc", rpcURL, rpc, dialog)
	t.Skip("path mode: Transmission's RPC at ../rpc leaves /dashboard-apps/transmission/ (known gap: base_path /transmission/ or the run-time shim)")
}

// TestBrowserDebianTransmissionPathModeBasePath: with base_path
// /transmission/ (the contract's fix for apps that reach above their entry
// page's directory), ../rpc stays inside the prefix.
func TestBrowserDebianTransmissionPathModeBasePath(t *testing.T) {
	newGateway(t)
	body := `{"name":"T","url":"http://127.0.0.1:1/transmission/web/","base_path":"/transmission/"}`
	status, msg := adminDo(t, "PUT", "/config/apps/dashboard_apps/apps/basepathprobe", body)
	if status != 200 {
		t.Skipf("base_path not available on this build: %d %s", status, msg)
	}
	restoreGateway(t)
	a := openDebianApp(t, transmissionApp, gatewayBase, "base_path", "/transmission/")
	if !a.wait("the web UI under the prefix", `location.pathname.startsWith('/dashboard-apps/transmission/') && typeof transmission === 'object'`, 15*time.Second) {
		return
	}
	transmissionChecks(t, a.appFrame)
}

// syncthing: its GUI sets a CSRF cookie (CSRF-Token-<first 5 characters of
// the device ID>) that its script reads back from document.cookie and sends
// as a header of the same name on every REST call.
var syncthingApp = debianApp{id: "syncthing", name: "Syncthing", start: func(t *testing.T) string {
	requireDebianPackage(t, "syncthing", "/usr/bin/syncthing")
	home := t.TempDir()
	gui := fmt.Sprintf("127.0.0.1:%d", loopbackPort(t))
	gen := exec.Command("/usr/bin/syncthing", "generate", "--home="+home, "--no-default-folder", "--skip-port-probing")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("syncthing generate: %v %s", err, out)
	}
	cfgPath := filepath.Join(home, "config.xml")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Loopback only, nothing announced or reported, no prompts.
	cfg := string(b)
	for old, repl := range map[string]string{
		"<address>127.0.0.1:8384</address>":                   "<address>" + gui + "</address>",
		"<listenAddress>default</listenAddress>":              fmt.Sprintf("<listenAddress>tcp://127.0.0.1:%d</listenAddress>", loopbackPort(t)),
		"<globalAnnounceEnabled>true</globalAnnounceEnabled>": "<globalAnnounceEnabled>false</globalAnnounceEnabled>",
		"<localAnnounceEnabled>true</localAnnounceEnabled>":   "<localAnnounceEnabled>false</localAnnounceEnabled>",
		"<relaysEnabled>true</relaysEnabled>":                 "<relaysEnabled>false</relaysEnabled>",
		"<natEnabled>true</natEnabled>":                       "<natEnabled>false</natEnabled>",
		"<startBrowser>true</startBrowser>":                   "<startBrowser>false</startBrowser>",
		"<urAccepted>0</urAccepted>":                          "<urAccepted>-1</urAccepted>",
		"<crashReportingEnabled>true</crashReportingEnabled>": "<crashReportingEnabled>false</crashReportingEnabled>",
		"<autoUpgradeIntervalH>12</autoUpgradeIntervalH>":     "<autoUpgradeIntervalH>0</autoUpgradeIntervalH>",
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("syncthing's generated config.xml has no %s", old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// STMONITORED: run as the one process, without the monitor that would
	// start syncthing again in a process group of its own.
	pg := startDaemon(t, []string{"STNOUPGRADE=1", "STNORESTART=1", "STMONITORED=1", "HOME=" + home}, "/usr/bin/syncthing", "serve",
		"--home="+home, "--no-browser", "--no-restart", "--no-upgrade", "--gui-address=http://"+gui)
	u := "http://" + gui + "/"
	waitHTTP(t, u)
	loopbackOnly(t, pg)
	return u
}}

// syncthingChecks: styled (Bootstrap), scripted (Angular), and REST calls
// carrying the CSRF header answered: the GUI shows this device's name and
// the version from /rest/system/version, and a call through the app's own
// $http (which adds the header) succeeds.
func syncthingChecks(t *testing.T, f appFrame) {
	f.wait("the stylesheet applied", `document.querySelector('.navbar') && getComputedStyle(document.querySelector('.navbar')).minHeight === '50px'`, 20*time.Second)
	if !f.wait("the GUI filled from its REST API", `/v1\.\d+\.\d+/.test(document.body.innerText) && !!window.angular`, 15*time.Second) {
		return
	}
	frameValue[any](f, `(angular.element(document.body).injector().get('$http').get('rest/system/status').then(r => window.debianStatus = r.status, r => window.debianStatus = r.status), 1)`)
	if st, err := appPoll[float64](f, `window.debianStatus`, 5*time.Second); err != nil || st != 200 {
		t.Errorf("rest/system/status through the app's $http: %v %v", st, err)
	}
}

func TestBrowserDebianSyncthingOriginMode(t *testing.T) {
	a := openDebianApp(t, syncthingApp, originHelpdesk)
	origin := "http://syncthing.helpdesk.localhost:9080"
	if !a.wait("the GUI on its own origin", `location.origin === '`+origin+`'`, 15*time.Second) {
		return
	}
	syncthingChecks(t, a.appFrame)
	cookies := frameValue[string](a.appFrame, `document.cookie`)
	if !strings.Contains(cookies, "CSRF-Token-") {
		t.Errorf("the app's script does not see its CSRF cookie: %q", cookies)
	}
	a.shot("debian-syncthing-origin")
	// rest/system/upgrade is 503 from the app itself: upgrades are off.
	bad := slices.DeleteFunc(a.net.failures(origin), func(s string) bool { return strings.Contains(s, "/rest/system/upgrade (XHR) -> 503") })
	if len(bad) > 0 {
		t.Errorf("failed requests on the app's origin: %q", bad)
	}
}

// TestBrowserDebianSyncthingPathMode: the GUI under the prefix reads its
// CSRF-Token-<id> cookie by name through the shim's document.cookie, and
// its REST calls with the header succeed.
func TestBrowserDebianSyncthingPathMode(t *testing.T) {
	a := openDebianApp(t, syncthingApp, gatewayBase)
	prefix := gatewayBase + "/dashboard-apps/syncthing/"
	if !a.wait("the GUI under the prefix, scripted", `location.href.startsWith('`+prefix+`') && !!window.angular`, 15*time.Second) {
		return
	}
	_, err := appPoll[any](a.appFrame, `/v1\.\d+\.\d+/.test(document.body.innerText)`, 5*time.Second)
	a.shot("debian-syncthing-path")
	if err == nil {
		t.Logf("path mode: the REST API answers the GUI")
		syncthingChecks(t, a.appFrame)
		return
	}
	// Its script reads its CSRF cookie by name: the shim shows it so.
	cookies := frameValue[string](a.appFrame, `document.cookie`)
	t.Errorf("path mode: the REST API does not answer the GUI: document.cookie in the app is %q; failed requests: %q; the page says %q",
		cookies, a.net.failures(prefix), frameValue[string](a.appFrame, `document.body.innerText.slice(0, 200)`))
}

// adminerPassword opens the test's SQLite file in Adminer.
const adminerPassword = "kb-test-password"

// adminer: a page-named entry URL with a query (/adminer/sqlite.php?sqlite=),
// a Content-Security-Policy with a fresh nonce and 'strict-dynamic' on
// every page, and a login form that posts and redirects; served by PHP's
// own server from php-cli, its data a SQLite file in the test's directory.
var adminerApp = debianApp{id: "adminer", name: "Adminer", start: func(t *testing.T) string {
	requireDebianPackage(t, "adminer php-cli php-sqlite3", "/usr/share/adminer/adminer.php", "/usr/bin/php")
	dir := t.TempDir()
	www := filepath.Join(dir, "www", "adminer")
	os.MkdirAll(www, 0o755)
	os.MkdirAll(filepath.Join(dir, "sessions"), 0o700)
	// As Debian's /etc/adminer/conf.php, with the plugin that lets a
	// password open a SQLite file.
	conf := `<?php
function adminer_object() {
	include_once "/usr/share/adminer/plugins/plugin.php";
	include_once "/usr/share/adminer/plugins/version-noverify.php";
	include_once "/usr/share/adminer/plugins/login-password-less.php";
	return new AdminerPlugin(array(new AdminerVersionNoverify(), new AdminerLoginPasswordLess(password_hash("` + adminerPassword + `", PASSWORD_DEFAULT))));
}
include "/usr/share/adminer/adminer.php";
`
	if err := os.WriteFile(filepath.Join(www, "sqlite.php"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "helpdesk.db")
	mk := exec.Command("/usr/bin/php", "-r", `$d = new SQLite3($argv[1]); $d->exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT); INSERT INTO customers VALUES (1, 'Jane Doe', 'jane@example.com');") or exit(1);`, db)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("creating the SQLite file (php-sqlite3): %v %s", err, out)
	}
	port := loopbackPort(t)
	pg := startDaemon(t, []string{"PHP_CLI_SERVER_WORKERS=4"}, "/usr/bin/php", "-S", fmt.Sprintf("127.0.0.1:%d", port), "-t", filepath.Join(dir, "www"),
		"-d", "session.save_path="+filepath.Join(dir, "sessions"), "-d", "display_errors=stderr")
	u := fmt.Sprintf("http://127.0.0.1:%d/adminer/sqlite.php?sqlite=", port)
	waitHTTP(t, u)
	loopbackOnly(t, pg)
	t.Setenv("DEBIAN_TEST_ADMINER_DB", db)
	return u
}}

// adminerChecks: the login page styled and scripted under its nonce
// policy; the login form (SQLite, the file, the password) posts and
// redirects to the database, whose table is listed, and its rows show.
func adminerChecks(t *testing.T, f appFrame) {
	if !f.wait("the login form, styled and scripted", `!!document.querySelector('input[name="auth[password]"]') && typeof qs === 'function' && getComputedStyle(document.querySelector('h1')).backgroundColor === 'rgb(238, 238, 238)'`, 20*time.Second) {
		return
	}
	db, _ := json.Marshal(os.Getenv("DEBIAN_TEST_ADMINER_DB"))
	frameValue[any](f, `(() => {
		const form = document.querySelector('input[name="auth[password]"]').form;
		form.elements['auth[driver]'].value = 'sqlite';
		form.elements['auth[driver]'].dispatchEvent(new Event('change'));
		form.elements['auth[db]'].value = `+string(db)+`;
		form.elements['auth[password]'].value = '`+adminerPassword+`';
		form.querySelector('input[type=submit]').click();
		return 1;
	})()`)
	if !f.wait("signed in: the table listed", `[...document.querySelectorAll('#tables a')].some(a => a.textContent === 'customers')`, 20*time.Second) {
		return
	}
	frameValue[any](f, `(document.querySelector('#tables a[href*="select=customers"]').click(), 1)`)
	f.wait("the table's rows", `document.body.innerText.includes('jane@example.com')`, 20*time.Second)
}

func TestBrowserDebianAdminerOriginMode(t *testing.T) {
	a := openDebianApp(t, adminerApp, originHelpdesk)
	origin := "http://adminer.helpdesk.localhost:9080"
	if !a.wait("the entry page on its own origin", `location.href === '`+origin+`/adminer/sqlite.php?sqlite='`, 15*time.Second) {
		return
	}
	adminerChecks(t, a.appFrame)
	a.shot("debian-adminer-origin")
	if bad := a.net.failures(origin); len(bad) > 0 {
		t.Errorf("failed requests on the app's origin: %q", bad)
	}
}

// TestBrowserDebianAdminerPathMode: Adminer builds its URLs from the
// request's own path (page-named, query-only or root-relative in
// headers), so path mode serves it.
func TestBrowserDebianAdminerPathMode(t *testing.T) {
	a := openDebianApp(t, adminerApp, gatewayBase)
	prefix := gatewayBase + "/dashboard-apps/adminer/"
	if !a.wait("the entry page under the prefix", `location.href.startsWith('`+prefix+`') && !!document.querySelector('input[name="auth[password]"]')`, 15*time.Second) {
		return
	}
	// The contract: the URL's directory (/adminer/) is the base path and
	// the tab opens the named page under the prefix.
	if entry := frameValue[string](a.appFrame, `location.href`); entry != prefix+"sqlite.php?sqlite=" {
		t.Logf("path mode: the tab opened %s, not %ssqlite.php?sqlite=: the base path is the URL's whole path, /adminer/sqlite.php, "+
			"so every page is /adminer/sqlite.php/<rest> upstream (PHP's server runs sqlite.php with PATH_INFO; a server without PATH_INFO would answer 404)",
			entry, prefix)
	}
	adminerChecks(t, a.appFrame)
	a.shot("debian-adminer-path")
	if bad := a.net.failures(prefix); len(bad) > 0 {
		t.Errorf("failed requests: %q", bad)
	}
	if out := a.outside(prefix); len(out) > 0 {
		t.Errorf("requests of the app's frame outside its prefix: %q", out)
	}
}

// dokuwikiPassword is the test user's ("agent") password.
const dokuwikiPassword = "kb-agent-password"

// dokuwiki: a page-named entry URL (/doku.php?id=start), root-relative
// links, stylesheet and scripts (DOKU_BASE is "/"), a login form with a
// security token that posts and redirects, and scripts that build URLs
// from DOKU_BASE (lib/exe/ajax.php for the edit lock and drafts) and write
// a cookie (DOKU_PREFS). Served by PHP's own server from Debian's
// /usr/share/dokuwiki, its config and pages in the test's directory.
func dokuwikiApp(entry string) debianApp {
	return debianApp{id: "dokuwiki", name: "Wiki KB", start: func(t *testing.T) string {
		requireDebianPackage(t, "dokuwiki php-cli", "/usr/share/dokuwiki/doku.php", "/etc/dokuwiki/dokuwiki.php", "/usr/bin/php")
		dir := t.TempDir()
		conf, data := filepath.Join(dir, "conf"), filepath.Join(dir, "data")
		// Debian's config files, then this wiki's own: its pages in dir,
		// ACLs on, one user, "agent", in the admin and user groups.
		if err := os.CopyFS(data, os.DirFS("/var/lib/dokuwiki/data")); err != nil {
			t.Fatalf("copying Debian's DokuWiki data: %v", err)
		}
		os.MkdirAll(conf, 0o755)
		files, _ := filepath.Glob("/etc/dokuwiki/*")
		for _, f := range files {
			switch filepath.Base(f) {
			case "acl.auth.php", "users.auth.php", "local.php", "apache.conf", "lighttpd.conf", "htaccess":
				continue
			}
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(filepath.Join(conf, filepath.Base(f)), b, 0o644)
			}
		}
		for name, content := range map[string]string{
			"local.php":      "<?php\n$conf['title'] = 'Helpdesk KB';\n$conf['savedir'] = '" + data + "';\n$conf['useacl'] = 1;\n$conf['superuser'] = '@admin';\n",
			"acl.auth.php":   "* @ALL 1\n* @user 8\n",
			"users.auth.php": "agent:" + md5hex(dokuwikiPassword) + ":Support Agent:agent@example.com:admin,user\n",
		} {
			os.WriteFile(filepath.Join(conf, name), []byte(content), 0o644)
		}
		// Debian's inc/preload.php keeps DOKU_CONF when it is defined.
		prepend := filepath.Join(dir, "prepend.php")
		os.WriteFile(prepend, []byte("<?php define('DOKU_CONF', '"+conf+"/');\n"), 0o644)
		port := loopbackPort(t)
		pg := startDaemon(t, []string{"PHP_CLI_SERVER_WORKERS=4"}, "/usr/bin/php", "-S", fmt.Sprintf("127.0.0.1:%d", port), "-t", "/usr/share/dokuwiki",
			"-d", "auto_prepend_file="+prepend, "-d", "display_errors=stderr")
		u := fmt.Sprintf("http://127.0.0.1:%d%s", port, entry)
		waitHTTP(t, u)
		loopbackOnly(t, pg)
		t.Setenv("DEBIAN_TEST_DOKUWIKI_PAGES", filepath.Join(data, "pages"))
		return u
	}}
}

// dokuwikiStyled: the template's stylesheet (lib/exe/css.php) applied and
// its scripts (lib/exe/jquery.php, js.php) run.
const dokuwikiStyled = `getComputedStyle(document.querySelector('h3.a11y')).position === 'absolute' && getComputedStyle(document.body).backgroundColor === 'rgb(251, 250, 249)' && typeof jQuery === 'function' && typeof DokuCookie === 'object'`

// dokuwikiLogin follows the Log In link, posts the login form and waits
// for the redirect's page to show the agent signed in.
func dokuwikiLogin(f appFrame) bool {
	frameValue[any](f, `(document.querySelector('li.action.login a').click(), 1)`)
	if !f.wait("the login form", `!!document.querySelector('#dw__login input[name=p]')`, 20*time.Second) {
		return false
	}
	frameValue[any](f, `(() => { const form = document.getElementById('dw__login');
		form.elements.u.value = 'agent'; form.elements.p.value = '`+dokuwikiPassword+`';
		form.querySelector('button[type=submit]').click(); return 1; })()`)
	return f.wait("signed in after the redirect", `document.querySelector('#dokuwiki__usertools')?.innerText.includes('Support Agent') && !location.search.includes('do=login')`, 20*time.Second)
}

// dokuwikiEdit creates the start page through the editor and waits for it
// to render; the page's file must hold the text.
func dokuwikiEdit(t *testing.T, f appFrame) {
	frameValue[any](f, `(document.querySelector('a[href*="do=edit"]').click(), 1)`)
	if !f.wait("the editor and its toolbar", `!!document.getElementById('wiki__text') && document.querySelectorAll('#tool__bar button').length > 5`, 20*time.Second) {
		return
	}
	frameValue[any](f, `(() => { document.getElementById('wiki__text').value = '====== Shipping ======\nOrders ship within **two days**.\n';
		document.getElementById('edbtn__save').click(); return 1; })()`)
	if f.wait("the saved page rendered", `document.querySelector('.page h1')?.textContent === 'Shipping' && document.querySelector('.page strong')?.textContent === 'two days'`, 20*time.Second) {
		b, err := os.ReadFile(filepath.Join(os.Getenv("DEBIAN_TEST_DOKUWIKI_PAGES"), "start.txt"))
		if err != nil || !strings.Contains(string(b), "**two days**") {
			t.Errorf("the page's file: %q %v", b, err)
		}
	}
}

func TestBrowserDebianDokuWikiOriginMode(t *testing.T) {
	a := openDebianApp(t, dokuwikiApp("/doku.php?id=start"), originHelpdesk)
	origin := "http://dokuwiki.helpdesk.localhost:9080"
	if !a.wait("the entry page on its own origin, styled and scripted", `location.href === '`+origin+`/doku.php?id=start' && `+dokuwikiStyled, 15*time.Second) {
		return
	}
	if dokuwikiLogin(a.appFrame) {
		dokuwikiEdit(t, a.appFrame)
	}
	a.shot("debian-dokuwiki-origin")
	if bad := a.net.failures(origin); len(bad) > 0 {
		t.Errorf("failed requests on the app's origin: %q", bad)
	}
	if ajax := a.net.matching(origin + "/lib/exe/ajax.php"); len(ajax) == 0 {
		t.Errorf("the editor's script called no lib/exe/ajax.php")
	}
}

// dokuwikiPathMode opens DokuWiki registered at entry in path mode and
// goes through its steps as far as they work: it returns which did, and
// logs, deduplicated, the requests of the app's frame that escaped the
// prefix.
func dokuwikiPathMode(t *testing.T, entry string) (a appRun, ok map[string]bool, escaped []string) {
	a = openDebianApp(t, dokuwikiApp(entry), gatewayBase)
	ok = map[string]bool{}
	prefix := gatewayBase + "/dashboard-apps/dokuwiki/"
	step := func(name, expr string) bool {
		_, err := appPoll[any](a.appFrame, expr, 3*time.Second)
		ok[name] = err == nil
		t.Logf("  %s: %v", name, err == nil)
		return err == nil
	}
	if !step("loaded", `location.href.startsWith('`+prefix+`') && !!document.getElementById('dokuwiki__site')`) {
		return a, ok, nil
	}
	t.Logf("path mode, %s registered: the tab opened %s", entry, frameValue[string](a.appFrame, `location.href`))
	step("styled", `getComputedStyle(document.querySelector('h3.a11y')).position === 'absolute' && getComputedStyle(document.body).backgroundColor === 'rgb(251, 250, 249)'`)
	step("scripted", `typeof jQuery === 'function' && typeof DokuCookie === 'object'`)
	if step("login link", `!!document.querySelector('li.action.login a')`) {
		frameValue[any](a.appFrame, `(document.querySelector('li.action.login a').click(), 1)`)
		if step("login form", `!!document.querySelector('#dw__login input[name=p]')`) {
			frameValue[any](a.appFrame, `(() => { const form = document.getElementById('dw__login');
				form.elements.u.value = 'agent'; form.elements.p.value = '`+dokuwikiPassword+`';
				form.querySelector('button[type=submit]').click(); return 1; })()`)
			if step("signed in", `document.querySelector('#dokuwiki__usertools')?.innerText.includes('Support Agent')`) {
				frameValue[any](a.appFrame, `(document.querySelector('a[href*="do=edit"]').click(), 1)`)
				if step("editor", `!!document.getElementById('wiki__text') && document.querySelectorAll('#tool__bar button').length > 5`) {
					// The app's own script: the edit lock's refresh (a POST
					// to DOKU_BASE + 'lib/exe/ajax.php') and a preference
					// cookie (DOKU_PREFS, path DOKU_BASE).
					frameValue[any](a.appFrame, `(jQuery.post(DOKU_BASE + 'lib/exe/ajax.php', {call: 'lock', id: JSINFO.id})
						.always((d, s, x) => { x = x && x.status ? x : d; window.debianAjax = {url: DOKU_BASE + 'lib/exe/ajax.php', status: x.status, body: String(x.responseText).slice(0, 60)}; }),
						DokuCookie.setValue('sizeCtl', '42'), 1)`)
					if v, err := appPoll[map[string]any](a.appFrame, `window.debianAjax`, 4*time.Second); err == nil {
						t.Logf("  the edit lock's call (jQuery.post(DOKU_BASE + 'lib/exe/ajax.php')): %v", v)
						ok["ajax"] = v["status"] == float64(200) && v["body"] == "1"
					}
					t.Logf("  after DokuCookie.setValue('sizeCtl', '42'): document.cookie in the app %q, in the helpdesk's page %q",
						frameValue[string](a.appFrame, `document.cookie`), eval[string](t, a.ctx, `document.cookie`))
					frameValue[any](a.appFrame, `(() => { document.getElementById('wiki__text').value = '====== Shipping ======\nOrders ship within **two days**.\n';
						document.getElementById('edbtn__save').click(); return 1; })()`)
					step("saved", `document.querySelector('.page h1')?.textContent === 'Shipping'`)
				}
			}
		}
	}
	a.shot("debian-dokuwiki-path" + strings.NewReplacer("/", "-", ".", "-", "?", "-", "=", "-").Replace(strings.TrimSuffix(entry, "/")))
	escaped = a.outside(prefix)
	for _, e := range escaped {
		t.Logf("  escaped the prefix: %s", e)
	}
	return a, ok, escaped
}

// TestBrowserDebianDokuWikiPathMode: registered as /doku.php?id=start (a
// page-named URL), the page and its login work, but today the base path
// is the URL's whole path, /doku.php, so the root-relative /lib/...
// stylesheet, scripts and images are not under it: they are not rewritten
// and reach the helpdesk.
func TestBrowserDebianDokuWikiPathMode(t *testing.T) {
	_, ok, escaped := dokuwikiPathMode(t, "/doku.php?id=start")
	for _, s := range []string{"loaded", "login link", "login form", "signed in"} {
		if !ok[s] {
			t.Errorf("path mode, page-named URL: %s failed", s)
		}
	}
	if ok["styled"] && ok["scripted"] && ok["saved"] && len(escaped) == 0 {
		return
	}
	t.Skipf("path mode gap (a URL naming a PHP page, root-relative assets): styled %v, scripted %v, editor %v; %d requests escaped the prefix, e.g. %q",
		ok["styled"], ok["scripted"], ok["editor"], len(escaped), first(escaped, 3))
}

// TestBrowserDebianDokuWikiPathModeRoot: registered at its root, DokuWiki
// is styled and scripted, logs in, edits and saves under the prefix; what
// its scripts build from DOKU_BASE ("/") still escapes.
func TestBrowserDebianDokuWikiPathModeRoot(t *testing.T) {
	_, ok, escaped := dokuwikiPathMode(t, "/")
	for _, s := range []string{"loaded", "styled", "scripted", "login link", "login form", "signed in", "editor", "saved"} {
		if !ok[s] {
			t.Errorf("path mode, root URL: %s failed", s)
		}
	}
	if len(escaped) > 0 {
		t.Skipf("path mode gap (URLs built by scripts from DOKU_BASE '/'): %d requests escaped the prefix, e.g. %q", len(escaped), first(escaped, 3))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }
