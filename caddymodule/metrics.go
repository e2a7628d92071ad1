package caddymodule

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// gatewayMetrics are the gateway's Prometheus metrics. They are created
// once per process and registered in each config's registry, as Caddy's
// own handlers do, so counters keep counting across reloads.
type gatewayMetrics struct {
	cacheHits       prometheus.Counter
	cacheMisses     prometheus.Counter
	evictions       prometheus.Counter
	helpdeskLatency prometheus.Histogram
	proxied         *prometheus.CounterVec
}

var (
	metricsOnce sync.Once
	theMetrics  *gatewayMetrics
)

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
	}
}

// registerMetrics registers the metrics in a config's registry.
func registerMetrics(reg *prometheus.Registry) (*gatewayMetrics, error) {
	metricsOnce.Do(func() { theMetrics = newMetrics() })
	if reg == nil {
		return theMetrics, nil
	}
	m := theMetrics
	for _, c := range []prometheus.Collector{m.cacheHits, m.cacheMisses, m.evictions, m.helpdeskLatency, m.proxied} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
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
