package caddymodule

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

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
