package caddymodule

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// bodyTransform is a streaming rewriter of a response body.
type bodyTransform interface {
	io.Writer
	Flush() error
	Close() error
}

// transformingWriter is a ResponseWriterWrapper whose body goes through
// a transform its owner picks, in onHeader, when the header is written;
// with none, the body passes straight through, unbuffered.
type transformingWriter struct {
	caddyhttp.ResponseWriterWrapper
	wroteHeader bool
	body        bodyTransform
	// onHeader adjusts the header for status and returns the body's
	// transform (used only for a final status: 2xx to 5xx, or 101).
	onHeader func(status int) bodyTransform
}

func (w *transformingWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	body := w.onHeader(status)
	if status >= 200 || status == http.StatusSwitchingProtocols {
		w.wroteHeader, w.body = true, body
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *transformingWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.body != nil {
		return w.body.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps io.Copy from going around Write, and keeps the fast path
// for bodies that pass through.
func (w *transformingWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.body != nil {
		return io.Copy(w.body, r)
	}
	return w.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError writes out what the body transform holds, then flushes the
// connection; http.ResponseController, which the reverse proxy flushes
// through, calls it.
func (w *transformingWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return flushBody(w.body, w.ResponseWriter)
}

// Flush is FlushError for callers that look for http.Flusher.
func (w *transformingWriter) Flush() { _ = w.FlushError() }

// close ends the body transform, writing out what it still holds.
func (w *transformingWriter) close() error {
	if w.body == nil {
		return nil
	}
	return w.body.Close()
}

// appResponse applies the proxy rules to an app's response as Caddy's
// reverse proxy writes it: header rules when the header is written, and a
// body transform chosen then from the status, type and encoding.
type appResponse struct {
	transformingWriter
	p    *appProxy
	doc  *url.URL
	head bool
}

func newAppResponse(w http.ResponseWriter, p *appProxy, doc *url.URL, r *http.Request) *appResponse {
	ar := &appResponse{p: p, doc: doc, head: r.Method == http.MethodHead}
	ar.transformingWriter = transformingWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, onHeader: ar.onHeader}
	return ar
}

// onHeader applies the header rules; informational responses (103 Early
// Hints' Link) get them too, since Caddy restores its header map after
// each of them.
func (w *appResponse) onHeader(status int) bodyTransform {
	h := w.Header()
	rewrite.RewriteResponseHeaders(h, w.p.mapper, w.doc, w.p.app.id)
	if status < 200 && status != http.StatusSwitchingProtocols {
		return nil
	}
	w.p.statuses.count(status)
	if status == http.StatusSwitchingProtocols {
		return nil
	}
	return w.transformFor(status, h)
}

// transformFor picks the body transform for a response, adjusting its
// headers to the body the browser will get; nil means pass through.
func (w *appResponse) transformFor(status int, h http.Header) bodyTransform {
	if status == http.StatusNoContent || status == http.StatusNotModified || status == http.StatusPartialContent {
		return nil
	}
	mediaType, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	var newRewriter func(io.Writer) bodyTransform
	switch mediaType {
	case "text/html", "application/xhtml+xml":
		newRewriter = func(dst io.Writer) bodyTransform { return rewrite.NewHTMLRewriter(dst, w.p.mapper, w.doc) }
	case "text/css":
		newRewriter = func(dst io.Writer) bodyTransform { return rewrite.NewCSSRewriter(dst, w.p.mapper, w.doc) }
	default:
		return nil
	}
	decode, coding, ok := bodyDecoder(h)
	if !ok {
		w.p.logger.Debug("not rewriting a response in an encoding the gateway cannot decode",
			zap.String("content_encoding", coding), zap.String("path", w.doc.Path))
		return nil
	}
	dropUpstreamBodyHeaders(h, decode != nil)
	// The bytes differ from the app's, so its validator is only weakly equal.
	if etag := h.Get("Etag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		h.Set("Etag", "W/"+etag)
	}
	if w.head {
		return nil // the same headers as GET would get, and no body
	}
	return newBodyTransform(w.ResponseWriter, decode, newRewriter)
}

// bodyDecoder returns the decoder of a body's Content-Encoding (nil when
// it has none) and the coding; ok is false for a coding the gateway
// cannot decode, whose body must then pass as it is.
func bodyDecoder(h http.Header) (decode func(io.Reader) (io.Reader, error), coding string, ok bool) {
	switch coding = strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); coding {
	case "", "identity":
		return nil, coding, true
	}
	decode = decoderFor(coding)
	return decode, coding, decode != nil
}

// dropUpstreamBodyHeaders removes what describes the upstream's bytes of a
// body the gateway changes: its length, ranges, digests and, once decoded,
// its coding.
func dropUpstreamBodyHeaders(h http.Header, decoded bool) {
	for _, name := range []string{"Content-Length", "Accept-Ranges", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest"} {
		h.Del(name)
	}
	if decoded {
		h.Del("Content-Encoding")
	}
}

// decoderFor returns the decoder of a content coding, or nil for one the
// gateway cannot decode (br: no decoder in Caddy's build; the gateway never
// asks for it).
func decoderFor(coding string) func(io.Reader) (io.Reader, error) {
	switch coding {
	case "gzip", "x-gzip":
		return func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
	case "deflate":
		return inflate
	case "zstd":
		return func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}
	}
	return nil
}

// inflate reads HTTP's "deflate", which is zlib-wrapped, and the raw
// deflate some servers send under that name instead.
func inflate(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err == nil && len(head) == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// newBodyTransform builds the transform of a body for dst, decoding it
// first when decode is set.
func newBodyTransform(dst http.ResponseWriter, decode func(io.Reader) (io.Reader, error), build func(io.Writer) bodyTransform) bodyTransform {
	if decode == nil {
		return build(dst)
	}
	return newDecodingTransform(decode, build, dst)
}

// decodingTransform decodes a compressed body into a rewriter. Decoders
// read, so the decoding runs in a goroutine fed through a pipe; Close waits
// for it, so none outlives the response. The goroutine's writes to the
// connection and the handler's flushes go through one mutex: net/http's
// ResponseWriter is not safe for both at once.
type decodingTransform struct {
	pw   *io.PipeWriter
	done chan error
	next bodyTransform
	dst  *lockedWriter
}

// lockedWriter serialises writes and flushes of a ResponseWriter.
type lockedWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newDecodingTransform(decode func(io.Reader) (io.Reader, error), build func(io.Writer) bodyTransform, dst http.ResponseWriter) *decodingTransform {
	pr, pw := io.Pipe()
	lw := &lockedWriter{w: dst}
	t := &decodingTransform{pw: pw, done: make(chan error, 1), next: build(lw), dst: lw}
	go func() {
		r, err := decode(pr)
		if err == nil {
			_, err = io.Copy(t.next, r)
			if c, ok := r.(io.Closer); ok {
				c.Close()
			}
		}
		pr.CloseWithError(err) // unblocks Write if decoding stopped early
		t.done <- err
	}()
	return t
}

func (t *decodingTransform) Write(p []byte) (int, error) { return t.pw.Write(p) }

// Flush flushes what the goroutine has written so far; what the rewriter
// holds is the goroutine's until Close.
func (t *decodingTransform) Flush() error {
	t.dst.mu.Lock()
	defer t.dst.mu.Unlock()
	return http.NewResponseController(t.dst.w).Flush()
}

func (t *decodingTransform) Close() error {
	t.pw.Close()
	err := <-t.done
	if cerr := t.next.Close(); err == nil {
		err = cerr
	}
	return err
}

// flushBody writes out what a body transform holds and flushes the
// connection (a decoding transform does both under its own lock).
func flushBody(body bodyTransform, w http.ResponseWriter) error {
	if body != nil {
		if err := body.Flush(); err != nil {
			return err
		}
		if _, ok := body.(*decodingTransform); ok {
			return nil
		}
	}
	return http.NewResponseController(w).Flush()
}
