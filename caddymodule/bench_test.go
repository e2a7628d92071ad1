package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// BenchmarkHeadInjection injects the host script into a helpdesk SPA
// shell and into a 128 KB page (the head ends early; the rest streams).
func BenchmarkHeadInjection(b *testing.B) {
	page, err := os.ReadFile("../testdata/golden/html/admin.in.html")
	if err != nil {
		b.Fatal(err)
	}
	shell := []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ndoto</title>` +
		`<link rel="stylesheet" href="/packs/css/application.css"><script src="/packs/js/application.js" defer></script>` +
		`</head><body><div id="app"></div></body></html>`)
	snippet := []byte(`<script type="application/json" id="dashboard-apps-config">{}</script><script src="/_dashboard_apps/host.js?v=0123456789ab" defer></script>`)
	for _, tc := range []struct {
		name string
		doc  []byte
	}{{"shell", shell}, {"page128k", page}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.doc)))
			b.ReportAllocs()
			for b.Loop() {
				j := &headInjector{dst: io.Discard, snippet: snippet, failed: func(string) {}}
				for i := 0; i < len(tc.doc); i += 32 << 10 {
					j.Write(tc.doc[i:min(i+32<<10, len(tc.doc))])
				}
				j.Close()
			}
		})
	}
}

// reusedWriter is a ResponseWriter that keeps its header map, so that a
// benchmark counts only what the handler allocates.
type reusedWriter struct{ h http.Header }

func (w *reusedWriter) Header() http.Header         { return w.h }
func (w *reusedWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *reusedWriter) WriteHeader(int)             {}

// BenchmarkContextCacheHit serves an appContext from the cache: the
// credential fingerprint, the lookup and the write, nothing else.
func BenchmarkContextCacheHit(b *testing.B) {
	hd := newFakeHelpdeskB(b)
	h := newTestHandler(b, hd.URL, time.Hour)
	r := httptest.NewRequest("GET", "/_dashboard_apps/context?account=1&conversation=123", nil)
	r.Header.Set("Cookie", "_chatwoot_session=abc; cw_d_session_info=%7B%22access-token%22%3A%22token-a%22%7D")
	r.Header.Set("Api_access_token", "token-a")
	w := &reusedWriter{h: http.Header{}}
	if err := h.serveContext(w, r); err != nil {
		b.Fatal(err)
	}
	if w.h.Get(cacheHeader) != "miss" {
		b.Fatalf("warm-up: %v", w.h)
	}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.serveContext(w, r)
	}
	if w.h.Get(cacheHeader) != "hit" {
		b.Fatalf("not a cache hit: %v", w.h)
	}
}

// TestContextCacheHitAllocatesNothing: a cache hit costs no allocation in
// the gateway (writing the response is the server's).
func TestContextCacheHitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	hd := newFakeHelpdesk(t)
	h := newTestHandler(t, hd.URL, time.Hour)
	r := httptest.NewRequest("GET", "/_dashboard_apps/context?account=1&conversation=123&app=", nil)
	r.Header.Set("Api_access_token", "token-a")
	w := &reusedWriter{h: http.Header{}}
	h.serveContext(w, r)
	allocs := testing.AllocsPerRun(100, func() {
		clear(w.h)
		h.serveContext(w, r)
	})
	if w.h.Get(cacheHeader) != "hit" || allocs != 0 {
		t.Errorf("cache hit: %q, %.1f allocations", w.h.Get(cacheHeader), allocs)
	}
}

// BenchmarkAuthorizeCacheHit is what agent-only access adds to a proxied
// request once the agent's profile is cached: the credential fingerprint,
// a cache lookup, decoding the cached profile, the account and role check.
func BenchmarkAuthorizeCacheHit(b *testing.B) {
	hd := newFakeHelpdeskB(b)
	h := newTestHandler(b, hd.URL, time.Hour)
	app := &AppConfig{Name: "Orders", Accounts: []int{1}, Roles: []string{RoleAgent}}
	r := httptest.NewRequest("GET", "/dashboard-apps/orders/", nil)
	r.Header.Set("Cookie", "_chatwoot_session=abc; cw_d_session_info=%7B%22access-token%22%3A%22token-a%22%7D")
	w := &reusedWriter{h: http.Header{}}
	if _, ok := h.authorize(w, r, app); !ok {
		b.Fatal("warm-up: not authorized")
	}
	b.ReportAllocs()
	for b.Loop() {
		h.authorize(w, r, app)
	}
}

// BenchmarkAppPageShim rewrites the benchmark's 128 KB real-world page as
// path mode does, without and with the shim put first in it (the
// per-response policy check and tag included): what the shim costs a
// page.
func BenchmarkAppPageShim(b *testing.B) {
	page, err := os.ReadFile("../testdata/bench/wikipedia-go.html")
	if err != nil {
		b.Fatal(err)
	}
	up, _ := url.Parse("http://127.0.0.1:9101/")
	m := rewrite.NewMapper(up, "/dashboard-apps/bench/")
	doc := &url.URL{Scheme: "http", Host: "127.0.0.1:9101", Path: "/page.html"}
	assets := loadAssets()
	tag := shimTag(assets, defaultPrefix, "bench", m)
	p := &appProxy{mapper: m, assets: assets, shimTag: tag, plainShim: []byte(tag + `></script>`), logger: zap.NewNop()}
	w := &appResponse{p: p, doc: doc, document: true, r: httptest.NewRequest("GET", "http://localhost:8080/dashboard-apps/bench/page.html", nil)}
	write := func(t bodyTransform) {
		for i := 0; i < len(page); i += 32 << 10 {
			t.Write(page[i:min(i+32<<10, len(page))])
		}
		t.Close()
	}
	for _, shim := range []bool{false, true} {
		b.Run(map[bool]string{false: "rewritten", true: "rewritten+shim"}[shim], func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			h := http.Header{"Content-Type": {"text/html; charset=utf-8"}}
			for b.Loop() {
				if !shim {
					write(rewrite.NewHTMLRewriter(io.Discard, m, doc))
					continue
				}
				inj := w.newShimInjector(io.Discard, w.shimSnippet(h))
				write(shimmedPage{rewrite.NewHTMLRewriter(inj, m, doc), inj})
			}
		})
	}
}
