package caddymodule

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// templateVars are the URL template variables an app's url may hold in
// its path (after the base path) or query. The host script fills each from
// the open conversation's appContext, percent-encoded for its place, and
// moves the app's frame to the filled URL when the conversation changes.
var templateVars = []string{
	"conversation.id", "conversation.inbox_id", "account.id",
	"contact.id", "contact.email", "contact.name", "contact.phone_number",
	"currentAgent.id", "currentAgent.email",
}

func knownTemplateVar(name string) bool {
	for _, v := range templateVars {
		if v == name {
			return true
		}
	}
	return false
}

// parseURL checks the app's url and base_path and fills in what is derived
// from them: the upstream (origin and base path), the entry page after the
// base path, and the template variables. field is the setting an error is
// about.
func (a *AppConfig) parseURL() (field string, err error) {
	raw := a.URL
	a.vars = nil
	// Template variables: each {name} a known one, after the authority.
	authEnd := len(raw)
	if i := strings.Index(raw, "://"); i >= 0 {
		if j := strings.IndexAny(raw[i+3:], "/?#"); j >= 0 {
			authEnd = i + 3 + j
		}
	}
	type span struct{ start, end int }
	var spans []span
	for pos := 0; ; {
		i := strings.IndexAny(raw[pos:], "{}")
		if i < 0 {
			break
		}
		i += pos
		if raw[i] == '}' {
			return "url", errors.New(`has a "}" that closes no template variable`)
		}
		j := strings.IndexByte(raw[i:], '}')
		if j < 0 {
			return "url", errors.New(`has a "{" that opens no template variable (write a literal brace as %7B)`)
		}
		j += i
		name := raw[i+1 : j]
		switch {
		case !knownTemplateVar(name):
			return "url", fmt.Errorf("unknown template variable {%s} (known: {%s})", name, strings.Join(templateVars, "}, {"))
		case i < authEnd:
			return "url", fmt.Errorf("template variable {%s} must be in the path or the query, not in the scheme or host", name)
		}
		spans = append(spans, span{i, j + 1})
		a.vars = append(a.vars, name)
		pos = j + 1
	}
	// Each variable becomes a marker that no escaping changes and that the
	// URL does not otherwise contain, for the URL's checks and for finding
	// where the variables are in its parsed path.
	tag := "zq"
	for strings.Contains(raw, tag) {
		tag += "q"
	}
	marker := func(i int) string { return tag + "v" + strconv.Itoa(i) + tag }
	var b strings.Builder
	last := 0
	for i, s := range spans {
		b.WriteString(raw[last:s.start])
		b.WriteString(marker(i))
		last = s.end
	}
	b.WriteString(raw[last:])
	u, err := parseAppURL(b.String())
	if err != nil {
		return "url", err
	}

	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	literal := path // the path before its first variable
	if i := strings.Index(path, tag); i >= 0 {
		literal = path[:i]
	}
	base := literal[:strings.LastIndexByte(literal, '/')+1]
	if p := a.BasePath; p != "" {
		switch {
		case !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/"):
			return "base_path", errors.New(`must be an absolute path ending in "/"`)
		case strings.ContainsAny(p, "?#{}\\") || strings.Contains(p, "//"):
			return "base_path", errors.New(`must be a plain path, without "?", "#", "{", "}", "\" or "//"`)
		case dotSegment(p):
			return "base_path", errors.New(`must not have "." or ".." segments, in any encoding`)
		case !strings.HasPrefix(literal, p):
			return "base_path", fmt.Errorf("must be a prefix of the url's path %q (before any template variable)", literal)
		}
		base = p
	}
	decoded, err := url.PathUnescape(base)
	if err != nil {
		return "base_path", fmt.Errorf("is not a valid path: %v", err)
	}
	entry := path[len(base):]
	if u.ForceQuery || u.RawQuery != "" {
		entry += "?" + u.RawQuery
	}
	for i, name := range a.vars {
		entry = strings.Replace(entry, marker(i), "{"+name+"}", 1)
	}
	a.upstream = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: decoded, RawPath: base}
	a.entry = entry
	return "", nil
}

// emptyEntry is the entry page with every template variable empty, for
// where no conversation fills them.
func (a *AppConfig) emptyEntry() string {
	e := a.entry
	for _, name := range a.vars {
		e = strings.Replace(e, "{"+name+"}", "", 1)
	}
	return e
}
