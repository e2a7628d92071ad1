package caddymodule

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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
// a transform its owner's rules pick when the header is written; with
// none, the body passes straight through, unbuffered.
type transformingWriter struct {
	caddyhttp.ResponseWriterWrapper
	wroteHeader bool
	body        responseBody
	rules       headerRules
}

// headerRules are what a response wrapper does when the header is
// written: onHeader adjusts the header for status and returns the body's
// transform (used only for a final status: 2xx to 5xx, or 101).
type headerRules interface {
	onHeader(status int) responseBody
}

// wrap makes w the writer of rules' response to the browser's writer rw.
// (An interface rather than a func field: a method value would cost an
// allocation on every request.)
func (w *transformingWriter) wrap(rw http.ResponseWriter, rules headerRules) {
	*w = transformingWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: rw}, rules: rules}
}

func (w *transformingWriter) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	body := w.rules.onHeader(status)
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

// Interface guards: the wrappers are ResponseWriters that flush (through
// http.ResponseController too) and keep io.Copy's ReadFrom fast path.
var (
	_ http.ResponseWriter             = (*transformingWriter)(nil)
	_ http.Flusher                    = (*transformingWriter)(nil)
	_ io.ReaderFrom                   = (*transformingWriter)(nil)
	_ interface{ FlushError() error } = (*transformingWriter)(nil)
	_ http.ResponseWriter             = (*appResponse)(nil)
	_ http.ResponseWriter             = (*injectResponse)(nil)
	_ responseBody                    = (*heldBody)(nil)
	_ responseBody                    = directBody{}
	_ bodyTransform                   = (*decodingTransform)(nil)
	_ bodyTransform                   = (*headInjector)(nil)
)
