package rewrite

import (
	"net/http"
	"net/url"
	"strings"
)

// RewriteOriginResponseHeaders applies origin mode's header rules in place
// to the response headers h of an app served on an origin of its own. m is
// the app's origin mapper (upstream origin "/" to app origin "/": see
// NewMapper), doc the upstream URL of the request, ancestors the helpdesk's
// origin, the one page that may frame the app. Cookies named in reserved
// (the gateway's session cookie) are dropped: the app cannot overwrite them.
//
// The app has an origin of its own, so the headers that act on an origin
// act on the app's: they are left alone, and so is the body. What would
// reach past the app's origin is changed:
//   - X-Frame-Options is removed, and every frame-ancestors directive (in
//     every policy, Report-Only too) becomes ancestors; a response with no
//     enforced frame-ancestors gets one, so no page but the helpdesk's may
//     frame the app through the gateway.
//   - Set-Cookie loses Domain: a host-only cookie cannot be tossed onto the
//     helpdesk or the other apps, which share the parent domain. Name and
//     Path are kept, and the cookie prefixes' rules hold as the browser
//     would apply them to the cookie as sent.
//   - Location, Content-Location, Refresh and Link on the upstream origin
//     become root-relative, that is, on the app's origin.
//   - Strict-Transport-Security is removed: includeSubDomains on an app
//     host is a site operator's decision, not an app's.
//   - Clear-Site-Data keeps only "cache", "storage" and
//     "executionContexts"; "cookies" and "*" would clear the cookies of the
//     whole registrable domain, the agent's helpdesk session among them.
func RewriteOriginResponseHeaders(h http.Header, m *Mapper, doc *url.URL, ancestors string, reserved []string) {
	rewriteAppHeaders(h, m, doc, ancestors, func(v string) (string, bool) { return HostOnlySetCookie(v, doc, reserved) },
		func(k, ck string, vs []string) bool {
			switch ck {
			case "Strict-Transport-Security":
				delete(h, k)
			case "Clear-Site-Data":
				if kept := originClearSiteData(vs); kept != "" {
					h[k] = []string{kept}
				} else {
					delete(h, k)
				}
			default:
				return false
			}
			return true
		})
}

// HostOnlySetCookie rewrites one Set-Cookie value from an app on its own
// origin: every Domain attribute is removed, every other byte kept. ok is
// false when the cookie must be dropped: a name the browser would ignore,
// one of reserved (compared case-insensitively, as the __Host- prefix is),
// or a cookie that breaks its name prefix's rules as sent.
func HostOnlySetCookie(v string, doc *url.URL, reserved []string) (string, bool) {
	c, ok := parseSetCookie(v, doc)
	if !ok {
		return "", false
	}
	for _, r := range reserved {
		if foldEq(c.name, strings.ToLower(r)) {
			return "", false
		}
	}
	if !c.a.domainAttr {
		return v, true
	}
	pair, _, _ := strings.Cut(v, ";")
	var b strings.Builder
	b.Grow(len(v))
	b.WriteString(pair)
	for attr := range strings.SplitSeq(c.attrs, ";") {
		if n, _ := cookieAttr(attr); foldEq(n, "domain") {
			continue
		}
		b.WriteByte(';')
		b.WriteString(attr)
	}
	return b.String(), true
}

// originClearSiteData keeps the Clear-Site-Data types that act on the
// app's origin alone, as a new value ("" when none is left). Types are
// quoted strings in a comma-separated list; anything else is dropped.
func originClearSiteData(vs []string) string {
	var kept []string
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			switch strings.TrimSpace(t) {
			case `"cache"`, `"storage"`, `"executionContexts"`:
				kept = append(kept, strings.TrimSpace(t))
			}
		}
	}
	return strings.Join(kept, ", ")
}
