// The stream machinery that the HTML and CSS rewriters share: where their
// output collects on its way to the writer, what they hold of an
// incomplete token between writes, and the look-ahead that may need more
// input to decide. Both are push lexers fed by Write; each piece of input
// is lexed where it lies and what is unchanged is passed on uncopied where
// possible.

package rewrite

import (
	"io"
	"sync"
)

// outSink collects output and passes it on in large writes; with no
// writer and a limit of math.MaxInt it only appends to buf, as tests use
// it.
type outSink struct {
	w     io.Writer
	buf   []byte
	limit int // what buf may hold before it is written out
	err   error

	pooled *[]byte // where buf came from, to give it back
}

// sinkSize bounds what a sink holds before writing it out.
const sinkSize = 64 << 10

// sinkBufs recycles sink buffers: a gateway rewrites a response in each
// of them, and a new one per response is garbage to collect.
var sinkBufs = sync.Pool{New: func() any { b := make([]byte, 0, sinkSize); return &b }}

// newOutSink returns a sink that writes to w, with a buffer from the
// pool; release gives it back.
func newOutSink(w io.Writer) outSink {
	pooled := sinkBufs.Get().(*[]byte)
	return outSink{w: w, buf: (*pooled)[:0], limit: sinkSize, pooled: pooled}
}

// release gives the buffer back once everything is written; the sink
// still works after, with a buffer of its own.
func (s *outSink) release() {
	if s.pooled == nil {
		return
	}
	if cap(s.buf) == sinkSize { // not grown past it by a long value
		*s.pooled = s.buf[:0]
		sinkBufs.Put(s.pooled)
	}
	s.buf, s.pooled = nil, nil
}

// valueGrowth is room enough for what mapping adds to most values (a few
// proxied prefixes): room(len(v)+valueGrowth) before appending a mapped v
// keeps the pooled buffer from growing, and out of the pool.
const valueGrowth = 512

// room makes sure that n more bytes fit in buf without growing it,
// writing it out first if need be.
func (s *outSink) room(n int) {
	if len(s.buf)+n > s.limit {
		s.flush()
	}
}

// emit adds b to the output. Long runs of unchanged input go to the writer
// directly, uncopied.
func (s *outSink) emit(b []byte) {
	if len(s.buf)+len(b) > s.limit {
		s.spill(b)
		return
	}
	s.buf = append(s.buf, b...)
}

// spill is emit for b that does not fit: what is collected goes out
// first, and b is copied only when it is short enough to gather more
// output after it.
func (s *outSink) spill(b []byte) {
	s.flush()
	if len(b) > sinkSize {
		s.write(b)
		return
	}
	s.buf = append(s.buf, b...)
}

// flush writes out what is collected. The rewriters call it at the end of
// every Write, so that nothing complete waits for the next one.
func (s *outSink) flush() {
	if len(s.buf) > 0 {
		s.write(s.buf)
		s.buf = s.buf[:0]
	}
}

// write passes b to the writer unless an earlier write failed: after an
// error nothing more is written, and the first error is what the
// rewriters' Write, Flush and Close report.
func (s *outSink) write(b []byte) {
	if s.err == nil {
		_, s.err = s.w.Write(b)
	}
}

// heldInput is the input a streaming rewriter has not consumed yet: the
// start of an incomplete token, to be completed by the next write.
type heldInput struct {
	buf []byte
}

// next returns the input to process next and how much of p it takes: p
// itself when nothing is held, else what is held and a piece of p. The
// piece is small, as a held token usually ends soon and the rest of p
// can then be processed where it is, but grows with what is held, so that
// a long token is not copied over and over.
func (h *heldInput) next(p []byte) ([]byte, int) {
	if len(h.buf) == 0 {
		return p, len(p)
	}
	n := min(len(p), max(len(h.buf), 512))
	h.buf = append(h.buf, p[:n]...)
	return h.buf, n
}

// keep holds in[n:], where in came from next.
func (h *heldInput) keep(in []byte, n int) {
	switch {
	case len(h.buf) == 0:
		h.buf = append(h.buf, in[n:]...)
	case n > 0: // in is h.buf; a long token that stays held is not moved
		h.buf = append(h.buf[:0], h.buf[n:]...)
	}
}

// match is the answer of a look-ahead that may need more input to decide.
type match uint8

const (
	matchNo   match = iota // it does not match, whatever follows
	matchYes               // it matches
	matchMore              // the input ends before it can tell
)

// lookPrefix reports whether b starts with pat (lower-case; ASCII case
// folded when fold), or cannot tell yet because b is a prefix of pat.
func lookPrefix(b []byte, pat string, fold bool) match {
	n := min(len(b), len(pat))
	for i := 0; i < n; i++ {
		c := b[i]
		if fold {
			c = lowerASCII(c)
		}
		if c != pat[i] {
			return matchNo
		}
	}
	if n < len(pat) {
		return matchMore
	}
	return matchYes
}
