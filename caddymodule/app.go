// Package caddymodule is the dashboard apps gateway for Caddy: the
// dashboard_apps app (the registry of apps) and the http.handlers.dashboard_apps
// handler, which serves the apps under the helpdesk's site.
package caddymodule

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the dashboard_apps app: the registry of dashboard apps and the
// settings shared by every site that serves them. Apps are keyed by id, so
// Caddy's admin API manages them at /config/apps/dashboard_apps/apps/<id>:
// PUT creates (409 if the id exists), PATCH replaces, DELETE removes, GET
// reads, each applied without a restart; an invalid change is refused and
// the running config keeps serving.
type App struct {
	// The apps, keyed by id. An id matches ^[a-z0-9][a-z0-9-]{0,62}$ and is
	// the app's path segment under the handler's prefix.
	Apps map[string]*AppConfig `json:"apps"`

	// Settings of the appContext cache.
	Context *ContextConfig `json:"context,omitempty"`

	// Redis connecting the instances of a cluster (redis:// or rediss://,
	// with user, password and db; placeholders such as {env.REDIS_URL}):
	// a webhook received by any instance evicts the cached context on
	// every instance. Without it, eviction is per instance.
	RedisURL string `json:"redis_url,omitempty"`

	// What the apps that helpdesk administrators add from the settings
	// page (account apps, kept in Caddy's storage) may reach.
	AccountApps *AccountAppsConfig `json:"account_apps,omitempty"`

	ordered  []*AppConfig
	logger   *zap.Logger
	identity *identityKey
	state    *sharedState
	stateKey string
	metrics  *gatewayMetrics
	redis    *redisLink // nil without redis_url
	redisKey string
	// The app_domain of every site that serves the apps in origin mode,
	// for the TLS permission module; added by the handlers as they are
	// provisioned.
	appDomains *domainSet
	// The account apps, from Caddy's storage (accountapps.go).
	accounts *accountStore
}

// ContextConfig configures how appContext payloads are cached.
type ContextConfig struct {
	// How long a built appContext is served from the cache before the
	// helpdesk is asked again. Default: 15s.
	TTL Duration `json:"ttl,omitempty"`

	// The cache's memory budget, as a size such as "32MiB" (4MiB to 16GiB).
	// Default: 32MiB.
	CacheSize string `json:"cache_size,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "dashboard_apps",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision takes the state the registry shares with earlier and later
// configs: the gateway's signing key (in Caddy's storage) and the context
// cache (in a caddy.UsagePool, so that a reload keeps it warm).
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.appDomains = new(domainSet)
	size := defaultCacheSize
	if c := a.Context; c != nil && c.CacheSize != "" {
		if n, err := parseCacheSize(c.CacheSize); err == nil {
			size = n
		} // else Validate refuses the config before it serves
	}
	var err error
	if a.identity, err = loadIdentityKey(ctx, ctx.Storage()); err != nil {
		return fmt.Errorf("dashboard_apps: %v", err)
	}
	if a.state, a.stateKey, err = loadState(size); err != nil {
		return fmt.Errorf("dashboard_apps: context cache: %v", err)
	}
	if a.metrics, err = loadMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("dashboard_apps: registering metrics: %v", err)
	}
	if a.RedisURL != "" {
		if opts, _, err := parseRedisURL(a.RedisURL); err == nil { // else Validate refuses the config
			if a.redis, a.redisKey, err = loadLink(opts); err != nil {
				return fmt.Errorf("dashboard_apps: redis_url: %v", err)
			}
			a.redis.attach(a.state)
			if err := registerRedisUp(ctx.GetMetricsRegistry(), a.redis.connected); err != nil {
				return fmt.Errorf("dashboard_apps: registering metrics: %v", err)
			}
		}
	}
	if err := a.provisionAccountApps(ctx); err != nil {
		return fmt.Errorf("dashboard_apps: %v", err)
	}
	return nil
}

// Validate checks the whole registry and puts the apps in tab order; each
// app's derived settings (its parsed URL, its secret with placeholders
// replaced) are filled in as it passes. Every error names the app, the
// field and the value. The admin API runs it on proposed changes too.
func (a *App) Validate() error {
	var err error
	if a.ordered, err = validateApps(a.Apps); err != nil {
		return fmt.Errorf("dashboard_apps: %v", err)
	}
	if _, err := newNetPolicy(a.AccountApps); err != nil {
		return fmt.Errorf("dashboard_apps: %v", err)
	}
	if c := a.Context; c != nil {
		if c.TTL < 0 {
			return fmt.Errorf("dashboard_apps: context: ttl %q: must not be negative", time.Duration(c.TTL))
		}
		if c.CacheSize != "" {
			if _, err := parseCacheSize(c.CacheSize); err != nil {
				return fmt.Errorf("dashboard_apps: context: cache_size %q: %v", c.CacheSize, err)
			}
		}
	}
	if err := validateRedisURL(a.RedisURL); err != nil {
		return fmt.Errorf("dashboard_apps: %v", err)
	}
	if a.logger != nil {
		for _, app := range a.ordered {
			if app.TLS != nil && app.TLS.InsecureSkipVerify {
				a.logger.Warn("TLS certificate verification is off for this app: anyone on the network path to it can read and change its traffic; use tls ca_file instead",
					zap.String("app", app.id), zap.String("url", app.URL))
			}
		}
	}
	return nil
}

// Cleanup releases this config's hold on the shared state and metrics;
// the next config has taken its own by then, so they survive a reload.
func (a *App) Cleanup() error {
	if a.metrics != nil {
		states.Delete(metricsKey)
	}
	if a.redis != nil {
		a.redis.detach(a.state)
		links.Delete(a.redisKey) // closes the connection when no config uses it
	}
	if a.stateKey != "" {
		_, err := states.Delete(a.stateKey)
		return err
	}
	return nil
}

// domainSet is a set of domains that grows while a config is provisioned
// and is read at run time.
type domainSet struct {
	mu   sync.RWMutex
	list []string
}

// addAppDomain notes that a site serves the apps on origins under domain.
func (a *App) addAppDomain(domain string) {
	a.appDomains.mu.Lock()
	defer a.appDomains.mu.Unlock()
	if !slices.Contains(a.appDomains.list, domain) {
		a.appDomains.list = append(a.appDomains.list, domain)
	}
}

// servesHost reports whether host is the origin host of a registered app
// (of the config, or an account app),
// <id>.<app_domain> for the app_domain of a site in origin mode.
func (a *App) servesHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	id, domain, ok := strings.Cut(host, ".")
	if !ok {
		return false
	}
	if _, ok := a.Apps[id]; !ok && !a.hasAccountApp(id) {
		return false
	}
	a.appDomains.mu.RLock()
	defer a.appDomains.mu.RUnlock()
	return slices.Contains(a.appDomains.list, domain)
}

const (
	defaultTTL       = 15 * time.Second
	defaultCacheSize = 32 << 20
)

// ttl is the effective context TTL.
func (a *App) ttl() time.Duration {
	if a.Context == nil || a.Context.TTL == 0 {
		return defaultTTL
	}
	return time.Duration(a.Context.TTL)
}

// Start implements caddy.App: it connects to the cluster's Redis, if
// any (once: the connection outlives reloads).
func (a *App) Start() error {
	if a.redis != nil {
		a.redis.start()
	}
	return nil
}

// Stop implements caddy.App.
func (a *App) Stop() error { return nil }

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
