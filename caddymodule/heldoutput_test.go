package caddymodule

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watchedWriter is a ResponseWriter that tells when it is written while the
// handler is at the header map (handlerAtHeader): net/http's ResponseWriter
// is not safe for that, and Caddy's reverse proxy goes back to the header
// for trailers after the body, on the handler's goroutine, unlocked.
type watchedWriter struct {
	header          http.Header
	handlerAtHeader atomic.Bool
	mu              sync.Mutex
	status          int
	body            bytes.Buffer
	clashes         []string
}

func (w *watchedWriter) Header() http.Header { return w.header }

func (w *watchedWriter) note(call string) {
	if w.handlerAtHeader.Load() {
		w.clashes = append(w.clashes, call)
	}
}

func (w *watchedWriter) WriteHeader(status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.note("WriteHeader")
	if w.status == 0 {
		w.status = status
	}
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.note("Write")
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

// written is how many body bytes have been written.
func (w *watchedWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.Len()
}

func (w *watchedWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.note("Flush")
}

// copyTransform is a body transform that changes nothing.
type copyTransform struct{ io.Writer }

func (copyTransform) Flush() error { return nil }
func (copyTransform) Close() error { return nil }

// newWatchedHeldBody is a transformingWriter whose body a heldOutput holds
// for rw, gunzipped first when gzipped is set.
func newWatchedHeldBody(rw *watchedWriter, gzipped bool) *transformingWriter {
	var decode func(io.Reader) (io.Reader, error)
	if gzipped {
		decode = decoderFor("gzip")
	}
	tw := &transformingWriter{}
	tw.wrap(rw, rulesFunc(func(int) responseBody {
		return newHeldBody(rw, decode, func(dst io.Writer) bodyTransform { return copyTransform{dst} })
	}))
	return tw
}

// rulesFunc is a func as headerRules.
type rulesFunc func(status int) responseBody

func (f rulesFunc) onHeader(status int) responseBody { return f(status) }

// serveWithin runs serve through tw on another goroutine, as a handler,
// and fails the test if it does not end in time.
func serveWithin(t *testing.T, tw *transformingWriter, serve func(http.ResponseWriter) error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- tw.serveThrough(serve, func(err error) { t.Errorf("closing: %v", err) })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the response never ended: a decoder waits for a handler that waits for it")
	}
}

// TestHeldOutputLeavesTheHeaderToTheHandler: while the handler is back at
// the header after the status, neither the held output's timer nor a
// decoding goroutine writes the response; what they held is written once
// the handler writes again or the body ends, and none of it is lost. A
// body that ends with trailers goes without a length, which would make
// net/http drop them.
func TestHeldOutputLeavesTheHeaderToTheHandler(t *testing.T) {
	page := []byte(strings.Repeat("<p>held output</p>\n", 40000)) // 760 KB: more than is held
	zipped := gzipOf(func(w io.Writer) { w.Write(page) })
	for _, c := range []struct {
		name    string
		gzipped bool
		// writes are the body's pieces; the handler goes to the header
		// after each of them, and adds a trailer there if trailer is set.
		writes  [][]byte
		trailer bool
		length  bool // sent with its length
	}{
		{"small page", false, [][]byte{page[:4000]}, false, true},
		{"small page, then trailers", false, [][]byte{page[:4000]}, true, false},
		{"page in pieces, back at the header between them", false, [][]byte{page[:4000], page[4000:8000]}, false, true},
		{"gzip page bigger than is held, then trailers", true, [][]byte{zipped}, true, false},
		{"gzip page in two pieces, back at the header between them", true, [][]byte{zipped[:len(zipped)/2], zipped[len(zipped)/2:]}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rw := &watchedWriter{header: http.Header{}}
			serveWithin(t, newWatchedHeldBody(rw, c.gzipped), func(w http.ResponseWriter) error {
				w.WriteHeader(http.StatusOK)
				for _, p := range c.writes {
					if _, err := w.Write(p); err != nil {
						return err
					}
					h := w.Header()
					rw.handlerAtHeader.Store(true)
					// Long enough for the timer to fire, and for a
					// decoder to fill what is held.
					time.Sleep(20 * heldFlushDelay)
					if c.trailer {
						h.Set(http.TrailerPrefix+"X-Checksum", "ok")
					}
					rw.handlerAtHeader.Store(false)
				}
				return nil
			})
			want := page
			if !c.gzipped {
				want = bytes.Join(c.writes, nil)
			}
			if len(rw.clashes) > 0 {
				t.Errorf("written while the handler was at the header: %v", rw.clashes)
			}
			if rw.status != http.StatusOK || !bytes.Equal(rw.body.Bytes(), want) {
				t.Errorf("status %d, %d bytes; want 200 and %d bytes", rw.status, rw.body.Len(), len(want))
			}
			if got, wantLength := rw.header.Get("Content-Length"), fmt.Sprint(len(want)); c.length != (got == wantLength) {
				t.Errorf("Content-Length %q, want it %v", got, c.length)
			}
		})
	}
}

// TestHeldOutputFlowsAfterTheHeader: what came while the handler was at
// the header goes out soon after it leaves, not at the end of the body.
func TestHeldOutputFlowsAfterTheHeader(t *testing.T) {
	part := []byte(strings.Repeat("x", 1000))
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(part)
	zw.Flush() // the decoder can give these bytes before the stream ends
	flushed := zipped.Len()
	zw.Close()
	for _, gzipped := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip %v", gzipped), func(t *testing.T) {
			rw := &watchedWriter{header: http.Header{}}
			body, end := part, []byte(nil)
			if gzipped {
				body, end = zipped.Bytes()[:flushed], zipped.Bytes()[flushed:]
			}
			serveWithin(t, newWatchedHeldBody(rw, gzipped), func(w http.ResponseWriter) error {
				w.WriteHeader(http.StatusOK)
				if _, err := w.Write(body); err != nil {
					return err
				}
				w.Header()
				time.Sleep(4 * heldFlushDelay) // the timer fires, and must wait
				w.(http.Flusher).Flush()       // back at the body
				deadline := time.Now().Add(40 * heldFlushDelay)
				for rw.written() < len(part) && time.Now().Before(deadline) {
					time.Sleep(heldFlushDelay)
				}
				if n := rw.written(); n < len(part) {
					t.Errorf("%d of %d bytes written %v after the handler left the header; want all", n, len(part), 40*heldFlushDelay)
				}
				_, err := w.Write(end)
				return err
			})
		})
	}
}
