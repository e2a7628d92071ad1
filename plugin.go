// Package dashboardapps plugs the dashboard apps gateway into Caddy:
// importing it registers the dashboard_apps app, the
// http.handlers.dashboard_apps handler and the admin.api.dashboard_apps
// route. xcaddy imports it for
// `xcaddy build --with github.com/ndoto/caddy-dashboard-apps`.
package dashboardapps

import (
	_ "github.com/ndoto/caddy-dashboard-apps/caddymodule"
)
