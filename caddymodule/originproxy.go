package caddymodule

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// serveOrigin proxies a request on the app's own origin, self (origin
// mode): path and query go upstream as they came, and the body comes back
// as the app sent it; only what must never reach the app is taken out of
// the request, and only the headers that would reach past the app's origin
// are changed in the response.
func (p *appProxy) serveOrigin(w http.ResponseWriter, r *http.Request, who agent, self, helpdeskOrigin string) error {
	or := &originResponse{p: p, ancestors: helpdeskOrigin}
	or.doc = url.URL{Scheme: p.app.upstream.Scheme, Host: p.app.upstream.Host, Path: r.URL.Path, RawPath: r.URL.RawPath}
	or.wrap(w, or)
	// r itself is cleaned and sent, unlike in path mode, where the
	// browser's request is still read after: nothing reads it once the
	// app's proxy has it, and Caddy's reverse proxy takes its own copy.
	p.cleanRequest(r)
	h := r.Header
	// The app's cookies under their own names; not the gateway's session,
	// nor the helpdesk's, which a Domain cookie of the parent domain
	// would bring along.
	if c := withoutCookies(h.Values("Cookie"), p.reservedCookies); c != "" {
		h.Set("Cookie", c)
	} else {
		h.Del("Cookie")
	}
	p.mapOrigin(h, self, func(ref string) (string, bool) { return p.mapper.Origin() + ref[len(self):], true })
	return p.forward(w, r, r, who, or)
}

// originResponse applies origin mode's header rules to an app's response
// as Caddy's reverse proxy writes it; the body passes through untouched.
type originResponse struct {
	transformingWriter
	p         *appProxy
	doc       url.URL // the upstream URL of the request
	ancestors string  // the helpdesk's origin
}

func (w *originResponse) writer() *transformingWriter { return &w.transformingWriter }

// onHeader applies the header rules, to informational responses too.
func (w *originResponse) onHeader(status int) responseBody {
	rewrite.RewriteOriginResponseHeaders(w.Header(), w.p.originMapper, &w.doc, w.ancestors, sessionCookieNames)
	if status >= 200 || status == http.StatusSwitchingProtocols {
		w.p.statuses.count(status)
	}
	return nil
}

// withoutCookies is the Cookie header without the cookies named in drop,
// every other pair as the browser sent it.
func withoutCookies(lines []string, drop []string) string {
	var b strings.Builder
	for _, line := range lines {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			pair = strings.TrimSpace(pair)
			name, _, _ := strings.Cut(pair, "=")
			if pair == "" || containsFold(drop, strings.TrimSpace(name)) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(pair)
		}
	}
	return b.String()
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
