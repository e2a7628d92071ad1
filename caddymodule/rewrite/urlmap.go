// Package rewrite holds the transforms the gateway applies between an app's
// upstream and the helpdesk's site: the one URL mapper, and the header,
// cookie, HTML and CSS rewriters built on it. It has no Caddy dependency so
// that it can be tested, fuzzed and benchmarked on its own.
package rewrite

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Mapper maps URLs on one app's upstream origin to paths under the app's
// proxied prefix on the helpdesk's site, and request paths the other way.
// It is immutable after NewMapper and safe for concurrent use.
type Mapper struct {
	scheme  string   // "http" or "https"
	origin  string   // "scheme://host[:port]", lower-case
	hosts   []string // "host[:port]" spellings, for protocol-relative URLs
	base    string   // upstream base path, always ending in "/"
	proxied string   // proxied prefix of the app, e.g. "/dashboard-apps/orders/"
}

// NewMapper returns the mapper for an app whose upstream is the absolute
// URL upstream (its path is the app's base path) and which is served under
// proxied, a path that starts and ends with "/".
func NewMapper(upstream *url.URL, proxied string) *Mapper {
	scheme := strings.ToLower(upstream.Scheme)
	host := strings.ToLower(upstream.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := upstream.Port()
	defPort := "80"
	if scheme == "https" {
		defPort = "443"
	}
	var hosts []string
	if port == "" || port == defPort {
		hosts = []string{host, host + ":" + defPort}
	} else {
		hosts = []string{host + ":" + port}
	}
	m := &Mapper{scheme: scheme, hosts: hosts, origin: scheme + "://" + hosts[0], base: upstream.EscapedPath(), proxied: proxied}
	if !strings.HasSuffix(m.base, "/") {
		m.base += "/"
	}
	return m
}

// Base is the app's upstream base path; it ends in "/".
func (m *Mapper) Base() string { return m.base }

// Proxied is the app's proxied prefix; it ends in "/".
func (m *Mapper) Proxied() string { return m.proxied }

// Origin is the app's upstream origin, "scheme://host[:port]".
func (m *Mapper) Origin() string { return m.origin }

// UpstreamURL maps a proxied path (with optional query) back to the
// absolute URL on the app's origin. ok is false when p is not under the
// app's proxied prefix.
func (m *Mapper) UpstreamURL(p string) (string, bool) {
	if !strings.HasPrefix(p, m.proxied) {
		return "", false
	}
	return m.origin + m.base + p[len(m.proxied):], true
}

// ErrPathEscapes is returned by UpstreamPath for a request path that would
// leave the app's base path upstream.
var ErrPathEscapes = errors.New("request path leaves the app's base path")

// UpstreamPath joins rest, the escaped request path after the app's proxied
// prefix, under the app's base path. It refuses any rest that could leave
// the base path on some server: a ".." segment in any spelling (percent
// encoded, double encoded, with a ";" parameter, split by an encoded "/" or
// "\"), and NUL bytes. The result is an escaped path, ready for RawPath.
func (m *Mapper) UpstreamPath(rest string) (string, error) {
	if err := checkTraversal(rest); err != nil {
		return "", err
	}
	return m.base + rest, nil
}

func checkTraversal(rest string) error {
	if !strings.ContainsAny(rest, ".%\\;") {
		return nil // fast path: nothing that can spell a dot segment
	}
	s := rest
	// Decode up to three times: double and triple encoding are what a
	// chain of decoding servers would turn into a real "..". Anything still
	// encoded after that is refused rather than let through unchecked.
	for i := 0; strings.IndexByte(s, '%') >= 0; i++ {
		if i == 3 {
			return fmt.Errorf("%w: encoded more than three times in %q", ErrPathEscapes, rest)
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return fmt.Errorf("%w: malformed escape in %q", ErrPathEscapes, rest)
		}
		s = d
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: NUL byte in %q", ErrPathEscapes, rest)
	}
	for _, seg := range strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '\\' }) {
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i] // Tomcat and friends drop path parameters: "..;x" is ".."
		}
		if strings.TrimSpace(seg) == ".." {
			return fmt.Errorf("%w: %q", ErrPathEscapes, rest)
		}
	}
	return nil
}

// ProxiedPath maps an escaped absolute path on the app's origin to its
// proxied path. ok is false when the path is outside the app's base path,
// which the proxy cannot serve.
func (m *Mapper) ProxiedPath(upstreamPath string) (string, bool) {
	if strings.HasPrefix(upstreamPath, m.base) {
		return m.proxied + upstreamPath[len(m.base):], true
	}
	if upstreamPath+"/" == m.base {
		return m.proxied, true
	}
	return "", false
}

// MapRef returns what to write instead of ref, a URL reference found in a
// response of the app whose upstream URL is doc, and true; or false when ref
// is to be left exactly as it is. A reference is rewritten only where the
// browser, resolving it against the proxied document, would land somewhere
// other than the proxied form of where it points upstream: root-relative
// and protocol-relative references and absolute URLs on the app's origin,
// and relative references whose ".." climbs out of the proxied prefix.
// Leading and trailing white space, the query and the fragment are kept as
// they were written; references to other origins are never touched.
// Browsers drop the tabs and newlines inside a URL before they read it
// ("/to\tols/" is "/tools/"): MapRef maps a reference as they read it,
// and keeps the tabs and newlines where that changes nothing. One that
// they read as another origin only through them ("/\t/host/") is still
// mapped as the root-relative path it is spelt as, which keeps it under
// the app's prefix, unless that path would climb out of the prefix.
func (m *Mapper) MapRef(ref string, doc *url.URL) (string, bool) {
	lead, core, trail := trimSpace(ref)
	mapped, ok := m.mapCore(core, doc)
	if hasTabsNewlines(core) {
		read, readOK := m.mapCore(dropTabsNewlines(core), doc)
		switch {
		case readOK && !(ok && dropTabsNewlines(mapped) == read):
			mapped, ok = read, true
		case !readOK && ok && hasDotSegment(dropTabsNewlines(mapped)):
			ok = false // "/tools/.\n./x": "/tools/../x" to browsers
		}
	}
	if !ok {
		return "", false
	}
	return lead + mapped + trail, true
}

// hasTabsNewlines reports whether s has a tab or a newline. (It runs for
// many references of a page: a loop is quicker than strings.ContainsAny.)
func hasTabsNewlines[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= '\r' && (c == '\t' || c == '\n' || c == '\r') {
			return true
		}
	}
	return false
}

// dropTabsNewlines removes the tabs and newlines of s, as the URL standard
// does before it parses.
func dropTabsNewlines(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

func (m *Mapper) mapCore(ref string, doc *url.URL) (string, bool) {
	if ref == "" {
		return "", false
	}
	switch c := ref[0]; {
	case isSlash(c) && len(ref) > 1 && isSlash(ref[1]):
		// Protocol-relative (browsers read "\" as "/" in http URLs).
		rest, ok := cutHost(ref[2:], m.hosts)
		if !ok {
			return "", false
		}
		return m.mapPath(rest)
	case isSlash(c):
		ref = slashed(ref) // "\x" is root-relative too
		if strings.HasPrefix(ref, m.proxied) || ref+"/" == m.proxied {
			return "", false // already a proxied path: the app honours X-Forwarded-Prefix
		}
		return m.mapPath(ref)
	case c == '#' || c == '?':
		return "", false
	}
	if colon := schemeEnd(ref); colon > 0 {
		if !strings.EqualFold(ref[:colon], m.scheme) || len(ref) < colon+3 ||
			!isSlash(ref[colon+1]) || !isSlash(ref[colon+2]) {
			return "", false
		}
		rest, ok := cutHost(ref[colon+3:], m.hosts)
		if !ok {
			return "", false
		}
		return m.mapPath(rest)
	}
	if doc == nil || !containsDotSegment(ref) {
		return "", false
	}
	return m.mapClimbing(ref, doc)
}

// appendPlain is MapRef's fast path for the references most pages are
// full of: a plain root-relative path ("/static/app.css?v=1") or the same
// after the app's origin, without a back slash or anything that may spell
// a dot segment ("/." or "%2e") or an "&"; a URL on another origin or with another
// scheme; a fragment or query alone. It appends what MapRef would give
// (ref itself when MapRef leaves it alone) and returns true; for any other
// reference it returns false, and the caller asks MapRef. It allocates
// nothing.
func (m *Mapper) appendPlain(dst, ref []byte) ([]byte, bool) {
	if len(ref) == 0 {
		return dst, false
	}
	switch c := ref[0]; {
	case c == '#' || c == '?':
		return append(dst, ref...), true // within the document
	case c == '/' && len(ref) > 1 && ref[1] == '/':
		return m.appendAuthority(dst, ref, len("//"))
	case c == '/':
		return m.appendPath(dst, ref)
	}
	colon := schemeEnd(ref)
	switch {
	case colon < 0:
		return dst, false // relative: MapRef's rules
	case !foldEq(ref[:colon], m.scheme):
		return append(dst, ref...), true
	case len(ref) < colon+3 || ref[colon+1] != '/' || ref[colon+2] != '/':
		return dst, false
	}
	return m.appendAuthority(dst, ref, colon+len("://"))
}

// appendAuthority is appendPlain for a ref whose host starts at ref[i]:
// another origin is left alone, a path on the app's is mapped.
func (m *Mapper) appendAuthority(dst, ref []byte, i int) ([]byte, bool) {
	end := i
	for end < len(ref) && hostBytes[ref[end]] {
		end++
	}
	if end < len(ref) && ref[end] != '/' && ref[end] != '?' && ref[end] != '#' {
		return dst, false // "\", "%", "@", white space, non-ASCII...: MapRef's rules
	}
	for _, h := range m.hosts {
		if !foldEq(ref[i:end], h) {
			continue
		}
		if end == len(ref) || ref[end] != '/' {
			return dst, false
		}
		return m.appendUnderBase(dst, ref[end:])
	}
	return append(dst, ref...), true
}

// hostBytes are the bytes of a host and port that need no decoding.
var hostBytes = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_~:[]", byte(c)) >= 0
	}
	return t
}()

// appendPath is appendPlain for a root-relative ref: one already proxied
// stays as it is (the app honours X-Forwarded-Prefix).
func (m *Mapper) appendPath(dst, ref []byte) ([]byte, bool) {
	// The second byte tells most references from the proxied prefix,
	// without comparing strings.
	if (len(m.proxied) < 2 || len(ref) > 1 && ref[1] == m.proxied[1]) && (hasPrefixString(ref, m.proxied) || len(ref)+1 == len(m.proxied) && string(ref) == m.proxied[:len(ref)]) {
		return append(dst, ref...), true
	}
	return m.appendUnderBase(dst, ref)
}

// appendUnderBase maps a plain path under the app's base path to its
// proxied path; anything else is MapRef's to decide.
func (m *Mapper) appendUnderBase(dst, path []byte) ([]byte, bool) {
	if len(path) > 1 && isSlash(path[1]) || !plainPath(path) || len(m.base) > 1 && !hasPrefixString(path, m.base) {
		return dst, false
	}
	return append(append(dst, m.proxied...), path[len(m.base):]...), true
}

// plainPath reports whether the path of ref, up to its query or fragment,
// has no back slash, nothing that may spell a dot segment ("/." or "%2e"),
// no tab or newline, which browsers drop (see MapRef), and no "&", which in
// HTML may start a character reference that spells one. It runs for most
// references of every page, and the
// percent-encoded punctuation of many ("/wiki/C%2B%2B") must not send
// them down the slow path; it stops only at a few bytes (a dot segment is
// found from its dot, not from every slash).
func plainPath(ref []byte) bool {
	for i := indexStop(ref, 0, &pathStops); i < len(ref); i = indexStop(ref, i+1, &pathStops) {
		switch c := ref[i]; {
		case c == '?' || c == '#':
			return true
		case c == '\\' || c == '&' || c == '\t' || c == '\n' || c == '\r':
			return false
		case c == '.' && i > 0 && ref[i-1] == '/', c == '%' && i+2 < len(ref) && ref[i+1] == '2' && ref[i+2]|0x20 == 'e':
			return false
		}
	}
	return true
}

var pathStops = [256]uint8{'?': 1, '#': 1, '\\': 1, '.': 1, '%': 1, '&': 1, '\t': 1, '\n': 1, '\r': 1}

// indexStop returns the index of the first byte of b at or after i that
// stops marks, or len(b). It tests eight bytes with one branch: stops are
// rare in the URLs and styles it scans, and a branch per byte costs more
// than the loads.
func indexStop(b []byte, i int, stops *[256]uint8) int {
	for ; i+8 <= len(b); i += 8 {
		w := b[i : i+8 : i+8]
		if stops[w[0]]|stops[w[1]]|stops[w[2]]|stops[w[3]]|stops[w[4]]|stops[w[5]]|stops[w[6]]|stops[w[7]] != 0 {
			break
		}
	}
	for i < len(b) && stops[b[i]] == 0 {
		i++
	}
	return i
}

func hasPrefixString(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// mapPath maps rest, an absolute path with optional query and fragment (or
// empty, meaning "/"), keeping every byte after the base path but for
// back slashes in the path, which browsers read as "/". A path with dot
// segments is mapped by where it resolves, since its ".." would otherwise
// climb out of the proxied prefix rather than the base path.
func (m *Mapper) mapPath(rest string) (string, bool) {
	if rest == "" || rest[0] == '?' || rest[0] == '#' {
		rest = "/" + rest
	}
	if rest[0] != '/' {
		return "", false
	}
	rest = slashed(rest)
	if hasDotSegment(rest) {
		return m.mapDotted(rest)
	}
	if strings.HasPrefix(rest, m.base) {
		return m.proxied + rest[len(m.base):], true
	}
	// The base path without its slash, e.g. "/app" or "/app?x" for base "/app/".
	b := m.base[:len(m.base)-1]
	if strings.HasPrefix(rest, b) && (len(rest) == len(b) || rest[len(b)] == '?' || rest[len(b)] == '#') {
		return m.proxied + rest[len(b):], true
	}
	return "", false
}

// mapDotted maps rest, an absolute path with dot segments, to the proxied
// form of the path it resolves to, or refuses when that is outside the base
// path.
func (m *Mapper) mapDotted(rest string) (string, bool) {
	r, err := url.Parse(dotsDecoded(rest))
	if err != nil || r.Scheme != "" || r.Host != "" {
		return "", false
	}
	want, ok := m.ProxiedPath((&url.URL{Path: "/"}).ResolveReference(r).EscapedPath())
	if !ok {
		return "", false
	}
	return want + rest[pathEnd(rest):], true
}

// hasDotSegment reports whether the path part of ref, an absolute path,
// has a "." or ".." segment in a spelling that browsers resolve.
func hasDotSegment(ref string) bool {
	p := dotsDecoded(ref[:pathEnd(ref)])
	for p != "" {
		seg := p[1:] // p starts with "/"
		p = ""
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg, p = seg[:i], seg[i:]
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// pathEnd returns where the path part of ref ends: at its query or
// fragment, or at its end.
func pathEnd(ref string) int {
	if i := strings.IndexAny(ref, "?#"); i >= 0 {
		return i
	}
	return len(ref)
}

// slashed replaces back slashes with slashes in the path part of ref.
func slashed(ref string) string {
	end := pathEnd(ref)
	if !strings.Contains(ref[:end], "\\") {
		return ref
	}
	return strings.ReplaceAll(ref[:end], "\\", "/") + ref[end:]
}

// mapClimbing handles a relative reference with dot segments: it is
// rewritten only when the browser would resolve it elsewhere.
func (m *Mapper) mapClimbing(ref string, doc *url.URL) (string, bool) {
	r, err := url.Parse(strings.ReplaceAll(dotsDecoded(ref), "\\", "/"))
	if err != nil || r.Scheme != "" || r.Host != "" {
		return "", false
	}
	target := doc.ResolveReference(r)
	want, ok := m.ProxiedPath(target.EscapedPath())
	if !ok {
		return "", false
	}
	proxiedDoc, ok := m.ProxiedPath(doc.EscapedPath())
	if !ok {
		return "", false
	}
	got := (&url.URL{Path: proxiedDoc}).ResolveReference(r).EscapedPath()
	if got == want {
		return "", false
	}
	return want + ref[pathEnd(ref):], true
}

func isSlash(c byte) bool { return c == '/' || c == '\\' }

// cutHost returns what follows the authority in s when it is one of hosts
// (case-insensitive), and false otherwise, userinfo included: a URL with
// userinfo is not the app's origin as far as the gateway is concerned.
func cutHost(s string, hosts []string) (string, bool) {
	end := strings.IndexAny(s, "/\\?#")
	if end < 0 {
		end = len(s)
	}
	for _, h := range hosts {
		if strings.EqualFold(s[:end], h) {
			rest := s[end:]
			if rest != "" && rest[0] == '\\' {
				rest = "/" + rest[1:]
			}
			return rest, true
		}
	}
	return "", false
}

// schemeEnd returns the index of the ":" that ends a URL scheme at the
// start of s, or -1.
func schemeEnd[T string | []byte](s T) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':' && i > 0:
			return i
		default:
			return -1
		}
	}
	return -1
}

// containsDotSegment reports whether the path part of ref may hold a ".."
// segment, spelled as browsers accept it (".", "%2e", "%2E").
func containsDotSegment(ref string) bool {
	return strings.Contains(dotsDecoded(ref[:pathEnd(ref)]), "..")
}

// dotsDecoded spells "%2e" as "." in the path part of ref, as the URL
// standard does when it looks for dot segments.
func dotsDecoded(ref string) string {
	end := pathEnd(ref)
	if !strings.Contains(ref[:end], "%2") {
		return ref
	}
	p := strings.ReplaceAll(strings.ReplaceAll(ref[:end], "%2e", "."), "%2E", ".")
	return p + ref[end:]
}

// trimSpace splits off the ASCII white space that HTML allows around URLs.
func trimSpace(s string) (lead, core, trail string) {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[:i], s[i:j], s[j:]
}
