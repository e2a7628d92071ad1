package rewrite

import "bytes"

// HeadEnd finds where a script goes at the start of an HTML document:
// before the real </head>, else at the start of the body (after an
// explicit <body> tag, before the first element or text that opens the
// body implicitly). A </head> inside a script, a comment, an attribute or
// a title or a <template> is not it. more is true when doc may be cut in the middle of
// what decides, and final says it is not. It reads the document with the
// rewriter's lexer, which is several times faster than x/net/html's
// tokenizer at this: it runs on every page the helpdesk serves.
func HeadEnd(doc []byte, final bool) (at int, found, more bool) {
	tag := tagLexer{nameOnly: true}
	templates := 0 // open <template>s: their content is inert, nothing in it decides
	for i := 0; ; {
		k, m := nextMarkup(doc, i)
		if k > i { // text up to markup, or to the end
			if m == matchNo && !final {
				return 0, false, true // it may go on
			}
			if templates == 0 && !isBlank(doc[i:k]) {
				return i, true, false
			}
		}
		switch {
		case m == matchNo:
			return 0, false, !final
		case m == matchMore && !final:
			return 0, false, true // a tag cut short?
		case m == matchMore && templates == 0:
			return i, true, false // no: text, from the blank run before it
		case m == matchMore:
			return 0, false, false
		}
		i = k
		if doc[i+1] == '!' || doc[i+1] == '?' || doc[i+1] == '/' && !isASCIIAlpha(doc[i+2]) {
			end := declarationEnd(doc, i)
			if end < 0 {
				return 0, false, !final
			}
			i = end
			continue
		}
		endTag := doc[i+1] == '/'
		tag.begin(endTag)
		n := tag.lex(doc[i:])
		if n < 0 {
			return 0, false, !final
		}
		start := i
		i += n
		if endTag {
			name := doc[start+2 : start+tag.nameEnd]
			switch {
			case templates > 0 && foldEq(name, "template"):
				templates--
			case templates == 0 && foldEq(name, "head"):
				return start, true, false
			}
			continue
		}
		name := doc[start+1 : start+tag.nameEnd]
		text := rawTextIn(name)
		switch {
		case foldEq(name, "template"):
			if !tag.selfClosing {
				templates++
			}
			continue
		case templates > 0 && text == "", headOnly(name):
			continue
		case foldEq(name, "body"):
			if i == len(doc) && !final {
				return 0, false, true
			}
			return i, true, false
		case text == "":
			return start, true, false // an element of the body
		}
		// Up to the end tag, even after "<script/>": the tokenizer reads
		// raw text after these whatever the slash says.
		var closed match
		if text == "script" {
			s := scriptData
			i, closed = s.end(doc, i)
		} else {
			i, closed = findEndTag(doc, i, text)
		}
		if closed != matchYes {
			return 0, false, !final
		}
	}
}

// nextMarkup returns the index of the first "<" at or after i that starts
// markup (a tag, a comment, a declaration) and matchYes, or that may start
// it but doc ends first and matchMore; or len(doc) and matchNo.
func nextMarkup(doc []byte, i int) (int, match) {
	for {
		j := bytes.IndexByte(doc[i:], '<')
		if j < 0 {
			return len(doc), matchNo
		}
		i += j
		b := doc[i:]
		if len(b) < 2 || b[1] == '/' && len(b) < 3 {
			return i, matchMore
		}
		if isASCIIAlpha(b[1]) || b[1] == '!' || b[1] == '?' || b[1] == '/' {
			return i, matchYes
		}
		i++ // "<" then anything else is text
	}
}

// declarationEnd returns the index after the comment, doctype, "<?...>"
// or "</...>" that is not an end tag at doc[i], or -1 when doc ends first.
func declarationEnd(doc []byte, i int) int {
	b := doc[i:]
	switch {
	case bytes.HasPrefix(b, []byte("<!--")):
		switch n := shortComment(b); {
		case n < 0:
			return -1
		case n > 0:
			return i + n
		}
		if end := commentEnd(b[4:]); end >= 0 {
			return i + 4 + end
		}
		return -1
	case len(b) >= 3 && b[1] == '/' && b[2] == '>':
		return i + len("</>")
	}
	if end := endAfter(b[2:], tagClose); end >= 0 {
		return i + 2 + end // a bogus comment: up to the first ">"
	}
	return -1
}

// headOnly reports whether an element named name belongs in a head and
// has no content to skip.
func headOnly(name []byte) bool {
	for _, n := range [...]string{"html", "head", "base", "link", "meta", "basefont", "bgsound"} {
		if foldEq(name, n) {
			return true
		}
	}
	return false
}

// rawTextIn returns, for the head elements whose content is text up to
// their end tag, the name of that tag; "" for any other element.
func rawTextIn(name []byte) string {
	for _, n := range [...]string{"script", "style", "title", "noscript"} {
		if foldEq(name, n) {
			return n
		}
	}
	return ""
}

// isBlank reports whether text is white space, after a byte order mark.
func isBlank(text []byte) bool {
	text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
	return skipSpaces(text, 0) == len(text)
}
