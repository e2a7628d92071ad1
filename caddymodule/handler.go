package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves dashboard apps on the helpdesk's site: each app of the
// dashboard_apps registry under {prefix}<id>/, reverse-proxied with the
// fixes it needs to work in an iframe there, the gateway's own endpoints
// under /_dashboard_apps/, and everything else passed to the next handler
// (the helpdesk).
type Handler struct {
	// The helpdesk's API base URL (Chatwoot-compatible), from which
	// appContext is built with the agent's own credentials, e.g.
	// http://127.0.0.1:3000.
	HelpdeskAPI string `json:"helpdesk_api,omitempty"`

	// The path under which apps are served, starting and ending with "/".
	// Default: /dashboard-apps/.
	Prefix string `json:"prefix,omitempty"`

	// Path patterns (as Caddy's path matcher takes them) of helpdesk pages
	// that get the host script. Default: /app/*.
	Inject []string `json:"inject,omitempty"`

	// The helpdesk's conversation page route, where the host script shows
	// the app tabs. {account} and {conversation} mark the ids. Default:
	// /app/accounts/{account}/conversations/{conversation}.
	ConversationRoute string `json:"conversation_route,omitempty"`

	// A CSS selector of the helpdesk's conversation sidebar: the tabs go
	// inside it when it matches, else in a side panel of their own.
	SidebarSelector string `json:"sidebar_selector,omitempty"`

	// Further request headers that carry the agent's helpdesk credentials
	// and are sent on to the helpdesk API (never to an app).
	ForwardHeaders []string `json:"forward_headers,omitempty"`

	// The cookie holding the helpdesk dashboard's session headers as a
	// URL-encoded JSON object. Default: cw_d_session_info (Chatwoot's).
	SessionCookie string `json:"session_cookie,omitempty"`

	// The secret the helpdesk's webhook must present, as ?secret= or as an
	// X-Dashboard-Apps-Signature HMAC of the body.
	WebhookSecret string `json:"webhook_secret,omitempty"`

	// Serve each app on an origin of its own, <id>.<app_domain>, with the
	// scheme and port of the helpdesk's site (origin mode), instead of
	// under prefix on the helpdesk's origin (path mode). On an origin of
	// its own an app's scripts cannot read the helpdesk's cookies, call
	// its API as the agent or reach into its page, and the app needs no
	// rewriting. The site must serve *.<app_domain> (a wildcard DNS record,
	// and a wildcard certificate or on-demand TLS with the permission
	// module dashboard_apps). Use a domain under the helpdesk's registrable
	// domain, e.g. apps.example.com or the helpdesk's own host, so that the
	// apps are on the helpdesk's site and their cookies work in frames.
	AppDomain string `json:"app_domain,omitempty"`

	// In origin mode, the helpdesk's origin (scheme://host[:port]): the
	// one page origin allowed to frame the apps. Default: app_domain's own
	// origin, with the scheme and port of the request, which is right when
	// app_domain is the helpdesk's host.
	HelpdeskOrigin string `json:"helpdesk_origin,omitempty"`

	// In origin mode, how long an app session lasts unless the open
	// helpdesk page renews it (it does so every third of this): an agent
	// who signed out of the helpdesk loses access to the apps within this
	// time. Default and maximum: 15m.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	webhookSecret     string // WebhookSecret with its placeholders replaced
	contextMessages   bool   // some app has context_messages
	sessionLifetime   time.Duration
	sessions          *sessionStore
	registry          *App
	apps              map[string]*appProxy // by id
	ordered           []*appProxy          // in tab order
	accounts          *accountProxies      // the account apps' (accountview.go); nil without helpdesk_api
	state             *sharedState
	ttl               time.Duration
	helpdesk          *helpdeskClient
	credentialHeaders []string
	injectPaths       caddyhttp.MatchPath
	assets            *hostAssets
	snippetConfig     string
	plainSnippet      []byte
	injectFailOnce    *sync.Once
	publicWarned      *atomic.Bool  // warnPathModeInPublic has logged
	escapes           *escapeLog    // path escapes logged (escapes.go)
	inflight          *atomic.Int64 // requests in the gateway's own code: endpoints and apps
	metrics           *gatewayMetrics
	logger            *zap.Logger
}

const (
	defaultPrefix            = "/dashboard-apps/"
	ownPrefix                = "/_dashboard_apps/"
	defaultInject            = "/app/*"
	defaultConversationRoute = "/app/accounts/{account}/conversations/{conversation}"
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.dashboard_apps",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets the handler up: its defaults, the helpdesk API client,
// and one reverse proxy per registered app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.injectFailOnce = new(sync.Once)
	h.publicWarned = new(atomic.Bool)
	h.escapes = new(escapeLog)
	h.inflight = new(atomic.Int64)
	appIface, err := ctx.App("dashboard_apps")
	if err != nil {
		return fmt.Errorf("dashboard_apps: loading the app registry: %v", err)
	}
	h.registry = appIface.(*App)
	metrics := h.registry.metrics
	h.metrics = metrics
	if h.Prefix == "" {
		h.Prefix = defaultPrefix
	}
	repl := caddy.NewReplacer() // global placeholders: {env.*}, {file.*}, ...
	if h.WebhookSecret != "" {
		secret, err := repl.ReplaceOrErr(h.WebhookSecret, true, true)
		if err != nil || secret == "" {
			return fmt.Errorf("dashboard_apps: webhook_secret %q: empty or unknown placeholder (is the environment variable set?)", h.WebhookSecret)
		}
		h.webhookSecret = secret
	}
	if h.HelpdeskAPI != "" {
		api := repl.ReplaceKnown(h.HelpdeskAPI, "")
		u, err := url.Parse(api)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return fmt.Errorf("dashboard_apps: helpdesk_api %q: must be an absolute http or https URL without credentials, such as http://127.0.0.1:3000", h.HelpdeskAPI)
		}
		h.helpdesk = newHelpdeskClient(api, metrics.helpdeskLatency)
	}
	if h.ConversationRoute == "" {
		h.ConversationRoute = defaultConversationRoute
	}
	if len(h.Inject) == 0 {
		h.Inject = []string{defaultInject}
	}
	h.injectPaths = caddyhttp.MatchPath(h.Inject)
	if err := h.injectPaths.Provision(ctx); err != nil {
		return fmt.Errorf("dashboard_apps: inject %q: %v", h.Inject, err)
	}
	h.credentialHeaders = []string{"Authorization", "Api_access_token"}
	for _, name := range h.ForwardHeaders {
		h.credentialHeaders = append(h.credentialHeaders, http.CanonicalHeaderKey(name))
	}

	h.AppDomain = strings.ToLower(strings.Trim(h.AppDomain, "."))
	h.sessionLifetime = time.Duration(h.SessionLifetime)
	if h.sessionLifetime == 0 {
		h.sessionLifetime = defaultSessionLifetime
	}
	if h.AppDomain != "" {
		h.sessions = newSessionStore(ctx.Storage(), h.sessionLifetime)
		h.registry.addAppDomain(h.AppDomain)
		go h.sweepSessions(ctx)
	}
	h.state, h.ttl = h.registry.state, h.registry.ttl()
	h.apps = make(map[string]*appProxy, len(h.registry.ordered))
	h.ordered = make([]*appProxy, 0, len(h.registry.ordered))
	for _, app := range h.registry.ordered {
		p, err := h.newAppProxy(ctx, app)
		if err != nil {
			return fmt.Errorf("dashboard_apps: app %q: %v", app.id, err)
		}
		h.apps[app.id] = p
		h.ordered = append(h.ordered, p)
		h.contextMessages = h.contextMessages || app.ContextMessages
	}
	if h.helpdesk != nil && h.registry.accounts != nil {
		// Account apps are scoped to an account, which only the helpdesk
		// can tell: a site without helpdesk_api serves none.
		h.accounts = &accountProxies{store: h.registry.accounts, ctx: ctx}
		h.accountView()
	}
	h.assets = loadAssets()
	cfg, _ := json.Marshal(map[string]string{ // json.Marshal escapes <, > and &: safe inside <script>
		"route":    h.ConversationRoute,
		"sidebar":  h.SidebarSelector,
		"endpoint": ownPrefix,
		"prefix":   h.Prefix,
		"css":      ownPrefix + "host.css?v=" + h.assets.version,
	})
	h.snippetConfig = string(cfg)
	h.plainSnippet = h.snippet("", false)
	if h.helpdesk == nil {
		h.logger.Warn("helpdesk_api is not set: apps get no appContext")
	}
	return nil
}

// Validate checks the handler's settings and that the site can serve
// every app of the registry.
func (h *Handler) Validate() error {
	if err := validatePrefix(h.Prefix); err != nil {
		return err
	}
	if !strings.HasPrefix(h.ConversationRoute, "/") || !strings.Contains(h.ConversationRoute, "{account}") || !strings.Contains(h.ConversationRoute, "{conversation}") {
		return fmt.Errorf("dashboard_apps: conversation_route %q: must be a path with {account} and {conversation}, such as %s", h.ConversationRoute, defaultConversationRoute)
	}
	for _, name := range h.ForwardHeaders {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return fmt.Errorf("dashboard_apps: forward_headers: %q is not a header name", name)
		}
	}
	if h.AppDomain != "" {
		if err := validateAppDomain(h.AppDomain); err != nil {
			return err
		}
		if h.HelpdeskOrigin != "" {
			if u, err := url.Parse(h.HelpdeskOrigin); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
				return fmt.Errorf("dashboard_apps: helpdesk_origin %q: must be an origin, scheme://host[:port], such as https://support.example.com", h.HelpdeskOrigin)
			}
			h.HelpdeskOrigin = strings.TrimSuffix(h.HelpdeskOrigin, "/")
		}
	} else if h.HelpdeskOrigin != "" {
		return fmt.Errorf("dashboard_apps: helpdesk_origin %q: applies to origin mode only; set app_domain too, or remove it", h.HelpdeskOrigin)
	}
	if h.SessionLifetime < 0 || time.Duration(h.SessionLifetime) > defaultSessionLifetime {
		return fmt.Errorf("dashboard_apps: session_lifetime %q: must be more than 0 and at most %v, so that an agent who signed out loses access within it", time.Duration(h.SessionLifetime), defaultSessionLifetime)
	}
	for _, app := range h.registry.ordered {
		if !app.Public && h.helpdesk == nil {
			return fmt.Errorf("dashboard_apps: app %q is for signed-in agents, which this site cannot check without helpdesk_api; set helpdesk_api, or make the app public", app.id)
		}
	}
	return nil
}

// Cleanup closes this config's connections to the apps and the helpdesk
// API once its requests are done. Every config load provisions a handler
// with transports of its own; Caddy cleans the old config up while its
// last requests are still running, and their connections would go back to
// the old transports' idle pools and stay there until they time out: a
// gateway reloaded every few seconds would pile them up.
func (h *Handler) Cleanup() error {
	if h.accounts != nil {
		h.accounts.closeAll() // as Caddy cleans up the config apps' proxies now
	}
	go func() {
		for deadline := time.Now().Add(drainTimeout); h.inflight.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		for _, p := range h.apps {
			p.closeIdle()
		}
		if h.helpdesk != nil {
			h.helpdesk.client.CloseIdleConnections()
		}
	}()
	return nil
}

// warnPathModeInPublic logs once per config, at WARN, when the site
// serves an app in path mode on an address other than loopback: the
// operator is to know what that trusts.
func (h *Handler) warnPathModeInPublic(r *http.Request) {
	if h.publicWarned.Load() {
		return
	}
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if !ok || addr.IP.IsLoopback() {
		return
	}
	if h.publicWarned.CompareAndSwap(false, true) {
		h.logger.Warn("serving dashboard apps in path mode on a public address: every app's scripts run on the helpdesk's origin, as trusted as the helpdesk's own (they can read its script-readable cookies, call its API as the agent and reach into its pages); set app_domain to serve each app on an origin of its own (logged once)",
			zap.String("address", addr.String()), zap.String("host", r.Host))
	}
}

// sweepSessions removes expired app sessions and tickets from storage now
// and then, until the config is unloaded.
func (h *Handler) sweepSessions(ctx caddy.Context) {
	every(ctx, sweepEvery, func() {
		if err := h.sessions.sweep(ctx); err != nil {
			h.logger.Warn("removing expired app sessions from storage", zap.Error(err))
		}
	})
}

// every runs f every d until ctx is done.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

const sweepEvery = 10 * time.Minute

// validateAppDomain checks app_domain: a DNS name of two labels or more
// (a browser shares cookies and sites only under a registrable domain).
func validateAppDomain(d string) error {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("dashboard_apps: app_domain %q: must be a domain of two labels or more, such as apps.example.com or the helpdesk's own host", d)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("dashboard_apps: app_domain %q: label %q is not a DNS label (letters, digits and '-')", d, l)
		}
	}
	return nil
}

// drainTimeout bounds how long a retired config waits for its requests
// before closing its idle connections anyway.
const drainTimeout = 2 * time.Minute

// snippet is what goes into a helpdesk page: the host script's settings
// and the script itself, with the page's CSP nonce or an integrity hash
// when its policy needs one.
func (h *Handler) snippet(nonce string, integrity bool) []byte {
	if nonce == "" && !integrity && h.plainSnippet != nil {
		return h.plainSnippet
	}
	var b strings.Builder
	b.WriteString(`<script type="application/json" id="dashboard-apps-config">`)
	b.WriteString(h.snippetConfig)
	b.WriteString(`</script><script src="` + ownPrefix + `host.js?v=` + h.assets.version + `" defer`)
	if nonce != "" {
		b.WriteString(` nonce="` + nonce + `"`)
	}
	if integrity {
		b.WriteString(` integrity="` + h.assets.jsIntegrity + `"`)
	}
	b.WriteString(`></script>`)
	return []byte(b.String())
}

func validatePrefix(p string) error {
	switch {
	case !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || len(p) < 3:
		return fmt.Errorf("dashboard_apps: prefix %q: must start and end with '/' and name a path, such as /dashboard-apps/", p)
	case strings.Contains(p, "//") || strings.ContainsAny(p, "\\?#%; \t\r\n"):
		return fmt.Errorf("dashboard_apps: prefix %q: must be a plain path without '//', '\\', '?', '#', '%%', ';' or spaces", p)
	case strings.HasPrefix(p, ownPrefix):
		return fmt.Errorf("dashboard_apps: prefix %q: %s is the gateway's own", p, ownPrefix)
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("dashboard_apps: prefix %q: must not contain dot segments", p)
		}
	}
	return nil
}

// ServeHTTP routes a request: an app under the prefix, the gateway's own
// endpoints, or the next handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.AppDomain != "" {
		if id, ok := h.appHostID(r.Host); ok {
			h.inflight.Add(1)
			defer h.inflight.Add(-1)
			return h.serveAppOrigin(w, r, id)
		}
		if h.sentByAppOrigin(r) {
			return writePage(w, http.StatusForbidden, "Refused", "An app may not send requests to the helpdesk.")
		}
	}
	path := r.URL.EscapedPath()
	if name, ok := strings.CutPrefix(path, ownPrefix); ok {
		h.inflight.Add(1)
		defer h.inflight.Add(-1)
		return h.serveOwn(w, r, name)
	}
	if strings.HasPrefix(path, h.Prefix) {
		h.inflight.Add(1)
		defer h.inflight.Add(-1)
		return h.serveApp(w, r, path[len(h.Prefix):])
	}
	if path == h.Prefix[:len(h.Prefix)-1] { // the prefix without its slash
		return writePage(w, http.StatusNotFound, "No such app", "There is no dashboard app at this address.")
	}
	if strings.HasPrefix(r.URL.Path, h.Prefix) {
		// The prefix or app id spelled with escapes: refuse rather than let
		// the helpdesk decode it into one of its own paths.
		return writePage(w, http.StatusBadRequest, "Bad request", "The address is not in its canonical form.")
	}
	if h.AppDomain == "" && r.Header.Get("Referer") != "" && h.catchEscape(w, r) {
		return nil // an app's page asked outside its prefix: redirected under it
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && h.injectPaths.Match(r) {
		return h.serveInjected(w, r, next)
	}
	return next.ServeHTTP(w, r)
}

// serveApp serves rest, the escaped path after the prefix: "<id>/...".
func (h *Handler) serveApp(w http.ResponseWriter, r *http.Request, rest string) error {
	id, sub, hasSlash := strings.Cut(rest, "/")
	p, ok := h.lookupApp(id)
	if !ok {
		if h.AppDomain == "" && r.Header.Get("Referer") != "" {
			h.noteEscapeAbove(r)
		}
		return writePage(w, http.StatusNotFound, "No such app", "There is no dashboard app at this address. It may have been removed by an administrator.")
	}
	if !hasSlash {
		target := h.Prefix + id + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
		return nil
	}
	if h.AppDomain != "" {
		return h.redirectToAppOrigin(w, r, p, sub)
	}
	h.warnPathModeInPublic(r)
	who, ok := h.authorize(w, r, p.app)
	if !ok {
		return nil
	}
	return p.serve(w, r, sub, who)
}

// lookupApp returns the proxy of app id: the one place that says which
// apps there are, for the proxy, the endpoints and origin mode. The
// config's apps come first; then the account apps (accountview.go). An id
// known to neither makes the account apps be read from storage again (at
// most once a second): another instance may have just added it.
func (h *Handler) lookupApp(id string) (*appProxy, bool) {
	if p, ok := h.apps[id]; ok || h.accounts == nil {
		return p, ok
	}
	if p, ok := h.accountView().apps[id]; ok {
		return p, true
	}
	if appIDPattern.MatchString(id) && h.accounts.store.refreshForMiss() {
		p, ok := h.accountView().apps[id]
		return p, ok
	}
	return nil, false
}

// tabOrder returns every app, config and account apps, in tab order.
func (h *Handler) tabOrder() []*appProxy {
	if h.accounts == nil {
		return h.ordered
	}
	return h.accountView().ordered
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
