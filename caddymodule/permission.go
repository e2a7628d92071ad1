package caddymodule

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
)

func init() {
	caddy.RegisterModule(TLSPermission{})
}

// TLSPermission lets Caddy's on-demand TLS get certificates for exactly
// the origin hosts of registered apps, <id>.<app_domain>, and no other
// name under a wildcard DNS record: without a permission, anyone could
// make the gateway ask a CA for certificates for any name that resolves
// to it. Caddyfile:
//
//	{
//		on_demand_tls {
//			permission dashboard_apps
//		}
//	}
type TLSPermission struct {
	registry *App
}

// CaddyModule returns the Caddy module information.
func (TLSPermission) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.permission.dashboard_apps",
		New: func() caddy.Module { return new(TLSPermission) },
	}
}

// Provision takes the app registry of the config.
func (p *TLSPermission) Provision(ctx caddy.Context) error {
	app, err := ctx.App("dashboard_apps")
	if err != nil {
		return fmt.Errorf("tls.permission.dashboard_apps: loading the app registry: %v", err)
	}
	p.registry = app.(*App)
	return nil
}

// CertificateAllowed allows the origin host of a registered app.
func (p *TLSPermission) CertificateAllowed(_ context.Context, name string) error {
	if p.registry.servesHost(name) {
		return nil
	}
	return fmt.Errorf("%s is not the origin of a registered dashboard app", name)
}

// UnmarshalCaddyfile reads "permission dashboard_apps", which takes no
// arguments.
func (p *TLSPermission) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*TLSPermission)(nil)
	_ caddytls.OnDemandPermission = (*TLSPermission)(nil)
	_ caddyfile.Unmarshaler       = (*TLSPermission)(nil)
)
