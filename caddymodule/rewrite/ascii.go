// ASCII helpers for the grammars the package reads (HTML, CSS, URLs and
// header fields), which are ASCII wherever it matters: case is folded and
// white space recognized as their specifications say, not as Unicode
// (strings.EqualFold, unicode.IsSpace) would.

package rewrite

// foldEq reports whether b equals s, a lower-case ASCII string, ignoring
// ASCII case only: the grammars of HTML, CSS and headers are ASCII, and
// strings.EqualFold's Unicode folding ("K" for K, "ſ" for s) would match
// names that browsers do not.
func foldEq[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		if lowerASCII(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// hasPrefixFold is foldEq for a prefix of b.
func hasPrefixFold(b, prefix string) bool {
	return len(b) >= len(prefix) && foldEq(b[:len(prefix)], prefix)
}

// lowerASCII folds an ASCII upper-case letter to lower case and leaves
// every other byte as it is, UTF-8 included.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isASCIIAlpha reports whether c is an ASCII letter, such as starts a tag
// name.
func isASCIIAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// skipSpaces returns the index of the first byte at or after i that is not
// ASCII white space.
func skipSpaces[T string | []byte](s T, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isSpace reports whether c is ASCII white space; see spaces.
func isSpace(c byte) bool { return spaces[c] }

// spaces marks ASCII white space as the HTML tokenizer and URL parsers
// have it.
var spaces = [256]bool{'\t': true, '\n': true, '\f': true, '\r': true, ' ': true}
