package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

const appsAdminPath = "/config/apps/dashboard_apps/apps/"

// adminCall sends a request to the test Caddy's admin API, with header
// pairs, and returns the response and its body. Content-Type is JSON
// unless header says otherwise.
func adminCall(t *testing.T, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	return adminCallVia(t, adminClient, "http://localhost:2999", method, path, body, header...)
}

func adminCallVia(t *testing.T, client *http.Client, base, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if method != http.MethodGet && method != http.MethodHead {
		settleReload()
	}
	return resp, string(b)
}

// apiError is the message of an admin API error body, or the body.
func apiError(body string) string {
	var e struct{ Error string }
	if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
		return e.Error
	}
	return body
}

// runningConfig is the whole running config as Caddy's admin API reads it.
func runningConfig(t *testing.T) string {
	t.Helper()
	resp, body := adminCall(t, http.MethodGet, "/config/", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /config/: %d %s", resp.StatusCode, body)
	}
	return body
}

// adminMetric is the value of a series on the admin API's /metrics, 0 if
// it is absent. series is written as Prometheus writes it (labels sorted).
func adminMetric(t *testing.T, series string) float64 {
	t.Helper()
	_, body := adminCall(t, http.MethodGet, "/metrics", "")
	for line := range strings.SplitSeq(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// configRequests is the series that counts requests Caddy's own /config/
// handler answered.
func configRequests(method string, code int) string {
	return fmt.Sprintf(`caddy_admin_http_requests_total{code="%d",handler="admin",method="%s",path="/config/"}`, code, method)
}

// servesEcho checks that the gateway serves app id, and that a request
// under it reaches the app's upstream at want (a path).
func servesEcho(t *testing.T, id, want string) {
	t.Helper()
	resp, body := get(t, currentTester, "/dashboard-apps/"+id+"/echo")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"path":"`+want+`"`) {
		t.Errorf("app %s: %d %.200s; want it served from %s", id, resp.StatusCode, body, want)
	}
}

func TestAdminPutCreatesAnApp(t *testing.T) {
	newGateway(t)
	path := appsAdminPath + "billing"
	app := fmt.Sprintf(`{"name":"Billing","url":%q}`, appServer.URL+"/")
	if resp, body := adminCall(t, http.MethodPut, path, app); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	servesEcho(t, "billing", "/echo")
	if _, body := adminCall(t, http.MethodGet, path, ""); !strings.Contains(body, `"name":"Billing"`) {
		t.Errorf("GET after PUT: %s", body)
	}

	// A PUT on an existing id is Caddy's 409, in Caddy's words, and
	// changes nothing.
	before := runningConfig(t)
	other := fmt.Sprintf(`{"name":"Other","url":%q}`, appServer.URL+"/tools/")
	resp, body := adminCall(t, http.MethodPut, path, other)
	if want := "[" + path + "] key already exists: billing"; resp.StatusCode != http.StatusConflict || apiError(body) != want {
		t.Errorf("second PUT: %d %s; want 409 %q", resp.StatusCode, body, want)
	}
	if after := runningConfig(t); after != before {
		t.Errorf("a refused PUT changed the config:\n%s\n%s", before, after)
	}
	servesEcho(t, "billing", "/echo")
}

func TestAdminPatchReplacesAnApp(t *testing.T) {
	newGateway(t)
	patched := fmt.Sprintf(`{"name":"Orders 2","url":%q}`, appServer.URL+"/tools/")
	if resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"orders", patched); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, body)
	}
	servesEcho(t, "orders", "/tools/echo")
	if _, body := adminCall(t, http.MethodGet, appsAdminPath+"orders/name", ""); strings.TrimSpace(body) != `"Orders 2"` {
		t.Errorf("name after PATCH: %s", body)
	}

	// A PATCH of an id that does not exist is Caddy's 404.
	before := runningConfig(t)
	resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"nope", patched)
	if want := "[" + appsAdminPath + "nope] key does not exist: nope"; resp.StatusCode != http.StatusNotFound || apiError(body) != want {
		t.Errorf("PATCH of a missing app: %d %s; want 404 %q", resp.StatusCode, body, want)
	}
	if after := runningConfig(t); after != before {
		t.Errorf("a refused PATCH changed the config")
	}
}

func TestAdminPatchOfOneField(t *testing.T) {
	newGateway(t)
	if resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"orders/url", strconv.Quote(appServer.URL+"/tools/")); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH url: %d %s", resp.StatusCode, body)
	}
	servesEcho(t, "orders", "/tools/echo")
	if _, body := adminCall(t, http.MethodGet, appsAdminPath+"orders/name", ""); strings.TrimSpace(body) != `"Orders"` {
		t.Errorf("PATCH of url changed the name: %s", body)
	}

	// POST appends to a list, as in Caddy's API, and the result is
	// validated as a whole.
	if resp, body := adminCall(t, http.MethodPost, appsAdminPath+"admins/accounts", `7`); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST to accounts: %d %s", resp.StatusCode, body)
	}
	if _, body := adminCall(t, http.MethodGet, appsAdminPath+"admins/accounts", ""); strings.TrimSpace(body) != `[2,7]` {
		t.Errorf("accounts after POST: %s, want [2,7]", body)
	}
	// List elements by index, and "..." to append a list's elements.
	for _, c := range []struct{ method, path, body, want string }{
		{http.MethodPut, "admins/accounts/0", `5`, `[5,2,7]`},
		{http.MethodPatch, "admins/accounts/1", `3`, `[5,3,7]`},
		{http.MethodDelete, "admins/accounts/0", ``, `[3,7]`},
		{http.MethodPost, "admins/accounts/...", `[8,9]`, `[3,7,8,9]`},
	} {
		if resp, body := adminCall(t, c.method, appsAdminPath+c.path, c.body); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, body)
		}
		if _, body := adminCall(t, http.MethodGet, appsAdminPath+"admins/accounts", ""); strings.TrimSpace(body) != c.want {
			t.Errorf("accounts after %s %s: %s, want %s", c.method, c.path, body, c.want)
		}
	}
	if resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"admins/accounts/4", `1`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "array index out of bounds: 4") {
		t.Errorf("PATCH past the end of a list: %d %s", resp.StatusCode, body)
	}
	if resp, body := adminCall(t, http.MethodPut, appsAdminPath+"admins/accounts/0", `0`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(apiError(body), `accounts []int{0, 3, 7, 8, 9}`) {
		t.Errorf("PUT of a bad list element: %d %s", resp.StatusCode, body)
	}
	resp, body := adminCall(t, http.MethodPost, appsAdminPath+"admins/accounts", `-1`)
	if want := `app "admins": accounts []int{3, 7, 8, 9, -1}: account ids are positive integers, not -1`; resp.StatusCode != http.StatusBadRequest || !strings.Contains(apiError(body), want) {
		t.Errorf("POST of a bad account: %d %s; want 400 %q", resp.StatusCode, body, want)
	}
}

func TestAdminDeleteRemovesAnApp(t *testing.T) {
	newGateway(t)
	servesEcho(t, "orders", "/echo")
	if resp, body := adminCall(t, http.MethodDelete, appsAdminPath+"orders", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, currentTester, "/dashboard-apps/orders/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleted app still served: %d", resp.StatusCode)
	}
	resp, body := adminCall(t, http.MethodDelete, appsAdminPath+"orders", "")
	if want := "[" + appsAdminPath + "orders] key does not exist: orders"; resp.StatusCode != http.StatusNotFound || apiError(body) != want {
		t.Errorf("second DELETE: %d %s; want 404 %q", resp.StatusCode, body, want)
	}
	// A field of an app.
	if resp, body := adminCall(t, http.MethodDelete, appsAdminPath+"admins/accounts", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE of a field: %d %s", resp.StatusCode, body)
	}
	if _, body := adminCall(t, http.MethodGet, appsAdminPath+"admins/accounts", ""); strings.TrimSpace(body) != "null" {
		t.Errorf("accounts after DELETE: %s", body)
	}
}

// TestAdminRefusesInvalidChanges: Caddy answers 500 to every config that
// fails to load; the gateway refuses an invalid change with a 400 that
// names the app, the field and the value, and the running config stays.
func TestAdminRefusesInvalidChanges(t *testing.T) {
	newGateway(t)
	before := runningConfig(t)
	good := fmt.Sprintf(`{"name":"B","url":%q}`, appServer.URL+"/")
	for _, c := range []struct {
		method, path, body, want string
		header                   []string
	}{
		{method: "PUT", path: "bad-url", body: `{"name":"B","url":"ftp://x/"}`, want: `app "bad-url": url "ftp://x/": must be an absolute http or https URL`},
		{method: "PUT", path: "Bad_Id", body: good, want: `app "Bad_Id": id must match`},
		{method: "PUT", path: "a%3Cb", body: good, want: `app "a<b": id must match`},
		{method: "PATCH", path: "orders", body: `{"name":"","url":"http://x/"}`, want: `app "orders": name "": must be 1 to 64 characters`},
		{method: "PATCH", path: "orders", body: `{"name":5,"url":"http://x/"}`, want: `app "orders": name 5: must be a string`},
		{method: "PATCH", path: "orders/url", body: `"javascript:alert(1)"`, want: `app "orders": url "javascript:alert(1)": must be an absolute http or https URL`},
		{method: "PATCH", path: "orders/url", body: `"http://u:p@x/"`, want: `app "orders": url "http://u:p@x/": must not carry userinfo`},
		{method: "POST", path: "orders/position", body: `"first"`, want: `app "orders": position "first": must be a whole number`},
		{method: "POST", path: "orders/timeout", body: `"soon"`, want: `app "orders": timeout "soon": `},
		{method: "POST", path: "orders/timeout", body: `true`, want: `app "orders": timeout true: must be a duration`},
		{method: "POST", path: "orders/accounts", body: `"1"`, want: `app "orders": accounts "1": must be a list of whole numbers`},
		{method: "POST", path: "orders/message_format", body: `"xml"`, want: `app "orders": message_format "xml": must be "auto", "object" or "json_string"`},
		{method: "PATCH", path: "orders/url", body: `"http://x/c/{contact.age}"`, want: `app "orders": url "http://x/c/{contact.age}": unknown template variable {contact.age} (known: {conversation.id}, `},
		{method: "POST", path: "orders/base_path", body: `"/nope/"`, want: `app "orders": base_path "/nope/": must be a prefix of the url's path "/"`},
		{method: "POST", path: "orders/colour", body: `"red"`, want: `app "orders": colour "red": unknown field; the fields are name, url, `},
		{method: "POST", path: "orders/tls", body: `{"ca_file":5}`, want: `app "orders": tls {"ca_file":5}: tls.ca_file must be a string`},
		{method: "POST", path: "orders/tls", body: `{"ca":"x"}`, want: `app "orders": tls {"ca":"x"}: unknown field "ca"; the fields there are ca_file, server_name, insecure_skip_verify`},
		{method: "POST", path: "orders/identity_secret", body: `5`, want: `app "orders": identity_secret "(hidden)": must be a string`},
		{method: "PUT", path: "nul", body: `null`, want: `app "nul": has no configuration (null)`},
		{method: "PUT", path: "num", body: `5`, want: `app "num": 5: must be an object with the fields name, url`},
		{method: "PUT", path: "../context", body: `{"cache_size":"1KiB"}`, want: `dashboard_apps: context: cache_size "1KiB"`},
		{method: "PUT", path: "../colour", body: `1`, want: `dashboard_apps: colour 1: unknown field; the fields are apps, context`},
		{method: "PATCH", path: "orders/url/x", body: `"y"`, want: `invalid traversal path at: config/apps/dashboard_apps/apps/orders/url`},
		{method: "PATCH", path: "orders", body: `{"name":`, want: `decoding request body: unexpected end of JSON input`},
		{method: "PATCH", path: "orders", body: good, header: []string{"Content-Type", "text/plain"}, want: `unacceptable content-type: text/plain; 'application/json' required`},
	} {
		path := appsAdminPath + c.path
		if strings.HasPrefix(c.path, "../") {
			path = "/config/apps/dashboard_apps/" + strings.TrimPrefix(c.path, "../")
		}
		resp, body := adminCall(t, c.method, path, c.body, c.header...)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(apiError(body), c.want) {
			t.Errorf("%s %s %s: %d %s\nwant 400 with %s", c.method, path, c.body, resp.StatusCode, body, c.want)
		}
	}
	if after := runningConfig(t); after != before {
		t.Errorf("refused changes changed the config:\n%s\n%s", before, after)
	}
	servesEcho(t, "orders", "/echo")
	servesEcho(t, "tools", "/tools/echo")
}

// TestAdminIfMatch: a client's If-Match is Caddy's precondition, on the
// path it names, checked before anything else.
func TestAdminIfMatch(t *testing.T) {
	newGateway(t)
	etagOf := func(path string) string {
		t.Helper()
		resp, body := adminCall(t, http.MethodGet, path, "")
		tag := resp.Header.Get("Etag")
		if resp.StatusCode != http.StatusOK || tag == "" {
			t.Fatalf("GET %s: %d %q %s", path, resp.StatusCode, tag, body)
		}
		return tag
	}
	name := func() string {
		_, body := adminCall(t, http.MethodGet, appsAdminPath+"orders/name", "")
		return strings.TrimSpace(body)
	}
	tag := etagOf(appsAdminPath + "orders")
	if resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"orders/name", `"Orders 2"`, "If-Match", tag); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH with a current If-Match: %d %s", resp.StatusCode, body)
	}
	// The same Etag is stale now.
	for _, body := range []string{`"Orders 3"`, `""`} {
		resp, got := adminCall(t, http.MethodPatch, appsAdminPath+"orders/name", body, "If-Match", tag)
		if want := "If-Match header did not match current config hash"; resp.StatusCode != http.StatusPreconditionFailed || apiError(got) != want {
			t.Errorf("PATCH %s with a stale If-Match: %d %s; want 412 %q", body, resp.StatusCode, got, want)
		}
	}
	if got := name(); got != `"Orders 2"` {
		t.Errorf("name after a refused PATCH: %s", got)
	}
	// Any path of the config may be named: one that did not change, the
	// whole config, one outside the apps.
	for _, path := range []string{appsAdminPath + "tools", "/config/", "/config/admin", "/config/apps"} {
		if resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"orders/name", strconv.Quote("Orders "+path), "If-Match", etagOf(path)); resp.StatusCode != http.StatusOK {
			t.Errorf("PATCH with the current If-Match of %s: %d %s", path, resp.StatusCode, body)
		}
		if got := name(); got != strconv.Quote("Orders "+path) {
			t.Errorf("If-Match of %s: name %s", path, got)
		}
	}
	stale := etagOf("/config/")
	adminCall(t, http.MethodPost, appsAdminPath+"orders/position", `3`)
	if resp, body := adminCall(t, http.MethodDelete, appsAdminPath+"orders", "", "If-Match", stale); resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("DELETE with a stale If-Match of /config/: %d %s", resp.StatusCode, body)
	}
	for header, want := range map[string]string{
		`abc`:            "malformed If-Match header; expect quoted string",
		`"abc"`:          `malformed If-Match header; expect format "<path> <hash>"`,
		`"/config/ x"`:   "If-Match header did not match current config hash",
		`"/elsewhere x"`: "If-Match header did not match current config hash",
	} {
		resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"orders/name", `"X"`, "If-Match", header)
		if apiError(body) != want || resp.StatusCode/100 != 4 {
			t.Errorf("If-Match %s: %d %s; want %q", header, resp.StatusCode, body, want)
		}
	}
	servesEcho(t, "orders", "/echo")
}

// TestAdminGetAndHeadAreCaddys: GET and HEAD never reach the gateway's
// route; Caddy's own /config/ handler answers them, with its Etag.
func TestAdminGetAndHeadAreCaddys(t *testing.T) {
	newGateway(t)
	gets, heads := adminMetric(t, configRequests("GET", 200)), adminMetric(t, configRequests("HEAD", 405))
	resp, body := adminCall(t, http.MethodGet, appsAdminPath+"orders", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"name":"Orders"`) {
		t.Errorf("GET: %d %s", resp.StatusCode, body)
	}
	if tag := resp.Header.Get("Etag"); !regexp.MustCompile(`^"/config/apps/dashboard_apps/apps/orders [0-9a-f]+"$`).MatchString(tag) {
		t.Errorf("GET: Etag %q, want Caddy's", tag)
	}
	resp, _ = adminCall(t, http.MethodGet, "/config/apps/dashboard_apps", "")
	if tag := resp.Header.Get("Etag"); !strings.HasPrefix(tag, `"/config/apps/dashboard_apps `) {
		t.Errorf("GET of the app: Etag %q, want Caddy's", tag)
	}
	if resp, _ := adminCall(t, http.MethodHead, appsAdminPath+"orders", ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("HEAD: %d, want Caddy's 405", resp.StatusCode)
	}
	if got := adminMetric(t, configRequests("GET", 200)) - gets; got != 2 {
		t.Errorf("Caddy's /config/ handler answered %v of the 2 GETs", got)
	}
	if got := adminMetric(t, configRequests("HEAD", 405)) - heads; got != 1 {
		t.Errorf("Caddy's /config/ handler answered %v of the 1 HEAD", got)
	}
}

// TestAdminConcurrentChangesAreRetried: changes sent at the same moment
// are all applied, none lost: each is written with the Etag of the config
// it was validated against, and made again when Caddy refuses it because
// another came between.
func TestAdminConcurrentChangesAreRetried(t *testing.T) {
	newGateway(t)
	conflicts := adminMetric(t, configRequests("POST", 412))
	// Changes started together usually meet; on a busy machine they may
	// happen not to, so rounds go on until they have (at most 8).
	const n = 4
	for round := 0; round < 8 && adminMetric(t, configRequests("POST", 412)) == conflicts; round++ {
		start := make(chan struct{})
		var wg sync.WaitGroup
		statuses := make([]string, n)
		for i := range n {
			wg.Go(func() {
				<-start
				app := fmt.Sprintf(`{"name":"Concurrent %d","url":%q}`, i, appServer.URL+"/")
				// A reload replaces the admin endpoint's listening socket,
				// and the kernel closes the connections still queued on the
				// old one, unanswered: those are sent again.
				for range 4 {
					code, body, err := adminRequest(http.MethodPut, fmt.Sprintf("%sconcurrent-%d-%d", appsAdminPath, round, i), app)
					statuses[i] = fmt.Sprint(code, " ", string(body), err)
					if !closedUnanswered(err) {
						break
					}
				}
			})
		}
		close(start)
		wg.Wait()
		settleReload()
		for i, s := range statuses {
			if s != "200 <nil>" {
				t.Errorf("PUT concurrent-%d-%d: %s", round, i, s)
			}
		}
		for i := range n {
			servesEcho(t, fmt.Sprintf("concurrent-%d-%d", round, i), "/echo")
		}
	}
	if adminMetric(t, configRequests("POST", 412)) == conflicts {
		t.Errorf("no change was written over another in 8 rounds: the test did not test the retry")
	}
}

// TestAdminForceReload: Cache-Control: must-revalidate reloads an
// unchanged config, as in Caddy's API.
func TestAdminForceReload(t *testing.T) {
	newGateway(t)
	const reloaded = "caddy_config_last_reload_success_timestamp_seconds"
	first := adminMetric(t, reloaded)
	if resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"orders/name", `"Orders"`); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, body)
	}
	if got := adminMetric(t, reloaded); got != first {
		t.Errorf("an unchanged config was reloaded")
	}
	if resp, body := adminCall(t, http.MethodPatch, appsAdminPath+"orders/name", `"Orders"`, "Cache-Control", "must-revalidate"); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, body)
	}
	if got := adminMetric(t, reloaded); got == first {
		t.Errorf("Cache-Control: must-revalidate did not reload")
	}
}

// TestAdminCreatesTheRegistry: the first app can be PUT on a config that
// has no dashboard_apps, no apps, or nothing at all.
func TestAdminCreatesTheRegistry(t *testing.T) {
	tester := newGateway(t)
	defer restoreGateway(t)
	app := fmt.Sprintf(`{"name":"First","url":%q}`, appServer.URL+"/")

	tester.InitServer(`{"admin":{"listen":"localhost:2999"}}`, "json")
	if resp, body := adminCall(t, http.MethodPut, appsAdminPath+"x", `{"name":"","url":"http://x/"}`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `app \"x\": name \"\"`) {
		t.Errorf("invalid PUT on a config without apps: %d %s", resp.StatusCode, body)
	}
	if resp, body := adminCall(t, http.MethodPut, appsAdminPath+"first", app); resp.StatusCode != http.StatusOK {
		t.Errorf("PUT on a config without apps: %d %s", resp.StatusCode, body)
	}
	if _, body := adminCall(t, http.MethodGet, "/config/", ""); !strings.Contains(body, `"admin":{"listen":"localhost:2999"}`) || !strings.Contains(body, `"dashboard_apps":{"apps":{"first":{"name":"First"`) {
		t.Errorf("config after the PUT: %s", body)
	}

	// A null config puts the admin endpoint on Caddy's default address.
	const defaultAdmin = "http://localhost:2019"
	if resp, body := adminCall(t, http.MethodPost, "/load", "null"); resp.StatusCode != http.StatusOK {
		t.Fatalf("loading null: %d %s", resp.StatusCode, body)
	}
	defer func() {
		resp, body := adminCallVia(t, adminClient, defaultAdmin, http.MethodPost, "/load", gatewayConfig(), "Content-Type", "text/caddyfile")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("loading the gateway's config back: %d %s", resp.StatusCode, body)
		}
	}()
	if resp, body := adminCallVia(t, adminClient, defaultAdmin, http.MethodPut, "/config/apps/dashboard_apps", `{"apps":{"x":{"name":"X","url":"ftp://x/"}}}`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `app \"x\": url \"ftp://x/\"`) {
		t.Errorf("invalid PUT on a null config: %d %s", resp.StatusCode, body)
	}
	if _, body := adminCallVia(t, adminClient, defaultAdmin, http.MethodGet, "/config/", ""); strings.TrimSpace(body) != "null" {
		t.Errorf("config after a refused PUT: %s", body)
	}
	if resp, body := adminCallVia(t, adminClient, defaultAdmin, http.MethodPut, "/config/apps/dashboard_apps", `{"apps":{"x":{"name":"X","url":"http://x/"}}}`); resp.StatusCode != http.StatusOK {
		t.Errorf("PUT on a null config: %d %s", resp.StatusCode, body)
	}
	if _, body := adminCallVia(t, adminClient, defaultAdmin, http.MethodGet, "/config/", ""); strings.TrimSpace(body) != `{"apps":{"dashboard_apps":{"apps":{"x":{"name":"X","url":"http://x/"}}}}}` {
		t.Errorf("config after the PUT: %s", body)
	}
}

// TestAdminOverAUnixSocket: the admin endpoint may listen on a Unix socket.
func TestAdminOverAUnixSocket(t *testing.T) {
	newGateway(t)
	defer restoreGateway(t)
	dir, err := os.MkdirTemp("", "admin-sock-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "admin.sock")
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	if resp, body := adminCall(t, http.MethodPatch, "/config/admin/listen", strconv.Quote("unix/"+sock)); resp.StatusCode != http.StatusOK {
		t.Fatalf("moving the admin endpoint: %d %s", resp.StatusCode, body)
	}
	defer func() {
		if resp, body := adminCallVia(t, client, "http://localhost", http.MethodPatch, "/config/admin/listen", `"localhost:2999"`); resp.StatusCode != http.StatusOK {
			t.Fatalf("moving the admin endpoint back: %d %s", resp.StatusCode, body)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp, body := adminCallVia(t, client, "http://localhost", http.MethodPut, appsAdminPath+"sock", `{"name":"S","url":"ftp://x/"}`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `app \"sock\": url \"ftp://x/\"`) {
		t.Errorf("invalid PUT over the socket: %d %s", resp.StatusCode, body)
	}
	if resp, body := adminCallVia(t, client, "http://localhost", http.MethodPut, appsAdminPath+"sock", fmt.Sprintf(`{"name":"S","url":%q}`, appServer.URL+"/")); resp.StatusCode != http.StatusOK {
		t.Errorf("PUT over the socket: %d %s", resp.StatusCode, body)
	}
	servesEcho(t, "sock", "/echo")
}

// TestAdminRoutesNeedMethodPatterns: the routes are method patterns,
// which net/http's mux reads as such in this build.
func TestAdminRoutesNeedMethodPatterns(t *testing.T) {
	if !muxHasMethodPatterns() {
		t.Fatal("http.ServeMux ignores method patterns (GODEBUG httpmuxgo121=1?)")
	}
	for _, r := range (adminValidator{}).Routes() {
		if method, _, _ := strings.Cut(r.Pattern, " "); method == http.MethodGet || method == http.MethodHead || !strings.Contains(r.Pattern, " ") {
			t.Errorf("route %q would take reads from Caddy's own handler", r.Pattern)
		}
	}
}

// TestAdminGivesUpAfterRepeatedConflicts: a change that another change
// overtakes every time is refused with 503, nothing changed, after a
// bounded number of attempts. (Caddy here is a stand-in whose config
// always changes between a read and a write.)
func TestAdminGivesUpAfterRepeatedConflicts(t *testing.T) {
	var reads, writes int
	caddyAPI := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/config/apps":
			reads++
			w.Header().Set("Etag", fmt.Sprintf(`"/config/apps %x"`, reads))
			io.WriteString(w, `{"dashboard_apps":{"apps":{}}}`)
		case r.Method == http.MethodPost && r.URL.Path == "/config/apps":
			writes++
			if want := fmt.Sprintf(`"/config/apps %x"`, reads); r.Header.Get("If-Match") != want {
				t.Errorf("write %d: If-Match %q, want %q", writes, r.Header.Get("If-Match"), want)
			}
			w.WriteHeader(http.StatusPreconditionFailed)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
	})
	ctx := context.WithValue(context.Background(), http.ServerContextKey, &http.Server{Handler: caddyAPI})
	req := httptest.NewRequestWithContext(ctx, http.MethodPut, appsAdminPath+"x", strings.NewReader(`{"name":"X","url":"http://x/"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	err := handleAppsChange(rec, req)
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("got %v (%#v), Retry-After %q; want a 503 with Retry-After", err, apiErr, rec.Header().Get("Retry-After"))
	}
	if reads != writeAttempts || writes != writeAttempts {
		t.Errorf("%d reads and %d writes, want %d of each", reads, writes, writeAttempts)
	}
}
