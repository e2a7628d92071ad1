package rewrite

import "bytes"

// HeadStart finds where a script goes that must run before any of an HTML
// document's own: after a byte order mark, the doctype, comments, the
// <html> and <head> start tags and any <meta> that declares the
// character encoding (which browsers look for in the first 1024 bytes),
// and before anything else: the first other element, end tag or text. The
// parser puts a script there in the head, whatever follows; a <meta>
// Content-Security-Policy after it does not apply to it. more is true when
// doc may be cut in the middle of what decides, and final says it is not.
// found is false for a document in UTF-16 (a byte order mark of it), into
// which nothing can be written in ASCII.
func HeadStart(doc []byte, final bool) (at int, found, more bool) {
	if len(doc) < 3 && !final && bytes.HasPrefix([]byte("\xef\xbb\xbf"), doc) {
		return 0, false, true
	}
	if bytes.HasPrefix(doc, []byte("\xfe\xff")) || bytes.HasPrefix(doc, []byte("\xff\xfe")) {
		return 0, false, false
	}
	if bytes.HasPrefix(doc, []byte("\xef\xbb\xbf")) {
		at = 3
	}
	tag := tagLexer{nameOnly: true}
	for i := at; ; {
		k, m := nextMarkup(doc, i)
		if k > i && !isBlank(doc[i:k]) {
			return at, true, false // text
		}
		switch {
		case m == matchNo && !final, m == matchMore && !final:
			return 0, false, true
		case m != matchYes:
			return at, true, false
		}
		i = k
		if doc[i+1] == '!' || doc[i+1] == '?' || doc[i+1] == '/' && !isASCIIAlpha(doc[i+2]) {
			end := declarationEnd(doc, i)
			if end < 0 {
				return at, final, !final
			}
			i, at = end, end
			continue
		}
		if doc[i+1] == '/' {
			return at, true, false // an end tag
		}
		tag.begin(false)
		n := tag.lex(doc[i:])
		if n < 0 {
			return at, final, !final
		}
		name := doc[i+1 : i+tag.nameEnd]
		if !foldEq(name, "html") && !foldEq(name, "head") && !(foldEq(name, "meta") && containsFold(doc[i:i+n], "charset")) {
			return at, true, false
		}
		i += n
		at = i
	}
}

// containsFold reports whether b holds s, a lower-case ASCII word, in any
// ASCII case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if foldEq(b[i:i+len(s)], s) {
			return true
		}
	}
	return false
}
