package caddymodule

import (
	"encoding/json"
	"errors"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Origin mode serves app <id> at <scheme>://<id>.<app_domain>[:port]/, an
// origin of its own, where its scripts cannot read the helpdesk's cookies,
// call its API as the agent or touch its page, and where the app needs no
// rewriting. The gateway, not the app, decides who gets in: a request on
// an app origin needs the gateway's session cookie for that app, which
// only a one-time ticket gives, and only the helpdesk page's host script
// gets tickets, for agents who pass the same checks as in path mode.

const (
	// enterPath, on an app origin, spends a ticket: it sets the session
	// cookie and redirects to the app's page, so that the ticket is gone
	// from the URL before the app sees a request. The app never sees this
	// path.
	enterPath = ownPrefix + "enter"

	// The gateway's session cookie on app origins: host-only, HttpOnly,
	// SameSite=Lax; on https the __Host- prefix makes the browser hold it
	// to that (Secure, Path=/, no Domain).
	sessionCookieHTTP  = "dashboard_apps_session"
	sessionCookieHTTPS = "__Host-dashboard_apps_session"

	defaultSessionLifetime = 15 * time.Minute
	maxSessionBody         = 4 << 10
)

// sessionCookieNames are never forwarded to an app, nor taken from one.
var sessionCookieNames = []string{sessionCookieHTTP, sessionCookieHTTPS}

func sessionCookieName(r *http.Request) string {
	if r.TLS != nil {
		return sessionCookieHTTPS
	}
	return sessionCookieHTTP
}

// appHostID returns the app id of a host on app_domain ("crm" of
// "crm.apps.example.com:8443"); ok is false for any other host, the
// helpdesk's included. The id is not checked against the registry.
func (h *Handler) appHostID(host string) (id string, ok bool) {
	if h.AppDomain == "" {
		return "", false
	}
	host, _ = cutPort(host)
	host = strings.TrimSuffix(host, ".")
	n := len(host) - len(h.AppDomain) - 1
	if n < 1 || host[n] != '.' || !strings.EqualFold(host[n+1:], h.AppDomain) {
		return "", false
	}
	return strings.ToLower(host[:n]), true
}

// cutPort splits a Host header into its name and ":port" (port "" when
// there is none, or it is not a number; the name never keeps it). Not
// net.SplitHostPort, whose error for the usual Host without a port costs
// an allocation on every request.
func cutPort(host string) (name, port string) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 {
		return host, ""
	}
	if digits := host[i+1:]; digits == "" || strings.Trim(digits, "0123456789") != "" {
		return host[:i], ""
	}
	return host[:i], host[i:]
}

// portOf is ":port" of a Host header, or "".
func portOf(host string) string {
	_, port := cutPort(host)
	return port
}

func schemeOf(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// appOrigin is the origin of app id, with the scheme and port the request
// came in on.
func (h *Handler) appOrigin(id string, r *http.Request) string {
	return schemeOf(r) + "://" + id + "." + h.AppDomain + portOf(r.Host)
}

// helpdeskOrigin is the one origin that may frame the apps and open
// sessions for them: helpdesk_origin, or app_domain's own.
func (h *Handler) helpdeskOrigin(r *http.Request) string {
	if h.HelpdeskOrigin != "" {
		return h.HelpdeskOrigin
	}
	return schemeOf(r) + "://" + h.AppDomain + portOf(r.Host)
}

// isAppOrigin reports whether an origin or URL is on an app origin.
func (h *Handler) isAppOrigin(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	_, ok := h.appHostID(u.Host)
	return ok
}

// sentByAppOrigin reports whether a request to the helpdesk's site was
// sent by an app origin's page: the helpdesk's SameSite cookies ride along
// on same-site requests, so such a request could act as the agent. Safe
// top-level navigations (a link to the helpdesk) are let through. A
// same-site request that does not say where it comes from is taken for an
// app's: an app can withhold its Referer, and a sibling site of the
// helpdesk has no business sending it subresource requests without one.
func (h *Handler) sentByAppOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	sameSite := r.Header.Get("Sec-Fetch-Site") == "same-site"
	if !sameSite && (origin == "" || origin == "null") {
		return false
	}
	if isSafeTopLevelNavigation(r) {
		return false
	}
	if origin != "" && origin != "null" {
		return h.isAppOrigin(origin)
	}
	ref := r.Header.Get("Referer")
	return ref == "" || h.isAppOrigin(ref)
}

// sentByOtherApp reports whether a request on app id's origin was sent by
// another app origin's page: apps share the site, so app id's SameSite
// session cookie rides along on it, and one app could act on another as
// the agent. Safe top-level navigations are let through. (A request whose
// sender withheld its Referer cannot be told from the helpdesk page's own,
// which frames the app: it is let through.)
func (h *Handler) sentByOtherApp(r *http.Request, id string) bool {
	if isSafeTopLevelNavigation(r) {
		return false
	}
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		if r.Header.Get("Sec-Fetch-Site") != "same-site" {
			return false
		}
		from = r.Header.Get("Referer")
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" {
		return false
	}
	other, ok := h.appHostID(u.Host)
	return ok && other != id
}

func isSafeTopLevelNavigation(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" && r.Header.Get("Sec-Fetch-Dest") == "document" &&
		(r.Method == http.MethodGet || r.Method == http.MethodHead)
}

// serveAppOrigin serves a request on app id's own origin.
func (h *Handler) serveAppOrigin(w http.ResponseWriter, r *http.Request, id string) error {
	p, ok := h.lookupApp(id)
	if !ok {
		return writePage(w, http.StatusNotFound, "No such app", "There is no dashboard app at this address. It may have been removed by an administrator.")
	}
	if strings.HasPrefix(r.URL.Path, ownPrefix) {
		// The gateway's on every app origin; never the app's.
		if r.URL.Path == enterPath {
			return h.serveEnter(w, r, p)
		}
		return writePage(w, http.StatusNotFound, "Not found", "There is nothing here.")
	}
	if h.sentByOtherApp(r, id) {
		return writePage(w, http.StatusForbidden, "Refused", "An app may not send requests to another app.")
	}
	var who agent
	if !p.app.Public {
		var ok bool
		if who, ok = h.sessionAgent(r, p.app); !ok {
			writeSignInPage(w)
			return nil
		}
		if _, _, ok := who.accountFor(p.app); !ok {
			// The app's accounts or roles changed since the session began.
			return writePage(w, http.StatusForbidden, "Not available to you", p.app.Name+" is not available in your accounts or to your role. Ask an administrator if you need it.")
		}
	}
	return p.serveOrigin(w, r, who, h.appOrigin(id, r), h.helpdeskOrigin(r))
}

// sessionAgent returns the agent of the request's live session for app.
func (h *Handler) sessionAgent(r *http.Request, app *AppConfig) (agent, bool) {
	// Every cookie of that name is tried: another app's script may have
	// tossed one of the same name onto the parent domain (on http, where
	// the __Host- prefix is not to be had), which the browser sends first.
	// What is cached on the agent's behalf (identity assertions) is keyed
	// by the session, as by the credentials in path mode: by the hash of
	// the secret, which never collides with a credential key (a secret
	// has no NUL byte; what path mode hashes always has one).
	for v := range cookieValues(r.Header["Cookie"], sessionCookieName(r)) {
		if sess, ok := h.sessions.lookup(r.Context(), app.id, v); ok && sess.Agent != nil {
			return agent{key: credentialKey(sess.digest), profile: sess.Agent}, true
		}
	}
	return agent{}, false
}

// cookieValues iterates over the values of the cookies named name in the
// Cookie header lines, without parsing the others.
func cookieValues(lines []string, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, line := range lines {
			for line != "" {
				var pair string
				pair, line, _ = strings.Cut(line, ";")
				if k, v, _ := strings.Cut(strings.TrimSpace(pair), "="); k == name && !yield(v) {
					return
				}
			}
		}
	}
}

// serveEnter spends a ticket on app p's origin: it starts the session,
// sets its cookie and sends the browser on to the app's page, without the
// ticket.
func (h *Handler) serveEnter(w http.ResponseWriter, r *http.Request, p *appProxy) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writePage(w, http.StatusMethodNotAllowed, "Method not allowed", "This address only opens an app.")
	}
	q := r.URL.Query()
	to := q.Get("to")
	if !localPath(to) {
		to = "/"
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer") // the ticket's URL goes nowhere
	secret, _, err := h.sessions.redeem(r.Context(), p.app.id, q.Get("ticket"))
	if err != nil {
		if errors.Is(err, errRefused) {
			h.logger.Debug("refused a ticket", zap.String("app", p.app.id), zap.Error(err))
		} else {
			h.logger.Error("spending a ticket: Caddy storage failed", zap.String("app", p.app.id), zap.Error(err))
		}
		return writePage(w, http.StatusUnauthorized, "Sign in to the helpdesk", "This link to the app has expired or was already used. Reload the app's tab in the helpdesk.")
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookieName(r), Value: secret, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// localPath reports whether s is a path on the same origin: it starts
// with one "/" (not "//" or "/\", which browsers take for another host).
func localPath(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.HasPrefix(s, "/\\") &&
		!strings.ContainsAny(s, "\r\n\t")
}

// sessionRequest is what the host script sends to open a session for an
// app (a ticket for its frame) or to renew one.
type sessionRequest struct {
	App   string `json:"app"`
	To    string `json:"to,omitempty"`    // the page to open, a path and query on the app origin
	Renew string `json:"renew,omitempty"` // the renewal handle of the session to extend
}

// sessionAnswer tells the host script where its frame goes and how to
// keep the session alive.
type sessionAnswer struct {
	URL     string `json:"url,omitempty"`
	Renew   string `json:"renew,omitempty"`
	RenewIn int64  `json:"renew_in"` // milliseconds
}

// serveSession opens and renews app sessions for the helpdesk page's host
// script: POST /_dashboard_apps/session. Only the helpdesk's own pages may
// ask, for an agent who may use the app.
func (h *Handler) serveSession(w http.ResponseWriter, r *http.Request) error {
	if h.AppDomain == "" {
		return writeJSONError(w, http.StatusNotFound, "app_domain is not configured on this site: apps are served in path mode")
	}
	var req sessionRequest
	if !readPagePost(w, r, maxSessionBody, &req, "sessions are opened only from the helpdesk's own pages", `{"app": "orders"}`) {
		return nil
	}
	p, ok := h.lookupApp(req.App)
	if !ok {
		return writeJSONError(w, http.StatusBadRequest, "app "+strconv.Quote(req.App)+": no such app")
	}
	to := req.To
	if to == "" {
		to = p.emptyEntryPath()
	} else if !localPath(to) {
		return writeJSONError(w, http.StatusBadRequest, "to "+strconv.Quote(to)+": must be a path on the app's origin, starting with a single /")
	}
	renewIn := (h.sessionLifetime / 3).Milliseconds()
	if p.app.Public {
		return writeSessionAnswer(w, sessionAnswer{URL: h.appOrigin(p.app.id, r) + to, RenewIn: renewIn})
	}
	who, err := h.identify(r)
	if err != nil {
		return h.helpdeskFailed(w, err, "opening an app session")
	}
	if _, _, ok := who.accountFor(p.app); !ok {
		return writeJSONError(w, http.StatusForbidden, "the agent may not use this app")
	}
	if req.Renew != "" {
		if who.ID == nil {
			return writeJSONError(w, http.StatusForbidden, "the agent has no id")
		}
		if err := h.sessions.renew(r.Context(), p.app.id, req.Renew, *who.ID); errors.Is(err, errRefused) {
			return writeJSONError(w, http.StatusGone, "the session has ended: open the app again")
		} else if err != nil {
			h.logger.Error("renewing an app session: Caddy storage failed", zap.String("app", p.app.id), zap.Error(err))
			return writeJSONError(w, http.StatusInternalServerError, "the session could not be renewed")
		}
		return writeSessionAnswer(w, sessionAnswer{RenewIn: renewIn})
	}
	ticket, renew, err := h.sessions.open(r.Context(), appSession{App: p.app.id, Agent: who.profile, HelpdeskOrigin: requestOrigin(r)})
	if err != nil {
		h.logger.Error("opening an app session: Caddy storage failed", zap.String("app", p.app.id), zap.Error(err))
		return writeJSONError(w, http.StatusInternalServerError, "the session could not be stored")
	}
	return writeSessionAnswer(w, sessionAnswer{
		URL:   h.appOrigin(p.app.id, r) + enterPath + "?ticket=" + url.QueryEscape(ticket) + "&to=" + url.QueryEscape(to),
		Renew: renew, RenewIn: renewIn,
	})
}

func writeSessionAnswer(w http.ResponseWriter, a sessionAnswer) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

// readPagePost reads into v the JSON body of a POST that only the
// helpdesk's own pages may send (at most limit bytes), or answers the
// request and reports false: 405, 403 with forbidden, or 400 showing the
// example.
func readPagePost(w http.ResponseWriter, r *http.Request, limit int, v any, forbidden, example string) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "POST only")
		return false
	}
	if !sameOriginRequest(r) {
		writeJSONError(w, http.StatusForbidden, forbidden)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil || len(body) > limit || json.Unmarshal(body, v) != nil {
		writeJSONError(w, http.StatusBadRequest, "the body must be JSON such as "+example)
		return false
	}
	return true
}

// sameOriginRequest reports whether a request comes from a page of its
// own origin: Origin says so, or, where a browser sends none, Fetch
// Metadata does.
func sameOriginRequest(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return strings.EqualFold(o, requestOrigin(r))
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// redirectToAppOrigin sends a path-mode address of app p to the same
// upstream page on its origin.
func (h *Handler) redirectToAppOrigin(w http.ResponseWriter, r *http.Request, p *appProxy, sub string) error {
	upPath, err := p.mapper.UpstreamPath(sub)
	if err != nil {
		return writePage(w, http.StatusBadRequest, "Bad request", "This address would leave the app.")
	}
	target := h.appOrigin(p.app.id, r) + upPath
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	return nil
}
