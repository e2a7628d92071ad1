// The oracle's own reading of the attributes that hold several URLs, or
// one among other things: ping, srcset and a refresh pragma's content,
// by the HTML standard's algorithms.

package rewrite

import "strings"

func htmlSpace(c byte) bool { return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ' }

func skipHTMLSpace(s string, i int) int {
	for i < len(s) && htmlSpace(s[i]) {
		i++
	}
	return i
}

// pingURLs splits a ping attribute, a set of space-separated tokens.
func pingURLs(v string) []span {
	var spans []span
	for i := skipHTMLSpace(v, 0); i < len(v); i = skipHTMLSpace(v, i) {
		start := i
		for i < len(v) && !htmlSpace(v[i]) {
			i++
		}
		spans = append(spans, span{start: start, end: i})
	}
	return spans
}

// srcsetURLs finds the URLs of a srcset attribute by the HTML standard's
// "parse a srcset attribute" steps. It keeps the URL of a candidate whose
// descriptors are invalid, which the browser drops: mapping it does no
// harm, and the rewriter does not validate descriptors.
func srcsetURLs(v string) []span {
	var spans []span
	p := 0
	for {
		for p < len(v) && (htmlSpace(v[p]) || v[p] == ',') {
			p++
		}
		if p == len(v) {
			return spans
		}
		start := p
		for p < len(v) && !htmlSpace(v[p]) {
			p++
		}
		end := p
		if v[end-1] == ',' {
			for v[end-1] == ',' {
				end--
			}
			spans = append(spans, span{start: start, end: end})
			continue
		}
		spans = append(spans, span{start: start, end: end})
		// The descriptor tokenizer, up to the comma that ends the
		// candidate.
		const (
			inDescriptor = iota
			inParens
			afterDescriptor
		)
		state := inDescriptor
	descriptors:
		for p = skipHTMLSpace(v, p); p < len(v); p++ {
			switch c := v[p]; state {
			case inDescriptor:
				switch {
				case htmlSpace(c):
					state = afterDescriptor
				case c == ',':
					p++
					break descriptors
				case c == '(':
					state = inParens
				}
			case inParens:
				if c == ')' {
					state = inDescriptor
				}
			case afterDescriptor:
				if !htmlSpace(c) {
					state = inDescriptor
					p--
				}
			}
		}
	}
}

// refreshURLSpan finds the URL of a refresh pragma's content by the HTML
// standard's "shared declarative refresh steps".
func refreshURLSpan(v string) (start, end int, ok bool) {
	p := skipHTMLSpace(v, 0)
	q := p
	for q < len(v) && '0' <= v[q] && v[q] <= '9' {
		q++
	}
	if q == p && (q == len(v) || v[q] != '.') {
		return 0, 0, false
	}
	for q < len(v) && ('0' <= v[q] && v[q] <= '9' || v[q] == '.') {
		q++
	}
	p = q
	if p == len(v) || v[p] != ';' && v[p] != ',' && !htmlSpace(v[p]) {
		return 0, 0, false
	}
	p = skipHTMLSpace(v, p)
	if p < len(v) && (v[p] == ';' || v[p] == ',') {
		p++
	}
	p = skipHTMLSpace(v, p)
	if p == len(v) {
		return 0, 0, false
	}
	urlString := p // "url=" or not, the URL is the rest
	if v[p]|0x20 == 'u' {
		p++
		if p == len(v) || v[p]|0x20 != 'r' {
			return urlString, len(v), true
		}
		p++
		if p == len(v) || v[p]|0x20 != 'l' {
			return urlString, len(v), true
		}
		p = skipHTMLSpace(v, p+1)
		if p == len(v) || v[p] != '=' {
			return urlString, len(v), true
		}
		p = skipHTMLSpace(v, p+1)
	}
	if p < len(v) && (v[p] == '"' || v[p] == '\'') {
		quote := v[p]
		p++
		if k := strings.IndexByte(v[p:], quote); k >= 0 {
			return p, p + k, true
		}
	}
	return p, len(v), true
}
