package caddymodule

import (
	"net/http"
	"strings"
	"testing"
)

// TestMetricsInCaddysRegistry: the gateway's metrics appear on Caddy's
// admin /metrics endpoint and count what happened.
func TestMetricsInCaddysRegistry(t *testing.T) {
	tester := newGateway(t)
	get(t, tester, "/dashboard-apps/orders/asset.bin")
	get(t, tester, "/dashboard-apps/down/")
	get(t, tester, "/_dashboard_apps/context?account=1&conversation=123")
	get(t, tester, "/_dashboard_apps/context?account=1&conversation=123")
	_, body, err := adminRequest(http.MethodGet, "/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`caddy_dashboard_apps_proxied_responses_total{app="orders",class="2xx"}`,
		`caddy_dashboard_apps_proxied_responses_total{app="down",class="error"}`,
		`caddy_dashboard_apps_context_cache_hits_total`,
		`caddy_dashboard_apps_context_cache_misses_total`,
		`caddy_dashboard_apps_helpdesk_api_duration_seconds_count`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
