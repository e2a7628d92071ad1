package rewrite

import (
	"bytes"
	"encoding/binary"
)

// simpleTag lexes the start tag at in[i] the way tagLexer does, in one
// pass and without holding anything, when the tag is complete in in, is
// an element that changes no lexer state (not script, style, title, svg,
// meta...) and has at most a few URL attributes. It writes the tag's text
// from in[*done:] with its URLs mapped, moves *done past what it wrote
// and returns the index after the tag; 0 leaves the tag to markup, with
// nothing written.
func (r *HTMLRewriter) simpleTag(in []byte, i int, done *int) int {
	j := i + 1
	if j >= len(in) || !isASCIIAlpha(in[j]) {
		return 0 // a comment, a declaration, a "<" that starts no tag
	}
	nameStart := j
	for j < len(in) && nameEnds[in[j]]&endsTagName == 0 {
		j++
	}
	if j == len(in) {
		return 0
	}
	name := in[nameStart:j]
	if changesState(name) {
		return 0
	}
	urls := &r.urls
	n := 0
	for {
		for j < len(in) && spaces[in[j]] {
			j++
		}
		if j == len(in) {
			return 0
		}
		switch in[j] {
		case '>':
			r.writeTag(in, done, urls[:n])
			return j + 1
		case '/':
			// "/>" ends the tag; a "/" elsewhere only separates.
			if j+1 == len(in) {
				return 0
			}
			if in[j+1] == '>' {
				r.writeTag(in, done, urls[:n])
				return j + 2
			}
			j++
			continue
		}
		if j+8 <= len(in) {
			// Most attributes of a page are a few lower-case names with a
			// double-quoted value: one load tells them, without the name
			// loop, the filter and the steps to the quote.
			w := binary.LittleEndian.Uint64(in[j:])
			v, kind := 0, notURL
			switch {
			case w&mask7 == classQ, w&mask7 == titleQ:
				v = j + len(`class="`)
			case w&mask6 == hrefQ:
				v, kind = j+len(`href="`), oneURL
			case w&mask4 == idQ:
				v = j + len(`id="`)
			case w&mask7 == styleQ:
				v, kind = j+len(`style="`), inlineStyle
			}
			if v > 0 {
				k := bytes.IndexByte(in[v:], '"')
				if k < 0 {
					return 0
				}
				j = v + k + 1
				if kind == inlineStyle && !mayHoldCSSURL(in[v:v+k]) {
					kind = notURL // most styles: copied with the rest of the tag
				}
				if kind != notURL {
					if n == len(*urls) {
						return 0
					}
					urls[n] = tagURL{v, v + k, kind}
					n++
				}
				continue
			}
		}
		a := attrSpan{nameStart: j, valStart: -1}
		j++ // even "=": it starts a name here
		for j < len(in) && nameEnds[in[j]]&endsAttrName == 0 {
			j++
		}
		a.nameEnd = j
		for j < len(in) && spaces[in[j]] {
			j++
		}
		if j == len(in) {
			return 0
		}
		if in[j] == '=' {
			j++
			for j < len(in) && spaces[in[j]] {
				j++
			}
			if j == len(in) {
				return 0
			}
			switch q := in[j]; q {
			case '>': // no value after all; the tag ends
			case '"', '\'':
				k := bytes.IndexByte(in[j+1:], q)
				if k < 0 {
					return 0
				}
				a.valStart, a.valEnd = j+1, j+1+k
				j = a.valEnd + 1
			default:
				a.valStart = j
				for j < len(in) && nameEnds[in[j]]&endsValue == 0 {
					j++
				}
				if j == len(in) {
					return 0
				}
				a.valEnd = j
			}
		}
		if a.valStart < 0 {
			continue
		}
		if urlAttrLengths[in[a.nameStart]]>>(a.nameEnd-a.nameStart)&1 == 0 {
			continue // most attributes: not one of the URL attributes' first letter and length
		}
		if kind := urlAttrKind(in[a.nameStart:a.nameEnd], name, false); kind != notURL {
			if n == len(*urls) {
				return 0
			}
			urls[n] = tagURL{a.valStart, a.valEnd, kind}
			n++
		}
	}
}

// plainEndTag returns the index after the end tag at in[i] when it is a
// plain "</name>" that leaves the lexer's state as it was (half the tags
// of a page), or 0: not </svg>, </math> or </template>, which closeElement
// counts.
func plainEndTag(in []byte, i int) int {
	if i+8 <= len(in) {
		// The commonest end tags, from one load: a, span, li and div are
		// most of a page's.
		w := binary.LittleEndian.Uint64(in[i:])
		switch {
		case w&mask4 == endA:
			return i + len("</a>")
		case w&mask7 == endSpan:
			return i + len("</span>")
		case w&mask5 == endLi:
			return i + len("</li>")
		case w&mask6 == endDiv:
			return i + len("</div>")
		}
	}
	j := i + 2
	if j >= len(in) || in[i+1] != '/' || !isASCIIAlpha(in[j]) {
		return 0
	}
	j = nameEnd(in, j, endsTagName)
	// (The lengths of svg, math and template spare most other end tags a
	// call.)
	if n := j - i - 2; j == len(in) || in[j] != '>' || (n == 3 || n == 4) && isForeignRoot(in[i+2:j]) || n == 8 && foldEq(in[i+2:j], "template") {
		return 0
	}
	return j + 1
}

// tagURL is a URL attribute simpleTag found.
type tagURL struct {
	valStart, valEnd int
	kind             attrKind
}

// writeTag writes the tag whose URL attributes are urls, up to the last
// of them, mapping their values.
func (r *HTMLRewriter) writeTag(in []byte, done *int, urls []tagURL) {
	for _, a := range urls {
		r.writeValue(in, done, a.valStart, a.valEnd, a.kind)
	}
}

// writeValue writes in[*done:start] as it is, then the attribute value
// in[start:end] mapped as kind, and moves *done past it.
func (r *HTMLRewriter) writeValue(in []byte, done *int, start, end int, kind attrKind) {
	r.out.emit(in[*done:start])
	r.out.room(end - start + valueGrowth)
	*done = end
	v := in[start:end]
	if kind == oneURL && r.ref.plainApplies() {
		// Most URL attributes hold one plain reference (href="/wiki/Go"):
		// straight to the Mapper's fast path, two calls fewer than through
		// appendValue and appendAttrRef, and not asked twice.
		out, ok := r.ref.m.appendPlain(r.out.buf, v)
		if !ok {
			out = r.ref.appendDecodedRef(r.out.buf, v)
		}
		r.out.buf = out
		return
	}
	r.out.buf = r.appendValue(r.out.buf, kind, v)
}

// changesState reports whether a start tag named name is one that
// startTag and openElement treat specially: it switches the lexer to raw
// text or foreign content, opens a <template>, or is a <meta>, whose
// content is a URL only with http-equiv="refresh", or a <base>, whose
// first href sets the base URL.
func changesState(name []byte) bool {
	if stateTagLengths[name[0]]>>len(name)&1 == 0 {
		return false
	}
	for _, s := range stateTags {
		if foldEq(name, s) {
			return true
		}
	}
	return false
}

// stateTags are the elements openElement and startTag treat specially.
var stateTags = append([]string{"svg", "math", "meta", "base", "style", "script", "plaintext", "template"}, rawTextElements...)

// stateTagLengths is urlAttrLengths for the names of stateTags.
var stateTagLengths = func() (t [256]uint64) {
	for _, n := range stateTags {
		t = addLength(t, n)
	}
	return t
}()

// addLength sets, in a table by first letter of either case, the bit for
// the length of name.
func addLength(t [256]uint64, name string) [256]uint64 {
	t[name[0]] |= 1 << len(name)
	t[name[0]-'a'+'A'] |= 1 << len(name)
	return t
}

// The starts of the commonest attributes and the commonest end tags, as
// simpleTag and plainEndTag load them: eight bytes, little-endian, masked
// to the length of the prefix.
const (
	mask4 = 1<<32 - 1
	mask5 = 1<<40 - 1
	mask6 = 1<<48 - 1
	mask7 = 1<<56 - 1
)

// classQ and the rest are constants for the compiler to compare with
// immediates; TestPrefixWords checks them.
const (
	classQ = 'c' | 'l'<<8 | 'a'<<16 | 's'<<24 | 's'<<32 | '='<<40 | '"'<<48
	titleQ = 't' | 'i'<<8 | 't'<<16 | 'l'<<24 | 'e'<<32 | '='<<40 | '"'<<48
	styleQ = 's' | 't'<<8 | 'y'<<16 | 'l'<<24 | 'e'<<32 | '='<<40 | '"'<<48
	hrefQ  = 'h' | 'r'<<8 | 'e'<<16 | 'f'<<24 | '='<<32 | '"'<<40
	idQ    = 'i' | 'd'<<8 | '='<<16 | '"'<<24

	endA    = '<' | '/'<<8 | 'a'<<16 | '>'<<24
	endSpan = '<' | '/'<<8 | 's'<<16 | 'p'<<24 | 'a'<<32 | 'n'<<40 | '>'<<48
	endLi   = '<' | '/'<<8 | 'l'<<16 | 'i'<<24 | '>'<<32
	endDiv  = '<' | '/'<<8 | 'd'<<16 | 'i'<<24 | 'v'<<32 | '>'<<40
)
