package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadsUnderLoad drives 200 concurrent connections at apps and at the
// helpdesk's (injected) page while the admin API adds, changes and removes
// other apps every 100 ms, and requires that no request to an app that
// exists throughout fails, that few had to be sent again (below), and that
// no goroutine is left behind.
// DASHBOARD_APPS_RELOAD_SECONDS shortens it for local runs (default 30).
//
// A reload closes the old servers' idle kept-alive connections; a request
// sent on one as it closes is sent again on another by Go's transport, as
// browsers do (Chromium's ShouldResendRequest: a reused connection, no
// response headers yet), as often as that happens: those are counted, not
// bounded. Caddy also opens each config's listener anew (SO_REUSEPORT), and
// the kernel resets the new connections still queued on the old one when
// it closes: sendCounted sends those again on new connections, which no
// browser does, so they are bounded; how many there are depends on how
// slowly the old server accepts, that is on the machine's load. Measured
// on 2 cores, 10 s and 30 s runs: without -race, none in each of five runs
// of ~150,000 requests on a quiet machine; 0.25% of requests (0.02% more
// than once) beside other test runs at a load average of 9; 0.1-2.6%
// (up to 0.05%) with both cores pinned by busy loops. With -race, 0.2-1%
// (none more than once) at a load average of 4, 2.8-8.4% (up to 0.36%) at
// 6 to 7.5, where throughput falls to a few hundred requests a second.
// Hence the bounds below: a margin for a busy machine, not a starved one.
func TestReloadsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s load test; skipped with -short")
	}
	seconds := 30
	if v := os.Getenv("DASHBOARD_APPS_RELOAD_SECONDS"); v != "" {
		fmt.Sscanf(v, "%d", &seconds)
	}
	newGateway(t)
	baseline := settledGoroutines()

	transport := &http.Transport{MaxIdleConnsPerHost: 200, MaxConnsPerHost: 200}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	paths := []string{
		"/dashboard-apps/orders/echo",
		"/dashboard-apps/wiki/",
		"/dashboard-apps/orders/style.css",
		"/app/frame-test",
		"/_dashboard_apps/apps?account=1",
	}
	stop := make(chan struct{})
	var ok, failed, silent atomic.Int64
	var resent [maxResends + 1]atomic.Int64 // requests by how many times they were sent on a new connection
	var firstErr atomic.Value
	var errKinds sync.Map
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := i; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, gatewayBase+paths[n%len(paths)], nil)
				req.Header.Set("Cookie", agentCookie)
				resp, quiet, again, err := sendCounted(client, req)
				silent.Add(int64(quiet))
				resent[again].Add(1)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", req.URL.Path, err))
					errKinds.Store(fmt.Sprintf("%s: %v", req.URL.Path, err), true)
					continue
				}
				ok.Add(1)
			}
		}(i)
	}

	changes := 0
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	created := map[int]bool{}
	for n := 0; time.Now().Before(deadline); n++ {
		time.Sleep(100 * time.Millisecond)
		id := fmt.Sprintf("/config/apps/dashboard_apps/apps/churn-%d", n)
		app := fmt.Sprintf(`{"name":"Churn %d","url":%q,"position":%d}`, n, appServer.URL+"/", n%7)
		switch {
		case n%3 == 0:
			adminReload(t, http.MethodPut, id, app)
			created[n] = true
		case n%3 == 1:
			adminReload(t, http.MethodPatch, fmt.Sprintf("/config/apps/dashboard_apps/apps/churn-%d", n-1), app)
		default:
			adminReload(t, http.MethodDelete, fmt.Sprintf("/config/apps/dashboard_apps/apps/churn-%d", n-2), "")
			delete(created, n-2)
		}
		changes++
	}
	close(stop)
	wg.Wait()
	for n := range created { // the churn apps the loop did not get to delete
		adminReload(t, http.MethodDelete, fmt.Sprintf("/config/apps/dashboard_apps/apps/churn-%d", n), "")
	}
	total := ok.Load() + failed.Load()
	var again, moreThanOnce int64 // requests sent again on a new connection, and more than once
	for n := 1; n <= maxResends; n++ {
		again += resent[n].Load()
		if n > 1 {
			moreThanOnce += resent[n].Load()
		}
	}
	t.Logf("%d requests, %d config changes in %ds; sent again on a kept-alive connection by the transport, as browsers do: %d times; on a new connection after one closed unanswered: %d requests once, %d twice, %d three times",
		total, changes, seconds, silent.Load(), resent[1].Load(), resent[2].Load(), resent[3].Load())
	errKinds.Range(func(k, _ any) bool { t.Log("error:", k); return true })
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d requests failed during reloads (one closed unanswered is sent up to %d more times on new connections first); first: %v", f, total, maxResends, firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no request succeeded")
	}
	// Measured on this project's machine kind: none on a quiet machine;
	// up to 2.7% and 0.23% with other test suites keeping both cores busy
	// (load 15); under -race up to 8.4% and 0.36%. The bounds leave room
	// for a busy runner and still catch a reload that drops connections
	// wholesale.
	maxAgain, maxMoreThanOnce := 0.05, 0.01
	if raceEnabled { // the old server accepts slowly: more queued connections reset
		maxAgain, maxMoreThanOnce = 0.25, 0.03
	}
	if f := float64(again) / float64(total); f >= maxAgain {
		t.Errorf("%d of %d requests (%.2f%%) had to be sent again on a new connection, closed unanswered by a reload: the bound is %.1f%%", again, total, 100*f, 100*maxAgain)
	}
	if f := float64(moreThanOnce) / float64(total); f >= maxMoreThanOnce {
		t.Errorf("%d of %d requests (%.3f%%) had to be sent again more than once on new connections: the bound is %.1f%%", moreThanOnce, total, 100*f, 100*maxMoreThanOnce)
	}

	// Nothing left behind. One more change retires the config that served
	// the load; the gateway then closes its transports' connections, and
	// those of Caddy's own reverse_proxy to the helpdesk expire with their
	// keep-alive (2 s in the test config).
	transport.CloseIdleConnections()
	adminReload(t, http.MethodPut, "/config/apps/dashboard_apps/apps/churn-final", fmt.Sprintf(`{"name":"F","url":%q}`, appServer.URL+"/"))
	adminReload(t, http.MethodDelete, "/config/apps/dashboard_apps/apps/churn-final", "")
	if now, ok := waitGoroutines(baseline, 10, 10*time.Second, 100*time.Millisecond); !ok {
		t.Errorf("goroutines: %d before, %d after\n%s", baseline, now, topGoroutines(12))
	}
}

// adminReload makes an admin API change; a refused one fails the test.
func adminReload(t *testing.T, method, path, body string) {
	t.Helper()
	// Errorf, not Fatalf: the load goroutines must still be stopped.
	status, b, err := adminRequest(method, path, body)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
	} else if status != 200 {
		t.Errorf("%s %s: %d %s", method, path, status, b)
	}
}

// maxResends is how many times sendCounted sends a request again on new
// connections, as sendRetried does.
const maxResends = 3

// sendCounted is sendRetried that counts. silent is how many times Go's
// transport sent req again by itself (on another connection) after a
// kept-alive connection was closed under it without an answer, as
// browsers do; resent is how many times req was then sent again on new
// connections, after a new connection was closed unanswered, which
// browsers do not retry.
func sendCounted(c *http.Client, req *http.Request) (resp *http.Response, silent, resent int, err error) {
	conns := 0
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns++ }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err = c.Do(req)
	silent = max(conns-1, 0)
	if req.Body != nil || !closedUnanswered(err) {
		return resp, silent, 0, err
	}
	fresh := *c
	t := c.Transport.(*http.Transport).Clone()
	t.DisableKeepAlives = true
	fresh.Transport = t
	for resent < maxResends {
		resent++
		if resp, err = fresh.Do(req); !closedUnanswered(err) {
			break
		}
	}
	return resp, silent, resent, err
}
