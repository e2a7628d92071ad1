package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// escapeHandler is a path-mode handler with two apps: "root" at its
// upstream's root and "web" at /transmission/web/ upstream.
func escapeHandler(t *testing.T) (*Handler, *observer.ObservedLogs, map[string]prometheus.Counter) {
	t.Helper()
	core, logs := observer.New(zap.WarnLevel)
	h := &Handler{Prefix: defaultPrefix, apps: map[string]*appProxy{}, escapes: new(escapeLog), inflight: new(atomic.Int64), logger: zap.New(core)}
	counters := map[string]prometheus.Counter{}
	for id, up := range map[string]string{"root": "http://127.0.0.1:9/", "web": "http://127.0.0.1:9/transmission/web/"} {
		u, _ := url.Parse(up)
		counters[id] = prometheus.NewCounter(prometheus.CounterOpts{Name: "escapes_" + id})
		h.apps[id] = &appProxy{app: &AppConfig{id: id, upstream: u}, mapper: rewrite.NewMapper(u, defaultPrefix+id+"/"), escapes: counters[id]}
	}
	return h, logs, counters
}

// TestPathEscapes: a request outside the prefix sent by an app's page is
// redirected under the app's prefix when it is a frame, a subresource or a
// script's request that the app can serve, and logged once per app and
// path with what to change; the helpdesk's own requests, navigations of
// the top-level window, Referer-less and cross-site requests reach the
// helpdesk as before.
func TestPathEscapes(t *testing.T) {
	h, logs, counters := escapeHandler(t)
	helpdeskGot := 0
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		helpdeskGot++
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	do := func(method, target string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://hd.test"+target, nil)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		return w
	}
	fromApp := func(dest string) []string {
		return []string{"Referer", "http://hd.test/dashboard-apps/root/orders/list?x=1", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", dest}
	}
	for _, dest := range []string{"iframe", "empty", "script", "style", "image", "font"} {
		w := do("GET", "/page?q=1", fromApp(dest)...)
		if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "/dashboard-apps/root/page?q=1" {
			t.Errorf("%s from the app's page: %d %q", dest, w.Code, w.Header().Get("Location"))
		}
	}
	if w := do("POST", "/api/save", fromApp("empty")...); w.Code != http.StatusTemporaryRedirect {
		t.Errorf("a POST: %d (307 keeps the method and body)", w.Code)
	}
	if logs.Len() != 2 || counterValue(counters["root"]) != 7 {
		t.Fatalf("%d logged, %v counted; want 2 (once per path), 7", logs.Len(), counterValue(counters["root"]))
	}
	f := logs.All()[0].ContextMap()
	if f["app"] != "root" || f["path"] != "/page" || f["page"] != "/dashboard-apps/root/orders/list" || !strings.Contains(f["fix"].(string), "redirected") {
		t.Errorf("log: %q %v", logs.All()[0].Message, f)
	}

	for _, c := range []struct {
		why    string
		header []string
	}{
		{"the helpdesk's own page", []string{"Referer", "http://hd.test/app/accounts/1/conversations/2", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", "empty"}},
		{"no Referer", []string{"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", "iframe"}},
		{"a top-level navigation from the app", fromApp("document")},
		{"an app's page on another site", []string{"Referer", "http://evil.test/dashboard-apps/root/", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "image"}},
		{"an unknown app", []string{"Referer", "http://hd.test/dashboard-apps/nope/", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", "image"}},
		{"the prefix alone", []string{"Referer", "http://hd.test/dashboard-apps/root", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", "image"}},
	} {
		before := helpdeskGot
		if w := do("GET", "/app/accounts/1/conversations/2", c.header...); w.Code != http.StatusTeapot || helpdeskGot != before+1 {
			t.Errorf("%s: %d, want the helpdesk's answer", c.why, w.Code)
		}
	}
	if logs.Len() != 2 {
		t.Errorf("logged %d, want nothing more: %v", logs.Len(), logs.All()[2:])
	}

	// Logged and counted, but passed on: a WebSocket handshake (which
	// cannot follow a redirect), a request without Sec-Fetch-Site (the
	// browser's word that it came from this origin).
	before := helpdeskGot
	do("GET", "/ws", fromApp("websocket")...)
	do("GET", "/old", "Referer", "http://hd.test/dashboard-apps/root/", "Sec-Fetch-Dest", "image")
	if helpdeskGot != before+2 || logs.Len() != 4 || !strings.Contains(logs.All()[2].ContextMap()["fix"].(string), "WebSocket") {
		t.Errorf("websocket, no Sec-Fetch-Site: helpdesk got %d, logs %v", helpdeskGot-before, logs.All()[2:])
	}

	// An app below its upstream's root: what lands above its base path is
	// not served under the prefix; the log says which base_path reaches it.
	web := func(dest string) []string {
		return []string{"Referer", "http://hd.test/dashboard-apps/web/index.html", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", dest}
	}
	if w := do("GET", "/transmission/rpc", web("empty")...); w.Code != http.StatusTeapot {
		t.Errorf("above the base path: %d, want the helpdesk's answer", w.Code)
	}
	if fix := logs.All()[4].ContextMap()["fix"].(string); !strings.Contains(fix, "set base_path /transmission/ on the app") {
		t.Errorf("fix: %s", fix)
	}
	if w := do("GET", "/transmission/web/style.css", web("style")...); w.Header().Get("Location") != "/dashboard-apps/web/style.css" {
		t.Errorf("under the base path: %d %q", w.Code, w.Header().Get("Location"))
	}
	// Its ../rpc from the prefix's root climbs out of the prefix: under it,
	// but no app's.
	if w := do("GET", "/dashboard-apps/rpc", web("empty")...); w.Code != http.StatusNotFound {
		t.Errorf("climbed out of the prefix: %d", w.Code)
	}
	if fix := logs.All()[len(logs.All())-1].ContextMap()["fix"].(string); !strings.Contains(fix, "set base_path /transmission/ (or higher)") {
		t.Errorf("fix: %s", fix)
	}
	if got := counterValue(counters["web"]); got != 3 {
		t.Errorf("web's escapes counted %v, want 3", got)
	}
}

// TestEscapeLogIsBounded: a page that asks for ever new paths does not
// grow the log's memory, or the log, without end.
func TestEscapeLogIsBounded(t *testing.T) {
	var l escapeLog
	fulls := 0
	for i := 0; i < 3*maxLoggedEscapes; i++ {
		isNew, full := l.first("a", "/p"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+url.PathEscape(string(rune(i))))
		if full {
			fulls++
		}
		_ = isNew
	}
	if len(l.seen) != maxLoggedEscapes || fulls != 1 {
		t.Errorf("%d remembered, full said %d times", len(l.seen), fulls)
	}
}

func TestCommonDir(t *testing.T) {
	for _, c := range [][3]string{
		{"/transmission/web/", "/transmission/rpc", "/transmission/"},
		{"/a/b/", "/c", "/"},
		{"/a/b/", "/a/bc", "/a/"},
	} {
		if got := commonDir(c[0], c[1]); got != c[2] {
			t.Errorf("commonDir(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		panic(err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}
