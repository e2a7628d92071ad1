package caddymodule

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
)

// AppConfig is one dashboard app: a web app shown as a tab beside the
// helpdesk's conversations and reverse-proxied under the helpdesk's site.
// Its id is its key in the registry.
type AppConfig struct {
	// The tab label, 1 to 64 characters, without control characters, line
	// or paragraph separators, or bidirectional formatting characters
	// (U+202E and its kin, which make a label read as another). Required.
	Name string `json:"name"`

	// The app's entry page: an absolute http or https URL, with a host, a
	// port 1 to 65535 if any, without userinfo or fragment, and without "."
	// or ".." segments in any encoding. It may name a file and carry a
	// query (http://db.internal/adminer/sqlite.php?sqlite=): the app's tab
	// opens exactly that page. Its directory, the path up to the last "/"
	// (before the first template variable), is the app's base path
	// upstream unless base_path says otherwise: every request under the
	// app's proxied prefix is joined under it, and never leaves it. The
	// path after the base path, and the query, may hold template
	// variables, such as {contact.id}, which the helpdesk page fills from
	// the open conversation (see templateVars). Required.
	URL string `json:"url"`

	// The app's base path upstream, when it is not the directory of url:
	// an absolute path ending in "/" that is a prefix of url's path, for
	// apps whose pages reach above their entry page's directory (an app at
	// /transmission/web/ that calls ../rpc: base_path /transmission/).
	BasePath string `json:"base_path,omitempty"`

	// The helpdesk account ids in which the app is shown. Empty means every
	// account.
	Accounts []int `json:"accounts,omitempty"`

	// Tab order: apps are sorted by position, then by name, then by id.
	Position int `json:"position,omitempty"`

	// How appContext messages are posted to the app's iframe: "auto" (the
	// default: both forms, on load and on every change, until the app asks
	// with one, then only that form), "object" (a structured-clone object,
	// as in the helpdesk's documentation) or "json_string" (the same
	// message JSON.stringify-ed, as Chatwoot posts it).
	MessageFormat string `json:"message_format,omitempty"`

	// Put the conversation's messages (messages and
	// last_non_activity_message, as the helpdesk gives them) in the app's
	// appContext. Off by default: an app sees what an agent reads only
	// when it asks for it.
	ContextMessages bool `json:"context_messages,omitempty"`

	// How long to wait for the app's response headers before giving up and
	// showing the timeout page in the app's tab. Default: 30s.
	Timeout Duration `json:"timeout,omitempty"`

	// TLS settings for an https app with a private CA or a certificate that
	// names another host.
	TLS *AppTLS `json:"tls,omitempty"`

	// Serve the app to anyone who can reach the helpdesk's site. By default
	// every request to the app needs the credentials of a signed-in agent
	// (checked against the helpdesk's profile endpoint); turn this on only
	// for apps that hold nothing an outsider may not see, or that do their
	// own authentication.
	Public bool `json:"public,omitempty"`

	// Send the app the verified agent: X-Dashboard-Agent-Id, -Email, -Name,
	// -Role, X-Dashboard-Account-Id, and X-Dashboard-Agent-Assertion, a
	// short-lived signed JWT the app's backend can verify. Client-sent
	// X-Dashboard-* headers never reach any app, with or without this.
	Identity bool `json:"identity,omitempty"`

	// The HS256 secret (at least 32 characters) the app's assertions and
	// appContext tokens are signed with. Without it they are signed with the
	// gateway's Ed25519 key, published at /_dashboard_apps/jwks.json.
	IdentitySecret string `json:"identity_secret,omitempty"`

	// The inbox ids whose conversations show the app's tab. Empty means
	// every inbox.
	Inboxes []int `json:"inboxes,omitempty"`

	// The roles ("agent", "administrator") an agent needs, in one of the
	// app's accounts (in any account when the app has none), to see and
	// reach the app. Empty means every role.
	Roles []string `json:"roles,omitempty"`

	id       string
	upstream *url.URL // the URL's origin, with the base path as its path
	entry    string   // the entry page after the base path: escaped path and "?query", template variables kept
	vars     []string // the template variables in url, in order of appearance
	secret   string   // IdentitySecret with its placeholders replaced
}

// AppTLS configures the connection to an https app.
type AppTLS struct {
	// A PEM file of CA certificates to trust instead of the system's.
	CAFile string `json:"ca_file,omitempty"`

	// The server name to send in SNI and to verify the app's certificate
	// against, when it differs from the URL's host.
	ServerName string `json:"server_name,omitempty"`

	// Accept any certificate from the app. This turns off the protection
	// TLS gives against an attacker on the network path to the app; it is
	// logged as a warning at every config load. Use ca_file instead.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// Helpdesk roles, as Chatwoot names them.
const (
	RoleAgent         = "agent"
	RoleAdministrator = "administrator"
)

const minSecretLen = 32

// Message formats.
const (
	FormatAuto       = "auto"
	FormatObject     = "object"
	FormatJSONString = "json_string"
)

const defaultAppTimeout = Duration(30 * time.Second)

var appIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// validate checks an app and fills in its derived state. Every error names
// the app id, the field and the offending value, because it is what an
// operator sees when an admin API change or a config load is refused.
func (a *AppConfig) validate(id string) error {
	if !appIDPattern.MatchString(id) {
		return fmt.Errorf("app %q: id must match %s (lower-case letters, digits and '-', at most 63 characters)", id, appIDPattern)
	}
	fail := func(field string, value any, why string) error {
		return &fieldError{msg: fmt.Sprintf("app %q: %s %#v: %s", id, field, value, why), Field: field, Why: why}
	}
	if n := utf8.RuneCountInString(a.Name); n < 1 || n > 64 || strings.TrimSpace(a.Name) == "" {
		return fail("name", a.Name, "must be 1 to 64 characters and not blank")
	}
	if !utf8.ValidString(a.Name) {
		return fail("name", a.Name, "must be valid UTF-8")
	}
	if r, ok := spoofingRune(a.Name); ok {
		return fail("name", a.Name, fmt.Sprintf("must not contain control, line-separator or bidirectional-formatting characters (has %U)", r))
	}
	if field, err := a.parseURL(); err != nil {
		if field == "base_path" {
			return fail(field, a.BasePath, err.Error())
		}
		return fail(field, a.URL, err.Error())
	}
	u := a.upstream
	for _, acc := range a.Accounts {
		if acc <= 0 {
			return fail("accounts", a.Accounts, fmt.Sprintf("account ids are positive integers, not %d", acc))
		}
	}
	for _, inbox := range a.Inboxes {
		if inbox <= 0 {
			return fail("inboxes", a.Inboxes, fmt.Sprintf("inbox ids are positive integers, not %d", inbox))
		}
	}
	for _, role := range a.Roles {
		if role != RoleAgent && role != RoleAdministrator {
			return fail("roles", a.Roles, fmt.Sprintf(`roles are "agent" or "administrator", not %q`, role))
		}
	}
	if a.IdentitySecret != "" {
		// Placeholders such as {env.CRM_SECRET} keep secrets out of configs.
		secret, err := caddy.NewReplacer().ReplaceOrErr(a.IdentitySecret, true, true)
		switch {
		case err != nil:
			return fail("identity_secret", a.IdentitySecret, err.Error())
		case secret == "":
			return fail("identity_secret", a.IdentitySecret, "is empty once its placeholders are replaced (is the environment variable set?)")
		case len(secret) < minSecretLen:
			return fail("identity_secret", "(hidden)", fmt.Sprintf("must be at least %d characters: HS256 is only as strong as its secret", minSecretLen))
		}
		a.secret = secret
	}
	switch a.MessageFormat {
	case "", FormatAuto, FormatObject, FormatJSONString:
	default:
		return fail("message_format", a.MessageFormat, `must be "auto", "object" or "json_string"`)
	}
	if a.Timeout < 0 {
		return fail("timeout", time.Duration(a.Timeout).String(), "must not be negative")
	}
	if a.TLS != nil && u.Scheme != "https" {
		return fail("tls", a.URL, "TLS settings apply only to https apps")
	}
	a.id = id
	return nil
}

// fieldError is a validation error of one field of an app: its message
// names the app, the field and the value; Field and Why let the settings
// page put the reason next to the field.
type fieldError struct {
	msg        string
	Field, Why string
}

func (e *fieldError) Error() string { return e.msg }

func parseAppURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("is not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("must be an absolute http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("must have a host")
	case u.User != nil:
		return nil, fmt.Errorf("must not carry userinfo (credentials in the URL would be sent to every request)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("must not have a fragment")
	case u.Opaque != "":
		return nil, fmt.Errorf("must be hierarchical (scheme://host/path)")
	}
	// url.Parse takes only digits for a port, but any number of them, and
	// an empty one after the colon.
	if strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("port must be 1 to 65535")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port must be 1 to 65535")
		}
	}
	if dotSegment(u.EscapedPath()) {
		return nil, fmt.Errorf(`path must not have "." or ".." segments, in any encoding`)
	}
	return u, nil
}

// spoofingRune returns the first rune of s that makes a tab label lie
// about itself: a control character (Unicode Cc: C0, DEL, C1), a line or
// paragraph separator (a line break in a label, and in pre-ES2019 script
// source), or a bidirectional formatting character (Unicode's Bidi_Control:
// U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), which
// reorders the text around it. Other format characters, such as the
// zero-width joiner that emoji sequences need, are allowed.
func spoofingRune(s string) (rune, bool) {
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Zl, unicode.Zp, unicode.Bidi_Control) {
			return r, true
		}
	}
	return 0, false
}

// dotSegment reports whether an escaped URL path has a "." or ".."
// segment as some server could read it: decoded once or more ("%2e%2e",
// "%252e%252e"), split on "/" and on "\" also once decoded ("a%2f..%2fb"),
// and with path parameters dropped ("..;x", which Tomcat reads as "..").
// Requests are joined under the app's base path, the URL's directory; a
// URL that climbs out of itself makes that directory mean another.
func dotSegment(escaped string) bool {
	for p := escaped; ; {
		for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
			if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
				return true
			}
		}
		next, err := url.PathUnescape(p)
		if err != nil || next == p {
			return false
		}
		p = next
	}
}

// format is the effective message format.
func (a *AppConfig) format() string {
	if a.MessageFormat == "" {
		return FormatAuto
	}
	return a.MessageFormat
}

// timeout is the effective response header timeout.
func (a *AppConfig) timeout() Duration {
	if a.Timeout == 0 {
		return defaultAppTimeout
	}
	return a.Timeout
}

// allows reports whether an agent with role in account may use the app.
func (a *AppConfig) allows(account int64, role string) bool {
	return a.inAccount(int(account)) && (len(a.Roles) == 0 || slices.Contains(a.Roles, role))
}

// inAccount reports whether the app is shown in account.
func (a *AppConfig) inAccount(account int) bool {
	return len(a.Accounts) == 0 || slices.Contains(a.Accounts, account)
}

// inInbox reports whether the app's tab shows for a conversation in inbox
// (0: unknown, which shows only apps for every inbox).
func (a *AppConfig) inInbox(inbox int) bool {
	return len(a.Inboxes) == 0 || slices.Contains(a.Inboxes, inbox)
}

// validateApps validates every app of a registry and returns them in tab
// order. Ids are visited in sorted order so that the same bad config always
// gives the same error.
func validateApps(apps map[string]*AppConfig) ([]*AppConfig, error) {
	ids := make([]string, 0, len(apps))
	for id := range apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	ordered := make([]*AppConfig, 0, len(apps))
	for _, id := range ids {
		a := apps[id]
		if a == nil {
			return nil, fmt.Errorf("app %q: has no configuration (null)", id)
		}
		if err := a.validate(id); err != nil {
			return nil, err
		}
		ordered = append(ordered, a)
	}
	sort.SliceStable(ordered, func(i, j int) bool {
		a, b := ordered[i], ordered[j]
		if a.Position != b.Position {
			return a.Position < b.Position
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.id < b.id
	})
	return ordered, nil
}
