package caddymodule

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

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

// responseBody is the transform of a whole response's body, which also
// writes the response's status, when it sees fit.
type responseBody interface {
	io.Writer
	Flush() error
	writeHeader(status int)
	// headerInUse tells that the handler is at the header map again,
	// after the status (Caddy's reverse proxy: after every body, to copy
	// the trailers, if any): until it writes again or the body ends,
	// nothing may write the response from another goroutine, as
	// net/http's ResponseWriter and header map are not safe for that.
	headerInUse()
	// end writes out what is left; complete tells whether the body it
	// was given is all of it (else the response is being aborted).
	end(complete bool) error
}

// transformingWriter is a ResponseWriterWrapper whose body goes through
// a transform its owner picks, in onHeader, when the header is written;
// with none, the body passes straight through, unbuffered.
type transformingWriter struct {
	caddyhttp.ResponseWriterWrapper
	wroteHeader bool
	body        responseBody
	// onHeader adjusts the header for status and returns the body's
	// transform (used only for a final status: 2xx to 5xx, or 101).
	onHeader func(status int) responseBody
}

func (w *transformingWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	body := w.onHeader(status)
	if status >= 200 || status == http.StatusSwitchingProtocols {
		w.wroteHeader, w.body = true, body
	}
	if body != nil {
		body.writeHeader(status)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

// Header warns the body, once there is one, that the handler is at the
// header again.
func (w *transformingWriter) Header() http.Header {
	if w.body != nil {
		w.body.headerInUse()
	}
	return w.ResponseWriter.Header()
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

// FlushError flushes the body transform, which flushes the connection
// (a heldOutput soon after), or else the connection;
// http.ResponseController, which the reverse proxy flushes through, calls
// it.
func (w *transformingWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.body != nil {
		return w.body.Flush()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is FlushError for callers that look for http.Flusher.
func (w *transformingWriter) Flush() { _ = w.FlushError() }

// serveThrough runs serve with w as the response writer and closes the
// body transform afterwards, in a defer: Caddy ends a broken response by
// panicking with http.ErrAbortHandler, and a decoding goroutine must not
// be left behind. closeFailed hears of a transform that failed to close
// after serve succeeded.
func (w *transformingWriter) serveThrough(serve func(http.ResponseWriter) error, closeFailed func(error)) (err error) {
	complete := false
	defer func() {
		if w.body == nil {
			return
		}
		if cerr := w.body.end(complete); cerr != nil && err == nil {
			closeFailed(cerr)
		}
		if !complete {
			// Being aborted: Caddy's reverse proxy flushes before it
			// panics, so that the browser gets what came (net/http drops
			// what it buffers); what the transform held is only written
			// now, so flush again. Best effort: the response is broken.
			_ = http.NewResponseController(w.ResponseWriter).Flush()
		}
	}()
	err = serve(w)
	complete = err == nil
	return err
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
func (w *appResponse) onHeader(status int) responseBody {
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
func (w *appResponse) transformFor(status int, h http.Header) responseBody {
	if status == http.StatusNoContent || status == http.StatusNotModified || status == http.StatusPartialContent {
		return nil
	}
	mediaType := mediaTypeOf(h)
	var newRewriter func(io.Writer) bodyTransform
	switch mediaType {
	case "text/html", "application/xhtml+xml":
		newRewriter = func(dst io.Writer) bodyTransform { return rewrite.NewHTMLRewriter(dst, w.p.mapper, w.doc) }
	case "text/css":
		newRewriter = func(dst io.Writer) bodyTransform { return rewrite.NewCSSRewriter(dst, w.p.mapper, w.doc) }
	default:
		return nil
	}
	decode, coding, ok := prepareBody(h, "")
	if !ok {
		w.p.logger.Debug("not rewriting a response in an encoding the gateway cannot decode",
			zap.String("content_encoding", coding), zap.String("path", w.doc.Path))
		return nil
	}
	if w.head {
		return nil // the same headers as GET would get, and no body
	}
	return newHeldBody(w.ResponseWriter, decode, newRewriter)
}

// mediaTypeOf returns the media type of a response's Content-Type, lower
// case, without its parameters (mime.ParseMediaType would parse them into
// a map, on every response).
func mediaTypeOf(h http.Header) string {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// prepareBody readies the header of a response whose body the gateway
// changes: it returns the decoder of the body's coding (nil for none), or
// false when it cannot decode it; else it drops what describes the
// upstream's bytes and makes the validator weak, with etagMark appended.
func prepareBody(h http.Header, etagMark string) (decode func(io.Reader) (io.Reader, error), coding string, ok bool) {
	if decode, coding, ok = bodyDecoder(h); ok {
		dropUpstreamBodyHeaders(h, decode != nil)
		markETag(h, etagMark)
	}
	return decode, coding, ok
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

// newHeldBody builds the transform of a body for dst, decoding it first
// when decode is set. Its output goes to dst through a heldOutput.
func newHeldBody(dst http.ResponseWriter, decode func(io.Reader) (io.Reader, error), build func(io.Writer) bodyTransform) responseBody {
	out := &heldOutput{rw: dst}
	if decode == nil {
		return &heldBody{build(out), out}
	}
	return &heldBody{newDecodingTransform(decode, build, out), out}
}

// heldBody is a body transform whose output, and the response's status,
// a heldOutput holds. Every way the handler comes to the body (Write,
// Flush, end) first ends a visit to the header (headerFree): so the
// handler never waits in mayWriteOut for itself.
type heldBody struct {
	bodyTransform
	out *heldOutput
}

// Write and Flush let the heldOutput write again from other goroutines:
// the handler is back at the body.
func (b *heldBody) Write(p []byte) (int, error) {
	b.out.headerFree()
	return b.bodyTransform.Write(p)
}

func (b *heldBody) Flush() error {
	b.out.headerFree()
	return b.bodyTransform.Flush()
}

func (b *heldBody) headerInUse() { b.out.headerInUse() }

// writeHeader holds the status with the body, but for a response that
// announces trailers: Caddy puts their values in the header map after the
// body, on the handler's goroutine, so its header must be written first
// (and, as it is chunked, there is no length to gain).
func (b *heldBody) writeHeader(status int) {
	if hasTrailers(b.out.rw.Header()) {
		b.out.rw.WriteHeader(status)
		return
	}
	b.out.holdStatus(status)
}

func (b *heldBody) end(complete bool) error {
	b.out.headerFree() // the handler is here, and stays until the end
	err := b.bodyTransform.Close()
	if cerr := b.out.close(complete && err == nil); err == nil {
		err = cerr
	}
	return err
}

// heldFlushDelay bounds how long output waits to be written out.
const heldFlushDelay = 5 * time.Millisecond

// heldOutputSize is how much output a heldOutput holds before writing it:
// enough for most whole pages, rewritten.
const heldOutputSize = 256 << 10

var heldOutputBufs = sync.Pool{New: func() any { b := make([]byte, 0, heldOutputSize); return &b }}

// heldOutput is where a body transform writes. Caddy's reverse proxy
// flushes after every read from a chunked upstream, and each chunk
// written and flushed costs three system calls; a page that arrives in
// quick reads is better written in one piece. So heldOutput holds what it
// is given, up to heldOutputSize, and writes it out and flushes it when
// full, at the end of the response, or heldFlushDelay after the first
// byte it holds came, whatever Caddy flushes: a page streamed slowly, or
// decoded in a goroutine, reaches the browser that much later at most
// (or, should the handler be at the header then, once it leaves it).
//
// It holds the response's status too, until it writes its first bytes: a
// body that ends while all of it is held, without trailers, goes out with
// a Content-Length, not chunked, in one write.
//
// One mutex orders the writers (the handler, a decoding goroutine, the
// timer), as net/http's ResponseWriter is not safe for concurrent use.
// That leaves the handler's own use of the header map, which it does not
// lock: while it is at the header (headerInUse), the timer writes nothing
// and a decoding goroutine waits before writing anything out.
//
// The buffer comes from a pool while there is something to hold and goes
// back once written out, so a slow stream keeps none between its bursts.
type heldOutput struct {
	mu      sync.Mutex
	rw      http.ResponseWriter
	status  int     // to write before the first bytes; 0 once written
	held    *[]byte // nil when nothing is held
	timer   *time.Timer
	pending bool  // the timer is to flush
	err     error // of the timer's write, for the next Write to return
	closed  bool
	// headerBusy: the handler is at the header; headerFreed wakes a
	// decoding goroutine waiting for the end of that.
	headerBusy  bool
	headerFreed *sync.Cond
}

func (o *heldOutput) headerInUse() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.headerBusy = true
}

// headerFree ends headerInUse, and lets out what the timer could not
// write meanwhile. It runs on the handler's goroutine, or on the timer
// of Caddy's reverse proxy that flushes for it.
func (o *heldOutput) headerFree() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.headerBusy {
		return
	}
	o.headerBusy = false
	if o.pending && !o.closed {
		o.timer.Reset(heldFlushDelay)
	}
	if o.headerFreed != nil {
		o.headerFreed.Broadcast()
	}
}

// mayWriteOut waits while the handler is at the header, and tells whether
// the response may still be written: a decoding goroutine must not write
// it meanwhile, nor after the timer failed to. (The handler itself never
// waits here: see heldBody.)
func (o *heldOutput) mayWriteOut() error {
	for o.headerBusy {
		if o.headerFreed == nil {
			o.headerFreed = sync.NewCond(&o.mu)
		}
		o.headerFreed.Wait()
	}
	return o.err
}

func (o *heldOutput) holdStatus(status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.status = status
}

func (o *heldOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err // the browser went away: stop Caddy's copying
	}
	if o.closed {
		return o.writeOut(p)
	}
	if o.held != nil && len(*o.held)+len(p) > heldOutputSize {
		if err := o.mayWriteOut(); err != nil {
			return 0, err
		}
		if err := o.writeHeld(); err != nil {
			return 0, err
		}
	}
	if len(p) >= heldOutputSize {
		if err := o.mayWriteOut(); err != nil {
			return 0, err
		}
		return o.writeOut(p)
	}
	if o.held == nil {
		o.held = heldOutputBufs.Get().(*[]byte)
	}
	*o.held = append(*o.held, p...)
	if !o.pending {
		o.pending = true
		if o.timer == nil {
			o.timer = time.AfterFunc(heldFlushDelay, o.flush)
		} else {
			o.timer.Reset(heldFlushDelay)
		}
	}
	return len(p), nil
}

// writeOut writes p to the response, after its status if that is still
// held.
func (o *heldOutput) writeOut(p []byte) (int, error) {
	if o.status != 0 {
		o.rw.WriteHeader(o.status)
		o.status = 0
	}
	if len(p) == 0 {
		return 0, nil
	}
	return o.rw.Write(p)
}

// writeHeld writes out what is held and gives the buffer back.
func (o *heldOutput) writeHeld() error {
	if o.held == nil {
		return nil
	}
	_, err := o.writeOut(*o.held)
	*o.held = (*o.held)[:0]
	heldOutputBufs.Put(o.held)
	o.held = nil
	return err
}

func (o *heldOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.pending || o.closed || o.headerBusy { // headerFree sets the timer again
		return
	}
	o.pending = false
	if o.err = o.writeHeld(); o.err == nil {
		o.err = http.NewResponseController(o.rw).Flush()
	}
}

// close writes out what is held, for the end of the response to flush:
// with its length, when that is the whole of a complete body and it has
// no trailers (net/http sends a body with a length unchunked, and drops
// them). Writes after close go straight through.
func (o *heldOutput) close(complete bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
	}
	if o.err != nil {
		return o.err
	}
	if complete && o.status != 0 && !hasTrailers(o.rw.Header()) {
		n := 0
		if o.held != nil {
			n = len(*o.held)
		}
		o.rw.Header().Set("Content-Length", strconv.Itoa(n))
	}
	if err := o.writeHeld(); err != nil {
		return err
	}
	_, err := o.writeOut(nil) // the status of an empty body
	return err
}

// hasTrailers reports whether a response's header declares trailers or
// holds any (Caddy's reverse proxy adds those the upstream sent without
// declaring them under http.TrailerPrefix, after the body).
func hasTrailers(h http.Header) bool {
	if len(h["Trailer"]) > 0 {
		return true
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// decodingTransform decodes a compressed body into a rewriter. Decoders
// read, so the decoding runs in a goroutine fed through a pipe; Close waits
// for it, so none outlives the response. It writes to a heldOutput, whose
// mutex keeps its writes and the handler's flushes apart.
type decodingTransform struct {
	pw   *io.PipeWriter
	done chan error
	next bodyTransform
}

func newDecodingTransform(decode func(io.Reader) (io.Reader, error), build func(io.Writer) bodyTransform, dst *heldOutput) *decodingTransform {
	pr, pw := io.Pipe()
	t := &decodingTransform{pw: pw, done: make(chan error, 1), next: build(dst)}
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

// Flush leaves what the rewriter holds to the goroutine until Close; the
// heldOutput flushes what the goroutine writes.
func (t *decodingTransform) Flush() error { return nil }

func (t *decodingTransform) Close() error {
	t.pw.Close()
	err := <-t.done
	if cerr := t.next.Close(); err == nil {
		err = cerr
	}
	return err
}

// directBody is a transform that writes straight to the response: it
// writes the status at once, and its Flush flushes the connection after
// it.
type directBody struct {
	bodyTransform
	rw http.ResponseWriter
}

func (b directBody) writeHeader(status int) { b.rw.WriteHeader(status) }

// headerInUse has nothing to do: a directBody writes only when the
// handler does.
func (directBody) headerInUse() {}

func (b directBody) Flush() error {
	if err := b.bodyTransform.Flush(); err != nil {
		return err
	}
	return http.NewResponseController(b.rw).Flush()
}

func (b directBody) end(bool) error { return b.bodyTransform.Close() }
