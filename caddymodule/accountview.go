package caddymodule

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// accountProxies are a handler's proxies of the account apps, built the
// way the config apps' are (newAppProxy, Caddy's reverse_proxy loaded with
// LoadModuleByID), so that identity, public, roles, inboxes, origin mode
// and tokens work for them unchanged. They follow the account store: when
// its snapshot moves on, the next lookup builds the proxies of new and
// changed apps and releases those of removed and replaced ones.
type accountProxies struct {
	store *accountStore
	ctx   caddy.Context // the handler's, whose config the proxies belong to
	view  atomic.Pointer[accountView]

	mu     sync.Mutex // serializes rebuilds
	built  map[*AppConfig]*accountProxy
	closed bool // the handler is cleaned up: build nothing more
}

// accountView is what a handler serves: the account apps by id, and
// every app, config and account, in tab order.
type accountView struct {
	gen     uint64
	apps    map[string]*appProxy
	ordered []*appProxy
}

// accountProxy is one account app's proxy and what releases it.
type accountProxy struct {
	p       *appProxy
	release func()
	done    <-chan struct{} // closed once released
}

// accountView returns the handler's current view of the apps, rebuilding
// it when the account store has moved on.
func (h *Handler) accountView() *accountView {
	a := h.accounts
	v := a.view.Load()
	if snap := a.store.snapshot(); v == nil || v.gen != snap.gen {
		return a.rebuild(h, snap)
	}
	return v
}

// rebuild builds the view of snap, reusing the proxies of the apps that
// did not change.
func (a *accountProxies) rebuild(h *Handler, snap *accountSnapshot) *accountView {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v := a.view.Load(); v != nil && (v.gen == snap.gen || a.closed) {
		return v
	}
	if a.closed { // cleaned up before it ever built a view
		v := &accountView{ordered: h.ordered}
		a.view.Store(v)
		return v
	}
	built := make(map[*AppConfig]*accountProxy, len(snap.byID))
	v := &accountView{gen: snap.gen, apps: make(map[string]*appProxy, len(snap.byID))}
	for id, app := range snap.byID {
		if _, shadowed := h.apps[id]; shadowed {
			h.logger.Warn("an account app has the id of an app of the config, which is served instead; the account's administrators can remove it and add it again under another name",
				zap.String("app", id), zap.Int64("account", app.account))
			continue
		}
		ap, ok := a.built[app.cfg]
		if !ok {
			var err error
			if ap, err = a.build(h, app.cfg); err != nil {
				h.logger.Error("account app not served: its proxy could not be set up", zap.String("app", id),
					zap.Int64("account", app.account), zap.Error(err))
				continue
			}
		}
		built[app.cfg] = ap
		v.apps[id] = ap.p
	}
	for cfg, ap := range a.built {
		if built[cfg] != ap {
			ap.release()
		}
	}
	a.built = built
	v.ordered = make([]*appProxy, 0, len(h.ordered)+len(v.apps))
	v.ordered = append(v.ordered, h.ordered...)
	for _, p := range v.apps {
		v.ordered = append(v.ordered, p)
	}
	sort.SliceStable(v.ordered, func(i, j int) bool { return tabLess(v.ordered[i].app, v.ordered[j].app) })
	a.view.Store(v)
	return v
}

// tabLess is the registry's tab order: position, then name, then id.
func tabLess(a, b *AppConfig) bool {
	if a.Position != b.Position {
		return a.Position < b.Position
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.id < b.id
}

// build sets up an account app's proxy in a context of its own, so that
// its modules can be cleaned up when the app goes while the config stays.
// The context is made by caddy.NewContext from a copy of the handler's
// whose standard context is cancelled by release; the cancel function
// that caddy.NewContext returns is never called: it would also run the
// config's own OnCancel functions (closing its logs).
func (a *accountProxies) build(h *Handler, cfg *AppConfig) (*accountProxy, error) {
	base := a.ctx
	stdCtx, cancel := context.WithCancel(a.ctx.Context)
	base.Context = stdCtx
	ctx, _ := caddy.NewContext(base)
	p, err := h.newAppProxy(ctx, cfg)
	if err == nil {
		if err = a.store.policy.restrictDial(p); err != nil {
			cleanupProxy(p)
		}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	var once sync.Once
	return &accountProxy{p: p, done: stdCtx.Done(), release: func() {
		once.Do(func() {
			cancel()
			cleanupProxy(p)
			// Requests still under way give their connections back
			// to the pool when done: close those too.
			time.AfterFunc(30*time.Second, p.closeIdle)
		})
	}}, nil
}

// cleanupProxy cleans up an account app's reverse proxy as Caddy does the
// config's when it is unloaded: its upstreams leave the pool, its
// WebSocket and streaming connections are closed, and its idle ones.
func cleanupProxy(p *appProxy) {
	p.proxy.Cleanup()
	p.closeIdle()
}

// closeAll releases every account app's proxy, when the handler is
// cleaned up; later lookups serve the last view and build nothing.
func (a *accountProxies) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, ap := range a.built {
		ap.release()
	}
	a.built = nil
}
