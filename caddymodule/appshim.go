package caddymodule

import (
	"html"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// The path-mode shim (hostjs/appshim.js): the first script of every app
// page served under {prefix}<id>/, so that the app's own scripts work
// there as at the root of its upstream (see the README, "Apps not written
// for a sub-path"). It is an external script on the helpdesk's origin,
// which policies allowing 'self' let through unchanged; a policy that
// does not gets exactly what inject.go gives the host script: the page's
// nonce reused, or the shim's hash (and integrity on the tag).

// shimTag is the start of an app's shim tag, up to where a nonce or an
// integrity attribute may follow: its settings are data attributes.
func shimTag(assets *hostAssets, prefix, id string, m *rewrite.Mapper) string {
	return `<script src="` + ownPrefix + `appshim.js?v=` + assets.shimVersion +
		`" data-app="` + html.EscapeString(id) + `" data-prefix="` + html.EscapeString(prefix) +
		`" data-base="` + html.EscapeString(m.Base()) + `" data-origin="` + html.EscapeString(m.Origin()) + `"`
}

// shimSnippet is the shim's tag for one response: it adapts the
// response's Content-Security-Policy to the shim (see adaptPageCSP).
func (w *appResponse) shimSnippet(h http.Header) []byte {
	p := w.p
	var nonce string
	var integrity bool
	if policiesMayRestrictScripts(h) {
		origin := requestOrigin(w.r)
		nonce, integrity = rewrite.AdaptPageCSP(h, rewrite.PageSources{
			Origin: origin, Script: origin + ownPrefix + "appshim.js?v=" + p.assets.shimVersion, ScriptHash: p.assets.shimIntegrity,
		})
	}
	if nonce == "" && !integrity {
		return p.plainShim
	}
	var b strings.Builder
	b.Grow(len(p.shimTag) + len(nonce) + len(p.assets.shimIntegrity) + 40)
	b.WriteString(p.shimTag)
	if nonce != "" {
		b.WriteString(` nonce="` + nonce + `"`)
	}
	if integrity {
		b.WriteString(` integrity="` + p.assets.shimIntegrity + `"`)
	}
	b.WriteString(`></script>`)
	return []byte(b.String())
}

// policiesMayRestrictScripts reports whether a policy of h has a script
// or default directive: most app pages have only the frame-ancestors the
// gateway gives them, and need no parsing.
func policiesMayRestrictScripts(h http.Header) bool {
	for _, name := range [...]string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		for _, v := range h[name] {
			if hasWordFold(v, "script-src") || hasWordFold(v, "default-src") {
				return true
			}
		}
	}
	return false
}

// hasWordFold reports whether s holds word, lower-case ASCII, in any
// ASCII case.
func hasWordFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		j := 0
		for j < len(word) && s[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// loadsAsDocument tells whether a request's response will be a document,
// the only kind of response that gets the shim: an HTML fragment that a
// script fetches to insert (or to parse) is left as the rewriter leaves it.
// Browsers that send no Sec-Fetch-Dest get it on every HTML page.
func loadsAsDocument(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "", "document", "iframe", "frame", "embed", "object":
		return true
	}
	return false
}

// shimmedPage is an app page's rewriter whose output goes through the
// injector that puts the shim first in it.
type shimmedPage struct {
	bodyTransform
	inj *headInjector
}

func (s shimmedPage) Close() error {
	err := s.bodyTransform.Close()
	if ierr := s.inj.Close(); err == nil {
		err = ierr
	}
	return err
}

// newShimInjector puts snippet at the start of the page written to dst.
func (w *appResponse) newShimInjector(dst interface{ Write([]byte) (int, error) }, snippet []byte) *headInjector {
	return &headInjector{dst: dst, snippet: snippet, find: rewrite.HeadStart, failed: func(reason string) {
		w.p.logger.Debug("served an app page without the path-mode shim", zap.String("reason", reason), zap.String("path", w.doc.Path))
	}}
}
