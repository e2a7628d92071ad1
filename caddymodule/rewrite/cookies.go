package rewrite

import (
	"net/url"
	"strings"
)

// CookiePrefix starts every app cookie's name in the browser. Every app is
// served from the helpdesk's origin, where the browser keeps one cookie jar
// for the helpdesk and all its apps. Two things keep their cookies apart: a
// name prefix per app, which no app's Set-Cookie can escape because the
// app's own name always comes after it, and a path under the app's proxied
// prefix, which keeps an app's cookies off the helpdesk's and other apps'
// requests. AppCookies trusts only the name; the path keeps request headers
// small and the helpdesk's own cookie paths untouched.
const CookiePrefix = "dapp_"

// cookieName is the browser-side name of the app's cookie name. App ids
// never contain "_", so the first "_" after the prefix ends the id and no
// app's names can collide with another's, whatever names the apps choose.
func cookieName(appID, name string) string {
	return CookiePrefix + appID + "_" + name
}

// ScopeSetCookie rewrites one Set-Cookie value from the app: name
// namespaced, Domain removed, Path mapped under m.Proxied(). ok is false
// when the header must be dropped.
//
// The value is parsed as browsers do (RFC 6265 section 5.2): the name-value
// pair runs to the first ";", the name to the first "=", each trimmed of
// spaces and tabs; attributes are matched by name case-insensitively, the
// last Path wins (a relative or empty one meaning the default path), and a
// Path or Domain over 1024 bytes is ignored. The output is
//
//	cookieName(appID, name) "=" value-as-sent {";" attribute-as-sent} "; Path=" proxied-path
//
// where every attribute except Path and Domain is kept byte for byte and in
// order. The path is the upstream cookie path with the base path replaced by
// m.Proxied(), or m.Proxied() itself when it is outside the base path (as
// "/" usually is): such a cookie covered the whole app upstream.
//
// Dropped: a pair without "=" or with an empty name (RFC 6265 ignores them,
// and a nameless cookie cannot be namespaced), names with control
// characters (browsers reject them), an invalid app id, and cookies that
// break the rules of their name's __Secure-, __Host-, __Http- or
// __Host-Http- prefix, which the browser would have refused from the app
// directly. Cookies that keep those rules are kept with Secure; the prefix,
// now in the middle of the name, no longer binds the browser, and its
// guarantees (no Domain, Path=/) cannot hold under a sub-path anyway.
func ScopeSetCookie(v string, m *Mapper, doc *url.URL, appID string) (string, bool) {
	if !validAppID(appID) {
		return "", false
	}
	c, ok := parseSetCookie(v, doc)
	if !ok {
		return "", false
	}
	path := cookieProxiedPath(m, c.upstreamPath)

	var b strings.Builder
	b.Grow(len(CookiePrefix) + len(appID) + 1 + len(v) - len(c.rawName) + len("; Path=") + len(path))
	b.WriteString(CookiePrefix)
	b.WriteString(appID)
	b.WriteByte('_')
	b.WriteString(c.name)
	b.WriteByte('=')
	b.WriteString(c.value)
	writeKeptCookieAttrs(&b, c.attrs)
	b.WriteString("; Path=")
	b.WriteString(path)
	return b.String(), true
}

// setCookie is a Set-Cookie value as the browser reads it.
type setCookie struct {
	rawName, name, value, attrs string
	a                           cookieAttrs
	upstreamPath                string // the path it applies to upstream: its Path, or the default path
}

// parseSetCookie reads a Set-Cookie value from the app as the browser does
// (RFC 6265 section 5.2), for the request whose upstream URL is doc. ok is
// false for one the browser would ignore or refuse from the app directly:
// a pair without "=" or with an empty name, a name with control
// characters, a cookie that breaks its name prefix's rules.
func parseSetCookie(v string, doc *url.URL) (c setCookie, ok bool) {
	pair, attrs, _ := strings.Cut(v, ";")
	rawName, value, ok := strings.Cut(pair, "=")
	c = setCookie{rawName: rawName, name: cookieTrim(rawName), value: value, attrs: attrs, a: parseCookieAttrs(attrs)}
	if !ok || !validCookieName(c.name) {
		return c, false
	}
	c.upstreamPath = c.a.path
	if !c.a.hasPath {
		c.upstreamPath = defaultCookiePath(doc)
	}
	return c, cookiePrefixRulesHold(c.name, c.a, c.upstreamPath)
}

// writeKeptCookieAttrs copies every attribute but Path and Domain, each
// with its ";" and as sent.
func writeKeptCookieAttrs(b *strings.Builder, attrs string) {
	if attrs == "" {
		return
	}
	for attr := range strings.SplitSeq(attrs, ";") {
		if n, _ := cookieAttr(attr); foldEq(n, "path") || foldEq(n, "domain") {
			continue
		}
		b.WriteByte(';')
		b.WriteString(attr)
	}
}

// cookieAttrs is what the scoping needs to know of a cookie's attributes.
type cookieAttrs struct {
	secure, httpOnly bool
	domain           bool   // a non-empty Domain: not a host-only cookie
	domainAttr       bool   // some Domain attribute, honoured or not
	hasPath          bool   // a Path the browser would honour
	path             string // the last such Path
	pathAttr         bool   // some Path attribute, honoured or not
}

func parseCookieAttrs(attrs string) cookieAttrs {
	var a cookieAttrs
	if attrs == "" {
		return a
	}
	for attr := range strings.SplitSeq(attrs, ";") {
		name, value := cookieAttr(attr)
		switch {
		case foldEq(name, "secure"):
			a.secure = true
		case foldEq(name, "httponly"):
			a.httpOnly = true
		case foldEq(name, "domain"):
			a.domainAttr = true
			// RFC 6265bis 5.6: a Domain over 1024 bytes is ignored entirely.
			if value != "" && value != "." && len(value) <= 1024 {
				a.domain = true
			}
		case len(value) > 1024:
			// RFC 6265bis 5.6: such a Path is ignored entirely.
		case foldEq(name, "path"):
			a.pathAttr = true
			if value != "" && value[0] == '/' {
				a.hasPath, a.path = true, value
			} else {
				// RFC 6265 5.2.4: the default path, which may undo an
				// earlier valid Path, since the last one wins.
				a.hasPath, a.path = false, ""
			}
		}
	}
	return a
}

// cookieAttr splits one cookie-av into its trimmed name and value.
func cookieAttr(attr string) (name, value string) {
	n, v, _ := strings.Cut(attr, "=")
	return cookieTrim(n), cookieTrim(v)
}

// cookiePrefixRulesHold applies RFC 6265bis's cookie name prefixes (matched
// case-insensitively, as current browsers do) to the cookie as the app sent
// it, so that the app gets the same refusals through the gateway as direct.
func cookiePrefixRulesHold(name string, a cookieAttrs, upstreamPath string) bool {
	hostOnly := !a.domain && a.pathAttr && upstreamPath == "/"
	switch {
	case hasPrefixFold(name, "__host-http-"):
		return a.secure && a.httpOnly && hostOnly
	case hasPrefixFold(name, "__host-"):
		return a.secure && hostOnly
	case hasPrefixFold(name, "__http-"):
		return a.secure && a.httpOnly
	case hasPrefixFold(name, "__secure-"):
		return a.secure
	}
	return true
}

// defaultCookiePath is RFC 6265's default-path of the upstream request URL:
// the directory of its path.
func defaultCookiePath(doc *url.URL) string {
	if doc == nil {
		return "/"
	}
	p := doc.EscapedPath()
	if p == "" || p[0] != '/' {
		return "/"
	}
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}

// cookieProxiedPath maps an upstream cookie path: inside the base path it
// keeps its place under the proxied prefix; anywhere else it is narrowed to
// the proxied prefix, so no app can put a cookie on the helpdesk's or
// another app's requests.
//
// A default path comes from the request URL, where ";" is a plain path
// character: written into the attribute it would end it and start new ones
// ("/app/x;Path=/;y/" would set Path=/). So a path with ";" or a control
// character is cut back to the directory before it, which is still under
// the proxied prefix and still covers the request.
func cookieProxiedPath(m *Mapper, p string) string {
	if !strings.HasPrefix(p, m.Base()) {
		return m.Proxied()
	}
	p = m.Proxied() + p[len(m.Base()):]
	if i := strings.IndexFunc(p, func(r rune) bool { return r == ';' || r < 0x20 || r == 0x7f }); i >= 0 {
		p = p[:strings.LastIndexByte(p[:i], '/')+1]
	}
	return p
}

// AppCookies builds the Cookie header for the app's upstream request from
// the browser's Cookie header values: only the cookies named
// cookieName(appID, x) are kept, as x=value, in the order the browser sent
// them. The helpdesk's cookies (its session among them) and other apps'
// cookies never reach the app. Pairs without "=" or with an empty original
// name are dropped. It returns "" when nothing is left.
func AppCookies(cookieHeaders []string, appID string) string {
	if !validAppID(appID) {
		return ""
	}
	var b strings.Builder
	for _, h := range cookieHeaders {
		for pair := range strings.SplitSeq(h, ";") {
			rawName, value, ok := strings.Cut(pair, "=")
			if !ok {
				continue
			}
			name, ok := cutAppCookiePrefix(cookieTrim(rawName), appID)
			if !ok || name == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(cookieTrim(value))
		}
	}
	return b.String()
}

// cutAppCookiePrefix returns the app's own name for the browser-side name
// s, without building the prefix string.
func cutAppCookiePrefix(s, appID string) (string, bool) {
	n := len(CookiePrefix) + len(appID) + 1
	if len(s) < n || s[:len(CookiePrefix)] != CookiePrefix ||
		s[len(CookiePrefix):n-1] != appID || s[n-1] != '_' {
		return "", false
	}
	return s[n:], true
}

// cookieTrim removes the spaces and tabs that RFC 6265 trims around names,
// values and attributes.
func cookieTrim(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// validCookieName refuses what browsers refuse in a name (control
// characters) and what could not come back through AppCookies (empty).
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validAppID checks ^[a-z0-9][a-z0-9-]{0,62}$ again here, because the
// namespacing is only sound for such ids: one with "_" would make
// "dapp_a_b_x" ambiguous between app "a" and app "a_b".
func validAppID(id string) bool {
	if id == "" || len(id) > 63 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
