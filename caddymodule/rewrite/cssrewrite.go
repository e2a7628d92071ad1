package rewrite

import (
	"bytes"
	"io"
	"net/url"
)

// CSSRewriter streams a text/css response. It holds back only a token
// that a write leaves incomplete (a comment, a string, a url(...) or a
// look-ahead of a few bytes), so memory is bounded by the largest token.
type CSSRewriter struct {
	out  outSink
	ref  refMapper
	lex  cssLexer
	held heldInput
}

// NewCSSRewriter returns a writer that streams a stylesheet to w, rewriting
// its references with m.MapRef(ref, doc) where doc is the stylesheet's
// upstream URL. Close flushes what is held and must be called once.
func NewCSSRewriter(w io.Writer, m *Mapper, doc *url.URL) *CSSRewriter {
	return &CSSRewriter{out: newOutSink(w), ref: refMapper{m: m, doc: doc}}
}

// Write passes on all that p completes before returning, so output keeps
// pace with input.
func (r *CSSRewriter) Write(p []byte) (int, error) {
	if r.out.err != nil {
		return 0, r.out.err
	}
	for rest := p; len(rest) > 0 && r.out.err == nil; {
		in, used := r.held.next(rest)
		r.held.keep(in, r.lex.rewrite(&r.out, in, false, &r.ref))
		rest = rest[used:]
	}
	r.out.flush()
	if r.out.err != nil {
		return 0, r.out.err
	}
	return len(p), nil
}

// Flush reports the first write error. Write leaves nothing complete
// behind, so there is nothing else to push out; it exists so that callers
// treat both rewriters alike.
func (r *CSSRewriter) Flush() error {
	r.out.flush()
	return r.out.err
}

// Close writes out the held token: a stylesheet that ends inside a
// comment or string ends there for the browser too.
func (r *CSSRewriter) Close() error {
	r.lex.rewrite(&r.out, r.held.buf, true, &r.ref)
	r.held.buf = r.held.buf[:0]
	r.out.flush()
	r.out.release()
	return r.out.err
}

// cssLexer finds the URLs of a stylesheet the way the CSS tokenizer sees
// them: it skips comments, strings and escapes so that nothing inside them
// is taken for a url( or @import, and it keeps what it needs to carry on
// where the previous piece of input stopped.
type cssLexer struct {
	afterName     bool // the input so far ends where a url( would not be a URL (see nameBefore)
	importPending bool // after @import: the next string, if nothing else comes first, is a URL
	skip          byte // what ends a long token being passed through: '*' (of "*/"), a quote or ')'
}

// maxCSSRef bounds the tokens that may hold a URL to rewrite. Longer
// ones (data: URIs, in practice) are left alone, so that they can pass
// through as they arrive rather than be held and lexed again at every
// write.
const maxCSSRef = 8 << 10

// rewrite copies src to out with its URLs mapped and returns how much of
// src it consumed: all of it at eof, else up to a token more input could
// still change.
func (l *cssLexer) rewrite(out *outSink, src []byte, eof bool, rm *refMapper) int {
	done, p := 0, 0
	for {
		start, end, next := l.next(src, p, eof)
		if start < 0 {
			out.emit(src[done:next])
			return next
		}
		out.emit(src[done:start])
		out.room(end - start + valueGrowth)
		out.buf = rm.appendRef(out.buf, src[start:end])
		done, p = end, next
	}
}

// cssSpecial marks the bytes where a token that matters may start.
var cssSpecial = [256]bool{'"': true, '\'': true, '/': true, '\\': true, 'u': true, 'U': true, '@': true}

// next returns the span of the next URL at or after src[i] and where to
// carry on after it. Without one, start is -1 and next is where the final
// part of src ends: len(src), or the start of a token that more input
// could still change.
func (l *cssLexer) next(src []byte, i int, eof bool) (start, end, next int) {
	for i < len(src) {
		if l.skip != 0 {
			k, done := l.skipRest(src, i)
			switch {
			case done:
				i = k
			case eof:
				i = len(src) // a token that never ends
			default:
				return l.hold(src, k)
			}
			continue
		}
		c := src[i]
		if l.importPending {
			if isSpace(c) {
				i++
				continue
			}
			if c != '/' && c != '"' && c != '\'' {
				l.importPending = false
			}
		} else if !cssSpecial[c] {
			i++
			continue
		}
		var m match
		start, end, next, m = l.token(src, i, eof)
		switch m {
		case matchYes:
			return start, end, next
		case matchMore:
			return l.hold(src, i)
		}
		i = next
	}
	return l.hold(src, len(src))
}

func (l *cssLexer) hold(src []byte, k int) (start, end, next int) {
	if k > 0 {
		l.afterName = nameBefore(src[k-1])
	}
	return -1, -1, k
}

// skipRest finds the end of the long token being passed through, from
// src[i]: the index after it and true, or where to hold and false.
func (l *cssLexer) skipRest(src []byte, i int) (int, bool) {
	if l.skip == '*' {
		if j := bytes.Index(src[i:], commentClose); j >= 0 {
			l.skip = 0
			return i + j + len(commentClose), true
		}
		if src[len(src)-1] == '*' {
			return len(src) - 1, false
		}
		return len(src), false
	}
	for j := i; j < len(src); j++ {
		switch c := src[j]; {
		case c == '\\':
			if j+1 == len(src) {
				return j, false
			}
			j++
		case c == l.skip:
			l.skip = 0
			return j + 1, true
		case l.skip != ')' && (c == '\n' || c == '\r' || c == '\f'):
			l.skip = 0
			return j, true
		}
	}
	return len(src), false
}

// token lexes the token at src[i]: a URL (matchYes), something to skip up
// to next (matchNo), or one that needs more input (matchMore).
func (l *cssLexer) token(src []byte, i int, eof bool) (start, end, next int, m match) {
	switch src[i] {
	case '"', '\'':
		start, end, next, m = l.quoted(src, i, i, eof, l.importPending)
		if m != matchMore {
			l.importPending = false
		}
		return start, end, next, m
	case '/':
		next, m = l.comment(src, i, eof)
		return 0, 0, next, m
	case '\\':
		next, m = escapedName(src, i, eof)
		return 0, 0, next, m
	case '@':
		next, m = l.atImport(src, i, eof)
		return 0, 0, next, m
	case 'u', 'U':
		return l.url(src, i, eof)
	}
	return 0, 0, i + 1, matchNo
}

// escapedName skips the name that the escape at src[i] is part of, so
// that a "url(" ending it (\"url() is not taken for a URL.
func escapedName(src []byte, i int, eof bool) (int, match) {
	for i < len(src) {
		switch {
		case src[i] == '\\' && i+1 < len(src):
			i += 2
		case src[i] == '\\' || isIdentByte(src[i]):
			i++
		default:
			return i, matchNo
		}
	}
	return eofOr(len(src), eof)
}

func (l *cssLexer) comment(src []byte, i int, eof bool) (int, match) {
	if i+1 == len(src) {
		return eofOr(len(src), eof)
	}
	if src[i+1] != '*' {
		l.importPending = false
		return i + 1, matchNo
	}
	j := bytes.Index(src[i+2:], commentClose)
	switch {
	case j >= 0:
		return i + 2 + j + len(commentClose), matchNo
	case eof:
		return len(src), matchNo
	}
	l.skip = '*'
	return i + 2, matchNo
}

var commentClose = []byte("*/")

// eofOr is what a token cut off at the end of the input amounts to: the
// rest of the input at eof, else a request for more.
func eofOr(n int, eof bool) (int, match) {
	if eof {
		return n, matchNo
	}
	return 0, matchMore
}

func (l *cssLexer) atImport(src []byte, i int, eof bool) (int, match) {
	switch lookPrefix(src[i:], "@import", true) {
	case matchNo:
		return i + 1, matchNo
	case matchMore:
		return eofOr(len(src), eof)
	}
	k := i + len("@import")
	if k == len(src) && !eof {
		return 0, matchMore
	}
	if k < len(src) && isIdentByte(src[k]) {
		return i + 1, matchNo // @imports, @import-x: another at-rule
	}
	l.importPending = true
	return k, matchNo
}

func (l *cssLexer) url(src []byte, i int, eof bool) (start, end, next int, m match) {
	after := l.afterName
	if i > 0 {
		after = nameBefore(src[i-1])
	}
	if after {
		return 0, 0, i + 1, matchNo // the tail of a longer name: myurl(, #url(
	}
	switch lookPrefix(src[i:], "url(", true) {
	case matchNo:
		return 0, 0, i + 1, matchNo
	case matchMore:
		next, m = eofOr(len(src), eof)
		return 0, 0, next, m
	}
	p := skipSpaces(src, i+len("url("))
	if p == len(src) {
		next, m = eofOr(len(src), eof)
		return 0, 0, next, m
	}
	if q := src[p]; q == '"' || q == '\'' {
		return l.quoted(src, i, p, eof, true)
	}
	start, end, next, m = unquotedURL(src, p, eof)
	switch {
	case m == matchMore && len(src)-i > maxCSSRef:
		l.skip = ')'
		return 0, 0, p, matchNo
	case m == matchYes && next-i > maxCSSRef:
		m = matchNo
	}
	return start, end, next, m
}

// quoted lexes the string at src[q], part of the token that starts at
// src[tok]; it is a URL when isURL. A string still incomplete is held
// only while it may be a URL to rewrite, else passed through.
func (l *cssLexer) quoted(src []byte, tok, q int, eof, isURL bool) (start, end, next int, m match) {
	end, next, m = cssString(src, q, eof)
	switch {
	case m == matchMore && isURL && len(src)-tok <= maxCSSRef:
		return 0, 0, 0, matchMore
	case m == matchMore:
		l.skip = src[q]
		return 0, 0, q + 1, matchNo
	case !isURL || next-tok > maxCSSRef:
		m = matchNo
	}
	return q + 1, end, next, m
}

// cssString lexes the string that starts with the quote at src[i]. m is
// matchYes for a string that can be rewritten as it is: terminated (by its
// quote or the end of the stylesheet) and free of escapes, which are left
// alone rather than decoded and re-encoded.
func cssString(src []byte, i int, eof bool) (end, next int, m match) {
	q := src[i]
	m = matchYes
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case q:
			return j, j + 1, m
		case '\\':
			m = matchNo
			j++
		case '\n', '\r', '\f':
			return j, j, matchNo // a bad string, which browsers drop
		}
	}
	if !eof {
		return 0, 0, matchMore
	}
	return len(src), len(src), m
}

// unquotedURL lexes the argument of url( that starts at src[p] up to its
// ")". m is matchNo for a bad url (white space inside, quotes, "(",
// control characters but NUL, which CSS reads as U+FFFD), which browsers
// drop, and for escapes.
func unquotedURL(src []byte, p int, eof bool) (start, end, next int, m match) {
	end, m = -1, matchYes
	for j := p; j < len(src); j++ {
		switch c := src[j]; {
		case c == ')':
			if end < 0 {
				end = j
			}
			return p, end, j + 1, m
		case isSpace(c):
			if end < 0 {
				end = j
			}
		case c == '\\':
			m = matchNo
			j++
		case end >= 0 || c == '"' || c == '\'' || c == '(' || 0 < c && c < ' ' || c == 0x7f:
			m = matchNo
		}
	}
	if !eof {
		return 0, 0, 0, matchMore
	}
	if end < 0 {
		end = len(src)
	}
	return p, end, len(src), m
}

// nameBefore reports whether a "url(" after c is the tail of a longer
// name rather than a URL: c continues a name (myurl(), or starts one,
// as "#" does a hash (#url() and "@" an at-keyword (@url().
func nameBefore(c byte) bool { return isIdentByte(c) || c == '#' || c == '@' }

// isIdentByte reports whether c continues a CSS name (escapes aside):
// NUL does, as CSS reads it as U+FFFD.
func isIdentByte(c byte) bool {
	return isASCIIAlpha(c) || '0' <= c && c <= '9' || c == '-' || c == '_' || c >= 0x80 || c == 0
}

// refMapper applies a Mapper to the references of one document, whose
// base URL can change while it is read (<base href>).
type refMapper struct {
	m       *Mapper
	doc     *url.URL
	absOnly bool     // the base is on another origin: only absolute URLs can still point at the app
	dec     charRefs // scratch for attribute text with character references

	// noFastPaths turns off the shortcuts that take the common cases
	// without the general machinery (the Mapper's appendPlain, and the
	// HTML rewriter's simpleTag, plainEndTag and style attribute check):
	// tests set it on a rewriter of their own to check that both paths
	// give the same bytes. It is a field, not a package setting, so that
	// rewriters with and without it can run side by side.
	noFastPaths bool
}

// appendRef appends to dst the mapped form of ref, or ref itself.
func (rm *refMapper) appendRef(dst, ref []byte) []byte {
	if out, ok := rm.plain(dst, ref); ok {
		return out
	}
	if mapped, ok := rm.mapRef(ref); ok {
		return append(dst, mapped...)
	}
	return append(dst, ref...)
}

// plain is the Mapper's fast path, where it applies.
func (rm *refMapper) plain(dst, ref []byte) ([]byte, bool) {
	if !rm.plainApplies() {
		return dst, false
	}
	return rm.m.appendPlain(dst, ref)
}

// plainApplies reports whether the Mapper's fast path applies: not behind
// a <base> on another origin, and not when tests turn the shortcuts off.
func (rm *refMapper) plainApplies() bool { return !rm.absOnly && !rm.noFastPaths }

// mapRef is MapRef behind a test that passes over, without converting
// them to strings, the references MapRef would leave alone anyway:
// relative ones without "..", fragments, other schemes. They are most of
// a page's references.
func (rm *refMapper) mapRef(ref []byte) (string, bool) {
	if !rm.mayMap(ref) {
		return "", false
	}
	return rm.m.MapRef(string(ref), rm.doc)
}

func (rm *refMapper) mayMap(ref []byte) bool {
	ref = ref[skipSpaces(ref, 0):]
	switch {
	case len(ref) == 0:
		return false
	case isSlash(ref[0]) && (!rm.absOnly || len(ref) > 1 && isSlash(ref[1])):
		return true
	case len(ref) > len(rm.m.scheme) && ref[len(rm.m.scheme)] == ':' && foldEq(ref[:len(rm.m.scheme)], rm.m.scheme):
		return true
	case !rm.absOnly && (bytes.Contains(ref, dotDot) || bytes.Contains(ref, pct2)):
		return true // "%2" may spell a dot of a ".." segment ("%2e")
	case hasTabsNewlines(ref):
		// Browsers, and MapRef, read the reference without them; they
		// are rare enough for a copy.
		return rm.mayMap([]byte(dropTabsNewlines(string(ref))))
	}
	return false
}

var (
	dotDot = []byte("..")
	pct2   = []byte("%2")
)
