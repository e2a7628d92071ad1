// The oracle's own CSS tokenizer (the CSS Syntax Module, §4.3), enough of
// it to find URLs where browsers find them.

package rewrite

import (
	"strings"
	"unicode/utf8"
)

// cssURLs finds the URLs of a stylesheet or style attribute as the CSS
// Syntax Module's tokenizer (§4.3) does: url tokens, the string of a
// url( function, the string that follows @import. A URL spelled with an
// escape (in it, or in the url or @import before it) or in a token
// longer than maxCSSRef is marked keep: the rewriter leaves those as they
// are (escapes are not decoded and re-encoded, long tokens are data: URIs
// in practice), which its tests state.
func cssURLs(css string) []span {
	var urls []span
	importPending, importEscaped := false, false
	for i := 0; i < len(css); {
		c := css[i]
		switch {
		case cssSpace(c): // white space tokens: @import's string may follow
			i++
			continue
		case strings.HasPrefix(css[i:], "/*"): // comments are no tokens at all
			if j := strings.Index(css[i+2:], "*/"); j >= 0 {
				i += 2 + j + 2
			} else {
				i = len(css)
			}
			continue
		case c == '"' || c == '\'':
			end, next, ok, esc := cssStringToken(css, i)
			if importPending && ok {
				urls = append(urls, span{i + 1, end, esc || importEscaped || next-i > maxCSSRef})
			}
			importPending = false
			i = next
			continue
		}
		importPending = false
		switch {
		case c == '<' && strings.HasPrefix(css[i:], "<!--"):
			i += len("<!--") // CDO
			if startsIdent(css, i) {
				// A url( right after "<!--" is one the rewriter, which
				// looks one byte back, takes for the end of a longer
				// name ("--url("), and one no browser fetches: CDO is
				// allowed only between rules, and anywhere else makes
				// what holds it invalid.
				var u *span
				if i, u = identLike(css, i); u != nil {
					u.keep = true
					urls = append(urls, *u)
				}
			}
		case c == '-' && strings.HasPrefix(css[i:], "-->"):
			i += len("-->") // CDC
		case c == '@' && startsIdent(css, i+1):
			name, next, esc := cssName(css, i+1)
			importPending, importEscaped = name == "import", esc
			i = next
		case c == '#' && i+1 < len(css) && (isCSSNameChar(css[i+1]) || validEscape(css, i+1)):
			_, i, _ = cssName(css, i+1) // a hash: "#url(" is no url
		case startsNumber(css, i):
			i = numericEnd(css, i) // a number, dimension ("1url") or percentage
		case startsIdent(css, i):
			var u *span
			i, u = identLike(css, i)
			if u != nil {
				urls = append(urls, *u)
			}
		default: // a delimiter, or a "\" that starts no escape
			i++
		}
	}
	return urls
}

// identLike consumes the ident-like token at css[i], and returns where it
// ends and the URL it holds, if it is url(...) or url("...").
func identLike(css string, i int) (int, *span) {
	name, j, esc := cssName(css, i)
	if j == len(css) || css[j] != '(' {
		return j, nil
	}
	if name != "url" {
		return j + 1, nil // a function
	}
	k := j + 1
	for k+1 < len(css) && cssSpace(css[k]) && cssSpace(css[k+1]) {
		k++
	}
	if k < len(css) && cssSpace(css[k]) && k+1 < len(css) && isQuote(css[k+1]) {
		k++
	}
	if k < len(css) && isQuote(css[k]) {
		// The url( function token; its argument is the string token.
		end, next, ok, sesc := cssStringToken(css, k)
		if !ok {
			return next, nil
		}
		return next, &span{k + 1, end, esc || sesc || next-i > maxCSSRef}
	}
	return urlToken(css, i, j+1, esc)
}

// urlToken consumes the rest of the url token that starts at css[tok],
// from css[k], after its "(".
func urlToken(css string, tok, k int, esc bool) (int, *span) {
	for k < len(css) && cssSpace(css[k]) {
		k++
	}
	start := k
	found := func(end, next int) (int, *span) {
		return next, &span{start, end, esc || next-tok > maxCSSRef}
	}
	for k < len(css) {
		switch c := css[k]; {
		case c == ')':
			return found(k, k+1)
		case cssSpace(c):
			end := k
			for k < len(css) && cssSpace(css[k]) {
				k++
			}
			if k == len(css) {
				return found(end, k)
			}
			if css[k] == ')' {
				return found(end, k+1)
			}
			return badURLEnd(css, k), nil
		case isQuote(c) || c == '(' || c <= 0x08 || c == 0x0b || 0x0e <= c && c <= 0x1f || c == 0x7f:
			return badURLEnd(css, k), nil
		case c == '\\':
			if !validEscape(css, k) {
				return badURLEnd(css, k), nil
			}
			esc = true
			k = escapeEnd(css, k+1)
		default:
			k++
		}
	}
	return found(len(css), len(css)) // a url token that the stylesheet's end ends
}

// badURLEnd consumes the remnants of a bad url.
func badURLEnd(css string, k int) int {
	for k < len(css) {
		switch {
		case css[k] == ')':
			return k + 1
		case validEscape(css, k):
			k = escapeEnd(css, k+1)
		default:
			k++
		}
	}
	return k
}

// cssStringToken consumes the string token that starts with the quote at
// css[q]. ok is false for a bad string (a newline before the closing
// quote); esc is true when the string holds an escape.
func cssStringToken(css string, q int) (end, next int, ok, esc bool) {
	quote := css[q]
	for k := q + 1; k < len(css); {
		switch c := css[k]; {
		case c == quote:
			return k, k + 1, true, esc
		case c == '\n' || c == '\r' || c == '\f':
			return k, k, false, esc
		case c == '\\':
			esc = true
			switch {
			case k+1 == len(css):
				k++
			case strings.HasPrefix(css[k+1:], "\r\n"):
				k += 3
			case css[k+1] == '\n' || css[k+1] == '\r' || css[k+1] == '\f':
				k += 2 // a line continued
			default:
				k = escapeEnd(css, k+1)
			}
		default:
			k++
		}
	}
	return len(css), len(css), true, esc
}

// cssName consumes a name (of an ident, function, at-keyword or hash)
// from css[i], and returns it with escapes decoded and ASCII letters in
// lower case, for comparing with "url" and "import".
func cssName(css string, i int) (name string, next int, esc bool) {
	var b strings.Builder
	for i < len(css) {
		switch c := css[i]; {
		case isCSSNameChar(c):
			b.WriteByte(c)
			i++
		case validEscape(css, i):
			esc = true
			j := escapeEnd(css, i+1)
			b.WriteRune(escapeValue(css[i+1 : j]))
			i = j
		default:
			return asciiLower(b.String()), i, esc
		}
	}
	return asciiLower(b.String()), i, esc
}

// escapeEnd returns the end of the escape whose text starts at css[i],
// after its "\": up to six hex digits and a white space, or one code
// point.
func escapeEnd(css string, i int) int {
	if i == len(css) {
		return i
	}
	if !isHexDigit(css[i]) {
		_, n := utf8.DecodeRuneInString(css[i:])
		return i + n
	}
	j := i
	for j < len(css) && j-i < 6 && isHexDigit(css[j]) {
		j++
	}
	if strings.HasPrefix(css[j:], "\r\n") {
		return j + 2
	}
	if j < len(css) && cssSpace(css[j]) {
		j++
	}
	return j
}

func escapeValue(s string) rune {
	if s == "" || !isHexDigit(s[0]) {
		r, _ := utf8.DecodeRuneInString(s)
		return r
	}
	var r rune
	for i := 0; i < len(s) && isHexDigit(s[i]); i++ {
		r = r*16 + rune(strings.IndexByte("0123456789abcdef", s[i]|0x20))
	}
	if r == 0 || r > utf8.MaxRune || 0xd800 <= r && r <= 0xdfff {
		return utf8.RuneError
	}
	return r
}

func isHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f' }

func cssSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

func isQuote(c byte) bool { return c == '"' || c == '\'' }

func isCSSNameStart(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' || c == '_' || c >= 0x80 }

func isCSSNameChar(c byte) bool { return isCSSNameStart(c) || '0' <= c && c <= '9' || c == '-' }

func validEscape(css string, i int) bool {
	return i+1 < len(css) && css[i] == '\\' && css[i+1] != '\n' && css[i+1] != '\r' && css[i+1] != '\f'
}

func startsIdent(css string, i int) bool {
	if i >= len(css) {
		return false
	}
	switch c := css[i]; {
	case c == '-':
		return i+1 < len(css) && (isCSSNameStart(css[i+1]) || css[i+1] == '-' || validEscape(css, i+1))
	case c == '\\':
		return validEscape(css, i)
	default:
		return isCSSNameStart(c)
	}
}

func isDecimal(css string, i int) bool { return i < len(css) && '0' <= css[i] && css[i] <= '9' }

func startsNumber(css string, i int) bool {
	switch css[i] {
	case '+', '-':
		return isDecimal(css, i+1) || i+1 < len(css) && css[i+1] == '.' && isDecimal(css, i+2)
	case '.':
		return isDecimal(css, i+1)
	}
	return isDecimal(css, i)
}

// numericEnd consumes a numeric token: a number and its unit or "%".
func numericEnd(css string, i int) int {
	if css[i] == '+' || css[i] == '-' {
		i++
	}
	for isDecimal(css, i) {
		i++
	}
	if i+1 < len(css) && css[i] == '.' && isDecimal(css, i+1) {
		for i++; isDecimal(css, i); i++ {
		}
	}
	if i < len(css) && css[i]|0x20 == 'e' {
		j := i + 1
		if j < len(css) && (css[j] == '+' || css[j] == '-') {
			j++
		}
		if isDecimal(css, j) {
			for i = j; isDecimal(css, i); i++ {
			}
		}
	}
	switch {
	case startsIdent(css, i):
		_, i, _ = cssName(css, i)
	case i < len(css) && css[i] == '%':
		i++
	}
	return i
}
