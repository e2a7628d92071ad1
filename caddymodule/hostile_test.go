package caddymodule

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The second hostile upstream, for attacks_test.go and faults_test.go: an
// app that attacks the gateway and the helpdesk's origin on purpose, and
// one that fails in every way a real one does. Its apps are registered in
// account 2 only (agent 7 administers it), so they stay out of the tab
// lists the other tests check in account 1.
var (
	faultyOnce   sync.Once
	faultyServer *httptest.Server
	faultyLog    requestLog
)

// Unpacked sizes of the gzip bombs.
const (
	bombSize    = 10 << 20 // ordinary markup
	tagBombSize = 48 << 20 // one tag that never ends
)

// hostileAppsConfig starts the upstream (once, closed in stopUpstreams)
// and returns its apps for the dashboard_apps block of gatewayConfig.
func hostileAppsConfig() string {
	faultyOnce.Do(func() {
		faultyServer = httptest.NewServer(faultyApp())
		upstreams = append(upstreams, faultyServer)
	})
	// Returned into gatewayConfig's Sprintf format: no '%' in here.
	return strings.ReplaceAll(`app evil "Evil" URL/ {
			accounts 2
		}
		app evilsub "Evil sub" URL/sub/ {
			accounts 2
		}
		app xss "</script><script>__xss=1</script><img src=x onerror=__xss=2>" URL/ {
			accounts 2
		}
		app quotes "\"Q\" & 'S' <b>bold</b>" URL/ {
			accounts 2
		}`, "URL", faultyServer.URL)
}

// gzipBombs are gzipped text/html bodies that unpack to many megabytes,
// made on first use.
var gzipBombs = map[string]func() []byte{
	"markup": sync.OnceValue(func() []byte {
		return gzipOf(func(w io.Writer) {
			chunk := []byte(`<p class="row">hello <a href="/item?id=1">item</a> <img src='/i.png'></p>` + "\n")
			for n := 0; n < bombSize; n += len(chunk) {
				w.Write(chunk)
			}
		})
	}),
	"tag": sync.OnceValue(func() []byte {
		return gzipOf(func(w io.Writer) {
			io.WriteString(w, `<!doctype html><a href="/`)
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for n := 0; n < tagBombSize; n += len(chunk) {
				w.Write(chunk)
			}
			io.WriteString(w, `">x</a>`)
		})
	}),
}

// gzipOf is what write writes, gzipped.
func gzipOf(write func(io.Writer)) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	write(zw)
	zw.Close()
	return b.Bytes()
}

// upstreamRequest is what the faulty upstream saw of one request.
type upstreamRequest struct {
	Method, URI, Path, Query string
	Header                   http.Header
	Body                     string
}

type requestLog struct {
	mu   sync.Mutex
	reqs []upstreamRequest
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = nil
}

func (l *requestLog) add(r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, upstreamRequest{r.Method, r.RequestURI, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(body)})
}

// withQuery returns the logged requests whose raw query contains s.
func (l *requestLog) withQuery(s string) []upstreamRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []upstreamRequest
	for _, r := range l.reqs {
		if strings.Contains(r.Query, s) {
			out = append(out, r)
		}
	}
	return out
}

// matching returns the logged requests whose path starts with prefix.
func (l *requestLog) matching(prefix string) []upstreamRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []upstreamRequest
	for _, r := range l.reqs {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// originWideHeaders are response headers that act on a whole origin; from
// an app served on the helpdesk's origin, they would act on the helpdesk.
var originWideHeaders = map[string]string{
	"Strict-Transport-Security":   "max-age=63072000; includeSubDomains; preload",
	"Clear-Site-Data":             `"cookies", "storage", "executionContexts"`,
	"Service-Worker-Allowed":      "/",
	"Origin-Agent-Cluster":        "?1",
	"Alt-Svc":                     `h3=":443"; ma=86400`,
	"Nel":                         `{"report_to":"evil","max_age":31536000,"include_subdomains":true}`,
	"Report-To":                   `{"group":"evil","max_age":31536000,"endpoints":[{"url":"https://evil.example/r"}]}`,
	"Expect-Ct":                   "max-age=86400, enforce",
	"Public-Key-Pins":             `pin-sha256="AAAA"; max-age=5184000`,
	"Public-Key-Pins-Report-Only": `pin-sha256="AAAA"; max-age=5184000`,
}

func faultyApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "host": r.Host, "path": r.URL.EscapedPath(), "query": r.URL.RawQuery, "header": r.Header})
	})
	// Set-Cookie values from the query, one per "c" parameter.
	mux.HandleFunc("/setcookies", func(w http.ResponseWriter, r *http.Request) {
		for _, c := range r.URL.Query()["c"] {
			w.Header().Add("Set-Cookie", c)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// Every header a browser navigates by, set to the query's v.
	mux.HandleFunc("/loc", func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("v")
		h := w.Header()
		h["Location"] = []string{v}
		h["Content-Location"] = []string{v}
		h["Refresh"] = []string{"0; url=" + v}
		h["Link"] = []string{"<" + v + ">; rel=preload; as=style"}
		w.WriteHeader(http.StatusFound)
	})
	// Origin-wide headers on any status, after an optional 103.
	mux.HandleFunc("/origin-wide", func(w http.ResponseWriter, r *http.Request) {
		set := func() {
			for k, v := range originWideHeaders {
				w.Header().Set(k, v)
			}
		}
		if r.URL.Query().Get("early") != "" {
			set()
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
		}
		set()
		status, _ := strconv.Atoi(r.URL.Query().Get("status"))
		if status == 0 {
			status = http.StatusOK
		}
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		if status != http.StatusNotModified && status != http.StatusNoContent {
			io.WriteString(w, `<p>hello</p>`)
		}
	})
	// Logs every request under /smug/, for the smuggling tests.
	mux.HandleFunc("/smug/", func(w http.ResponseWriter, r *http.Request) {
		faultyLog.add(r)
		io.WriteString(w, "ok")
	})
	// A redirect to itself, for ever.
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		faultyLog.add(r)
		http.Redirect(w, r, "/loop?n="+strconv.Itoa(len(r.URL.RawQuery)), http.StatusFound)
	})
	// A page that, opened as a popup by an app's frame, asks the helpdesk
	// page for the context as if it were one of its app frames.
	mux.HandleFunc("/popup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, `<!doctype html><title>popup</title><script>
try { opener.parent.postMessage({event: 'fetch-info'}, '*'); opener.parent.postMessage('chatwoot-dashboard-app:fetch-info', '*');
      opener.parent.postMessage(JSON.stringify({event: 'fetch-info'}), '*'); document.title = 'sent'; } catch (e) { document.title = 'error ' + e; }
</script>`)
	})
	// Headers, part of the body, then a TCP reset. ?type= the media type,
	// ?gz=1 gzipped, ?chunked=1 without a Content-Length.
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body := bytes.Repeat([]byte(`<p><a href="/x">x</a></p>`+"\n"), 40000) // ~1 MB
		enc := ""
		if q.Get("gz") != "" {
			body = gzipOf(func(w io.Writer) { w.Write(body) })
			enc = "Content-Encoding: gzip\r\n"
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		length := "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
		half := body[:len(body)/2]
		if q.Get("chunked") != "" {
			length = "Transfer-Encoding: chunked\r\n"
			half = append([]byte(fmt.Sprintf("%x\r\n", len(half))), append(half, "\r\n"...)...)
		}
		fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%s%s\r\n", q.Get("type"), enc, length)
		brw.Write(half)
		brw.Flush()
		time.Sleep(20 * time.Millisecond)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST
		}
	})
	// Headers and part of the body, then nothing until the client leaves.
	mux.HandleFunc("/stall-body", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.URL.Query().Get("type"))
		var out io.Writer = w
		var zw *gzip.Writer
		if r.URL.Query().Get("gz") != "" {
			w.Header().Set("Content-Encoding", "gzip")
			zw = gzip.NewWriter(w)
			out = zw
		}
		for i := 0; i < 200; i++ {
			io.WriteString(out, `<p><a href="/x">x</a></p>`+"\n")
		}
		if zw != nil {
			zw.Flush()
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	// 1 MiB of response headers: one huge value, or many headers.
	mux.HandleFunc("/big-headers", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("many") != "" {
			for i := 0; i < 16384; i++ { // 16384 × 64 bytes
				w.Header().Set(fmt.Sprintf("X-Filler-%05d", i), strings.Repeat("f", 48))
			}
		} else {
			w.Header().Set("X-Huge", strings.Repeat("h", 1<<20))
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "big headers")
	})
	mux.HandleFunc("/bomb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Encoding", "gzip")
		bomb, ok := gzipBombs[r.URL.Query().Get("kind")]
		if !ok {
			return
		}
		b := bomb()
		if r.URL.Query().Get("drip") == "" {
			w.Write(b)
			return
		}
		for len(b) > 0 { // in small flushed pieces: many writes and flushes downstream
			n := min(len(b), 1024)
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	})
	// Broken markup and bytes that are not UTF-8, with nothing to rewrite.
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.URL.Query().Get("type"))
		w.Write(brokenBody)
	})
	// A raw response whose Location carries a bare line feed.
	mux.HandleFunc("/raw-location", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 302 Found\r\nLocation: /a\n//evil.example/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		brw.Flush()
	})
	// Requests marked ?trav= (path traversal attempts) are logged and
	// echoed whatever their path, before the mux could clean it.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "trav=") {
			faultyLog.add(r)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"uri": r.RequestURI})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// brokenBody is HTML no parser would be proud of, in no valid encoding,
// without a single URL the gateway has to rewrite.
var brokenBody = []byte("<!doctype html><html><head><title>\xff\xfe broken \xc3\x28</title><p class=\"unterminated>text \x00 nul" +
	"<div <<>> </span></div></b></i><scr<script>ipt>x=\"</script>\xed\xa0\x80 surrogate <a href=\"rel/ative\">r</a>" +
	"<!-- unterminated comment <a href=\"x\"> \xf8\x88\x80\x80\x80 overlong \xc0\xaf <table><td><tr></table><plaintext>\xe2\x82 cut")

// readRawResponses reads the HTTP responses a raw connection gets until it
// closes or goes quiet for quiet.
func readRawResponses(conn net.Conn, quiet time.Duration) ([]*http.Response, error) {
	br := bufio.NewReader(conn)
	var out []*http.Response
	for {
		conn.SetReadDeadline(time.Now().Add(quiet))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() || err == io.EOF || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset") {
				return out, nil
			}
			return out, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
}
