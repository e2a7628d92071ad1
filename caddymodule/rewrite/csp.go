package rewrite

import (
	"net/http"
	"slices"
	"strings"
)

// PageSources are what an injected script needs a page's
// Content-Security-Policy to allow: all on the page's own origin but the
// frames, which may be on other origins (a source expression such as
// "https://*.apps.example.com").
type PageSources struct {
	Origin     string // the page's origin, "https://helpdesk.example"
	Script     string // the script's URL
	ScriptHash string // its hash source, "sha256-..."
	Style      string // its stylesheet's URL ("": none)
	Connect    string // the URL prefix of the API it calls ("": none)
	Frame      string // the URL prefix of the frames it opens ("": none)
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
	src.Origin = strings.ToLower(src.Origin) // as foldEq compares
	type value struct {
		vals     []string // the header's values: written back in place
		i        int
		raw      []string // the value's policies as written
		policies []policy
	}
	var values []value
	for _, name := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		vals := hd[name]
		for i, v := range vals {
			val := value{vals: vals, i: i, raw: strings.Split(v, ",")}
			for _, raw := range val.raw {
				p := parsePolicy(raw)
				if nonce == "" {
					nonce = p.nonce()
				}
				val.policies = append(val.policies, p)
			}
			values = append(values, val)
		}
	}
	for _, v := range values {
		changed, hashed := extendPolicies(v.raw, v.policies, src, nonce)
		if changed {
			v.vals[v.i] = strings.Join(v.raw, ",")
		}
		integrity = integrity || hashed
	}
	return nonce, integrity
}

type directive struct {
	name   string // as written; compared with foldEq
	text   string // as written, for unchanged output
	tokens []string
	added  []string
}

type policy []*directive

func parsePolicy(p string) policy {
	var out policy
	for _, d := range strings.Split(p, ";") {
		f := strings.FieldsFunc(d, isCSPSpace)
		if len(f) == 0 {
			continue
		}
		out = append(out, &directive{name: f[0], text: d, tokens: f[1:]})
	}
	return out
}

// isCSPSpace is ASCII white space, where CSP splits a directive (not
// Unicode's, where strings.Fields would).
func isCSPSpace(r rune) bool { return r < 0x80 && isSpace(byte(r)) }

// scriptChain is the fallback chain of script elements' sources.
var scriptChain = []string{"script-src-elem", "script-src", "default-src"}

// nonce returns the nonce of the policy's script directive, if it is one
// that can be copied into markup safely.
func (p policy) nonce() string {
	s := p.effective(scriptChain...)
	if s == nil {
		return ""
	}
	for _, tok := range s.tokens {
		if n, ok := nonceSource(tok); ok && validNonce(n) {
			return n
		}
	}
	return ""
}

// nonceSource returns the nonce of a 'nonce-...' source: the keyword in
// any ASCII case, the nonce as written.
func nonceSource(tok string) (string, bool) {
	if len(tok) > len("'nonce-'") && hasPrefixFold(tok, "'nonce-") && tok[len(tok)-1] == '\'' {
		return tok[len("'nonce-") : len(tok)-1], true
	}
	return "", false
}

// validNonce accepts the base64 alphabets a nonce is written in; anything
// else is not copied into the page's markup.
func validNonce(n string) bool {
	if n == "" || len(n) > 256 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !isASCIIAlpha(c) && !isDigit(c) && c != '+' && c != '/' && c != '=' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// effective is the first present directive of a fallback chain.
func (p policy) effective(chain ...string) *directive {
	for _, name := range chain {
		for _, d := range p {
			if foldEq(d.name, name) {
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
	if !foldEq(d.name, chain[0]) && !foldEq(d.name, create) {
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
		toks = append(toks, d.name)
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

// extendPolicies extends the policies ps of a header value, written raw,
// replacing in raw those it changes.
func extendPolicies(raw []string, ps []policy, src PageSources, nonce string) (changed, hashed bool) {
	allowsOrigin := func(d *directive) bool {
		for _, t := range d.tokens {
			if t == "*" || foldEq(t, "'self'") || foldEq(strings.TrimRight(t, "/"), src.Origin) {
				return !d.hasKeyword("'strict-dynamic'")
			}
		}
		return false
	}
	// allowsFrames: the frames are on the page's origin and it is
	// allowed, or the directive allows every origin.
	allowsFrames := allowsOrigin
	if !hasPrefixFold(src.Frame, src.Origin+"/") {
		allowsFrames = func(d *directive) bool { return slices.Contains(d.tokens, "*") }
	}
	// allowsOwn: the script and its stylesheet load by the page's nonce
	// or from the page's origin.
	allowsOwn := func(d *directive) bool {
		return (nonce != "" && d.hasNonce(nonce)) || allowsOrigin(d)
	}
	for i, p := range ps {
		if s := p.effective(scriptChain...); s != nil && !allowsOwn(s) {
			// A hash would turn off the 'unsafe-inline' of a policy that
			// has neither hashes nor nonces, and with them the page's own
			// inline scripts: there the script's URL is enough.
			if !s.hasKeyword("'unsafe-inline'") || s.hasHashOrNonce() || s.hasKeyword("'strict-dynamic'") {
				p.need("'"+src.ScriptHash+"'", allowsOwn, "script-src", scriptChain...)
				hashed = true
			}
			if !s.hasKeyword("'strict-dynamic'") { // which ignores host sources
				p.need(src.Script, allowsOwn, "script-src", scriptChain...)
			}
		}
		if src.Style != "" {
			p.need(src.Style, allowsOwn, "style-src", "style-src-elem", "style-src", "default-src")
		}
		if src.Connect != "" {
			p.need(src.Connect, allowsOrigin, "connect-src", "connect-src", "default-src")
		}
		if src.Frame != "" {
			p.need(src.Frame, allowsFrames, "frame-src", "frame-src", "child-src", "default-src")
		}
		if p.changed() {
			raw[i] = p.String()
			changed = true
		}
	}
	return changed, hashed
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

// hasHashOrNonce reports whether the directive has a hash or nonce
// source, which make browsers ignore its 'unsafe-inline'.
func (d *directive) hasHashOrNonce() bool {
	for _, t := range d.tokens {
		if _, ok := nonceSource(t); ok || hasPrefixFold(t, "'sha256-") || hasPrefixFold(t, "'sha384-") || hasPrefixFold(t, "'sha512-") {
			return true
		}
	}
	return false
}

// hasNonce reports whether the directive has the nonce source of n: the
// keyword in any case, the nonce itself exactly.
func (d *directive) hasNonce(n string) bool {
	for _, t := range d.tokens {
		if tn, ok := nonceSource(t); ok && tn == n {
			return true
		}
	}
	return false
}
