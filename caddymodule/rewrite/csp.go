package rewrite

import (
	"net/http"
	"slices"
	"strings"
)

// PageSources are what an injected script needs a page's
// Content-Security-Policy to allow, all on the page's own origin.
type PageSources struct {
	Origin     string // the page's origin, "https://helpdesk.example"
	Script     string // the script's URL
	ScriptHash string // its hash source, "sha256-..."
	Style      string // its stylesheet's URL
	Connect    string // the URL prefix of the API it calls
	Frame      string // the URL prefix of the frames it opens
}

// AdaptPageCSP lets an injected script, its stylesheet, its API calls and
// its frames through the page's Content-Security-Policy and -Report-Only
// headers, changing as little as it can: it reuses the page's script
// nonce when a policy has one (nonce is then returned), and otherwise adds
// exactly the script's hash (integrity is then true: the tag must carry
// the integrity attribute for the hash to match) and the sources on the
// page's own origin. Directives that already allow the page's origin are
// left alone, and so are policies without a relevant directive.
//
// Policies are read as browsers read them: values split on ",", policies
// on ";", directives on ASCII white space, names and keywords compared
// ASCII case-insensitively, nonces and hashes exactly.
func AdaptPageCSP(hd http.Header, src PageSources) (nonce string, integrity bool) {
	src.Origin = lowerASCIIString(src.Origin) // as foldEq compares
	type header struct {
		vals     []string
		policies [][]policy // per value
	}
	var headers []header
	for _, name := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		h := header{vals: hd.Values(name)}
		for _, v := range h.vals {
			var ps []policy
			for _, raw := range strings.Split(v, ",") {
				p := parsePolicy(raw)
				if nonce == "" {
					nonce = p.nonce()
				}
				ps = append(ps, p)
			}
			h.policies = append(h.policies, ps)
		}
		headers = append(headers, h)
	}
	for _, h := range headers {
		for i, ps := range h.policies {
			var hashed bool
			h.vals[i], hashed = extendPolicies(h.vals[i], ps, src, nonce)
			integrity = integrity || hashed
		}
	}
	return nonce, integrity
}

type directive struct {
	name   string // lower case
	text   string // as written, for unchanged output
	tokens []string
	added  []string
}

// written is the directive's name as the policy spells it.
func (d *directive) written() string {
	if f := cspFields(d.text); len(f) > 0 {
		return f[0]
	}
	return d.name // one the adaptation created
}

type policy []*directive

func parsePolicy(p string) policy {
	var out policy
	for _, d := range strings.Split(p, ";") {
		f := cspFields(d)
		if len(f) == 0 {
			continue
		}
		out = append(out, &directive{name: lowerASCIIString(f[0]), text: d, tokens: f[1:]})
	}
	return out
}

// cspFields splits a directive on ASCII white space, as CSP does (not on
// Unicode white space, as strings.Fields would).
func cspFields(d string) []string {
	var f []string
	for i := skipSpaces(d, 0); i < len(d); i = skipSpaces(d, i) {
		j := i
		for j < len(d) && !isSpace(d[j]) {
			j++
		}
		f = append(f, d[i:j])
		i = j
	}
	return f
}

func lowerASCIIString(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCII(b[j])
			}
			return string(b)
		}
	}
	return s
}

// nonce returns the nonce of the policy's script directive, if it is one
// that can be copied into markup safely.
func (p policy) nonce() string {
	s := p.effective("script-src-elem", "script-src", "default-src")
	if s == nil {
		return ""
	}
	for _, tok := range s.tokens {
		if len(tok) > len("'nonce-'") && hasPrefixFold(tok, "'nonce-") && tok[len(tok)-1] == '\'' {
			if n := tok[len("'nonce-") : len(tok)-1]; validNonce(n) {
				return n
			}
		}
	}
	return ""
}

// validNonce accepts the base64 alphabets a nonce is written in; anything
// else is not copied into the page's markup.
func validNonce(n string) bool {
	if n == "" || len(n) > 256 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// effective is the first present directive of a fallback chain.
func (p policy) effective(chain ...string) *directive {
	for _, name := range chain {
		for _, d := range p {
			if d.name == name {
				return d
			}
		}
	}
	return nil
}

// need makes sure the effective directive of chain allows src. It adds src
// to that directive, unless the directive is only a fallback (default-src,
// or child-src for frames): then it creates the directive named create
// from the fallback's sources plus src, leaving the fallback as it was for
// everything else.
func (p *policy) need(src string, allowed func(*directive) bool, create string, chain ...string) {
	d := p.effective(chain...)
	if d == nil || allowed(d) || d.lists(src) {
		return
	}
	if d.name != chain[0] && d.name != create {
		nd := &directive{name: create, tokens: append([]string(nil), d.tokens...)}
		*p = append(*p, nd)
		d = nd
	}
	d.added = append(d.added, src)
}

// lists reports whether src is among the directive's sources already (a
// policy adapted before, or written with them).
func (d *directive) lists(src string) bool {
	return slices.Contains(d.tokens, src) || slices.Contains(d.added, src)
}

func (p policy) String() string {
	parts := make([]string, 0, len(p))
	for _, d := range p {
		if len(d.added) == 0 && d.text != "" {
			parts = append(parts, d.text)
			continue
		}
		toks := make([]string, 0, len(d.tokens)+len(d.added)+1)
		toks = append(toks, d.written())
		for _, t := range d.tokens {
			if !foldEq(t, "'none'") { // 'none' beside a source would be ignored anyway
				toks = append(toks, t)
			}
		}
		toks = append(toks, d.added...)
		lead := " "
		if d.text != "" {
			lead = d.text[:skipSpaces(d.text, 0)]
		}
		parts = append(parts, lead+strings.Join(toks, " "))
	}
	return strings.Join(parts, ";")
}

// extendPolicies extends the comma-separated policies ps of a header value.
func extendPolicies(value string, ps []policy, src PageSources, nonce string) (string, bool) {
	allowsOrigin := func(d *directive) bool {
		for _, t := range d.tokens {
			if t == "*" || foldEq(t, "'self'") || foldEq(strings.TrimRight(t, "/"), src.Origin) {
				return !d.hasKeyword("'strict-dynamic'")
			}
		}
		return false
	}
	// allowsOwn: the script and its stylesheet load by the page's nonce
	// or from the page's origin.
	allowsOwn := func(d *directive) bool {
		return (nonce != "" && d.hasNonce(nonce)) || allowsOrigin(d)
	}
	policies := strings.Split(value, ",")
	changed, hashed := false, false
	for i, p := range ps {
		if s := p.effective("script-src-elem", "script-src", "default-src"); s != nil && !allowsOwn(s) {
			p.need("'"+src.ScriptHash+"'", allowsOwn, "script-src", "script-src-elem", "script-src", "default-src")
			if !s.hasKeyword("'strict-dynamic'") { // which ignores host sources
				p.need(src.Script, allowsOwn, "script-src", "script-src-elem", "script-src", "default-src")
			}
			hashed = true
		}
		p.need(src.Style, allowsOwn, "style-src", "style-src-elem", "style-src", "default-src")
		p.need(src.Connect, allowsOrigin, "connect-src", "connect-src", "default-src")
		p.need(src.Frame, allowsOrigin, "frame-src", "frame-src", "child-src", "default-src")
		if p.changed() {
			policies[i] = p.String()
			changed = true
		}
	}
	if !changed {
		return value, false
	}
	return strings.Join(policies, ","), hashed
}

func (p policy) changed() bool {
	for _, d := range p {
		if len(d.added) > 0 {
			return true
		}
	}
	return false
}

// hasKeyword reports whether the directive has keyword, a lower-case
// source keyword such as 'strict-dynamic', in any ASCII case.
func (d *directive) hasKeyword(keyword string) bool {
	for _, t := range d.tokens {
		if foldEq(t, keyword) {
			return true
		}
	}
	return false
}

// hasNonce reports whether the directive has the nonce source of n: the
// keyword in any case, the nonce itself exactly.
func (d *directive) hasNonce(n string) bool {
	for _, t := range d.tokens {
		if len(t) == len("'nonce-'")+len(n) && hasPrefixFold(t, "'nonce-") && t[len("'nonce-"):len(t)-1] == n && t[len(t)-1] == '\'' {
			return true
		}
	}
	return false
}
