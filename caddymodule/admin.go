package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	_ "unsafe" // go:linkname, for handleConfig below

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminValidator{})
}

// adminValidator checks changes to the dashboard_apps config made through
// Caddy's admin API before Caddy applies them. Caddy reports every config
// that fails to provision as a 500; an operator who PUTs an app with a bad
// URL deserves a 400 that names the app, the field and the value. Valid
// changes, and every GET and DELETE, go to Caddy's own /config/ handler,
// so ETags, If-Match, 404/409 semantics and autosave stay Caddy's.
type adminValidator struct{}

// CaddyModule returns the Caddy module information.
func (adminValidator) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.dashboard_apps",
		New: func() caddy.Module { return adminValidator{} },
	}
}

const adminConfigPath = "/config/apps/dashboard_apps"

// Routes claims the dashboard_apps subtree of /config/: the admin API's
// mux gives the longer pattern precedence over Caddy's "/config/".
func (adminValidator) Routes() []caddy.AdminRoute {
	h := caddy.AdminHandlerFunc(validateThenApply)
	return []caddy.AdminRoute{
		{Pattern: adminConfigPath, Handler: h},
		{Pattern: adminConfigPath + "/", Handler: h},
	}
}

// handleConfig is Caddy's own handler of /config/ requests. The admin API
// offers no other way for a route to hand a request on; the admin API
// tests exercise every method through it, so a change of its signature in
// a new Caddy fails them.
//
//go:linkname handleConfig github.com/caddyserver/caddy/v2.handleConfig
func handleConfig(w http.ResponseWriter, r *http.Request) error

const maxAdminBody = 10 << 20

func validateThenApply(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodPut, http.MethodPatch, http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody))
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading request body: %v", err)}
		}
		if err := validateChange(r.Method, r.URL.Path, body); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return handleConfig(w, r)
}

// validateChange applies the change to a copy of the running dashboard_apps
// config and validates the result. Changes it cannot model (a path that
// does not exist, a PUT on an existing key) are left for Caddy to refuse
// with its own status.
func validateChange(method, path string, body []byte) error {
	rest := strings.Trim(strings.TrimPrefix(path, adminConfigPath), "/")
	var keys []string
	if rest != "" {
		keys = strings.Split(rest, "/")
	}
	var val any
	if err := json.Unmarshal(body, &val); err != nil {
		return nil // not JSON: Caddy says so
	}
	root, err := runningAppConfig()
	if err != nil {
		return nil
	}
	next, ok := applyChange(root, keys, method, val)
	if !ok {
		return nil
	}
	raw, err := json.Marshal(next)
	if err != nil {
		return nil
	}
	var app App
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // as Caddy decodes modules
	if err := dec.Decode(&app); err != nil {
		return fmt.Errorf("dashboard_apps: %v", describeJSONError(err))
	}
	return app.Validate()
}

// runningAppConfig is the running dashboard_apps config as generic JSON.
func runningAppConfig() (any, error) {
	var root any = map[string]any{}
	mod, err := caddy.ActiveContext().AppIfConfigured("dashboard_apps")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return root, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(mod)
	if err != nil {
		return nil, err
	}
	err = json.Unmarshal(b, &root)
	return root, err
}

// applyChange does to generic JSON what Caddy's admin API does to the
// config for method at keys; ok is false where it would refuse the change.
func applyChange(root any, keys []string, method string, val any) (any, bool) {
	if len(keys) == 0 {
		return val, true
	}
	parent := root
	for _, k := range keys[:len(keys)-1] {
		m, ok := parent.(map[string]any)
		if !ok {
			return nil, false
		}
		if parent, ok = m[k]; !ok {
			return nil, false
		}
	}
	m, ok := parent.(map[string]any)
	if !ok {
		return nil, false
	}
	last := keys[len(keys)-1]
	_, exists := m[last]
	switch {
	case method == http.MethodPut && exists, method == http.MethodPatch && !exists:
		return nil, false
	case method == http.MethodPost:
		if _, isList := m[last].([]any); isList {
			return nil, false // an append: Caddy's to check
		}
	}
	m[last] = val
	return root, true
}

// describeJSONError names the JSON field of a decoding error.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: a %s cannot be %s", te.Field, te.Value, jsonTypeName(te.Type.Kind().String()))
	}
	return err.Error()
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "a list"
	case "struct", "map", "ptr":
		return "an object"
	case "bool":
		return "true or false"
	}
	return "a number"
}

// Interface guard.
var _ caddy.AdminRouter = adminValidator{}
