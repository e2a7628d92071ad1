package caddymodule

import (
	"io"
	"net/http"
	"net/url"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
	"go.uber.org/zap"
)

// appResponse applies the proxy rules to an app's response as Caddy's
// reverse proxy writes it: header rules when the header is written, and a
// body transform chosen then from the status, type and encoding.
type appResponse struct {
	transformingWriter
	p        *appProxy
	doc      *url.URL
	head     bool
	document bool          // the response loads as a document: it gets the shim
	r        *http.Request // the browser's request
}

func (w *appResponse) writer() *transformingWriter { return &w.transformingWriter }

func newAppResponse(w http.ResponseWriter, p *appProxy, doc *url.URL, r *http.Request) *appResponse {
	ar := &appResponse{p: p, doc: doc, head: r.Method == http.MethodHead, document: loadsAsDocument(r), r: r}
	ar.wrap(w, ar)
	return ar
}

// onHeader applies the header rules; informational responses (103 Early
// Hints' Link) get them too, since Caddy restores its header map after
// each of them.
func (w *appResponse) onHeader(status int) responseBody {
	h := w.Header()
	rewrite.RewriteResponseHeaders(h, w.p.mapper, w.doc, w.p.app.id)
	if status < 200 && status != http.StatusSwitchingProtocols {
		return nil
	}
	w.p.statuses.count(status)
	if status == http.StatusSwitchingProtocols {
		return nil
	}
	return w.transformFor(status, h)
}

// transformFor picks the body transform for a response, adjusting its
// headers to the body the browser will get; nil means pass through.
func (w *appResponse) transformFor(status int, h http.Header) responseBody {
	if status == http.StatusNoContent || status == http.StatusNotModified || status == http.StatusPartialContent {
		return nil
	}
	mediaType := mediaTypeOf(h)
	var newRewriter func(io.Writer) bodyTransform
	page := false
	switch mediaType {
	case "text/html", "application/xhtml+xml":
		page = w.document
		newRewriter = func(dst io.Writer) bodyTransform { return rewrite.NewHTMLRewriter(dst, w.p.mapper, w.doc) }
	case "text/css":
		newRewriter = func(dst io.Writer) bodyTransform { return rewrite.NewCSSRewriter(dst, w.p.mapper, w.doc) }
	default:
		return nil
	}
	decode, coding, ok := prepareBody(h, "")
	if !ok {
		w.p.logger.Debug("not rewriting a response in an encoding the gateway cannot decode",
			zap.String("content_encoding", coding), zap.String("path", w.doc.Path))
		return nil
	}
	var shim []byte
	if page {
		shim = w.shimSnippet(h) // the app's scripts work under the prefix
	}
	if w.head {
		return nil // the same headers as GET would get, and no body
	}
	if shim != nil {
		newRewriter = func(dst io.Writer) bodyTransform {
			inj := w.newShimInjector(dst, shim)
			return shimmedPage{rewrite.NewHTMLRewriter(inj, w.p.mapper, w.doc), inj}
		}
	}
	return newHeldBody(w.ResponseWriter, decode, newRewriter)
}
