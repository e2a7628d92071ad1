package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// appProxy serves one app: request hygiene, then Caddy's own reverse proxy,
// with the response rewritten on its way back (see appResponse).
type appProxy struct {
	app               *AppConfig
	credentialHeaders []string        // the handler's: sent to the helpdesk, never to apps
	reservedCookies   []string        // the gateway's session cookies and the helpdesk's: never sent to an app origin
	mapper            *rewrite.Mapper // path mode: upstream base path to {prefix}<id>/
	originMapper      *rewrite.Mapper // origin mode: upstream origin to the app's origin
	proxy             *reverseproxy.Handler
	signer            jose.Signer // the app's assertions and context tokens
	state             *sharedState
	statuses          *statusClasses
	formatWarned      atomic.Bool // the app asked for appContext in the form its message_format does not post
	logger            *zap.Logger
	assets            *hostAssets        // the path-mode shim's
	shimTag           string             // its tag's start (see shimTag)
	plainShim         []byte             // its whole tag, without nonce or integrity
	escapes           prometheus.Counter // requests its pages sent outside its prefix (escapes.go)
}

// closeIdle closes the idle connections of the app's transport.
func (p *appProxy) closeIdle() {
	if t := p.httpTransport(); t != nil && t.Transport != nil {
		t.Transport.CloseIdleConnections()
	}
}

// httpTransport is the Caddy HTTP transport under the app's upstreamHost.
func (p *appProxy) httpTransport() *reverseproxy.HTTPTransport {
	if uh, ok := p.proxy.Transport.(upstreamHost); ok {
		t, _ := uh.RoundTripper.(*reverseproxy.HTTPTransport)
		return t
	}
	return nil
}

// newAppProxy sets up the proxy of app for handler h.
func (h *Handler) newAppProxy(ctx caddy.Context, app *AppConfig) (*appProxy, error) {
	registry := h.registry
	cfg, err := reverseProxyConfig(app)
	if err != nil {
		return nil, err
	}
	signer := registry.identity.signer
	if app.secret != "" {
		if signer, err = secretSigner(app.secret); err != nil {
			return nil, fmt.Errorf("identity_secret: %v", err)
		}
	}
	mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy", cfg)
	if err != nil {
		return nil, fmt.Errorf("loading its reverse proxy: %v", err)
	}
	rp := mod.(*reverseproxy.Handler)
	rp.Transport = upstreamHost{RoundTripper: rp.Transport, host: app.upstream.Host}
	mapper := rewrite.NewMapper(app.upstream, h.Prefix+app.id+"/")
	assets := loadAssets()
	tag := shimTag(assets, h.Prefix, app.id, mapper)
	return &appProxy{
		assets:            assets,
		shimTag:           tag,
		plainShim:         []byte(tag + `></script>`),
		escapes:           h.metrics.escapes.WithLabelValues(app.id),
		app:               app,
		credentialHeaders: h.credentialHeaders,
		reservedCookies:   append(slices.Clone(sessionCookieNames), h.sessionCookie()),
		mapper:            mapper,
		originMapper:      rewrite.NewMapper(&url.URL{Scheme: app.upstream.Scheme, Host: app.upstream.Host, Path: "/"}, "/"),
		proxy:             rp,
		signer:            signer,
		state:             registry.state,
		statuses:          h.metrics.classesFor(app.id),
		logger:            ctx.Logger().With(zap.String("app", app.id)),
	}, nil
}

// reverseProxyConfig is the JSON of the reverse_proxy handler for app.
func reverseProxyConfig(app *AppConfig) (json.RawMessage, error) {
	u := app.upstream
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	transport := map[string]any{
		"protocol":                "http",
		"response_header_timeout": caddy.Duration(app.timeout()),
	}
	if u.Scheme == "https" {
		tls := map[string]any{} // present (even empty) is what turns TLS on
		if t := app.TLS; t != nil {
			if t.CAFile != "" {
				tls["root_ca_pem_files"] = []string{t.CAFile}
			}
			if t.ServerName != "" {
				tls["server_name"] = t.ServerName
			}
			if t.InsecureSkipVerify {
				tls["insecure_skip_verify"] = true
			}
		}
		transport["tls"] = tls
	}
	cfg := map[string]any{
		"upstreams": []map[string]string{{"dial": net.JoinHostPort(u.Hostname(), port)}},
		"transport": transport,
	}
	return json.Marshal(cfg)
}

// upstreamHost is an app's transport: it sends each request with the
// app's own Host, after the reverse proxy has put the browser's in
// X-Forwarded-Host. A "header_up Host" op would do the same, at the cost
// of a copy of the request's header map on every request (Caddy keeps the
// original to start each retry from). The request is the reverse proxy's
// own copy, so setting its Host here is what the op would have done.
type upstreamHost struct {
	http.RoundTripper
	host string
}

func (t upstreamHost) RoundTrip(req *http.Request) (*http.Response, error) {
	req.Host = t.host
	return t.RoundTripper.RoundTrip(req)
}

var noNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// serve proxies a request in path mode, whose escaped path below the
// app's prefix is sub, for who (the zero agent for a public app).
func (p *appProxy) serve(w http.ResponseWriter, r *http.Request, sub string, who agent) error {
	upPath, err := p.mapper.UpstreamPath(sub)
	if err != nil {
		p.logger.Debug("refused a request path", zap.String("path", r.URL.EscapedPath()), zap.Error(err))
		return writePage(w, http.StatusBadRequest, "Bad request", "This address would leave the app.")
	}
	decoded, err := url.PathUnescape(upPath)
	if err != nil {
		return writePage(w, http.StatusBadRequest, "Bad request", "The address is not valid.")
	}
	up := r.Clone(r.Context())
	up.URL.Path, up.URL.RawPath = decoded, upPath
	p.cleanRequest(up)
	h := up.Header
	// Only the app's own cookies, under the names it gave them.
	if c := rewrite.AppCookies(h.Values("Cookie"), p.app.id); c != "" {
		h.Set("Cookie", c)
	} else {
		h.Del("Cookie")
	}
	h.Set("X-Forwarded-Prefix", strings.TrimSuffix(p.mapper.Proxied(), "/"))
	h.Set("Accept-Encoding", upstreamAcceptEncoding(r))
	self := requestOrigin(r)
	p.mapOrigin(h, self, func(ref string) (string, bool) { return p.mapper.UpstreamURL(ref[len(self):]) })
	doc := &url.URL{Scheme: p.app.upstream.Scheme, Host: p.app.upstream.Host, Path: decoded, RawPath: upPath}
	return p.forward(w, r, up, who, newAppResponse(w, p, doc, r))
}

// forward sends up, the cleaned copy of r, to the app through Caddy's
// reverse proxy, with the agent's identity when the app asks for it, and
// the response through rw.
func (p *appProxy) forward(w http.ResponseWriter, r, up *http.Request, who agent, rw responseWrapper) error {
	if p.app.Identity && who.profile != nil {
		if err := p.addIdentity(up.Header, who); err != nil {
			p.logger.Error("signing the agent assertion", zap.Error(err))
			return writePage(w, http.StatusInternalServerError, "App unavailable", "The gateway could not sign your identity for this app.")
		}
	}
	err := rw.writer().serveThrough(func(w http.ResponseWriter) error { return p.proxy.ServeHTTP(w, up, noNext) },
		func(err error) { p.logger.Warn("rewriting the app's response", zap.Error(err)) })
	if err != nil {
		return p.proxyError(w, rw.writer(), r, err)
	}
	return nil
}

// responseWrapper is the wrapper a mode's response rules come in.
type responseWrapper interface {
	writer() *transformingWriter
}

// proxyError turns a proxy failure into the app's error page, inside its
// tab, rather than Caddy's error handling for the whole site.
func (p *appProxy) proxyError(w http.ResponseWriter, rw *transformingWriter, r *http.Request, err error) error {
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		status = he.StatusCode
	}
	if status == 499 || r.Context().Err() != nil {
		return nil // the browser went away; nobody is left to tell
	}
	p.logger.Error("proxying to the app failed", zap.String("url", p.app.URL), zap.Int("status", status), zap.Error(err))
	if rw.wroteHeader {
		return nil // the response is under way (its status counted); all that can be done is end it
	}
	p.statuses.count(0)
	title, text := "App unavailable", fmt.Sprintf("%s is not answering right now. Try again in a moment; if it persists, tell your administrator.", p.app.Name)
	if status == http.StatusGatewayTimeout {
		title, text = "App timed out", fmt.Sprintf("%s took too long to answer. Try again in a moment; if it persists, tell your administrator.", p.app.Name)
	}
	return writePage(w, status, title, text)
}

// withoutQueryParam removes every name parameter from a raw query, in
// whatever spelling it is escaped ("api%5Faccess%5Ftoken" is the same
// parameter to Rails and to Go), and leaves every other byte as it was.
func withoutQueryParam(raw, name string) string {
	// A parameter goes when some server framework reads its key as name,
	// or as an array or hash named name:
	//   - pairs are split on "&" and on ";" (Rack before 3, and Python
	//     before 3.9.2, split on both);
	//   - the key is percent-decoded, "+" as a space; what only looks like
	//     an escape is kept as written (PHP, ASP.NET);
	//   - PHP ends the key at a NUL, drops leading spaces, reads " " and
	//     "." before the first "[" as "_", and an unclosed "[" as "_";
	//   - Rack 2 drops leading "[" and "]" and ends the name at "[" or
	//     "]" ("api_access_token[]", "[api_access_token]", and likewise
	//     PHP, Express and ASP.NET arrays);
	//   - ASP.NET compares names ignoring ASCII case.
	// Rails, PHP, Go, Django and Express compare names exactly, and no
	// framework decodes twice: other keys, such as "api_access_token_id",
	// stay.
	if raw == "" {
		return raw
	}
	// The common case: no escape, and a "_"-free piece of name missing
	// in every case, so that no key can spell it.
	if strings.IndexByte(raw, '%') < 0 {
		for rest := name; rest != ""; {
			piece, after, _ := strings.Cut(rest, "_")
			found := piece == ""
			for i := 0; !found && i+len(piece) <= len(raw); i++ {
				found = strings.EqualFold(raw[i:i+len(piece)], piece)
			}
			if !found {
				return raw
			}
			rest = after
		}
	}
	lower := func(c byte) byte {
		if 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	unhex := func(c byte) (byte, bool) {
		switch c = lower(c); {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	var dec, php []byte
	spells := func(pair string) bool {
		key, _, _ := strings.Cut(pair, "=")
		dec = dec[:0]
		for i := 0; i < len(key); i++ {
			c := key[i]
			if c == '+' {
				c = ' '
			} else if c == '%' && i+2 < len(key) {
				hi, ok1 := unhex(key[i+1])
				lo, ok2 := unhex(key[i+2])
				if ok1 && ok2 {
					c = hi<<4 | lo
					i += 2
				}
			}
			dec = append(dec, c)
		}
		if i := bytes.IndexByte(dec, 0); i >= 0 {
			dec = dec[:i]
		}
		d := bytes.TrimLeft(dec, " ")
		// Rack, Go, Django, Express, ASP.NET.
		k := bytes.TrimLeft(d, "[]")
		if i := bytes.IndexAny(k, "[]"); i >= 0 {
			k = k[:i]
		}
		if len(k) == len(name) {
			same := true
			for i := range k {
				same = same && lower(k[i]) == lower(name[i])
			}
			if same {
				return true
			}
		}
		// PHP.
		php = php[:0]
		for i, c := range d {
			if c == '[' {
				if i > 0 && bytes.IndexByte(d[i+1:], ']') < 0 {
					php = append(append(php, '_'), d[i+1:]...)
				}
				break
			}
			if c == ' ' || c == '.' {
				c = '_'
			}
			php = append(php, c)
		}
		return string(php) == name
	}
	isSep := func(c byte) bool { return c == '&' || c == ';' }
	// each calls f with every pair and the separator before it (0 for
	// the first).
	each := func(f func(sep byte, pair string)) {
		for start, i := 0, 0; i <= len(raw); i++ {
			if i == len(raw) || isSep(raw[i]) {
				sep := byte(0)
				if start > 0 {
					sep = raw[start-1]
				}
				f(sep, raw[start:i])
				start = i + 1
			}
		}
	}
	found := false
	each(func(_ byte, pair string) { found = found || spells(pair) })
	if !found {
		return raw
	}
	// A removed pair takes the separator before it along, or the one
	// after it when it is first.
	var b strings.Builder
	b.Grow(len(raw))
	kept := 0
	each(func(sep byte, pair string) {
		if !spells(pair) {
			if kept > 0 {
				b.WriteByte(sep)
			}
			b.WriteString(pair)
			kept++
		}
	})
	return b.String()
}

// addIdentity sends the app the verified agent, and an assertion of it
// that the app's backend can verify. Assertions are reused for a minute
// per agent, so a busy page does not pay for a signature per request.
func (p *appProxy) addIdentity(h http.Header, who agent) error {
	account, role, _ := who.accountFor(p.app)
	// An assertion is reused for the account it names (in the key) and
	// the other claims it shares with the X-Dashboard-* headers, which the
	// cached entry starts with: when the agent's profile is re-read with
	// any of them changed, a new one is signed, so that the assertion
	// never says other than the headers.
	var sb [256]byte
	stamp := identityStamp(sb[:0], who.profile, role)
	k, n := contextKey('a', who.key, account, 0, p.app.id)
	key := k[:n]
	bp := entryBufs.Get().(*[]byte)
	defer entryBufs.Put(bp)
	var assertion string
	if e, ok := p.state.lookup(key, *bp, assertionReuse); ok && e.fresh {
		// The assertion, a JWT, holds no NUL; the stamp may.
		if i := bytes.LastIndexByte(e.payload, 0); i >= 0 && bytes.Equal(e.payload[:i], stamp) {
			assertion = string(e.payload[i+1:])
		}
	}
	if assertion == "" {
		var err error
		assertion, err = sign(p.signer, newAgentClaims(who.profile, account, role, p.app.id, time.Now()))
		if err != nil {
			return err
		}
		p.state.store(key, append(append(stamp, 0), assertion...), assertionReuse, nil)
	}
	if who.ID != nil {
		h.Set("X-Dashboard-Agent-Id", strconv.FormatInt(*who.ID, 10))
	}
	h.Set("X-Dashboard-Agent-Email", headerSafe(who.Email))
	h.Set("X-Dashboard-Agent-Name", headerSafe(who.Name))
	h.Set("X-Dashboard-Agent-Role", role)
	h.Set("X-Dashboard-Account-Id", strconv.FormatInt(account, 10))
	h.Set("X-Dashboard-Agent-Assertion", assertion)
	return nil
}

// identityStamp appends to dst what an assertion for agent says of who
// the agent is, as newAgentClaims puts it: id, email, name and role.
func identityStamp(dst []byte, agent *profile, role string) []byte {
	if agent.ID != nil {
		dst = strconv.AppendInt(dst, *agent.ID, 10)
	}
	for _, v := range [...]*string{agent.Email, agent.Name} {
		dst = append(dst, 0)
		if v != nil {
			dst = append(dst, *v...)
		}
	}
	return append(append(dst, 0), role...)
}

// assertionReuse is how long a signed assertion is sent again; it is valid
// for assertionLifetime, so an app always gets at least four minutes.
const assertionReuse = time.Minute

// cleanRequest removes from up, the copy of a request sent to the app,
// what must never reach an app in either mode: the agent's helpdesk
// credentials, which are for the helpdesk alone (the headers the gateway
// sends the helpdesk API: Authorization, api_access_token, the
// forward_headers; api_access_token in the query), and every
// X-Dashboard-* header, which only the gateway sets.
func (p *appProxy) cleanRequest(up *http.Request) {
	h := up.Header
	h.Del("Proxy-Authorization")
	for _, name := range p.credentialHeaders {
		h.Del(name)
	}
	for name := range h {
		if strings.HasPrefix(name, "X-Dashboard-") || strings.HasPrefix(name, "Access-Token") {
			h.Del(name)
		}
	}
	up.URL.RawQuery = withoutQueryParam(up.URL.RawQuery, "api_access_token")
}

// mapOrigin shows the app its own upstream origin in Origin and Referer
// when the request came from the app's own pages, on self, the origin the
// browser sees them on, so that CSRF checks in app frameworks (which
// compare them with Host) pass. toUpstream maps a URL on self to the
// upstream's. A request from any other origin keeps what the browser said.
func (p *appProxy) mapOrigin(h http.Header, self string, toUpstream func(string) (string, bool)) {
	if o := h.Get("Origin"); o != "" && strings.EqualFold(o, self) {
		h.Set("Origin", p.mapper.Origin())
	}
	if ref := h.Get("Referer"); ref != "" && sameOrigin(ref, self) {
		mapped, ok := toUpstream(ref)
		if !ok {
			// A helpdesk page: its address is none of the app's business.
			mapped = p.mapper.Origin() + "/"
		}
		h.Set("Referer", mapped)
	}
}

// sameOrigin reports whether the absolute URL u is on origin.
func sameOrigin(u, origin string) bool {
	return len(u) >= len(origin) && strings.EqualFold(u[:len(origin)], origin) &&
		(len(u) == len(origin) || u[len(origin)] == '/')
}

// upstreamAcceptEncoding asks the app only for encodings the gateway can
// decode, and for no encoding at all on requests that will likely be
// rewritten (pages and stylesheets), so those are not decoded needlessly.
func upstreamAcceptEncoding(r *http.Request) string {
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "document", "iframe", "frame", "style":
		return "identity"
	}
	if a := r.Header.Get("Accept"); strings.Contains(a, "text/html") || strings.Contains(a, "text/css") {
		return "identity"
	}
	return decodableEncodings(r.Header.Get("Accept-Encoding"))
}

// entryURL is where the app's tab opens in path mode: the entry page of
// the app's url under its proxied prefix, its template variables kept for
// the host script to fill.
func (p *appProxy) entryURL() string {
	return p.mapper.Proxied() + p.app.entry
}

// entryPath is where the app's tab opens on its own origin: the path and
// query of the app's url, its template variables kept for the host script
// to fill.
func (p *appProxy) entryPath() string {
	return p.app.upstream.EscapedPath() + p.app.entry
}

// emptyEntryPath is entryPath with its template variables empty: where a
// session opens when the host script names no page.
func (p *appProxy) emptyEntryPath() string {
	return p.app.upstream.EscapedPath() + p.app.emptyEntry()
}
