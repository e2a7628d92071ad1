package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// serveOwn serves the gateway's endpoints under /_dashboard_apps/.
func (h *Handler) serveOwn(w http.ResponseWriter, r *http.Request, name string) error {
	switch name {
	case "host.js":
		return h.assets.js.serve(w, r, h.assets.version)
	case "host.css":
		return h.assets.css.serve(w, r, h.assets.version)
	case "appshim.js":
		return h.assets.shim.serve(w, r, h.assets.shimVersion)
	case "apps":
		return h.serveApps(w, r)
	case "context":
		return h.serveContext(w, r)
	case "webhook":
		return h.serveWebhook(w, r)
	case "jwks.json":
		return h.serveJWKS(w, r)
	case "session":
		return h.serveSession(w, r)
	case "message-format":
		return h.serveFormatReport(w, r)
	case "settings":
		return h.serveSettings(w, r)
	}
	if rest, ok := strings.CutPrefix(name, "accounts/"); ok {
		return h.serveAccountAPI(w, r, rest)
	}
	return writeJSONError(w, http.StatusNotFound, "no such endpoint")
}

// Shared header values, so that writing them does not allocate.
var (
	jsonType     = []string{"application/json"}
	privateCache = []string{"private, no-store"}
	nosniff      = []string{"nosniff"}
)

func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	hd := w.Header()
	hd["Content-Type"] = jsonType
	hd["Cache-Control"] = privateCache
	hd["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

func writeJSONError(w http.ResponseWriter, status int, msg string) error {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return writeJSON(w, status, b)
}

// helpdeskFailed answers an endpoint request that has no agent, or whose
// helpdesk API call failed: no helpdesk_api is 503; no credentials, and
// the helpdesk's own 401, 403 or 404, go to the browser as they are;
// anything else is logged, with what the gateway was doing, and answered
// 502.
func (h *Handler) helpdeskFailed(w http.ResponseWriter, err error, doing string) error {
	switch status := passedStatus(err); {
	case err == errNoHelpdeskAPI:
		return writeJSONError(w, http.StatusServiceUnavailable, err.Error())
	case err == errNoCredentials:
		return writeJSONError(w, status, "sign in to the helpdesk")
	case status != 0:
		return writeJSONError(w, status, http.StatusText(status))
	}
	h.logger.Error(doing+": the helpdesk API failed", zap.Error(err))
	return writeJSONError(w, http.StatusBadGateway, "the helpdesk API is not answering")
}

// queryID reads a positive integer query parameter without allocating.
func queryID(rawQuery, name string) (int64, bool) {
	n, err := strconv.ParseInt(queryValue(rawQuery, name), 10, 64)
	return n, err == nil && n > 0
}

// queryValue reads a query parameter without allocating; it is only for
// values that need no unescaping, such as app ids.
func queryValue(rawQuery, name string) string {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// appEntry is one app in the /apps answer.
type appEntry struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	URL           string `json:"url"`
	Position      int    `json:"position"`
	MessageFormat string `json:"message_format"`
	Inboxes       []int  `json:"inboxes,omitempty"`
}

// serveApps lists the apps the agent may use in an account (and inbox, if
// given), in tab order.
func (h *Handler) serveApps(w http.ResponseWriter, r *http.Request) error {
	account, ok := queryID(r.URL.RawQuery, "account")
	if !ok {
		return writeJSONError(w, http.StatusBadRequest, "account must be a positive integer")
	}
	inbox, hasInbox := queryID(r.URL.RawQuery, "inbox")
	if !hasInbox && queryValue(r.URL.RawQuery, "inbox") != "" {
		return writeJSONError(w, http.StatusBadRequest, "inbox must be a positive integer")
	}
	who, err := h.identify(r)
	if err != nil {
		return h.helpdeskFailed(w, err, "listing the agent's apps")
	}
	if role, _ := who.roleIn(account); role == RoleAdministrator && h.accounts != nil {
		// The account's settings page, for the host script's link: only
		// to its administrators (the answer itself stays the contract's
		// array).
		w.Header().Set(settingsHeader, settingsPath(account))
	}
	ordered := h.tabOrder()
	list := make([]appEntry, 0, len(ordered))
	for _, p := range ordered {
		a := p.app
		if !who.mayUseIn(a, account) || (hasInbox && !a.inInbox(int(inbox))) {
			continue
		}
		url := p.entryURL()
		if h.AppDomain != "" {
			url = h.appOrigin(a.id, r) + p.entryPath()
		}
		list = append(list, appEntry{ID: a.id, Name: a.Name, URL: url,
			Position: a.Position, MessageFormat: a.format(), Inboxes: a.Inboxes})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

// serveJWKS publishes the gateway's public key, with which apps without an
// identity_secret verify assertions and context tokens.
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	hd := w.Header()
	hd["Content-Type"] = jsonType
	hd.Set("Cache-Control", "public, max-age=300")
	hd["X-Content-Type-Options"] = nosniff
	_, err := w.Write(h.registry.identity.jwks)
	return err
}
