package caddymodule

import (
	"errors"

	"github.com/caddyserver/caddy/v2"

	"github.com/prometheus/client_golang/prometheus"
)

// gatewayMetrics are the gateway's Prometheus metrics. They live in the
// same caddy.UsagePool as the context cache, under a fixed key, and are
// registered in each config's registry, so counters keep counting across
// reloads.
type gatewayMetrics struct {
	cacheHits       prometheus.Counter
	cacheMisses     prometheus.Counter
	evictions       prometheus.Counter
	helpdeskLatency prometheus.Histogram
	proxied         *prometheus.CounterVec
	escapes         *prometheus.CounterVec
}

// Destruct implements caddy.Destructor; metrics hold nothing but memory.
func (*gatewayMetrics) Destruct() error { return nil }

const metricsKey = "dashboard_apps.metrics"

const metricsNamespace = "caddy_dashboard_apps"

func newMetrics() *gatewayMetrics {
	return &gatewayMetrics{
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "context_cache_hits_total",
			Help: "appContext requests answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "context_cache_misses_total",
			Help: "appContext requests that needed the helpdesk API.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "context_cache_evictions_total",
			Help: "Webhook events that evicted cached contexts.",
		}),
		helpdeskLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "helpdesk_api_duration_seconds",
			Help:    "Latency of the helpdesk API calls made for appContext and agent checks.",
			Buckets: prometheus.DefBuckets,
		}),
		proxied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "proxied_responses_total",
			Help: "Responses proxied from apps, by app and status class (1xx to 5xx; 'error' when the app could not be reached).",
		}, []string{"app", "class"}),
		escapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "path_escapes_total",
			Help: "Requests sent by an app's page in path mode that landed outside the app's prefix, by app.",
		}, []string{"app"}),
	}
}

// loadMetrics takes the process's metrics (to be released with
// states.Delete(metricsKey) at cleanup) and registers them in a config's
// registry (nil: none).
func loadMetrics(reg *prometheus.Registry) (*gatewayMetrics, error) {
	v, _, err := states.LoadOrNew(metricsKey, func() (caddy.Destructor, error) { return newMetrics(), nil })
	if err != nil {
		return nil, err
	}
	m := v.(*gatewayMetrics)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.cacheHits, m.cacheMisses, m.evictions, m.helpdeskLatency, m.proxied, m.escapes} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				states.Delete(metricsKey)
				return nil, err
			}
		}
	}
	return m, nil
}

// statusClasses counts one app's responses without a label lookup per
// request.
type statusClasses [7]prometheus.Counter

var classNames = [7]string{"error", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}

func (m *gatewayMetrics) classesFor(app string) *statusClasses {
	var c statusClasses
	for i, name := range classNames {
		c[i] = m.proxied.WithLabelValues(app, name)
	}
	return &c
}

// count records a response status; 0 means the app could not be reached.
func (c *statusClasses) count(status int) {
	i := status / 100
	if i > 5 {
		i = 6
	}
	c[i].Inc()
}

// registerRedisUp registers caddy_dashboard_apps_redis_up in a config's
// registry (nil: none), for configs with redis_url: 1 while the instance
// is subscribed to its peers' evictions, 0 while Redis cannot be reached.
func registerRedisUp(reg *prometheus.Registry, up func() bool) error {
	if reg == nil {
		return nil
	}
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "redis_up",
		Help: "1 while this instance is connected to the cluster's Redis (webhook evictions reach every instance), 0 while it is cut off (they evict on this instance only).",
	}, func() float64 {
		if up() {
			return 1
		}
		return 0
	}))
}
