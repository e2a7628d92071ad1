package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// Account apps are added by a helpdesk account's administrators, who are
// not the gateway's operator: the gateway connects to them only on public
// addresses, unless the operator allows more networks. Without that, an
// administrator of any account could point an app at the gateway's own
// machine or network (Caddy's admin endpoint on localhost:2019, a cloud
// metadata service on 169.254.169.254, an internal database's HTTP port)
// and have every agent's browser, or their own, reach it through the
// gateway.

// AccountAppsConfig is what the operator allows the apps that helpdesk
// administrators add from the settings page.
type AccountAppsConfig struct {
	// Networks (CIDR, or single IP addresses) that account apps may reach
	// besides public addresses, e.g. "10.0.0.0/8" for internal tools. By
	// default account apps reach only public unicast addresses: never
	// loopback, private, link-local, shared (CGNAT), multicast or reserved
	// ones. Never list the address of Caddy's admin endpoint, or anything
	// you would not expose to every administrator of every account.
	AllowNetworks []string `json:"allow_networks,omitempty"`
}

// netPolicy says which addresses account apps may reach.
type netPolicy struct {
	allowed []netip.Prefix
}

// newNetPolicy parses allow_networks; errors name the bad entry.
func newNetPolicy(cfg *AccountAppsConfig) (*netPolicy, error) {
	p := new(netPolicy)
	if cfg == nil {
		return p, nil
	}
	for _, s := range cfg.AllowNetworks {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("account_apps: allow_networks %q: not a network (CIDR such as 10.0.0.0/8) or an IP address", s)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		p.allowed = append(p.allowed, pfx.Masked())
	}
	return p, nil
}

// nonPublic are the IPv4 and IPv6 ranges netip's predicates do not cover
// that are not public unicast addresses, or that reach IPv4 addresses
// through translation (NAT64, 6to4, Teredo).
var nonPublic = func() []netip.Prefix {
	var list []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "2002::/16", "fec0::/10",
	} {
		list = append(list, netip.MustParsePrefix(s))
	}
	return list
}()

// public reports whether addr is a public unicast address.
func public(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() || addr.IsMulticast() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || !addr.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// allows reports whether an account app may reach addr.
func (p *netPolicy) allows(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	if public(addr) {
		return true
	}
	for _, pfx := range p.allowed {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// errNotAllowed is wrapped by the refusals of netPolicy.
var errNotAllowed = errors.New("not a public address")

func (p *netPolicy) refusal(addr netip.Addr) error {
	return fmt.Errorf("%w: %s is not a public address, and account apps reach other addresses only in the networks the gateway's operator allows (account_apps allow_networks)", errNotAllowed, addr)
}

// checkHost refuses, when an account app is added or changed, a URL host
// that is, or resolves to, an address the app may not reach. A name that
// does not resolve (yet) is let through: the connection is checked again
// at every dial.
func (p *netPolicy) checkHost(ctx context.Context, host string) error {
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if !p.allows(addr) {
			return p.refusal(addr)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, addr := range addrs {
		if !p.allows(addr) {
			return p.refusal(addr)
		}
	}
	return nil
}

// restrictDial makes an account app's reverse proxy connect only to
// addresses the policy allows: every connection is checked on the address
// it is made to, after name resolution, so that a name that later
// resolves elsewhere (DNS rebinding) gains nothing. The app is dialled
// directly, never through a proxy from the environment, whose address
// would be the one checked.
func (p *netPolicy) restrictDial(ap *appProxy) error {
	ht := ap.httpTransport()
	if ht == nil || ht.Transport == nil {
		return fmt.Errorf("restricting an account app's connections: unexpected transport %T", ap.proxy.Transport)
	}
	if ht.Transport.DialTLSContext != nil {
		return errors.New("restricting an account app's connections: its transport dials TLS itself")
	}
	dialer := &net.Dialer{
		Timeout: time.Duration(ht.DialTimeout),
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot read the address %q", errNotAllowed, address)
			}
			if !p.allows(ap.Addr()) {
				return p.refusal(ap.Addr())
			}
			return nil
		},
	}
	ht.Transport.Proxy = nil
	ht.Transport.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, address)
		if err != nil {
			return nil, reverseproxy.NewDialError(err)
		}
		return conn, nil
	}
	return nil
}
