package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// The JSON API behind the settings page, for a helpdesk account's apps:
//
//	GET    /_dashboard_apps/accounts/N/apps        the apps shown in account N, config and account apps, in tab order
//	POST   /_dashboard_apps/accounts/N/apps        add one: {"name", "url", optional fields but accounts}; 201 with it
//	GET    /_dashboard_apps/accounts/N/apps/<id>   one of them
//	PATCH  /_dashboard_apps/accounts/N/apps/<id>   change an account app (JSON merge patch: null resets a field)
//	DELETE /_dashboard_apps/accounts/N/apps/<id>   remove an account app; 204
//
// Any agent of account N may read; only its administrators may change,
// and only from the helpdesk's own pages (Origin, or Sec-Fetch-Site).

// accountError is a refusal of the API, with the field it is about.
type accountError struct {
	status int
	field  string // "" when about no one field
	why    string // the reason alone, for the settings page ("" : msg)
	msg    string
}

func (e *accountError) Error() string { return e.msg }

func refuse(status int, msg string) *accountError { return &accountError{status: status, msg: msg} }

// badField turns a validation error into a 400 naming the field.
func badField(err error) *accountError {
	e := &accountError{status: http.StatusBadRequest, msg: err.Error()}
	var fe *fieldError
	if errors.As(err, &fe) {
		e.field, e.why = fe.Field, fe.Why
	}
	return e
}

func writeAPIError(w http.ResponseWriter, err error) error {
	var e *accountError
	if !errors.As(err, &e) {
		return err
	}
	body := map[string]string{"error": e.msg}
	if e.field != "" {
		body["field"] = e.field
	}
	if e.why != "" {
		body["reason"] = e.why
	}
	b, _ := json.Marshal(body)
	return writeJSON(w, e.status, b)
}

// serveAccountAPI serves rest, the path after /_dashboard_apps/accounts/.
func (h *Handler) serveAccountAPI(w http.ResponseWriter, r *http.Request, rest string) error {
	if h.accounts == nil {
		return writeJSONError(w, http.StatusNotFound, "account apps need helpdesk_api on this site")
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[1] != "apps" || (len(parts) == 3 && parts[2] == "") {
		return writeJSONError(w, http.StatusNotFound, "no such endpoint")
	}
	account, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || account <= 0 || strconv.FormatInt(account, 10) != parts[0] {
		return writeJSONError(w, http.StatusBadRequest, "account "+strconv.Quote(parts[0])+": must be a positive integer")
	}
	id := ""
	allow := []string{http.MethodGet, http.MethodHead, http.MethodPost}
	if len(parts) == 3 {
		id, allow = parts[2], []string{http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodDelete}
	}
	if !slices.Contains(allow, r.Method) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return writeJSONError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here: "+strings.Join(allow, ", "))
	}
	who, err := h.identify(r)
	if err != nil {
		return h.helpdeskFailed(w, err, "account apps")
	}
	role, member := who.roleIn(account)
	change := r.Method != http.MethodGet && r.Method != http.MethodHead
	switch {
	case change && !sameOriginRequest(r):
		return writeJSONError(w, http.StatusForbidden, "changes to apps are accepted only from the helpdesk's own pages")
	case !member:
		return writeJSONError(w, http.StatusForbidden, fmt.Sprintf("you are not an agent of account %d", account))
	case change && role != RoleAdministrator:
		return writeJSONError(w, http.StatusForbidden, fmt.Sprintf("only administrators of account %d may change its apps", account))
	}
	if change && who.ID == nil {
		return writeJSONError(w, http.StatusForbidden, "the helpdesk gave no id for this agent")
	}
	switch {
	case id == "" && !change:
		return h.listAccountApps(w, account)
	case id == "":
		return writeAPIError(w, h.createAccountApp(w, r, who, account))
	case !change:
		return h.getAccountApp(w, account, id)
	case r.Method == http.MethodPatch:
		return writeAPIError(w, h.patchAccountApp(w, r, who, account, id))
	default:
		return writeAPIError(w, h.deleteAccountApp(w, r, who, account, id))
	}
}

// accountAppIn returns the account app id of account, as served here.
func (h *Handler) accountAppIn(account int64, id string) (*appProxy, bool) {
	p, ok := h.lookupApp(id)
	if !ok || h.apps[id] == p || !p.app.inAccount(int(account)) {
		return nil, false
	}
	return p, true
}

// appJSON is an app as the API shows it: an account app with its fields
// (the identity secret only as whether there is one); a config app with
// what agents see of it, never its upstream URL or settings.
func (h *Handler) appJSON(p *appProxy) map[string]any {
	a := p.app
	if h.apps[a.id] != p && len(a.Accounts) == 1 {
		m := accountAppFields(a)
		m["id"], m["source"], m["editable"], m["account"] = a.id, "account", true, a.Accounts[0]
		delete(m, "accounts")
		return m
	}
	m := map[string]any{"id": a.id, "name": a.Name, "position": a.Position, "source": "config", "editable": false}
	if len(a.Roles) > 0 {
		m["roles"] = a.Roles
	}
	if len(a.Inboxes) > 0 {
		m["inboxes"] = a.Inboxes
	}
	return m
}

// accountAppFields are an app's JSON fields, the identity secret replaced
// by whether there is one.
func accountAppFields(a *AppConfig) map[string]any {
	b, _ := json.Marshal(a)
	var m map[string]any
	json.Unmarshal(b, &m)
	if _, ok := m["identity_secret"]; ok {
		delete(m, "identity_secret")
		m["identity_secret_set"] = true
	}
	if _, ok := m["position"]; !ok {
		m["position"] = 0
	}
	return m
}

func (h *Handler) listAccountApps(w http.ResponseWriter, account int64) error {
	list := []map[string]any{}
	for _, p := range h.tabOrder() {
		if p.app.inAccount(int(account)) {
			list = append(list, h.appJSON(p))
		}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

func (h *Handler) getAccountApp(w http.ResponseWriter, account int64, id string) error {
	p, ok := h.lookupApp(id)
	if !ok || !p.app.inAccount(int(account)) {
		return writeJSONError(w, http.StatusNotFound, "app "+strconv.Quote(id)+": not an app of account "+strconv.FormatInt(account, 10))
	}
	b, err := json.Marshal(h.appJSON(p))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

// readAppBody reads a request's JSON object of app fields, refusing what
// an account app cannot have (accounts: it is always its account's) and
// what does not decode as the registry's AppConfig.
func readAppBody(r *http.Request, account int64) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAccountAppBody+1))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "reading the body: "+err.Error())
	}
	if len(body) > maxAccountAppBody {
		return nil, refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxAccountAppBody))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, refuse(http.StatusBadRequest, `the body must be a JSON object such as {"name": "Orders", "url": "https://orders.example.com/"}`)
	}
	if v, ok := fields["accounts"]; ok {
		return nil, &accountError{status: http.StatusBadRequest, field: "accounts", why: fmt.Sprintf("cannot be set: an app added here is shown in account %d only", account),
			msg: fmt.Sprintf("accounts %s: cannot be set: an app added here is shown in account %d only", jsonText(v), account)}
	}
	return fields, nil
}

// decodeApp decodes app fields as the registry does (unknown fields and
// wrong types refused, naming the field).
func decodeApp(fields map[string]json.RawMessage) (*AppConfig, error) {
	raw, _ := json.Marshal(fields)
	var cfg AppConfig
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		why := explainFields(raw, reflect.TypeFor[AppConfig]())
		if why == "" {
			why = err.Error()
		}
		field, _, _ := strings.Cut(why, " ")
		return nil, &accountError{status: http.StatusBadRequest, field: field, why: strings.TrimPrefix(why, field+" "), msg: why}
	}
	return &cfg, nil
}

// checkAccountApp validates an app of account with the registry's
// validator (id: the one it would get, for the messages), then checks
// that its host is one an account app may reach.
func (h *Handler) checkAccountApp(ctx context.Context, id string, account int64, cfg *AppConfig) error {
	if err := validateAccountApp(id, account, cfg); err != nil {
		return badField(err)
	}
	if err := h.accounts.store.policy.checkHost(ctx, cfg.upstream.Hostname()); err != nil {
		why := strings.TrimPrefix(err.Error(), errNotAllowed.Error()+": ")
		return &accountError{status: http.StatusBadRequest, field: "url", why: why, msg: fmt.Sprintf("app %q: url %q: %s", id, cfg.URL, why)}
	}
	return nil
}

func (h *Handler) createAccountApp(w http.ResponseWriter, r *http.Request, who agent, account int64) error {
	fields, err := readAppBody(r, account)
	if err != nil {
		return err
	}
	if v, ok := fields["id"]; ok {
		return &accountError{status: http.StatusBadRequest, field: "id", why: "cannot be chosen: it is derived from the name",
			msg: fmt.Sprintf("id %s: cannot be chosen: it is derived from the name", jsonText(v))}
	}
	cfg, err := decodeApp(fields)
	if err != nil {
		return err
	}
	if err := h.checkAccountApp(r.Context(), appIDFor(cfg.Name, func(string) bool { return false }), account, cfg); err != nil {
		return err
	}
	var id string
	err = h.accounts.store.update(r.Context(), account, func(f *accountFile, taken func(string) bool) error {
		if len(f.Apps) >= maxAccountApps {
			return refuse(http.StatusConflict, fmt.Sprintf("account %d has %d apps, the most it may have; remove one first", account, maxAccountApps))
		}
		id = appIDFor(cfg.Name, taken)
		if err := validateAccountApp(id, account, cfg); err != nil {
			return badField(err)
		}
		f.Apps[id] = cfg
		f.Retired = slices.DeleteFunc(f.Retired, func(r string) bool { return r == id })
		return nil
	})
	if err != nil {
		return h.storeFailed(err)
	}
	h.logger.Info("account app added", zap.Int64("agent", *who.ID), zap.Int64("account", account), zap.String("app", id),
		zap.Any("changes", appChanges(nil, cfg)))
	w.Header().Set("Location", ownPrefix+"accounts/"+strconv.FormatInt(account, 10)+"/apps/"+id)
	return h.writeStoredApp(w, http.StatusCreated, id)
}

// configAppRefusal is the 409 for a change to an app of the config.
func (h *Handler) configAppRefusal(id string) error {
	if _, config := h.apps[id]; config {
		return refuse(http.StatusConflict, fmt.Sprintf("app %q is set in the gateway's config by its operator and cannot be changed here", id))
	}
	return nil
}

func (h *Handler) patchAccountApp(w http.ResponseWriter, r *http.Request, who agent, account int64, id string) error {
	if err := h.configAppRefusal(id); err != nil {
		return err
	}
	fields, err := readAppBody(r, account)
	if err != nil {
		return err
	}
	if v, ok := fields["id"]; ok {
		var same string
		if json.Unmarshal(v, &same) != nil || same != id {
			return &accountError{status: http.StatusConflict, field: "id", why: "cannot be changed",
				msg: fmt.Sprintf("app %q: id %s: an app's id cannot be changed", id, jsonText(v))}
		}
		delete(fields, "id")
	}
	// Checked first against the app as this instance knows it, so that
	// the URL's host is resolved outside the storage's lock; then applied,
	// and checked again, on the app as storage holds it under the lock.
	cur, ok := h.accountAppIn(account, id)
	if !ok {
		return refuse(http.StatusNotFound, fmt.Sprintf("app %q: not an app of account %d", id, account))
	}
	next, err := mergeApp(cur.app, fields)
	if err != nil {
		return err
	}
	if err := h.checkAccountApp(r.Context(), id, account, next); err != nil {
		return err
	}
	var before, after *AppConfig
	err = h.accounts.store.update(r.Context(), account, func(f *accountFile, _ func(string) bool) error {
		old, ok := f.Apps[id]
		if !ok {
			return refuse(http.StatusNotFound, fmt.Sprintf("app %q: not an app of account %d", id, account))
		}
		cfg, err := mergeApp(old, fields)
		if err != nil {
			return err
		}
		// Its URL is the patch's, checked above, or the stored one.
		if err := validateAccountApp(id, account, cfg); err != nil {
			return badField(err)
		}
		f.Apps[id], before, after = cfg, old, cfg
		return nil
	})
	if err != nil {
		return h.storeFailed(err)
	}
	h.logger.Info("account app changed", zap.Int64("agent", *who.ID), zap.Int64("account", account), zap.String("app", id),
		zap.Any("changes", appChanges(before, after)))
	return h.writeStoredApp(w, http.StatusOK, id)
}

// writeStoredApp answers a change with the app as it now is, set up like
// every other app, or 500 when it could not be.
func (h *Handler) writeStoredApp(w http.ResponseWriter, status int, id string) error {
	p, ok := h.lookupApp(id)
	if !ok {
		return refuse(http.StatusInternalServerError, "the app was stored but could not be set up; the gateway's log says why")
	}
	b, err := json.Marshal(h.appJSON(p))
	if err != nil {
		return err
	}
	return writeJSON(w, status, b)
}

// mergeApp applies a JSON merge patch (RFC 7396) of fields to app: a
// field given replaces the app's, null removes it (its default).
func mergeApp(app *AppConfig, fields map[string]json.RawMessage) (*AppConfig, error) {
	b, err := json.Marshal(app)
	if err != nil {
		return nil, err
	}
	var merged map[string]json.RawMessage
	json.Unmarshal(b, &merged)
	for k, v := range fields {
		if string(bytes.TrimSpace(v)) == "null" {
			delete(merged, k)
			continue
		}
		merged[k] = v
	}
	return decodeApp(merged)
}

func (h *Handler) deleteAccountApp(w http.ResponseWriter, r *http.Request, who agent, account int64, id string) error {
	if err := h.configAppRefusal(id); err != nil {
		return err
	}
	var gone *AppConfig
	err := h.accounts.store.update(r.Context(), account, func(f *accountFile, _ func(string) bool) error {
		old, ok := f.Apps[id]
		if !ok {
			return refuse(http.StatusNotFound, fmt.Sprintf("app %q: not an app of account %d", id, account))
		}
		delete(f.Apps, id)
		if !slices.Contains(f.Retired, id) {
			f.Retired = append(f.Retired, id)
		}
		gone = old
		return nil
	})
	if err != nil {
		return h.storeFailed(err)
	}
	h.logger.Info("account app removed", zap.Int64("agent", *who.ID), zap.Int64("account", account), zap.String("app", id),
		zap.Any("changes", appChanges(gone, nil)))
	w.Header()["Cache-Control"] = privateCache
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// storeFailed passes a refusal on, and turns a storage failure into a
// logged 500.
func (h *Handler) storeFailed(err error) error {
	var e *accountError
	if errors.As(err, &e) {
		return e
	}
	h.logger.Error("account apps: Caddy storage failed", zap.Error(err))
	return refuse(http.StatusInternalServerError, "the change could not be stored; try again")
}

// appChanges describes a change for the log: each field that changed,
// from what to what (a field set on an added app: its value; a removed
// app: what it was). Secrets are never logged.
func appChanges(before, after *AppConfig) map[string]any {
	fields := func(a *AppConfig) map[string]any {
		if a == nil {
			return map[string]any{}
		}
		m := accountAppFields(a)
		delete(m, "accounts")
		if a.Position == 0 {
			delete(m, "position") // the default, which accountAppFields shows
		}
		if _, ok := m["identity_secret_set"]; ok {
			m["identity_secret"] = "(hidden)"
			delete(m, "identity_secret_set")
		}
		return m
	}
	b, a := fields(before), fields(after)
	out := map[string]any{}
	for k, v := range a {
		if old, ok := b[k]; !ok {
			out[k] = v
		} else if !reflect.DeepEqual(old, v) || (k == "identity_secret" && before.IdentitySecret != after.IdentitySecret) {
			out[k] = map[string]any{"from": old, "to": v}
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			if after == nil {
				out[k] = v
			} else {
				out[k] = map[string]any{"from": v, "to": nil}
			}
		}
	}
	return out
}
