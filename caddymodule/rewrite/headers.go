package rewrite

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// RewriteResponseHeaders applies the contract's header rules in place to the
// response headers h of the app mapped by m, for the request whose upstream
// URL is doc.
//
// The deleted headers would act on the helpdesk's whole origin once the app
// is served from it: HSTS, Alt-Svc, NEL, Report-To, Expect-CT and HPKP are
// remembered per origin; Clear-Site-Data would wipe the helpdesk's storage
// and sign the agent out; Service-Worker-Allowed would let the app register
// a worker that controls the helpdesk's pages; Origin-Agent-Cluster changes
// the agent cluster of every same-origin page; Set-Login sets the origin's
// FedCM login status; Sec-Session-Registration binds a session (Device
// Bound Session Credentials) for the origin; Accept-CH is remembered per
// origin, and Critical-CH makes the browser retry with what it asks for;
// Observe-Browsing-Topics records the agent's visit for the origin in the
// Topics API. Set-Cookie2 is obsolete and cannot be scoped, so it is
// dropped rather than let through.
//
// X-Frame-Options is removed. Every frame-ancestors directive, in every
// policy of every CSP header (Report-Only too), becomes 'self'; and when no
// enforced policy (Content-Security-Policy) has one, whatever the app sent,
// "Content-Security-Policy: frame-ancestors 'self'" is added: no site but
// the helpdesk may frame the app through the gateway. A Report-Only policy
// enforces nothing, so its frame-ancestors does not count.
//
// It walks the map once and matches keys by their canonical form rather than
// looking the canonical names up, so a header stored under a non-canonical
// key (a hand-built http.Header, a careless middleware) is not missed: the
// browser reads header names case-insensitively, and so must we.
func RewriteResponseHeaders(h http.Header, m *Mapper, doc *url.URL, appID string) {
	rewriteAppHeaders(h, m, doc, "'self'", func(v string) (string, bool) { return ScopeSetCookie(v, m, doc, appID) },
		func(k, ck string, _ []string) bool {
			switch ck {
			case "Strict-Transport-Security", "Clear-Site-Data", "Service-Worker-Allowed",
				"Set-Login", "Sec-Session-Registration", "Accept-Ch", "Critical-Ch",
				"Observe-Browsing-Topics", "Nel", "Report-To", "Origin-Agent-Cluster",
				"Alt-Svc", "Expect-Ct", "Public-Key-Pins", "Public-Key-Pins-Report-Only":
				delete(h, k)
				return true
			}
			return false
		})
}

// rewriteAppHeaders is the walk over an app's response headers that both
// modes share: special sees every header first and reports whether it took
// care of it; the rest get the shared rules. X-Frame-Options is removed
// (the frame-ancestors below say who may frame the app; XFO would veto
// it), every frame-ancestors becomes ancestors, and one is added when no
// enforced policy has one; Set-Cookie2, obsolete and impossible to scope,
// is dropped; each Set-Cookie goes through cookie (false: dropped);
// Location, Content-Location, Refresh and Link are mapped by m.
func rewriteAppHeaders(h http.Header, m *Mapper, doc *url.URL, ancestors string, cookie func(string) (string, bool), special func(k, ck string, vs []string) bool) {
	if h == nil {
		return // no response to write a policy into
	}
	framingPolicy := false
	for k, vs := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if special(k, ck, vs) {
			continue
		}
		switch ck {
		case "X-Frame-Options", "Set-Cookie2":
			delete(h, k)
		case "Content-Security-Policy", "Content-Security-Policy-Report-Only",
			"X-Content-Security-Policy", "X-Webkit-Csp":
			for i, v := range vs {
				r, found := setFrameAncestors(v, ancestors)
				vs[i] = r
				framingPolicy = framingPolicy || found && ck == "Content-Security-Policy"
			}
		case "Set-Cookie":
			kept := vs[:0] // filtered in place: the common case allocates only rewritten values
			for _, v := range vs {
				if s, ok := cookie(v); ok {
					kept = append(kept, s)
				}
			}
			clear(vs[len(kept):]) // no stale copies of dropped cookies left in the backing array
			if len(kept) > 0 {
				h[k] = kept
			} else {
				delete(h, k)
			}
		case "Location", "Content-Location":
			for i, v := range vs {
				vs[i] = MapLocation(v, m, doc)
			}
		case "Refresh":
			for i, v := range vs {
				if r, ok := MapRefresh(v, m, doc); ok {
					vs[i] = r
				}
			}
		case "Link":
			for i, v := range vs {
				vs[i] = MapLink(v, m, doc)
			}
		}
	}
	if !framingPolicy {
		// Whether or not the app asked (with X-Frame-Options, or not at
		// all), only the helpdesk may frame it: the agent is signed in
		// there, and another site could overlay the app and steal clicks.
		h.Add("Content-Security-Policy", "frame-ancestors "+ancestors)
	}
}

// MapLocation rewrites a Location or Content-Location value: a redirect to
// the app's own origin or a root-relative path must stay inside the iframe's
// proxied prefix, while a redirect elsewhere (an SSO provider) is the app's
// business and is left exactly as sent.
func MapLocation(v string, m *Mapper, doc *url.URL) string {
	if r, ok := m.MapRef(v, doc); ok {
		return r
	}
	return v
}

// rewriteCSP rewrites one Content-Security-Policy(-Report-Only) header
// value, and reports whether it has a frame-ancestors directive.
//
// The browser splits a value into policies on "," and each policy into
// directives on ";", and so does this; since a directive never spans either
// separator, one pass over both finds every directive of every policy.
// Every frame-ancestors directive, including the repeats the browser
// ignores, gets the value 'self' (the helpdesk's origin, which the app now
// shares); every other byte is kept, so a policy without frame-ancestors
// comes back identical, and the common case does not allocate.
func rewriteCSP(v string) (string, bool) { return setFrameAncestors(v, "'self'") }

// setFrameAncestors is rewriteCSP with sources, a source list, as every
// frame-ancestors directive's value.
func setFrameAncestors(v, sources string) (string, bool) {
	if !cspHasFrameAncestors(v) {
		return v, false
	}
	var b strings.Builder
	b.Grow(len(v) + 1 + len(sources))
	start, found := 0, false
	for i := 0; i <= len(v); i++ {
		if i < len(v) && v[i] != ';' && v[i] != ',' {
			continue
		}
		found = cspWriteDirective(&b, v[start:i], sources) || found
		if i < len(v) {
			b.WriteByte(v[i])
		}
		start = i + 1
	}
	if !found {
		return v, false // "frame-ancestors" only as a value: nothing to build
	}
	return b.String(), true
}

const cspFrameAncestors = "frame-ancestors"

// cspHasFrameAncestors is the cheap pre-check that lets rewriteCSP return
// its input untouched for the policies that do not mention framing at all.
func cspHasFrameAncestors(v string) bool {
	for i := 0; i+len(cspFrameAncestors) <= len(v); i++ {
		if v[i]|0x20 == 'f' && foldEq(v[i:i+len(cspFrameAncestors)], cspFrameAncestors) {
			return true
		}
	}
	return false
}

// cspWriteDirective writes d, one directive with the white space around it,
// replacing only the value of a frame-ancestors directive with sources. The directive
// name is compared ASCII case-insensitively, as CSP does: a Unicode fold
// would also take "frame-ancestorſ", which browsers ignore. It reports
// whether d was a frame-ancestors directive.
func cspWriteDirective(b *strings.Builder, d, sources string) bool {
	lead, core, trail := trimSpace(d)
	name := core
	sep := len(core)
	for i := 0; i < len(core); i++ {
		if isSpace(core[i]) {
			name, sep = core[:i], i
			break
		}
	}
	if !foldEq(name, cspFrameAncestors) {
		b.WriteString(d)
		return false
	}
	b.WriteString(lead)
	b.WriteString(name)
	j := sep
	for j < len(core) && isSpace(core[j]) {
		j++
	}
	if j > sep {
		b.WriteString(core[sep:j]) // the app's own spacing
	} else {
		b.WriteByte(' ')
	}
	b.WriteString(sources)
	b.WriteString(trail)
	return true
}

// MapLink rewrites a Link header value: each link's <URI-reference> goes
// through m.MapRef, because preload and prefetch links resolved against the
// helpdesk's origin would fetch the helpdesk's files instead of the app's.
//
// The value is scanned as RFC 8288 lays it out, link by link: a "<" counts
// only where a link starts, and a "," ends a link only outside a quoted
// parameter, so angle brackets or commas inside title="..." are never taken
// for a URI. A link that does not start with "<" is skipped up to the next
// link; an unterminated "<" ends the scan. Everything else is copied as is.
func MapLink(v string, m *Mapper, doc *url.URL) string {
	if strings.IndexByte(v, '<') < 0 {
		return v
	}
	var b strings.Builder
	copied := 0 // v[:copied] is already in b (or unchanged, while b is empty)
	for i := 0; i < len(v); {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		if i < len(v) && v[i] == '<' {
			n := strings.IndexByte(v[i+1:], '>')
			if n < 0 {
				break
			}
			uri := v[i+1 : i+1+n]
			if mapped, ok := m.MapRef(uri, doc); ok {
				if b.Len() == 0 {
					b.Grow(len(v) + len(m.Proxied()))
				}
				b.WriteString(v[copied : i+1])
				b.WriteString(mapped)
				copied = i + 1 + n
			}
			i += n + 2
		}
		i = linkParamsEnd(v, i) + 1
	}
	if copied == 0 {
		return v
	}
	b.WriteString(v[copied:])
	return b.String()
}

// linkParamsEnd returns the index of the "," that ends the link whose
// parameters start at i, or len(v). Quoted strings are skipped whole,
// backslash escapes included; an unterminated one runs to the end.
func linkParamsEnd(v string, i int) int {
	for ; i < len(v); i++ {
		switch v[i] {
		case ',':
			return i
		case '"':
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' {
					i++
				}
			}
		}
	}
	return len(v)
}
