package caddymodule

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// Escapes: requests that an app's page sends outside the app's prefix in
// path mode, which the shim (appshim.js) did not or could not map:
// location.href = '/x', import('/x.js'), CSS set from script, a worker's
// own requests, markup inserted from strings that started loading before
// the shim saw it. They land on the helpdesk's site with the app's page
// as their Referer.
//
// Such a request is answered with a 307 to the same path under the app's
// prefix when all of this holds, and passed on as before otherwise:
//   - its Referer is a page of a registered app, {prefix}<id>/..., on this
//     site, and Sec-Fetch-Site says the browser sent it from this origin:
//     the helpdesk's own pages and requests never qualify (theirs are not
//     under the prefix), so none of the helpdesk's paths is taken from it;
//   - Sec-Fetch-Dest is a frame, a subresource or a script's request
//     (escapeDests): not a top-level navigation, which is the agent going
//     to the helpdesk, nor a WebSocket or service worker, which cannot
//     follow a redirect;
//   - the path is under the app's base path upstream (else no path under
//     the prefix serves it).
//
// Every such request (the navigation excepted) is counted in
// caddy_dashboard_apps_path_escapes_total{app} and logged at WARN once
// per app and path, with what to change.

// escapeDests are the Sec-Fetch-Dest values whose requests are redirected.
var escapeDests = map[string]bool{
	"iframe": true, "frame": true, "empty": true, "script": true, "style": true, "image": true,
	"font": true, "audio": true, "video": true, "track": true, "object": true, "embed": true,
	"manifest": true, "worker": true, "sharedworker": true, "xslt": true,
}

// escapeLog remembers which escapes were logged, up to maxLoggedEscapes.
type escapeLog struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

const maxLoggedEscapes = 1024

// first reports whether app id's escape to p is new, and whether the log
// has just become full.
func (l *escapeLog) first(id, p string) (isNew, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) >= maxLoggedEscapes {
		return false, false
	}
	key := id + " " + p
	if _, ok := l.seen[key]; ok {
		return false, false
	}
	if l.seen == nil {
		l.seen = make(map[string]struct{})
	}
	l.seen[key] = struct{}{}
	return true, len(l.seen) == maxLoggedEscapes
}

// refererApp returns the app whose page, on this site, r's Referer is.
func (h *Handler) refererApp(r *http.Request) (*appProxy, *url.URL, bool) {
	ref := r.Header.Get("Referer")
	if ref == "" || h.AppDomain != "" {
		return nil, nil, false
	}
	u, err := url.Parse(ref)
	if err != nil || !strings.EqualFold(u.Scheme+"://"+u.Host, requestOrigin(r)) {
		return nil, nil, false
	}
	rest, ok := strings.CutPrefix(u.EscapedPath(), h.Prefix)
	if !ok {
		return nil, nil, false
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return nil, nil, false
	}
	p, ok := h.lookupApp(id)
	return p, u, ok
}

// catchEscape handles a request outside the prefix (and the gateway's own
// paths) sent by an app's page: it reports whether it answered it.
func (h *Handler) catchEscape(w http.ResponseWriter, r *http.Request) bool {
	p, ref, ok := h.refererApp(r)
	if !ok {
		return false
	}
	dest := r.Header.Get("Sec-Fetch-Dest")
	if dest == "document" {
		return false // the agent leaving the app, in the top-level window
	}
	escaped := r.URL.EscapedPath()
	target, servable := p.mapper.ProxiedPath(escaped)
	redirect := servable && escapeDests[dest] && r.Header.Get("Sec-Fetch-Site") == "same-origin"
	fix := ""
	switch {
	case redirect:
		fix = "the gateway redirected it under the app's prefix, which costs a round trip: make the app build URLs relative to its page or from X-Forwarded-Prefix, or serve it in origin mode (app_domain)"
	case !servable:
		fix = "the app reaches above its base path " + p.mapper.Base() + ": set base_path " + commonDir(p.mapper.Base(), escaped) + " on the app, or serve it in origin mode (app_domain)"
	case dest == "websocket":
		fix = "a WebSocket handshake cannot be redirected: make the app build its WebSocket URL relative to its page, or serve it in origin mode (app_domain)"
	default:
		fix = "not redirected (Sec-Fetch-Dest " + quoteOrNone(dest) + "): make the app use URLs relative to its page, or serve it in origin mode (app_domain)"
	}
	h.noteEscape(p, escaped, ref, fix)
	if !redirect {
		return false
	}
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	return true
}

// noteEscapeAbove handles a request under the prefix for no app, sent by
// an app's page: a relative URL whose ".." climbed out of the app's prefix
// (Transmission's ../rpc from /transmission/web/).
func (h *Handler) noteEscapeAbove(r *http.Request) {
	p, ref, ok := h.refererApp(r)
	if !ok || r.Header.Get("Sec-Fetch-Dest") == "document" {
		return
	}
	fix := "a relative URL of the app's page climbs out of the app's prefix with \"..\""
	if base := p.mapper.Base(); base != "/" {
		parent := path.Dir(strings.TrimSuffix(base, "/"))
		if parent != "/" {
			parent += "/"
		}
		fix += ": set base_path " + parent + " (or higher) on the app, so that its prefix maps to a directory above " + base
	}
	h.noteEscape(p, r.URL.EscapedPath(), ref, fix)
}

// noteEscape counts an escape and logs it, once per app and path.
func (h *Handler) noteEscape(p *appProxy, escaped string, ref *url.URL, fix string) {
	p.escapes.Inc()
	isNew, full := h.escapes.first(p.app.id, escaped)
	if !isNew {
		return
	}
	h.logger.Warn("an app's page sent a request outside its prefix in path mode (logged once per app and path)",
		zap.String("app", p.app.id), zap.String("path", escaped), zap.String("page", ref.EscapedPath()), zap.String("fix", fix))
	if full {
		h.logger.Warn("further path escapes are counted in caddy_dashboard_apps_path_escapes_total but no longer logged, until the next config load",
			zap.Int("logged", maxLoggedEscapes))
	}
}

// commonDir is the deepest directory that holds both base, a directory,
// and p, an absolute path: the base path an app needs to reach p.
func commonDir(base, p string) string {
	i := 0
	for i < len(base) && i < len(p) && base[i] == p[i] {
		i++
	}
	return base[:strings.LastIndexByte(base[:i], '/')+1]
}

func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
