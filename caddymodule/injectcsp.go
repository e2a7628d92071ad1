package caddymodule

import (
	"net/http"
	"strings"
)

// adaptPageCSP lets the injected host script, its stylesheet, its API calls
// and the app iframes through the helpdesk page's Content-Security-Policy,
// changing as little as it can: it reuses the page's script nonce when the
// policy has one (nonce is then returned), and otherwise adds exactly the
// host script's hash (integrity is then true: the tag must carry the
// integrity attribute for the hash to match) and path-limited sources on
// the page's own origin. Directives that already allow the page's origin
// are left alone, and so are policies without a relevant directive.
func adaptPageCSP(hd http.Header, origin, prefix, jsHash string) (nonce string, integrity bool) {
	for _, name := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		vals := hd.Values(name)
		if nonce == "" {
			for _, v := range vals {
				if nonce = findNonce(v); nonce != "" {
					break
				}
			}
		}
	}
	for _, name := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		vals := hd.Values(name)
		for i, v := range vals {
			var added bool
			vals[i], added = extendPolicies(v, origin, prefix, nonce, jsHash)
			integrity = integrity || added
		}
	}
	return nonce, integrity
}

// findNonce returns the nonce of the first policy's script directive.
func findNonce(value string) string {
	for _, policy := range strings.Split(value, ",") {
		d := parsePolicy(policy)
		if s := d.effective("script-src-elem", "script-src", "default-src"); s != nil {
			for _, tok := range s.tokens {
				if n, ok := strings.CutPrefix(tok, "'nonce-"); ok && strings.HasSuffix(n, "'") && validNonce(n[:len(n)-1]) {
					return n[:len(n)-1]
				}
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

type directive struct {
	name   string
	text   string // as written, for unchanged output
	tokens []string
	added  []string
}

type policy []*directive

func parsePolicy(p string) policy {
	var out policy
	for _, d := range strings.Split(p, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		out = append(out, &directive{name: strings.ToLower(f[0]), text: d, tokens: f[1:]})
	}
	return out
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
	if d == nil || allowed(d) {
		return
	}
	if d.name != chain[0] && d.name != create {
		nd := &directive{name: create, tokens: append([]string(nil), d.tokens...)}
		*p = append(*p, nd)
		d = nd
	}
	for _, a := range d.added {
		if a == src {
			return
		}
	}
	d.added = append(d.added, src)
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
			if !strings.EqualFold(t, "'none'") { // 'none' beside a source would be ignored anyway
				toks = append(toks, t)
			}
		}
		toks = append(toks, d.added...)
		lead := ""
		if d.text != "" {
			lead = d.text[:len(d.text)-len(strings.TrimLeft(d.text, " \t"))]
		} else {
			lead = " "
		}
		parts = append(parts, lead+strings.Join(toks, " "))
	}
	return strings.Join(parts, ";")
}

// extendPolicies extends each comma-separated policy of a header value.
func extendPolicies(value, origin, prefix, nonce, jsHash string) (string, bool) {
	allowsOrigin := func(d *directive) bool {
		for _, t := range d.tokens {
			if t == "'self'" || t == "*" || strings.EqualFold(strings.TrimRight(t, "/"), origin) {
				return !d.has("'strict-dynamic'")
			}
		}
		return false
	}
	// allowsOwn: the host script and its stylesheet load by the page's
	// nonce or from the helpdesk's origin.
	allowsOwn := func(d *directive) bool {
		return (nonce != "" && d.has("'nonce-"+nonce+"'")) || allowsOrigin(d)
	}
	policies := strings.Split(value, ",")
	changed, hashed := false, false
	for i, raw := range policies {
		p := parsePolicy(raw)
		if s := p.effective("script-src-elem", "script-src", "default-src"); s != nil && !allowsOwn(s) {
			p.need("'"+jsHash+"'", allowsOwn, "script-src", "script-src-elem", "script-src", "default-src")
			if !s.has("'strict-dynamic'") { // which ignores host sources
				p.need(origin+ownPrefix+"host.js", allowsOwn, "script-src", "script-src-elem", "script-src", "default-src")
			}
			hashed = true
		}
		p.need(origin+ownPrefix+"host.css", allowsOwn, "style-src", "style-src-elem", "style-src", "default-src")
		p.need(origin+ownPrefix, allowsOrigin, "connect-src", "connect-src", "default-src")
		p.need(origin+prefix, allowsOrigin, "frame-src", "frame-src", "child-src", "default-src")
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

func (d *directive) has(tok string) bool {
	for _, t := range d.tokens {
		if strings.EqualFold(t, tok) {
			return true
		}
	}
	return false
}
