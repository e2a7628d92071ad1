package rewrite

import (
	"bytes"
	"encoding/binary"
	"html"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// HTMLRewriter rewrites the URL references of an HTML document as it
// streams through. It is a push lexer, not a parser: it follows the HTML
// tokenizer's states just closely enough to know where tags, comments and
// raw text (script, style, textarea...) begin and end as a browser would,
// copies every byte it does not rewrite, and between writes holds back
// only the start of an incomplete token. A tree-building parser would
// re-serialize the page and could not stream it; x/net/html's Tokenizer
// is pull-based (a goroutine and a pipe to feed it from Write), reports no
// attribute offsets and lower-cases its buffer in place.
type HTMLRewriter struct {
	out     outSink
	ref     refMapper
	state   htmlState
	script  scriptState // where in the script data states a <script> is
	rawEnd  string      // the element whose end tag closes the current raw text
	tag     tagLexer
	css     cssLexer // the stylesheet of the current <style>
	foreign int      // open <svg> and <math> elements: CDATA sections exist only there
	inert   int      // open <template> elements, whose content is in no document
	baseSet bool     // the first <base href> has set the base URL
	text    charRefs // scratch for decoded attribute values
	held    heldInput
	urls    [4]tagURL // simpleTag's scratch: a local one, zeroed per tag, showed in profiles
}

// maxHeldTag bounds how much of one unfinished tag is held back.
const maxHeldTag = 1 << 20

type htmlState uint8

const (
	inData htmlState = iota
	inTag            // in a start or end tag; the tagLexer knows where
	inComment
	inBogusComment // <!DOCTYPE>, <?...>, </ x>: up to the first ">"
	inCDATA
	inRawText // RAWTEXT and RCDATA elements, up to </rawEnd
	inScript
	inStyle
	inPlaintext
)

// NewHTMLRewriter returns a writer that streams an HTML document to w,
// rewriting URL references with m.MapRef(ref, doc) where doc is the
// upstream URL of the document (nil leaves relative references alone).
// Close flushes what is held and must be called once.
func NewHTMLRewriter(w io.Writer, m *Mapper, doc *url.URL) *HTMLRewriter {
	return &HTMLRewriter{out: newOutSink(w), ref: refMapper{m: m, doc: doc}}
}

// Write passes on all that p completes before returning, so that a page
// renders progressively.
func (r *HTMLRewriter) Write(p []byte) (int, error) {
	if r.out.err != nil {
		return 0, r.out.err
	}
	for rest := p; len(rest) > 0 && r.out.err == nil; {
		in, used := r.held.next(rest)
		r.held.keep(in, r.process(in, false))
		rest = rest[used:]
		if r.state == inTag && len(r.held.buf) > maxHeldTag {
			// A tag longer than any real page has: let it through as the
			// app sent it rather than hold it all. What follows is read as
			// text; a URL in the rest of that tag stays as it was.
			r.out.emit(r.held.buf)
			r.held.buf = r.held.buf[:0]
			r.state = inData
		}
	}
	r.out.flush()
	if r.out.err != nil {
		return 0, r.out.err
	}
	return len(p), nil
}

// Flush reports the first write error. Write already passes on every
// complete token, and what it holds back cannot be written before the
// input completes it, so there is nothing else to push out.
func (r *HTMLRewriter) Flush() error {
	r.out.flush()
	return r.out.err
}

// Close writes out what is held: an unterminated tag or comment at the
// end of the document goes out exactly as the app sent it.
func (r *HTMLRewriter) Close() error {
	n := r.process(r.held.buf, true)
	r.out.emit(r.held.buf[n:])
	r.held.buf = r.held.buf[:0]
	r.out.flush()
	r.out.release()
	return r.out.err
}

// process consumes in and returns how far it got: where an incomplete
// token starts, which the next write must complete.
func (r *HTMLRewriter) process(in []byte, eof bool) int {
	i := 0
	for i < len(in) && r.out.err == nil {
		next, ok := r.step(in, i, eof)
		if !ok {
			return next
		}
		i = next
	}
	return i
}

// step lexes from in[i] in the current state. It returns where to go on,
// or false and where the input must be held.
func (r *HTMLRewriter) step(in []byte, i int, eof bool) (int, bool) {
	switch r.state {
	case inTag:
		return r.tagToken(in, i)
	case inComment:
		return r.section(in, i, commentEnd(in[i:]), len("--!"))
	case inBogusComment:
		return r.section(in, i, endAfter(in[i:], tagClose), 0)
	case inCDATA:
		return r.section(in, i, endAfter(in[i:], cdataClose), len("]]"))
	case inRawText:
		k, m := findEndTag(in, i, r.rawEnd)
		return r.elementText(in, i, k, m)
	case inScript:
		k, m := r.script.end(in, i)
		return r.elementText(in, i, k, m)
	case inStyle:
		return r.styleText(in, i, eof)
	case inPlaintext:
		r.out.emit(in[i:])
		return len(in), true
	}
	return r.data(in, i)
}

var (
	tagClose   = []byte(">")
	cdataClose = []byte("]]>")
	dashDash   = []byte("--")
)

// data copies text and takes the tags that leave the lexer's state as it
// was (most of them) in its stride; anything else goes to markup.
func (r *HTMLRewriter) data(in []byte, i int) (int, bool) {
	done := i // in[done:] is not written yet
	for {
		// Tags mostly follow one another, or a line break: most searches
		// end in a byte or two, quicker seen than called for.
		var j int
		switch {
		case i < len(in) && in[i] == '<':
		case i+1 < len(in) && in[i+1] == '<':
			j = 1
		default:
			j = bytes.IndexByte(in[i:], '<')
		}
		if j < 0 {
			r.out.emit(in[done:])
			return len(in), true
		}
		i += j
		if !r.ref.noFastPaths {
			end := 0
			if i+1 < len(in) && in[i+1] == '/' {
				end = plainEndTag(in, i)
			} else {
				end = r.simpleTag(in, i, &done)
			}
			if end > 0 {
				i = end
				continue
			}
		}
		r.out.emit(in[done:i])
		return r.markup(in, i)
	}
}

// markup decides what the "<" at in[i] starts, as the tokenizer's tag open
// state does.
func (r *HTMLRewriter) markup(in []byte, i int) (int, bool) {
	b := in[i:]
	if len(b) < 2 || b[1] == '/' && len(b) < 3 {
		return i, false
	}
	switch {
	case isASCIIAlpha(b[1]):
		return r.beginTag(i, false)
	case b[1] == '/' && isASCIIAlpha(b[2]):
		return r.beginTag(i, true)
	case b[1] == '/' && b[2] == '>':
		return r.pass(in, i, len("</>"), inData)
	case b[1] == '/' || b[1] == '?':
		return r.pass(in, i, 2, inBogusComment)
	case b[1] == '!':
		return r.declaration(in, i)
	}
	return r.pass(in, i, 1, inData)
}

func (r *HTMLRewriter) beginTag(i int, end bool) (int, bool) {
	r.tag.begin(end)
	r.state = inTag
	return i, true
}

// pass copies the n bytes at in[i] and goes on in state st.
func (r *HTMLRewriter) pass(in []byte, i, n int, st htmlState) (int, bool) {
	r.out.emit(in[i : i+n])
	r.state = st
	return i + n, true
}

// declaration handles "<!": a comment, a CDATA section (in SVG and
// MathML; elsewhere it is a bogus comment), or a bogus comment such as
// a DOCTYPE.
func (r *HTMLRewriter) declaration(in []byte, i int) (int, bool) {
	switch lookPrefix(in[i:], "<!--", false) {
	case matchMore:
		return i, false
	case matchYes:
		return r.commentStart(in, i)
	}
	if r.foreign > 0 {
		switch lookPrefix(in[i:], "<![CDATA[", false) {
		case matchMore:
			return i, false
		case matchYes:
			return r.pass(in, i, len("<![CDATA["), inCDATA)
		}
	}
	return r.pass(in, i, 2, inBogusComment)
}

// commentStart handles the comments that end as they start: "<!-->" and
// "<!--->".
func (r *HTMLRewriter) commentStart(in []byte, i int) (int, bool) {
	switch n := shortComment(in[i:]); {
	case n < 0:
		return i, false
	case n > 0:
		return r.pass(in, i, n, inData)
	}
	return r.pass(in, i, len("<!--"), inComment)
}

// shortComment returns, for b starting with "<!--", the length of the
// comment when it ends as it starts ("<!-->", "<!--->"), 0 when it goes
// on, or -1 when b is too short to tell.
func shortComment(b []byte) int {
	switch {
	case len(b) < 5 || b[4] == '-' && len(b) < 6:
		return -1
	case b[4] == '>':
		return len("<!-->")
	case b[4] == '-' && b[5] == '>':
		return len("<!--->")
	}
	return 0
}

// commentEnd returns the index after the "-->" or "--!>" that ends the
// comment text b, or -1.
func commentEnd(b []byte) int {
	for k := 0; ; k-- { // k--: in "--->" the second dash starts the terminator
		j := bytes.Index(b[k:], dashDash)
		if j < 0 {
			return -1
		}
		k += j + 2
		if k < len(b) && b[k] == '>' {
			return k + 1
		}
		if k+1 < len(b) && b[k] == '!' && b[k+1] == '>' {
			return k + 2
		}
	}
}

// endAfter returns the index after the first sep in b, or -1.
func endAfter(b, sep []byte) int {
	if j := bytes.Index(b, sep); j >= 0 {
		return j + len(sep)
	}
	return -1
}

// section copies a comment or CDATA section up to and including its end,
// which is at in[i+end] (end >= 0), or else all of it but the last keep
// bytes, which could be the start of its terminator.
func (r *HTMLRewriter) section(in []byte, i, end, keep int) (int, bool) {
	if end >= 0 {
		r.out.emit(in[i : i+end])
		r.state = inData
		return i + end, true
	}
	k := max(i, len(in)-keep)
	r.out.emit(in[i:k])
	return k, k == len(in)
}

func (r *HTMLRewriter) tagToken(in []byte, i int) (int, bool) {
	n := r.tag.lex(in[i:])
	if n < 0 {
		return i, false
	}
	t := in[i : i+n]
	r.state = inData
	if r.tag.end {
		r.out.emit(t)
		r.closeElement(t[2:r.tag.nameEnd])
	} else {
		r.startTag(t)
	}
	return i + n, true
}

func (r *HTMLRewriter) startTag(t []byte) {
	name := t[1:r.tag.nameEnd]
	refresh := foldEq(name, "meta") && r.isRefresh(t)
	prev := 0
	for _, a := range r.tag.attrs {
		kind := urlAttrKind(t[a.nameStart:a.nameEnd], name, refresh)
		if kind == notURL || a.valStart < 0 {
			continue
		}
		r.writeValue(t, &prev, a.valStart, a.valEnd, kind)
	}
	r.out.emit(t[prev:])
	if foldEq(name, "base") {
		r.baseTag(t)
	}
	r.openElement(name)
}

// baseTag sets the base URL from the <base> tag t, by its href as
// browsers read it: the first, as they drop repeated attributes, and
// href="" when it has no value.
func (r *HTMLRewriter) baseTag(t []byte) {
	for _, a := range r.tag.attrs {
		if foldEq(t[a.nameStart:a.nameEnd], "href") {
			var v []byte
			if a.valStart >= 0 {
				v = t[a.valStart:a.valEnd]
			}
			r.setBase(v)
			return
		}
	}
}

// openElement switches to the raw text states that browsers enter after
// these start tags. Inside SVG and MathML they treat some of them as
// ordinary elements; staying with raw text there errs on the safe side,
// leaving something unrewritten rather than rewriting script or text.
func (r *HTMLRewriter) openElement(name []byte) {
	if r.foreign > 0 && r.tag.selfClosing || len(name) < len("svg") || len(name) > len("plaintext") {
		return
	}
	switch {
	case foldEq(name, "svg") || foldEq(name, "math"):
		if !r.tag.selfClosing {
			r.foreign++
		}
	case foldEq(name, "script"):
		r.state, r.script = inScript, scriptData
	case foldEq(name, "style"):
		r.state, r.css = inStyle, cssLexer{}
	case foldEq(name, "plaintext"):
		r.state = inPlaintext
	case foldEq(name, "template"):
		if r.foreign == 0 {
			r.inert++ // even <template/>: HTML elements ignore "/>"
		}
	default:
		for _, e := range rawTextElements {
			if foldEq(name, e) {
				r.state, r.rawEnd = inRawText, e
				return
			}
		}
	}
}

// rawTextElements hold text up to their end tag, never markup (noscript
// too: scripting is on in the helpdesk's frames).
var rawTextElements = []string{"textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript"}

func (r *HTMLRewriter) closeElement(name []byte) {
	switch {
	case r.foreign > 0 && isForeignRoot(name):
		r.foreign--
	case r.inert > 0 && foldEq(name, "template"):
		r.inert--
	}
}

// isForeignRoot reports whether name is svg or math, inside which CDATA
// sections exist.
func isForeignRoot(name []byte) bool { return foldEq(name, "svg") || foldEq(name, "math") }

// elementText copies in[i:k], the text of a raw text element or a script
// up to where its end tag starts (m is matchYes) or the input must be
// held (matchMore).
func (r *HTMLRewriter) elementText(in []byte, i, k int, m match) (int, bool) {
	r.out.emit(in[i:k])
	switch m {
	case matchYes:
		return r.beginTag(k, true)
	case matchMore:
		return k, false
	}
	return k, true
}

// styleText feeds the text of a <style> to the CSS rewriter. The element
// ends at its end tag whatever the CSS, so the CSS sees the end of its
// input there.
func (r *HTMLRewriter) styleText(in []byte, i int, eof bool) (int, bool) {
	k, m := findEndTag(in, i, "style")
	i += r.css.rewrite(&r.out, in[i:k], m == matchYes || eof, &r.ref)
	if m == matchYes {
		return r.beginTag(i, true)
	}
	return i, i == len(in)
}

// findEndTag returns the index of the first "</name" end tag in in[i:]
// and matchYes, or the index from which the input must be held (a
// possible end tag cut short) and matchMore, or len(in) and matchNo.
func findEndTag(in []byte, i int, name string) (int, match) {
	for {
		j := bytes.IndexByte(in[i:], '<')
		if j < 0 {
			return len(in), matchNo
		}
		i += j
		if m := tagAt(in[i:], name, true); m != matchNo {
			return i, m
		}
		i++
	}
}

// tagAt reports whether b starts with the tag "<name" (or "</name" when
// end), ignoring case, that is, followed by a byte that ends a tag name.
func tagAt(b []byte, name string, end bool) match {
	open := "<"
	if end {
		open = "</"
	}
	if m := lookPrefix(b, open, false); m != matchYes {
		return m
	}
	if m := lookPrefix(b[len(open):], name, true); m != matchYes {
		return m
	}
	k := len(open) + len(name)
	switch {
	case k == len(b):
		return matchMore
	case isSpace(b[k]) || b[k] == '/' || b[k] == '>':
		return matchYes
	}
	return matchNo
}

// scriptState is where the tokenizer is in the script data states, which
// decide what ends a script: "<!--" and "<script" inside it change whether
// "</script>" does.
type scriptState uint8

const (
	scriptData scriptState = iota
	scriptEscaped
	scriptEscapedDash
	scriptEscapedDashDash
	scriptDoubleEscaped
	scriptDoubleEscapedDash
	scriptDoubleEscapedDashDash
)

// end moves the script states on over in[i:] and returns where the end
// tag that closes the script starts and matchYes, or where the input must
// be held (a look-ahead cut short) and matchMore, or len(in) and matchNo.
func (s *scriptState) end(in []byte, i int) (int, match) {
	for i < len(in) {
		if *s == scriptData {
			j := bytes.IndexByte(in[i:], '<')
			if j < 0 {
				return len(in), matchNo
			}
			i += j
		}
		n, m := s.step(in[i:])
		if m != matchNo {
			return i, m
		}
		i += n
	}
	return i, matchNo
}

// step moves the script states on over b[0], or over a few more bytes
// that decide a transition, and returns how many it consumed. It returns
// matchYes where the end tag that closes the script starts.
func (s *scriptState) step(b []byte) (int, match) {
	st := *s
	switch {
	case b[0] == '<' && st == scriptData:
		if m := tagAt(b, "script", true); m != matchNo {
			return 0, m
		}
		return s.transition(lookPrefix(b, "<!--", false), len("<!--"), scriptEscapedDashDash, scriptData)
	case b[0] == '<' && st < scriptDoubleEscaped:
		if m := tagAt(b, "script", true); m != matchNo {
			return 0, m
		}
		return s.transition(tagAt(b, "script", false), len("<script")+1, scriptDoubleEscaped, scriptEscaped)
	case b[0] == '<':
		return s.transition(tagAt(b, "script", true), len("</script")+1, scriptEscaped, scriptDoubleEscaped)
	case b[0] == '-' && st != scriptEscapedDashDash && st != scriptDoubleEscapedDashDash:
		*s = st + 1
	case b[0] == '>' && (st == scriptEscapedDashDash || st == scriptDoubleEscapedDashDash):
		*s = scriptData
	case b[0] != '-':
		*s = scriptEscaped
		if st >= scriptDoubleEscaped {
			*s = scriptDoubleEscaped
		}
	}
	return 1, matchNo
}

// transition goes to state to over the n bytes of a matching look-ahead,
// or to state otherwise over one byte.
func (s *scriptState) transition(m match, n int, to, otherwise scriptState) (int, match) {
	switch m {
	case matchMore:
		return 0, matchMore
	case matchYes:
		*s = to
		return n, matchNo
	}
	*s = otherwise
	return 1, matchNo
}

// tagLexer finds the end of a tag and the spans of its attributes,
// following the tokenizer's tag states so that a ">" in a quoted value
// does not end it. It can resume where the last input ended, so a long
// tag arriving in many writes is lexed once.
type tagLexer struct {
	state       lexState
	pos         int // next byte to look at, from the tag's "<"
	nameEnd     int
	end         bool // an end tag
	selfClosing bool
	quote       byte
	cur         attrSpan
	attrs       []attrSpan
	nameOnly    bool // HeadEnd's: no attrs
}

// attrSpan locates an attribute in its tag; valStart is -1 without a value.
type attrSpan struct {
	nameStart, nameEnd, valStart, valEnd int
}

type lexState uint8

const (
	lexName lexState = iota
	lexAttrName
	lexBeforeAttr // the three states that skip white space
	lexAfterAttrName
	lexBeforeValue
	lexQuoted
	lexUnquoted
	lexSelfClosing
)

func (l *tagLexer) begin(end bool) {
	*l = tagLexer{pos: len("<"), end: end, attrs: l.attrs[:0], nameOnly: l.nameOnly}
	if end {
		l.pos = len("</")
	}
}

// lex returns the length of the tag that t starts with, or -1 if t ends
// before the tag does.
func (l *tagLexer) lex(t []byte) int {
	pos, st := l.pos, l.state // locals: the compiler keeps them in registers
	for pos < len(t) {
		c := t[pos]
		if isSpace(c) && st >= lexBeforeAttr && st <= lexBeforeValue {
			pos++ // between the parts of a tag, white space only separates
			continue
		}
		switch st {
		case lexName, lexAttrName:
			ends := endsTagName
			if st == lexAttrName {
				ends = endsAttrName
			}
			if pos = nameEnd(t, pos, ends); pos == len(t) {
				break
			}
			if st == lexName {
				l.nameEnd, st = pos, lexBeforeAttr
			} else {
				l.cur.nameEnd, st = pos, lexAfterAttrName
			}
		case lexBeforeAttr:
			switch c {
			case '/':
				st = lexSelfClosing
				pos++
			case '>':
				return pos + 1
			default: // even "=": it starts a name here
				l.cur = attrSpan{nameStart: pos, valStart: -1}
				st = lexAttrName
				pos++
			}
		case lexAfterAttrName:
			if c == '=' {
				st = lexBeforeValue
				pos++
				break
			}
			l.keep()
			st = lexBeforeAttr
		case lexBeforeValue:
			switch c {
			case '"', '\'':
				l.quote = c
				pos++
				l.cur.valStart = pos
				st = lexQuoted
			case '>':
				l.keep()
				return pos + 1
			default:
				l.cur.valStart = pos
				st = lexUnquoted
			}
		case lexQuoted:
			j := bytes.IndexByte(t[pos:], l.quote)
			if j < 0 {
				pos = len(t)
				break
			}
			pos += j
			l.addValue(pos)
			st = lexBeforeAttr
			pos++
		case lexUnquoted:
			if pos = nameEnd(t, pos, endsValue); pos < len(t) {
				l.addValue(pos)
				st = lexBeforeAttr
			}
		case lexSelfClosing:
			if c == '>' {
				l.selfClosing = true
				return pos + 1
			}
			st = lexBeforeAttr
		}
	}
	l.pos, l.state = pos, st
	return -1
}

// addValue ends the current attribute's value at pos; whatever follows,
// the before attribute name state handles it as the tokenizer's states
// after a value do.
func (l *tagLexer) addValue(pos int) {
	l.cur.valEnd = pos
	l.keep()
}

// keep adds the current attribute to attrs, unless only the tag's end
// and name are wanted.
func (l *tagLexer) keep() {
	if !l.nameOnly {
		l.attrs = append(l.attrs, l.cur)
	}
}

// nameEnd returns the index at or after i of the first byte in t that
// ends a name of the given kind, or len(t).
func nameEnd(t []byte, i int, ends uint8) int {
	for i < len(t) && nameEnds[t[i]]&ends == 0 {
		i++
	}
	return i
}

// nameEnds classifies the bytes that end tag names, attribute names and
// unquoted attribute values.
var nameEnds = [256]uint8{
	'\t': endsAll, '\n': endsAll, '\f': endsAll, '\r': endsAll, ' ': endsAll, '>': endsAll,
	'/': endsTagName | endsAttrName, '=': endsAttrName,
}

const (
	endsTagName uint8 = 1 << iota
	endsAttrName
	endsValue
	endsAll = endsTagName | endsAttrName | endsValue
)

type attrKind uint8

const (
	notURL attrKind = iota
	oneURL
	urlList      // ping: URLs separated by white space
	srcsetList   // "url descriptors, url descriptors"
	inlineStyle  // CSS
	refreshValue // <meta http-equiv=refresh content>
)

// urlAttrs are the attributes holding URLs, by the length of their names;
// tag limits one to an element.
var urlAttrs = withKeys([...][]urlAttr{
	3:  {{name: "src", kind: oneURL}},
	4:  {{name: "href", kind: oneURL}, {name: "data", tag: "object", kind: oneURL}, {name: "cite", kind: oneURL}, {name: "ping", kind: urlList}},
	5:  {{name: "style", kind: inlineStyle}},
	6:  {{name: "action", kind: oneURL}, {name: "poster", kind: oneURL}, {name: "srcset", kind: srcsetList}},
	8:  {{name: "manifest", kind: oneURL}, {name: "longdesc", kind: oneURL}},
	10: {{name: "formaction", kind: oneURL}, {name: "background", kind: oneURL}, {name: "xlink:href", kind: oneURL}},
	11: {{name: "imagesrcset", kind: srcsetList}},
})

type urlAttr struct {
	name, tag string
	kind      attrKind
	key       uint64 // nameKey(name)
}

func withKeys(t [12][]urlAttr) [12][]urlAttr {
	for _, attrs := range t {
		for i := range attrs {
			attrs[i].key = nameKey([]byte(attrs[i].name))
		}
	}
	return t
}

// nameKey packs a name of three bytes or more into a word: all of it up to
// eight bytes, its first and last four beyond. ASCII letters are folded to
// lower case, and some other bytes changed, but no URL attribute's name
// of eight bytes or fewer has any but letters: for those, equal keys mean
// equal names. Attribute names are compared on every tag, and one
// comparison of words is much cheaper than a loop over bytes.
func nameKey(b []byte) uint64 {
	const fold = 0x2020202020202020
	if n := len(b); n >= 4 {
		return (uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32) | fold
	}
	var k uint64
	for i, c := range b {
		k |= uint64(c|0x20) << (8 * i)
	}
	return k
}

// urlAttrLengths has, by first letter, a bit for the length of each URL
// attribute's name: one load passes over most attributes.
var urlAttrLengths = func() (t [256]uint64) {
	for _, attrs := range urlAttrs {
		for _, a := range attrs {
			t = addLength(t, a.name)
		}
	}
	return t
}()

// urlAttrKind classifies the attribute attr of the element tag.
func urlAttrKind(attr, tag []byte, refresh bool) attrKind {
	if refresh && foldEq(attr, "content") {
		return refreshValue
	}
	if len(attr) == 0 || urlAttrLengths[attr[0]]>>len(attr)&1 == 0 {
		return notURL
	}
	key := nameKey(attr)
	for _, a := range urlAttrs[len(attr)] {
		if key == a.key && (len(attr) <= 8 || foldEq(attr, a.name)) && (a.tag == "" || foldEq(tag, a.tag)) {
			return a.kind
		}
	}
	return notURL
}

// isRefresh reports whether the <meta> tag t has http-equiv="refresh" as
// browsers read it: the first http-equiv only (they drop repeated
// attributes), its character references decoded, "refresh" in any ASCII
// case and nothing around it (an enumerated attribute's keyword).
func (r *HTMLRewriter) isRefresh(t []byte) bool {
	for _, a := range r.tag.attrs {
		if foldEq(t[a.nameStart:a.nameEnd], "http-equiv") {
			return a.valStart >= 0 && foldEq(r.text.decode(t[a.valStart:a.valEnd]).text, "refresh")
		}
	}
	return false
}

func (r *HTMLRewriter) appendValue(dst []byte, kind attrKind, v []byte) []byte {
	switch kind {
	case urlList:
		return r.appendList(dst, v)
	case srcsetList:
		return r.appendSrcset(dst, v)
	case inlineStyle:
		return r.appendStyle(dst, v)
	case refreshValue:
		return r.appendRefresh(dst, v)
	}
	return r.ref.appendAttrRef(dst, v)
}

// setBase makes v, the href of the first <base> that has one, resolved
// against the document's URL, the base of the references that follow,
// as browsers do. A base on
// another origin leaves only absolute references pointing at the app.
// A <base> in SVG or MathML is not HTML's, and one in a <template> is in
// no document: neither sets anything. (Where an HTML element closes an
// <svg> that has not ended, the rewriter, following no tree, still counts
// the <svg> open.)
func (r *HTMLRewriter) setBase(v []byte) {
	if r.baseSet || r.foreign > 0 || r.inert > 0 {
		return
	}
	r.baseSet = true
	u, err := url.Parse(browserHref(string(r.text.decode(v).text)))
	switch {
	case err != nil:
		return
	case r.ref.doc != nil:
		u = r.ref.doc.ResolveReference(u)
	case !u.IsAbs():
		return
	}
	r.ref.doc = u
	r.ref.absOnly = !onAppOrigin(r.ref.m, u)
}

// browserHref is the decoded attribute value v as browsers parse it as a
// URL: NUL is U+FFFD (the HTML tokenizer's doing); then the C0 controls
// and spaces around it and the tabs and newlines inside it are dropped,
// and other controls percent-encoded, where net/url would refuse them.
func browserHref(v string) string {
	v = strings.ReplaceAll(v, "\x00", "\ufffd")
	v = strings.TrimFunc(dropTabsNewlines(v), func(c rune) bool { return c <= ' ' })
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c == 0x7f {
			b.WriteString("%" + strconv.FormatUint(uint64(c)|0x100, 16)[1:])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func onAppOrigin(m *Mapper, u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, m.scheme) {
		return false
	}
	for _, h := range m.hosts {
		if strings.EqualFold(u.Host, h) {
			return true
		}
	}
	return false
}

// appendList maps each of the white-space separated URLs of v.
func (r *HTMLRewriter) appendList(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		j := skipSpaces(v, i)
		k := j
		for k < len(v) && !isSpace(v[k]) {
			k++
		}
		dst = append(dst, v[i:j]...)
		dst = r.ref.appendAttrRef(dst, v[j:k])
		i = k
	}
	return dst
}

// appendSrcset maps the URLs of a srcset as the HTML standard splits it:
// a URL is a run of non-space bytes whose trailing commas end the
// candidate; otherwise descriptors follow up to a comma outside
// parentheses.
func (r *HTMLRewriter) appendSrcset(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		j := i
		for j < len(v) && (isSpace(v[j]) || v[j] == ',') {
			j++
		}
		k := j
		for k < len(v) && !isSpace(v[k]) {
			k++
		}
		e := k
		for e > j && v[e-1] == ',' {
			e--
		}
		dst = append(dst, v[i:j]...)
		dst = r.ref.appendAttrRef(dst, v[j:e])
		i = e
		if e == k {
			i = descriptorsEnd(v, k)
			dst = append(dst, v[e:i]...)
		}
	}
	return dst
}

// descriptorsEnd returns the index of the comma that ends the descriptors
// starting at v[i], or len(v).
func descriptorsEnd(v []byte, i int) int {
	inParens := false
	for ; i < len(v); i++ {
		switch c := v[i]; {
		case inParens:
			inParens = c != ')'
		case c == '(':
			inParens = true
		case c == ',':
			return i
		}
	}
	return i
}

func (r *HTMLRewriter) appendRefresh(dst, v []byte) []byte {
	i, j, ok := refreshURL(v)
	if !ok {
		return append(dst, v...)
	}
	dst = append(dst, v[:i]...)
	dst = r.ref.appendAttrRef(dst, v[i:j])
	return append(dst, v[j:]...)
}

// appendStyle rewrites a style attribute. The CSS is read with its
// character references decoded, since quotes in it are often written
// &quot;, and each URL found is mapped from its raw text, which keeps the
// bytes around it as they were.
func (r *HTMLRewriter) appendStyle(dst, v []byte) []byte {
	if !r.ref.noFastPaths && !mayHoldCSSURL(v) {
		return append(dst, v...)
	}
	d := r.text.decode(v)
	var l cssLexer
	done, p := 0, 0
	for {
		start, end, next := l.next(d.text, p, true)
		if start < 0 {
			return append(dst, v[done:]...)
		}
		rawStart, _ := d.after(start)
		rawEnd, _ := d.after(end)
		dst = append(dst, v[done:rawStart]...)
		dst = r.ref.appendAttrRef(dst, v[rawStart:rawEnd])
		done, p = rawEnd, next
	}
}

// mayHoldCSSURL reports whether the cssLexer could find a URL in the
// style attribute v: a url( or an @import, each spelt with a "(" or "@"
// unless escaped or written as a character reference.
func mayHoldCSSURL(v []byte) bool {
	return indexStop(v, 0, &cssURLStops) < len(v)
}

var cssURLStops = [256]uint8{'(': 1, '@': 1, '\\': 1, '&': 1}

// MapRefresh maps the URL in v, a Refresh header value or the content of
// a <meta http-equiv="refresh">, and returns v with it replaced, or false
// when there is nothing to rewrite. Both use the HTML standard's parsing
// so that the gateway finds the URL where browsers do.
func MapRefresh(v string, m *Mapper, doc *url.URL) (string, bool) {
	i, j, ok := refreshURL(v)
	if !ok {
		return "", false
	}
	mapped, ok := m.MapRef(v[i:j], doc)
	if !ok {
		return "", false
	}
	return v[:i] + mapped + v[j:], true
}

// refreshURL returns the span of the URL in a refresh value such as
// "5; url=/x" or "0;URL='/x'", following the HTML standard's "shared
// declarative refresh steps"; false when there is none.
func refreshURL[T string | []byte](v T) (start, end int, ok bool) {
	i := skipSpaces(v, 0)
	j := i
	for j < len(v) && isDigit(v[j]) {
		j++
	}
	if j == i && (j == len(v) || v[j] != '.') {
		return 0, 0, false
	}
	for j < len(v) && (isDigit(v[j]) || v[j] == '.') {
		j++
	}
	if j == len(v) || v[j] != ';' && v[j] != ',' && !isSpace(v[j]) {
		return 0, 0, false
	}
	i = skipSpaces(v, j)
	if i < len(v) && (v[i] == ';' || v[i] == ',') {
		i = skipSpaces(v, i+1)
	}
	if i == len(v) {
		return 0, 0, false
	}
	if k, ok := afterURLKey(v, i); ok {
		i = k
	} else if lowerASCII(v[i]) == 'u' {
		return i, len(v), true // "u..." without "rl=": the whole rest is the URL
	}
	end = len(v)
	if i < len(v) && (v[i] == '"' || v[i] == '\'') {
		q := v[i]
		i++
		for k := i; k < len(v); k++ {
			if v[k] == q {
				end = k
				break
			}
		}
	}
	return i, end, true
}

// afterURLKey returns the index after "url =" at v[i], if it is there.
func afterURLKey[T string | []byte](v T, i int) (int, bool) {
	if len(v)-i < 3 || lowerASCII(v[i]) != 'u' || lowerASCII(v[i+1]) != 'r' || lowerASCII(v[i+2]) != 'l' {
		return 0, false
	}
	k := skipSpaces(v, i+3)
	if k == len(v) || v[k] != '=' {
		return 0, false
	}
	return skipSpaces(v, k+1), true
}

// appendAttrRef is appendRef for attribute text, where a reference may be
// written with character references ("&#47;x", "/x?a=1&amp;b=2"). It maps
// the decoded reference but writes back the raw bytes of the parts that
// MapRef keeps, so only the replaced part is new (and escaped).
func (rm *refMapper) appendAttrRef(dst, raw []byte) []byte {
	// appendPlain leaves alone what a character reference may spell
	// differently, but for the query and fragment ("?a=1&amp;b=2"), which
	// MapRef keeps as they are.
	if out, ok := rm.plain(dst, raw); ok {
		return out
	}
	return rm.appendDecodedRef(dst, raw)
}

// appendDecodedRef is appendAttrRef for a reference its fast path turned
// down.
func (rm *refMapper) appendDecodedRef(dst, raw []byte) []byte {
	d := rm.dec.decode(raw)
	mapped, ok := rm.mapRef(d.text)
	if !ok {
		return append(dst, raw...)
	}
	keep := commonSuffix(mapped, d.text)
	lead := min(commonPrefix(mapped, d.text), len(d.text)-keep, len(mapped)-keep)
	rawLead, textLead := d.before(lead)
	rawTail, textTail := d.after(len(d.text) - keep)
	added := func() string { return mapped[textLead : len(mapped)-(len(d.text)-textTail)] }
	// A reference kept without its ";" ("&#x2F") reads on into what
	// follows it now if that can continue it ("&#x2Fd" is U+2FD): the new
	// text then starts before it.
	for textLead > 0 && refReadsOn(raw[:rawLead], added(), raw[rawTail:]) {
		rawLead, textLead = d.before(textLead - 1)
	}
	dst = append(dst, raw[:rawLead]...)
	dst = appendEscaped(dst, added())
	return append(dst, raw[rawTail:]...)
}

// refReadsOn reports whether raw ends in a character reference without
// its ";" (or the start of one: "&", "&#") that the first byte of added,
// or else of rest, would continue, or end, differently than before.
func refReadsOn(raw []byte, added string, rest []byte) bool {
	var c byte
	switch {
	case added != "":
		c = added[0]
	case len(rest) > 0:
		c = rest[0]
	default:
		return false
	}
	i := len(raw)
	for i > 0 && (isASCIIAlpha(raw[i-1]) || isDigit(raw[i-1]) || raw[i-1] == '#') {
		i--
	}
	if i == 0 || raw[i-1] != '&' {
		return false
	}
	switch ref := raw[i:]; {
	case len(ref) == 0:
		return isASCIIAlpha(c) || isDigit(c) || c == '#'
	case ref[0] != '#':
		return true // a name: whether browsers decode it depends on what follows
	case len(ref) == 1:
		return isDigit(c) || c|0x20 == 'x'
	case ref[1]|0x20 == 'x':
		return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' || len(ref) > 2 && c == ';'
	}
	return isDigit(c) || c == ';'
}

func commonSuffix(a string, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}

func commonPrefix(a string, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// appendEscaped appends s escaped for any attribute value, quoted or not.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\'':
			dst = append(dst, "&#39;"...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// charRefs decodes the character references of attribute text into
// buffers it reuses.
type charRefs struct {
	buf  []byte
	offs []int
}

// decoded is attribute text with its character references decoded, and
// for each decoded byte the offset in the raw text of what it came from.
type decoded struct {
	text []byte // the raw text itself when it has no references
	pos  []int  // len(text)+1 offsets, the last len(raw); nil when text is raw
}

func (d *charRefs) decode(raw []byte) decoded {
	i := bytes.IndexByte(raw, '&')
	if i < 0 {
		return decoded{text: raw}
	}
	buf, offs := append(d.buf[:0], raw[:i]...), d.offs[:0]
	for k := range i {
		offs = append(offs, k)
	}
	for i < len(raw) {
		n, s := charRef(raw[i:])
		if n > 0 {
			for range s {
				offs = append(offs, i)
			}
		} else { // a run of plain text up to the next "&"
			if n = bytes.IndexByte(raw[i+1:], '&') + 1; n == 0 {
				n = len(raw) - i
			}
			s = raw[i : i+n]
			for k := range n {
				offs = append(offs, i+k)
			}
		}
		buf = append(buf, s...)
		i += n
	}
	d.buf, d.offs = buf, append(offs, len(raw))
	return decoded{d.buf, d.offs}
}

// charRef returns the length of the character reference b starts with
// ("&amp;", "&#47;", "&#x2F", "&quot") and what it stands for, or 0, as
// browsers read references in attributes: a name needs its ";" but for
// the legacy ones (amp, quot, lt...), which go without it where no
// letter, digit or "=" follows.
func charRef(b []byte) (int, []byte) {
	if len(b) < 2 || b[0] != '&' {
		return 0, nil
	}
	if bytes.HasPrefix(b, ampRef) {
		return len(ampRef), ampRef[:1]
	}
	n := charRefLen(b)
	if n == 0 {
		return 0, nil
	}
	s := string(b[:n])
	u := html.UnescapeString(s)
	if u == s {
		return 0, nil
	}
	if t := strings.TrimSuffix(u, ";"); b[1] != '#' && t != "" && (isASCIIAlpha(t[len(t)-1]) || isDigit(t[len(t)-1])) {
		// UnescapeString read a legacy name that letters or digits
		// follow ("&quotx", "&ampx;"), which attributes keep as it is.
		return 0, nil
	}
	return n, []byte(u)
}

var ampRef = []byte("&amp;")

func charRefLen(b []byte) int {
	i := 1
	if b[i] == '#' {
		i++
		hex := i < len(b) && lowerASCII(b[i]) == 'x'
		if hex {
			i++
		}
		j := i
		for j < len(b) && (isDigit(b[j]) || hex && 'a' <= lowerASCII(b[j]) && lowerASCII(b[j]) <= 'f') {
			j++
		}
		if j == i {
			return 0
		}
		if j < len(b) && b[j] == ';' {
			j++
		}
		return j
	}
	for i < len(b) && (isASCIIAlpha(b[i]) || isDigit(b[i])) {
		i++
	}
	switch {
	case i == 1, i < len(b) && b[i] == '=':
		return 0
	case i < len(b) && b[i] == ';':
		return i + 1
	}
	return i // a legacy name, perhaps
}

// boundary reports whether decoded offset k starts what a whole character
// reference or raw byte decoded to.
func (d decoded) boundary(k int) bool {
	return d.pos == nil || k == 0 || k == len(d.text) || d.pos[k] != d.pos[k-1]
}

// rawAt returns the raw offset of decoded offset k, a boundary.
func (d decoded) rawAt(k int) int {
	if d.pos == nil {
		return k
	}
	return d.pos[k]
}

// before returns the last boundary at or before decoded offset k, raw
// offset first.
func (d decoded) before(k int) (int, int) {
	for !d.boundary(k) {
		k--
	}
	return d.rawAt(k), k
}

// after returns the first boundary at or after decoded offset k.
func (d decoded) after(k int) (int, int) {
	for !d.boundary(k) {
		k++
	}
	return d.rawAt(k), k
}
