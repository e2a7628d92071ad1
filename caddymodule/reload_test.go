package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadsUnderLoad drives 200 concurrent connections at apps and at the
// helpdesk's (injected) page while the admin API adds, changes and removes
// other apps every 100 ms, and requires that no request to an app that
// exists throughout fails, and that no goroutine is left behind.
// DASHBOARD_APPS_RELOAD_SECONDS shortens it for local runs (default 30).
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
	var ok, failed, retried atomic.Int64
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
				resp, again, err := sendRetried(client, req)
				if again {
					retried.Add(1)
				}
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
	t.Logf("%d requests (%d retried after a connection closed unanswered by a reload), %d config changes in %ds", ok.Load(), retried.Load(), changes, seconds)
	errKinds.Range(func(k, _ any) bool { t.Log("error:", k); return true })
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", f, f+ok.Load(), firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no request succeeded")
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
