package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminValidator{})
}

// adminValidator checks changes to the dashboard_apps config made through
// Caddy's admin API before Caddy applies them. Caddy reports every config
// that fails to provision as a 500; an operator who PUTs an app with a bad
// URL deserves a 400 that names the app, the field and the value.
//
// It claims only PUT, PATCH, POST and DELETE under
// /config/apps/dashboard_apps: GET and HEAD stay with Caddy's own /config/
// handler. A change is applied through Caddy's admin API itself, by the
// handler of the admin server that received the request (no new
// connection, so it works on every admin listener: TCP, Unix socket,
// remote): it reads the current config with GET, applies the change to a
// copy the way Caddy would, validates the resulting dashboard_apps config,
// and writes it back with If-Match, so that Caddy refuses the write if the
// config changed in between (then it starts over). Caddy keeps its own
// Etags, locking, reload, autosave and error statuses.
//
// The requests it makes carry the client's Host, Origin and TLS
// certificate, so Caddy's checks apply to them as to the client's: on the
// remote admin endpoint, a client whose access_control limits it to paths
// under /config/apps/dashboard_apps also needs GET and POST on
// /config/apps for its changes there.
type adminValidator struct{}

// CaddyModule returns the Caddy module information.
func (adminValidator) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.dashboard_apps",
		New: func() caddy.Module { return adminValidator{} },
	}
}

const (
	// dashboardAppsPath is the config path this module validates changes of.
	dashboardAppsPath = "/config/apps/dashboard_apps"
	// appsPath and configPath are where a change is written: paths above
	// dashboardAppsPath, so that the write reaches Caddy's own handler.
	appsPath   = "/config/apps"
	configPath = "/config/"

	// maxConfigBody is Caddy's own limit on a config request's body.
	maxConfigBody = 100 << 20

	// writeAttempts is how many times a change is applied again after
	// another change of the config came between its read and its write.
	writeAttempts = 8
)

// Routes claims the mutating methods of the dashboard_apps subtree of
// /config/. The admin API's mux (net/http's) prefers these patterns to
// Caddy's "/config/", which matches every method and so is less specific.
func (adminValidator) Routes() []caddy.AdminRoute {
	h := caddy.AdminHandlerFunc(handleAppsChange)
	var routes []caddy.AdminRoute
	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodPost, http.MethodDelete} {
		for _, path := range []string{dashboardAppsPath, dashboardAppsPath + "/"} {
			routes = append(routes, caddy.AdminRoute{Pattern: method + " " + path, Handler: h})
		}
	}
	return routes
}

// Provision warns when net/http's mux reads patterns the Go 1.21 way
// (GODEBUG=httpmuxgo121=1): then the routes above never match, and an
// invalid change gets Caddy's 500 instead of a 400 that says what to fix.
func (adminValidator) Provision(caddy.Context) error {
	if !muxHasMethodPatterns() {
		caddy.Log().Named("admin.api.dashboard_apps").Warn("net/http's ServeMux ignores method patterns (GODEBUG httpmuxgo121=1): " +
			"changes of the dashboard_apps config through the admin API are not validated before Caddy loads them, " +
			"so an invalid one is refused with Caddy's status 500 instead of a 400; remove httpmuxgo121=1 from GODEBUG")
	}
	return nil
}

// muxHasMethodPatterns reports whether http.ServeMux routes by method.
func muxHasMethodPatterns() bool {
	mux := http.NewServeMux()
	mux.Handle("PUT /probe", http.NotFoundHandler())
	_, pattern := mux.Handler(&http.Request{Method: http.MethodPut, URL: &url.URL{Path: "/probe"}, Host: "localhost"})
	return pattern == "PUT /probe"
}

// handleAppsChange validates a change of the dashboard_apps config and,
// when it is valid, has Caddy apply it.
func handleAppsChange(w http.ResponseWriter, r *http.Request) error {
	api, err := adminAPIOf(r)
	if err != nil {
		return err
	}
	// Caddy's own checks, in its order and words.
	var body []byte
	if r.Method != http.MethodDelete {
		if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "/json") {
			return caddy.APIError{
				HTTPStatus: http.StatusBadRequest,
				Err:        fmt.Errorf("unacceptable content-type: %v; 'application/json' required", ct),
			}
		}
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBody)); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading request body: %v", err)}
		}
	}
	ch := configChange{method: r.Method, path: r.URL.Path, body: body}
	if ch.ifMatch, err = parseIfMatch(r.Header.Get("If-Match")); err != nil {
		return err
	}
	// What Caddy's handler reads from the request besides the above.
	ch.header = http.Header{}
	for _, name := range []string{"Cache-Control", "Caddy-Config-Source-File", "Caddy-Config-Source-Adapter"} {
		if v, ok := r.Header[name]; ok {
			ch.header[name] = v
		}
	}
	for range writeAttempts {
		resp, err := api.apply(ch)
		if err != nil {
			return err
		}
		if resp != nil {
			resp.relay(w)
			return nil
		}
	}
	w.Header().Set("Retry-After", "1")
	return caddy.APIError{
		HTTPStatus: http.StatusServiceUnavailable,
		Err: fmt.Errorf("dashboard_apps: the config was changed by other requests each of the %d times this change was about to be applied; "+
			"nothing was changed; send the request again", writeAttempts),
	}
}

// configChange is a change of the config requested through the admin API.
type configChange struct {
	method, path string
	body         []byte
	ifMatch      *etag       // the client's precondition, if any
	header       http.Header // passed on to Caddy with the write
}

// etag is a parsed Etag or If-Match of Caddy's admin API: "<path> <hash>".
type etag struct{ path, hash string }

// parseIfMatch parses an If-Match header as Caddy does; nil without one.
func parseIfMatch(h string) (*etag, error) {
	if h == "" {
		return nil, nil
	}
	if len(h) < 2 || h[0] != '"' || h[len(h)-1] != '"' {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("malformed If-Match header; expect quoted string")}
	}
	parts := strings.Fields(h[1 : len(h)-1])
	if len(parts) != 2 {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("malformed If-Match header; expect format \"<path> <hash>\"")}
	}
	return &etag{path: parts[0], hash: parts[1]}, nil
}

// preconditionFailed is Caddy's answer to an If-Match that does not match.
func preconditionFailed() error {
	return caddy.APIError{
		HTTPStatus: http.StatusPreconditionFailed,
		Err:        fmt.Errorf("If-Match header did not match current config hash"),
	}
}

// adminAPI sends requests to the handler of the admin server that
// received a request, on that request's behalf.
type adminAPI struct {
	handler http.Handler
	from    *http.Request
}

func adminAPIOf(r *http.Request) (adminAPI, error) {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil || srv.Handler == nil {
		return adminAPI{}, caddy.APIError{
			HTTPStatus: http.StatusInternalServerError,
			Err:        fmt.Errorf("dashboard_apps: the request came without the admin server that received it; it must be served by Caddy's admin endpoint"),
		}
	}
	return adminAPI{handler: srv.Handler, from: r}, nil
}

// do sends a request to Caddy's admin API. It carries what Caddy's checks
// of the original request looked at (Host, Origin, the client's TLS
// certificate), so it is allowed exactly when the original was.
func (a adminAPI) do(method, path string, header http.Header, body []byte) *recordedResponse {
	req, _ := http.NewRequestWithContext(a.from.Context(), method, "/", bytes.NewReader(body))
	req.URL = &url.URL{Path: path}
	req.RequestURI = req.URL.RequestURI()
	req.Host = a.from.Host
	req.RemoteAddr = a.from.RemoteAddr
	req.TLS = a.from.TLS
	for _, name := range []string{"Origin", "Referer", "Sec-Fetch-Mode", "User-Agent"} {
		if v, ok := a.from.Header[name]; ok {
			req.Header[name] = v
		}
	}
	for name, v := range header {
		req.Header[name] = v
	}
	rec := &recordedResponse{header: http.Header{}}
	a.handler.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec
}

// apply makes one attempt at ch. It returns Caddy's response to relay, an
// error to answer with, or neither when the config changed between the
// read and the write and the attempt must be made again.
func (a adminAPI) apply(ch configChange) (*recordedResponse, error) {
	// Read the config at a path that holds both the dashboard_apps config
	// and the client's If-Match path: what the write depends on.
	base := appsPath
	if ch.ifMatch != nil && !pathWithin(ch.ifMatch.path, appsPath) {
		base = configPath
	}
	cur := a.do(http.MethodGet, base, nil, nil)
	if cur.status == http.StatusBadRequest && base == appsPath {
		// Caddy cannot traverse to apps: the config is null.
		base = configPath
		cur = a.do(http.MethodGet, base, nil, nil)
	}
	if cur.status != http.StatusOK {
		return cur, nil
	}
	tag, err := parseIfMatch(cur.header.Get("Etag"))
	if err != nil || tag == nil {
		return nil, caddy.APIError{
			HTTPStatus: http.StatusInternalServerError,
			Err:        fmt.Errorf("dashboard_apps: Caddy's admin API answered GET %s with the Etag %q, not \"<path> <hash>\"", base, cur.header.Get("Etag")),
		}
	}

	// The client's precondition, checked after the read: the write below
	// succeeds only if the config is still what was read, and so what
	// this check saw.
	if m := ch.ifMatch; m != nil {
		got := tag
		if cleanConfigPath(m.path) != cleanConfigPath(base) {
			if !pathWithin(m.path, "/config") {
				return nil, preconditionFailed()
			}
			resp := a.do(http.MethodGet, cleanConfigPath(m.path), nil, nil)
			if resp.status != http.StatusOK {
				return resp, nil
			}
			if got, _ = parseIfMatch(resp.header.Get("Etag")); got == nil {
				return nil, preconditionFailed()
			}
		}
		if got.hash != m.hash {
			return nil, preconditionFailed()
		}
	}

	// Apply the change to a copy, as Caddy would.
	var doc any
	if err := json.Unmarshal(cur.body.Bytes(), &doc); err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("dashboard_apps: reading the config Caddy answered GET %s with: %v", base, err)}
	}
	root := map[string]any{}
	if base == appsPath {
		root["config"] = map[string]any{"apps": doc}
	} else {
		root["config"] = doc
	}
	var val any
	if len(ch.body) > 0 {
		if err := json.Unmarshal(ch.body, &val); err != nil {
			var syntaxErr *json.SyntaxError
			if errors.As(err, &syntaxErr) {
				err = fmt.Errorf("decoding request body: %w, at offset %d", syntaxErr, syntaxErr.Offset)
			} else {
				err = fmt.Errorf("decoding request body: %w", err)
			}
			return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
	}
	if err := changeConfigCopy(root, ch.method, ch.path, val); err != nil {
		return nil, err
	}

	// Validate what dashboard_apps would become.
	if next, ok := lookupConfig(root, dashboardAppsPath); ok {
		raw, err := json.Marshal(next)
		if err != nil {
			return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("dashboard_apps: encoding the changed config: %v", err)}
		}
		if err := validateConfig(caddy.RemoveMetaFields(raw)); err != nil {
			return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
	}

	// Write it back. POST sets the value at a path that holds no list,
	// creating it if it is missing (PATCH would be a 404 on a config
	// without apps).
	next, _ := lookupConfig(root, base)
	raw, err := json.Marshal(next)
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("dashboard_apps: encoding the changed config: %v", err)}
	}
	header := ch.header.Clone()
	header.Set("Content-Type", "application/json")
	header.Set("If-Match", cur.header.Get("Etag"))
	resp := a.do(http.MethodPost, base, header, raw)
	if resp.status == http.StatusPreconditionFailed {
		return nil, nil // changed since the read: again
	}
	return resp, nil
}

// validateConfig decodes a dashboard_apps config as Caddy would load it and
// validates it. Its errors name the app, the field and the value.
func validateConfig(raw []byte) error {
	var app App
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // as Caddy decodes modules
	if err := dec.Decode(&app); err != nil {
		return explainDecodeError(raw, err)
	}
	return app.Validate()
}

// explainDecodeError finds the app, field and value that made decoding a
// dashboard_apps config fail, by decoding it again a field at a time.
func explainDecodeError(raw []byte, err error) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return fmt.Errorf("dashboard_apps %s: must be an object with the fields %s", jsonText(raw), fieldNames(reflect.TypeFor[App]()))
	}
	for _, key := range sortedKeys(top) {
		switch val := top[key]; key {
		case "apps":
			var apps map[string]json.RawMessage
			if json.Unmarshal(val, &apps) != nil {
				return fmt.Errorf("dashboard_apps: apps %s: must be an object of apps keyed by id", jsonText(val))
			}
			for _, id := range sortedKeys(apps) {
				if why := explainFields(apps[id], reflect.TypeFor[AppConfig]()); why != "" {
					return fmt.Errorf("dashboard_apps: app %q: %s", id, why)
				}
			}
		case "context":
			if why := explainFields(val, reflect.TypeFor[ContextConfig]()); why != "" {
				return fmt.Errorf("dashboard_apps: context: %s", why)
			}
		case "account_apps":
			if why := explainFields(val, reflect.TypeFor[AccountAppsConfig]()); why != "" {
				return fmt.Errorf("dashboard_apps: account_apps: %s", why)
			}
		default:
			if why := explainFields(raw, reflect.TypeFor[App]()); why != "" {
				return fmt.Errorf("dashboard_apps: %s", why)
			}
		}
	}
	return fmt.Errorf("dashboard_apps: %v", err)
}

// explainFields decodes obj into a new value of the struct type t a field
// at a time and describes the first field that fails, or returns "".
func explainFields(obj json.RawMessage, t reflect.Type) string {
	if string(bytes.TrimSpace(obj)) == "null" {
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(obj, &fields) != nil {
		return fmt.Sprintf("%s: must be an object with the fields %s", jsonText(obj), fieldNames(t))
	}
	for _, name := range sortedKeys(fields) {
		one, _ := json.Marshal(map[string]json.RawMessage{name: fields[name]})
		dec := json.NewDecoder(bytes.NewReader(one))
		dec.DisallowUnknownFields()
		err := dec.Decode(reflect.New(t).Interface())
		if err == nil {
			continue
		}
		value := jsonText(fields[name])
		if strings.Contains(strings.ToLower(name), "secret") {
			value = `"(hidden)"`
		}
		field, ok := fieldByJSONName(t, name)
		var te *json.UnmarshalTypeError
		switch {
		case !ok:
			return fmt.Sprintf("%s %s: unknown field; the fields are %s", name, value, fieldNames(t))
		case errors.As(err, &te) && (te.Field == "" || strings.EqualFold(te.Field, name)):
			return fmt.Sprintf("%s %s: must be %s", name, value, describeType(field.Type))
		case errors.As(err, &te):
			return fmt.Sprintf("%s %s: %s must be %s", name, value, te.Field, describeType(te.Type))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Sprintf("%s %s: %s; the fields there are %s", name, value, strings.TrimPrefix(err.Error(), "json: "), fieldNames(field.Type))
		default:
			return fmt.Sprintf("%s %s: %v", name, value, err)
		}
	}
	return ""
}

// fieldByJSONName finds the field of struct type t that JSON name decodes
// into, as encoding/json matches names (case-insensitively).
func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range fieldsOf(t) {
		if n, _, _ := strings.Cut(f.Tag.Get("json"), ","); strings.EqualFold(n, name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// fieldsOf yields the JSON fields of struct type t (or of what t points to).
func fieldsOf(t reflect.Type) func(func(reflect.StructField) bool) {
	return func(yield func(reflect.StructField) bool) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if n, _, _ := strings.Cut(f.Tag.Get("json"), ","); f.IsExported() && n != "" && n != "-" && !yield(f) {
				return
			}
		}
	}
}

// fieldNames lists the JSON fields of struct type t.
func fieldNames(t reflect.Type) string {
	var names []string
	for f := range fieldsOf(t) {
		n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// describeType says what JSON value decodes into t.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Duration]() || t == reflect.TypeFor[caddy.Duration]() {
		return `a duration such as "30s" or "2m"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct:
		return "an object with the fields " + fieldNames(t)
	}
	return "an object"
}

// jsonText is raw JSON for a message: compact and at most 120 bytes.
func jsonText(raw []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		buf.Reset()
		buf.Write(bytes.TrimSpace(raw))
	}
	s := buf.String()
	if len(s) > 120 {
		cut := 120
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pathWithin reports whether config path p is at or under dir.
func pathWithin(p, dir string) bool {
	p, dir = cleanConfigPath(p), cleanConfigPath(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// cleanConfigPath is p as Caddy's admin API reads it: slashes around it
// do not matter; "/config" is served at "/config/".
func cleanConfigPath(p string) string {
	p = "/" + strings.Trim(p, "/")
	if p == "/config" {
		return configPath
	}
	return p
}

// lookupConfig returns the value at config path p in root.
func lookupConfig(root map[string]any, p string) (any, bool) {
	var v any = root
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[part]; !ok {
			return nil, false
		}
	}
	return v, true
}

// changeConfigCopy does to root, a copy of Caddy's raw config (the map
// that holds "config"), what Caddy's admin API does for method at path
// with the decoded body val (caddy.unsyncedConfigAccess, Caddy v2.11), so
// that the result can be validated before Caddy is asked. Its refusals
// have Caddy's words, and Caddy's status where Caddy gives one (404, 409);
// where Caddy answers 500 to a path that cannot be traversed, it is 400.
func changeConfigCopy(root map[string]any, method, path string, val any) error {
	cleanPath := strings.Trim(path, "/")
	if cleanPath == "" {
		return badChange(fmt.Errorf("no traversable path"))
	}
	parts := strings.Split(cleanPath, "/")
	ellipses := parts[len(parts)-1] == "..."
	if ellipses {
		parts = parts[:len(parts)-1]
	}
	var ptr any = root
	for i, part := range parts {
		switch v := ptr.(type) {
		case map[string]any:
			// the destination is an element of a list
			if arr, ok := v[part].([]any); ok && i == len(parts)-2 {
				var idx int
				if method != http.MethodPost {
					idxStr := parts[len(parts)-1]
					var err error
					if idx, err = parseCanonicalArrayIndex(idxStr); err != nil {
						return badChange(fmt.Errorf("[%s] invalid array index '%s': %v", path, idxStr, err))
					}
					if idx < 0 || (method != http.MethodPut && idx >= len(arr)) || idx > len(arr) {
						return badChange(fmt.Errorf("[%s] array index out of bounds: %s", path, idxStr))
					}
				}
				switch method {
				case http.MethodPost:
					appended, err := appendTo(arr, val, ellipses)
					if err != nil {
						return err
					}
					v[part] = appended
				case http.MethodPut:
					arr = append(arr, nil)
					copy(arr[idx+1:], arr[idx:])
					arr[idx] = val
					v[part] = arr
				case http.MethodPatch:
					arr[idx] = val
				case http.MethodDelete:
					v[part] = append(arr[:idx], arr[idx+1:]...)
				}
				return nil
			}
			if i == len(parts)-1 {
				_, exists := v[part]
				switch method {
				case http.MethodPost:
					// POST appends to an existing list, else sets
					if arr, ok := v[part].([]any); ok {
						appended, err := appendTo(arr, val, ellipses)
						if err != nil {
							return err
						}
						v[part] = appended
					} else {
						v[part] = val
					}
				case http.MethodPut:
					if exists {
						return caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("[%s] key already exists: %s", path, part)}
					}
					v[part] = val
				case http.MethodPatch:
					if !exists {
						return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("[%s] key does not exist: %s", path, part)}
					}
					v[part] = val
				case http.MethodDelete:
					if !exists {
						return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("[%s] key does not exist: %s", path, part)}
					}
					delete(v, part)
				}
				return nil
			}
			// PUT creates the missing objects on its path
			if v[part] == nil && method == http.MethodPut {
				v[part] = map[string]any{}
			}
			ptr = v[part]
		case []any:
			idx, err := parseCanonicalArrayIndex(part)
			if err != nil {
				return badChange(fmt.Errorf("[/%s] invalid array index '%s': %v", strings.Join(parts[:i+1], "/"), part, err))
			}
			if idx < 0 || idx >= len(v) {
				return badChange(fmt.Errorf("[/%s] array index out of bounds: %s", strings.Join(parts[:i+1], "/"), part))
			}
			ptr = v[idx]
		default:
			return badChange(fmt.Errorf("invalid traversal path at: %s", strings.Join(parts[:i+1], "/")))
		}
	}
	return nil
}

func badChange(err error) error {
	return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
}

// parseCanonicalArrayIndex reads a list index as Caddy's admin API does.
func parseCanonicalArrayIndex(idx string) (int, error) {
	if idx == "" {
		return 0, fmt.Errorf("empty index")
	}
	i, err := strconv.Atoi(idx)
	if err != nil {
		return 0, err
	}
	if strconv.Itoa(i) != idx {
		return 0, fmt.Errorf("non-canonical array index")
	}
	return i, nil
}

// recordedResponse is a response of Caddy's admin API to a request of
// this module.
type recordedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recordedResponse) Header() http.Header { return r.header }

func (r *recordedResponse) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recordedResponse) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// relay sends the recorded response to w.
func (r *recordedResponse) relay(w http.ResponseWriter) {
	for name, v := range r.header {
		w.Header()[name] = v
	}
	w.WriteHeader(r.status)
	w.Write(r.body.Bytes())
}

// Interface guards.
var (
	_ caddy.AdminRouter   = adminValidator{}
	_ caddy.Provisioner   = adminValidator{}
	_ http.ResponseWriter = (*recordedResponse)(nil)
)

// appendTo is POST's append to a list, as Caddy does it: val, or with
// "..." at the end of the path each element of val, which must be a list.
func appendTo(arr []any, val any, ellipses bool) ([]any, error) {
	if !ellipses {
		return append(arr, val), nil
	}
	valArray, ok := val.([]any)
	if !ok {
		return nil, badChange(fmt.Errorf("final element is not an array"))
	}
	return append(arr, valArray...), nil
}
