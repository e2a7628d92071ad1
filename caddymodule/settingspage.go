package caddymodule

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
)

//go:embed settings/settings.html settings/settings.css settings/settings.js
var settingsFiles embed.FS

// settingsHeader, on an /apps answer, gives the account's settings page
// to the host script, for its link in the tab bar: only to the account's
// administrators.
const settingsHeader = "X-Dashboard-Apps-Settings"

func settingsPath(account int64) string {
	return ownPrefix + "settings?account=" + strconv.FormatInt(account, 10)
}

// settingsAssets are the page's parts and the Content-Security-Policy
// that lets exactly its own script and style run, by their hashes.
type settingsAssets struct {
	page, script, style string
	csp                 string
}

var loadSettingsAssets = sync.OnceValue(func() *settingsAssets {
	read := func(name string) string {
		b, err := settingsFiles.ReadFile("settings/" + name)
		if err != nil {
			panic(err) // embedded at build time: cannot happen
		}
		return string(b)
	}
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	a := &settingsAssets{page: read("settings.html"), script: read("settings.js"), style: read("settings.css")}
	a.csp = "default-src 'none'; script-src " + hash(a.script) + "; style-src " + hash(a.style) +
		"; connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
	return a
})

// serveSettings serves the settings page of an account's apps:
// GET /_dashboard_apps/settings?account=N[&return=<path>], to the agents
// of the account (its administrators get the controls). Its data comes
// from the JSON API, which checks every request again.
func (h *Handler) serveSettings(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writePage(w, http.StatusMethodNotAllowed, "Method not allowed", "This address only shows a page.")
	}
	if h.accounts == nil {
		return writePage(w, http.StatusNotFound, "Not available", "Account apps need helpdesk_api on this site.")
	}
	account, ok := queryID(r.URL.RawQuery, "account")
	if !ok {
		return writePage(w, http.StatusBadRequest, "Bad request", "The address must name an account: ?account=N.")
	}
	who, err := h.identify(r)
	if err != nil {
		if passedStatus(err) != 0 || err == errNoHelpdeskAPI {
			return writePage(w, http.StatusUnauthorized, "Sign in to the helpdesk", "Sign in to the helpdesk, then open this page again.")
		}
		h.logger.Error("settings page: the helpdesk API failed", zap.Error(err))
		return writePage(w, http.StatusBadGateway, "Cannot check your sign-in", "The helpdesk is not answering. Try again in a moment.")
	}
	role, member := who.roleIn(account)
	if !member {
		return writePage(w, http.StatusForbidden, "Not available to you", "You are not an agent of this account.")
	}
	name := "account " + strconv.FormatInt(account, 10)
	for _, acc := range who.accounts() {
		if acc.ID == account && strings.TrimSpace(acc.Name) != "" {
			name = acc.Name
		}
	}
	back := r.URL.Query().Get("return")
	if !localPath(back) || strings.HasPrefix(back, ownPrefix) {
		back = h.accountHome(account)
	}
	cfg, _ := json.Marshal(map[string]any{ // escapes <, > and &: safe inside <script>
		"account": account,
		"admin":   role == RoleAdministrator,
		"api":     ownPrefix + "accounts/" + strconv.FormatInt(account, 10) + "/apps",
	})
	a := loadSettingsAssets()
	body := strings.NewReplacer(
		"{{style}}", a.style,
		"{{script}}", a.script,
		"{{config}}", string(cfg),
		"{{back}}", html.EscapeString(back),
		"{{account-name}}", html.EscapeString(name),
	).Replace(a.page)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", a.csp)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write([]byte(body))
	return err
}

// accountHome is the helpdesk page the settings page goes back to when it
// was not told: the conversation route up to the account
// (/app/accounts/N/ with Chatwoot's).
func (h *Handler) accountHome(account int64) string {
	route, _, _ := strings.Cut(h.ConversationRoute, "{account}")
	return route + strconv.FormatInt(account, 10) + "/"
}
