// Command caddy is Caddy with its standard modules plus the dashboard apps
// gateway, the same binary that
// `xcaddy build --with github.com/ndoto/caddy-dashboard-apps` produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/ndoto/caddy-dashboard-apps"
)

func main() {
	caddycmd.Main()
}
