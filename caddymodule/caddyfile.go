package caddymodule

import (
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("dashboard_apps", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("dashboard_apps", parseHandlerDirective)
	// Before respond and reverse_proxy, so a site needs no order or route:
	// the handler serves its own paths and wraps the helpdesk's responses.
	httpcaddyfile.RegisterDirectiveOrder("dashboard_apps", httpcaddyfile.Before, "respond")
}

// parseGlobalOption sets up the dashboard_apps app from the global option:
//
//	dashboard_apps {
//		app <id> <name> <url> {
//			accounts <ids...>
//			position <n>
//			base_path <path>
//			message_format auto|object|json_string
//			context_messages
//			timeout <duration>
//			tls_ca_file <file>
//			tls_server_name <name>
//			tls_insecure_skip_verify
//			public
//			identity
//			identity_secret <secret>
//			inboxes <ids...>
//			roles agent|administrator...
//		}
//		context_ttl <duration>
//		cache_size <size>
//		redis_url <url>
//		account_apps {
//			allow_networks <cidrs...>
//		}
//	}
//
// The option may appear once.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("dashboard_apps: the global option may appear only once")
	}
	app := &App{Apps: map[string]*AppConfig{}}
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "dashboard_apps", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the dashboard_apps global option; see
// parseGlobalOption for its syntax.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "app":
			var id string
			cfg := new(AppConfig)
			if !d.Args(&id, &cfg.Name, &cfg.URL) {
				return d.Err("app needs an id, a name and a URL: app <id> <name> <url>")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if _, dup := a.Apps[id]; dup {
				return d.Errf("app %q is defined twice", id)
			}
			if err := cfg.unmarshalBlock(d); err != nil {
				return err
			}
			a.Apps[id] = cfg
		case "context_ttl":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("context_ttl %q: %v", v, err)
			}
			a.context().TTL = Duration(dur)
		case "cache_size":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			if _, err := parseCacheSize(v); err != nil {
				return d.Errf("cache_size %q: %v", v, err)
			}
			a.context().CacheSize = v
		case "redis_url":
			if !d.AllArgs(&a.RedisURL) {
				return d.ArgErr()
			}
		case "account_apps":
			if d.NextArg() {
				return d.ArgErr()
			}
			if a.AccountApps == nil {
				a.AccountApps = new(AccountAppsConfig)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "allow_networks":
					nets := d.RemainingArgs()
					if len(nets) == 0 {
						return d.ArgErr()
					}
					a.AccountApps.AllowNetworks = append(a.AccountApps.AllowNetworks, nets...)
				default:
					return d.Errf("unrecognized account_apps option %q", d.Val())
				}
			}
		default:
			return d.Errf("unrecognized dashboard_apps option %q", d.Val())
		}
	}
	return nil
}

func (a *App) context() *ContextConfig {
	if a.Context == nil {
		a.Context = new(ContextConfig)
	}
	return a.Context
}

// unmarshalBlock reads an app's optional block. Each subdirective is named
// as the JSON field it sets.
func (a *AppConfig) unmarshalBlock(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch field := d.Val(); field {
		case "accounts":
			ids, err := intArgs(d, field)
			if err != nil {
				return err
			}
			a.Accounts = append(a.Accounts, ids...)
		case "position":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return d.Errf("position %q: not an integer", v)
			}
			a.Position = n
		case "base_path":
			if !d.AllArgs(&a.BasePath) {
				return d.ArgErr()
			}
		case "message_format":
			if !d.AllArgs(&a.MessageFormat) {
				return d.ArgErr()
			}
		case "context_messages":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.ContextMessages = true
		case "timeout":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("timeout %q: %v", v, err)
			}
			a.Timeout = Duration(dur)
		case "tls_ca_file":
			if !d.AllArgs(&a.tls().CAFile) {
				return d.ArgErr()
			}
		case "tls_server_name":
			if !d.AllArgs(&a.tls().ServerName) {
				return d.ArgErr()
			}
		case "tls_insecure_skip_verify":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.tls().InsecureSkipVerify = true
		case "public":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.Public = true
		case "identity":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.Identity = true
		case "identity_secret":
			if !d.AllArgs(&a.IdentitySecret) {
				return d.ArgErr()
			}
		case "inboxes":
			ids, err := intArgs(d, field)
			if err != nil {
				return err
			}
			a.Inboxes = append(a.Inboxes, ids...)
		case "roles":
			roles := d.RemainingArgs()
			if len(roles) == 0 {
				return d.ArgErr()
			}
			a.Roles = append(a.Roles, roles...)
		default:
			return d.Errf("unrecognized app option %q", field)
		}
	}
	return nil
}

func (a *AppConfig) tls() *AppTLS {
	if a.TLS == nil {
		a.TLS = new(AppTLS)
	}
	return a.TLS
}

func intArgs(d *caddyfile.Dispenser, field string) ([]int, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	ids := make([]int, len(args))
	for i, s := range args {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, d.Errf("%s %q: not an integer", field, s)
		}
		ids[i] = n
	}
	return ids, nil
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	dashboard_apps {
//		helpdesk_api <url>
//		prefix <path>
//		inject <paths...>
//		conversation_route <pattern>
//		sidebar_selector <css>
//		forward_headers <names...>
//		session_cookie <name>
//		webhook_secret <secret>
//		app_domain <domain>
//		helpdesk_origin <origin>
//		session_lifetime <duration>
//	}
//
// The apps themselves are configured in the dashboard_apps global option.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch field := d.Val(); field {
		case "helpdesk_api":
			if !d.AllArgs(&h.HelpdeskAPI) {
				return d.ArgErr()
			}
		case "prefix":
			if !d.AllArgs(&h.Prefix) {
				return d.ArgErr()
			}
		case "inject":
			if h.Inject = d.RemainingArgs(); len(h.Inject) == 0 {
				return d.ArgErr()
			}
		case "conversation_route":
			if !d.AllArgs(&h.ConversationRoute) {
				return d.ArgErr()
			}
		case "sidebar_selector":
			if !d.AllArgs(&h.SidebarSelector) {
				return d.ArgErr()
			}
		case "forward_headers":
			if h.ForwardHeaders = d.RemainingArgs(); len(h.ForwardHeaders) == 0 {
				return d.ArgErr()
			}
		case "session_cookie":
			if !d.AllArgs(&h.SessionCookie) {
				return d.ArgErr()
			}
		case "webhook_secret":
			if !d.AllArgs(&h.WebhookSecret) {
				return d.ArgErr()
			}
		case "app_domain":
			if !d.AllArgs(&h.AppDomain) {
				return d.ArgErr()
			}
		case "helpdesk_origin":
			if !d.AllArgs(&h.HelpdeskOrigin) {
				return d.ArgErr()
			}
		case "session_lifetime":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("session_lifetime %q: %v", v, err)
			}
			h.SessionLifetime = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized dashboard_apps option %q", field)
		}
	}
	return nil
}

// parseCacheSize reads a cache size such as "32MiB".
func parseCacheSize(s string) (int, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("not a size such as 32MiB: %v", err)
	}
	if n < minCacheSize || n > maxCacheSize {
		return 0, fmt.Errorf("must be between 4MiB and 16GiB")
	}
	return int(n), nil
}

// The cache's size limits: freecache keeps no entry larger than 1/1024 of
// the cache, and a signed appContext is about 1KiB; 16GiB is far beyond
// what any helpdesk's open conversations need.
const (
	minCacheSize = 4 << 20
	maxCacheSize = 16 << 30
)

// Interface guard.
var _ caddyfile.Unmarshaler = (*App)(nil)
