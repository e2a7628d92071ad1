package caddymodule

import (
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// maxHeadScan bounds how much of a page is held back while looking for the
// end of its head; a page whose head is longer is served as it is.
const maxHeadScan = 256 << 10

// headInjector streams a page, holding back only its start until the
// insertion point is known.
type headInjector struct {
	dst     io.Writer
	snippet []byte
	held    []byte
	done    bool
	failed  func(reason string)
	// find is where the snippet goes; nil: rewrite.HeadEnd.
	find func(doc []byte, final bool) (at int, found, more bool)
}

func (j *headInjector) Write(p []byte) (int, error) {
	if j.done {
		return j.dst.Write(p)
	}
	if len(j.held) == 0 {
		// Most pages decide in their first write: no copy of it.
		if at, found, _ := j.finder()(p, false); found {
			j.done = true
			if err := j.writeAll(p[:at], j.snippet, p[at:]); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	j.held = append(j.held, p...)
	if err := j.try(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (j *headInjector) try(final bool) error {
	at, found, more := j.finder()(j.held, final)
	switch {
	case found:
		j.done = true
		return j.writeAll(j.held[:at], j.snippet, j.held[at:])
	case more && len(j.held) <= maxHeadScan:
		return nil
	case more:
		j.failed("no end of head in the first 256 KiB")
	default:
		j.failed("no head or body in the page")
	}
	j.done = true
	return j.writeAll(j.held)
}

func (j *headInjector) finder() func(doc []byte, final bool) (int, bool, bool) {
	if j.find != nil {
		return j.find
	}
	return rewrite.HeadEnd
}

func (j *headInjector) writeAll(parts ...[]byte) error {
	for _, p := range parts {
		if _, err := j.dst.Write(p); err != nil {
			return err
		}
	}
	j.held = nil
	return nil
}

// Flush writes nothing until the insertion point is known: a page is not
// flushed before its head is complete anyway.
func (j *headInjector) Flush() error { return nil }

func (j *headInjector) Close() error {
	if j.done {
		return nil
	}
	return j.try(true)
}

// injectResponse wraps the helpdesk's response to a page request and
// inserts the host script in HTML pages.
type injectResponse struct {
	transformingWriter
	h *Handler
	r *http.Request
}

func (w *injectResponse) onHeader(status int) responseBody {
	hd := w.Header()
	switch status {
	case http.StatusOK:
		return w.transform(hd)
	case http.StatusNotModified:
		if w.isHTMLish(hd) || hd.Get("Content-Type") == "" {
			markETag(hd, etagMark(w.h.assets.version))
		}
	}
	return nil
}

func (w *injectResponse) isHTMLish(hd http.Header) bool {
	return mediaTypeOf(hd) == "text/html"
}

// transform sets up the injection for a 200 response, or returns nil to
// serve it as it is. HEAD gets the headers GET would get.
func (w *injectResponse) transform(hd http.Header) responseBody {
	if !w.isHTMLish(hd) || w.r.Method != http.MethodGet && w.r.Method != http.MethodHead {
		return nil
	}
	decode, coding, ok := prepareBody(hd, etagMark(w.h.assets.version))
	if !ok {
		w.h.injectFailed("the page is in an encoding the gateway cannot decode: "+coding, w.r)
		return nil
	}
	nonce, integrity := w.h.adaptPageCSP(hd, w.r)
	if w.r.Method == http.MethodHead {
		return nil
	}
	snippet := w.h.snippet(nonce, integrity)
	build := func(dst io.Writer) bodyTransform {
		return &headInjector{dst: dst, snippet: snippet, failed: func(reason string) { w.h.injectFailed(reason, w.r) }}
	}
	if decode == nil {
		// The injector holds the head until it knows where the script
		// goes and passes the rest through: holding its output gains
		// nothing.
		return directBody{build(w.ResponseWriter), w.ResponseWriter}
	}
	return newHeldBody(w.ResponseWriter, decode, build)
}

// serveInjected passes a page request to the helpdesk and injects the host
// script into its HTML answer.
func (h *Handler) serveInjected(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Ask only for encodings the gateway can decode, and strip the
	// gateway's mark from validators so the helpdesk recognises its own.
	r.Header.Set("Accept-Encoding", decodableEncodings(r.Header.Get("Accept-Encoding")))
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		r.Header.Set("If-None-Match", unmarkETags(inm, h.assets.version))
	}
	iw := &injectResponse{h: h, r: r}
	iw.wrap(w, iw)
	return iw.serveThrough(func(w http.ResponseWriter) error { return next.ServeHTTP(w, r) },
		func(err error) { h.injectFailed("writing the page: "+err.Error(), r) })
}

// injectFailed logs an injection failure once per handler, so that a
// helpdesk whose pages the gateway cannot read does not flood the log.
func (h *Handler) injectFailed(reason string, r *http.Request) {
	h.injectFailOnce.Do(func() {
		h.logger.Warn("served a helpdesk page without the dashboard apps host script (logged once)",
			zap.String("reason", reason), zap.String("path", r.URL.Path))
	})
}

// adaptPageCSP lets the host script, its stylesheet, the context API and
// the app frames (under the prefix, or on the app origins) through the
// helpdesk page's Content-Security-Policy (see rewrite.AdaptPageCSP): a
// nonce to reuse, or integrity when the tag must carry the script's hash.
func (h *Handler) adaptPageCSP(hd http.Header, r *http.Request) (nonce string, integrity bool) {
	origin := requestOrigin(r)
	frames := origin + h.Prefix
	if h.AppDomain != "" {
		frames = schemeOf(r) + "://*." + h.AppDomain + portOf(r.Host)
	}
	return rewrite.AdaptPageCSP(hd, rewrite.PageSources{
		Origin: origin, Script: origin + ownPrefix + "host.js", ScriptHash: h.assets.jsIntegrity,
		Style: origin + ownPrefix + "host.css", Connect: origin + ownPrefix, Frame: frames,
	})
}

// requestOrigin is the site's origin as the browser sees it.
func requestOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
