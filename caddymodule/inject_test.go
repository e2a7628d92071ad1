package caddymodule

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const testSnippet = "<!--SNIPPET-->"

// inject runs a document through the head injector, in chunks of size
// chunk (0: one write), and returns the output and whether it failed.
func inject(t *testing.T, doc string, chunk int) (string, string) {
	t.Helper()
	var out bytes.Buffer
	failure := ""
	j := &headInjector{dst: &out, snippet: []byte(testSnippet), failed: func(r string) { failure = r }}
	if chunk == 0 {
		chunk = len(doc) + 1
	}
	for i := 0; i < len(doc); i += chunk {
		end := min(i+chunk, len(doc))
		if _, err := j.Write([]byte(doc[i:end])); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String(), failure
}

func TestHeadInjection(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain head", "<!doctype html><html><head><title>x</title></head><body>b</body></html>",
			"<!doctype html><html><head><title>x</title>" + testSnippet + "</head><body>b</body></html>"},
		{"upper case", "<HTML><HEAD><TITLE>x</TITLE></HEAD><BODY>b</BODY></HTML>",
			"<HTML><HEAD><TITLE>x</TITLE>" + testSnippet + "</HEAD><BODY>b</BODY></HTML>"},
		{"head end in a script", `<head><script>document.write("</head>")</script></head><body></body>`,
			`<head><script>document.write("</head>")</script>` + testSnippet + `</head><body></body>`},
		{"head end in a comment", `<head><!-- </head> --><meta charset=utf-8></head>`,
			`<head><!-- </head> --><meta charset=utf-8>` + testSnippet + `</head>`},
		{"head end in an attribute", `<head><meta content="</head>"></head><body>`,
			`<head><meta content="</head>">` + testSnippet + `</head><body>`},
		{"head end in a title", `<head><title></head></title></head>`,
			`<head><title></head></title>` + testSnippet + `</head>`},
		{"no head, body tag", `<!doctype html><body class="x"><p>hi`,
			`<!doctype html><body class="x">` + testSnippet + `<p>hi`},
		{"no head, no body", `<!doctype html><div id="app"></div>`,
			`<!doctype html>` + testSnippet + `<div id="app"></div>`},
		{"byte order mark", "\xef\xbb\xbf<html><head></head>",
			"\xef\xbb\xbf<html><head>" + testSnippet + "</head>"},
		{"head closed implicitly by text", `<html><head><meta charset=utf-8>Hello`,
			`<html><head><meta charset=utf-8>` + testSnippet + `Hello`},
		{"unclosed head at end", `<html><head><title>t</title>`, `<html><head><title>t</title>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{0, 1, 3, 7} {
				got, _ := inject(t, tc.in, chunk)
				if got != tc.want {
					t.Errorf("chunk %d:\n got %q\nwant %q", chunk, got, tc.want)
				}
			}
		})
	}
}

func TestHeadInjectionGivesUpUnmodified(t *testing.T) {
	long := "<html><head><title>" + strings.Repeat("x", maxHeadScan+10)
	got, failure := inject(t, long, 4096)
	if got != long || failure == "" {
		t.Errorf("a page with an endless head must pass unmodified and report: %q", failure)
	}
	// Text opens the body: the script goes before it.
	if got, _ = inject(t, "just text", 0); got != testSnippet+"just text" {
		t.Errorf("got %q", got)
	}
	// Comments and a doctype alone: nothing to put the script in.
	if got, failure = inject(t, "<!doctype html><!-- x -->", 0); got != "<!doctype html><!-- x -->" || failure == "" {
		t.Errorf("got %q, failure %q", got, failure)
	}
}

// TestInjectionGolden injects into real-world-shaped pages under
// testdata/golden/inject, and into the demo helpdesk's own shell, and
// compares with the .out files.
func TestInjectionGolden(t *testing.T) {
	files, err := filepath.Glob("../testdata/golden/inject/*.in.html")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden pages in testdata/golden/inject: %v", err)
	}
	golden := [][2]string{ // page, what injection makes of it
		{"../testdata/demo/helpdesk/index.html", "../testdata/golden/inject/demo-shell.out.html"}, // the demo's own shell
	}
	for _, in := range files {
		golden = append(golden, [2]string{in, strings.TrimSuffix(in, ".in.html") + ".out.html"})
	}
	for _, g := range golden {
		in, out := g[0], g[1]
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		whole, failure := inject(t, string(src), 0)
		if failure != "" {
			t.Errorf("%s: injection failed: %s", in, failure)
		}
		checkGoldenFile(t, out, []byte(whole))
		for _, chunk := range []int{1, 512} {
			if got, _ := inject(t, string(src), chunk); got != whole {
				t.Errorf("%s in pieces of %d differs from the whole", in, chunk)
			}
		}
	}
}

// injectingHandler is a Handler with what serveInjected needs, and a
// gzipped page for its helpdesk to answer.
func injectingHandler() (*Handler, []byte) {
	h := &Handler{Prefix: defaultPrefix, assets: &hostAssets{version: "abc123", jsIntegrity: "sha256-xyz"}, snippetConfig: `{}`, injectFailOnce: new(sync.Once), logger: testLogger()}
	return h, gzipOf(func(w io.Writer) { io.WriteString(w, "<html><head></head><body>hi</body></html>") })
}

func TestInjectedResponseHeaders(t *testing.T) {
	h, page := injectingHandler()
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if got := r.Header.Get("If-None-Match"); got != `W/"v1"` {
			t.Errorf("If-None-Match to the helpdesk = %q", got)
		}
		if ae := r.Header.Get("Accept-Encoding"); strings.Contains(ae, "br") {
			t.Errorf("asked the helpdesk for %q", ae)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", "999")
		w.Header().Set("Etag", `"v1"`)
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'nonce-r4nd0m' 'strict-dynamic'")
		w.Write(page)
		return nil
	})
	req := httptest.NewRequest("GET", "http://helpdesk.test/app/accounts/1", nil)
	req.Header.Set("Accept-Encoding", "gzip, br")
	req.Header.Set("If-None-Match", `W/"v1-daabc123"`)
	rec := httptest.NewRecorder()
	if err := h.serveInjected(rec, req, next); err != nil {
		t.Fatal(err)
	}
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if res.Header.Get("Content-Encoding") != "" || res.Header.Get("Content-Length") == "999" {
		t.Errorf("stale headers: %v", res.Header)
	}
	if got := res.Header.Get("Etag"); got != `W/"v1-daabc123"` {
		t.Errorf("ETag = %q", got)
	}
	want := `<html><head><script type="application/json" id="dashboard-apps-config">{}</script>` +
		`<script src="/_dashboard_apps/host.js?v=abc123" defer nonce="r4nd0m"></script></head><body>hi</body></html>`
	if string(body) != want {
		t.Errorf("body:\n got %s\nwant %s", body, want)
	}
	if csp := res.Header.Get("Content-Security-Policy"); csp != "default-src 'self'; script-src 'nonce-r4nd0m' 'strict-dynamic'" {
		t.Errorf("a policy that already lets the script in was changed: %q", csp)
	}
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// TestInjectedPageHeadIsLikeGet holds HEAD of a helpdesk page to the
// headers GET gets: the validator marked, the helpdesk's length and coding
// gone, the policy adapted to the host script. GET's body, decoded and
// held whole, goes with its own length, which HEAD may omit (RFC 9110,
// 9.3.2: it is known only once the content is made).
func TestInjectedPageHeadIsLikeGet(t *testing.T) {
	h, page := injectingHandler()
	next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		w.Header().Set("Etag", `"v1"`)
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		w.WriteHeader(http.StatusOK) // as Caddy's reverse proxy does, body or not
		if r.Method == http.MethodGet {
			w.Write(page)
		}
		return nil
	})
	headers := map[string]http.Header{}
	var body []byte
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		if err := h.serveInjected(rec, httptest.NewRequest(method, "http://helpdesk.test/app/accounts/1", nil), next); err != nil {
			t.Fatal(err)
		}
		headers[method] = rec.Result().Header
		if method == http.MethodGet {
			body = rec.Body.Bytes()
		}
	}
	if got, want := headers["GET"].Get("Content-Length"), strconv.Itoa(len(body)); got != want {
		t.Errorf("GET Content-Length = %q, want the injected page's %s", got, want)
	}
	if got := headers["HEAD"].Get("Content-Length"); got != "" {
		t.Errorf("HEAD Content-Length = %q, want none (the helpdesk's is of the gzipped page)", got)
	}
	for _, name := range []string{"Etag", "Content-Encoding", "Content-Security-Policy"} {
		if get, head := headers["GET"].Get(name), headers["HEAD"].Get(name); get != head {
			t.Errorf("%s: GET %q, HEAD %q", name, get, head)
		}
	}
	if got := headers["HEAD"].Get("Etag"); got != `W/"v1-daabc123"` {
		t.Errorf("HEAD ETag = %q", got)
	}
}

// TestAbortedPagesAreFlushed holds both kinds of page transform to what
// Caddy's reverse proxy does before it aborts a response the upstream
// broke off: what came is written and flushed (net/http would drop what
// it buffers), plain or compressed.
func TestAbortedPagesAreFlushed(t *testing.T) {
	h, _ := injectingHandler()
	const head = "<html><head><title>Inbox</title>"
	for _, gzipped := range []bool{false, true} {
		next := handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "text/html")
			body := []byte(head)
			if gzipped {
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				zw.Write(body)
				zw.Flush()
				body = b.Bytes()
				w.Header().Set("Content-Encoding", "gzip")
			}
			w.WriteHeader(http.StatusOK)
			w.Write(body)
			panic(http.ErrAbortHandler)
		})
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if v := recover(); v != http.ErrAbortHandler {
					t.Fatalf("gzip %v: recovered %v, want the abort to go on", gzipped, v)
				}
			}()
			h.serveInjected(rec, httptest.NewRequest(http.MethodGet, "http://helpdesk.test/app/accounts/1", nil), next)
		}()
		if !rec.Flushed || rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), head) {
			t.Errorf("gzip %v: flushed %v, status %d, body %q; want what came, flushed", gzipped, rec.Flushed, rec.Code, rec.Body)
		}
	}
}

func TestAdaptPageCSP(t *testing.T) {
	const origin, prefix, hash = "https://hd.test", "/dashboard-apps/", "sha256-AAA"
	for _, tc := range []struct {
		name, in, want, nonce string
		integrity             bool
	}{
		{"no policy", "", "", "", false},
		{"self allows everything we need", "default-src 'self'", "default-src 'self'", "", false},
		{"nonce reused", "script-src 'nonce-abc' 'strict-dynamic'; frame-src 'none'",
			"script-src 'nonce-abc' 'strict-dynamic'; frame-src https://hd.test/dashboard-apps/", "abc", false},
		{"strict-dynamic with hashes only", "script-src 'sha256-X' 'strict-dynamic'",
			"script-src 'sha256-X' 'strict-dynamic' 'sha256-AAA'", "", true},
		{"default-src none", "default-src 'none'",
			"default-src 'none'; script-src 'sha256-AAA' https://hd.test/_dashboard_apps/host.js; style-src https://hd.test/_dashboard_apps/host.css; connect-src https://hd.test/_dashboard_apps/; frame-src https://hd.test/dashboard-apps/", "", true},
		{"script host list", "script-src https://cdn.test; object-src 'none'",
			"script-src https://cdn.test 'sha256-AAA' https://hd.test/_dashboard_apps/host.js; object-src 'none'", "", true},
		{"child-src fallback for frames", "child-src https://x.test",
			"child-src https://x.test; frame-src https://x.test https://hd.test/dashboard-apps/", "", false},
		{"two policies", "default-src 'self', frame-src 'none'",
			"default-src 'self', frame-src https://hd.test/dashboard-apps/", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.in != "" {
				h.Set("Content-Security-Policy", tc.in)
			}
			hd := &Handler{Prefix: prefix, assets: &hostAssets{jsIntegrity: hash}}
			nonce, integrity := hd.adaptPageCSP(h, httptest.NewRequest("GET", origin+"/app/", nil))
			if got := h.Get("Content-Security-Policy"); got != tc.want {
				t.Errorf("policy:\n got %q\nwant %q", got, tc.want)
			}
			if nonce != tc.nonce || integrity != tc.integrity {
				t.Errorf("nonce %q integrity %v, want %q %v", nonce, integrity, tc.nonce, tc.integrity)
			}
		})
	}
}

// TestAdaptPageCSPInOriginMode: the app frames are on the app origins,
// with the scheme and port of the page.
func TestAdaptPageCSPInOriginMode(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Security-Policy", "default-src 'self'; frame-src 'self'")
	hd := &Handler{Prefix: "/dashboard-apps/", AppDomain: "hd.test", assets: &hostAssets{jsIntegrity: "sha256-A"}}
	hd.adaptPageCSP(h, httptest.NewRequest("GET", "http://hd.test:8080/app/", nil))
	if got, want := h.Get("Content-Security-Policy"), "default-src 'self'; frame-src 'self' http://*.hd.test:8080"; got != want {
		t.Errorf("policy:\n got %q\nwant %q", got, want)
	}
}

func TestNonceIsNeverCopiedUnlessSafe(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Security-Policy", `script-src 'nonce-"><script>alert(1)</script>'`)
	hd := &Handler{Prefix: "/p/", assets: &hostAssets{jsIntegrity: "sha256-A"}}
	if nonce, _ := hd.adaptPageCSP(h, httptest.NewRequest("GET", "https://x/", nil)); nonce != "" {
		t.Errorf("unsafe nonce copied: %q", nonce)
	}
}
