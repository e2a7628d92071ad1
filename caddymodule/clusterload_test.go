//go:build linux

package caddymodule

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClusterLoad measures context requests per second with eviction
// traffic, against one instance and across two (through the load
// balancer, and spread by the client), on the cluster set-up of
// TestCluster. It is a measurement, not a check: it runs only with
// DASHBOARD_APPS_CLUSTER_LOAD=1 (runs per case: DASHBOARD_APPS_LOAD_RUNS,
// default 5; seconds per run: DASHBOARD_APPS_LOAD_SECONDS, default 3).
//
//	DASHBOARD_APPS_CLUSTER_LOAD=1 go test -run TestClusterLoad -v ./caddymodule/
func TestClusterLoad(t *testing.T) {
	if os.Getenv("DASHBOARD_APPS_CLUSTER_LOAD") != "1" {
		t.Skip("a measurement: set DASHBOARD_APPS_CLUSTER_LOAD=1")
	}
	runs := envInt("DASHBOARD_APPS_LOAD_RUNS", 5)
	seconds := envInt("DASHBOARD_APPS_LOAD_SECONDS", 3)
	const (
		workers       = 32  // concurrent clients, keep-alive
		conversations = 200 // spread of the requests
		hooksPerSec   = 50  // eviction traffic: a conversation (and its contact) each
	)
	redisBin := requireRedis(t)
	bin := buildCaddy(t, t.TempDir())
	c := startCluster(t, bin, redisBin)
	if _, ok := waitUntil(5*time.Second, func() bool { return c.redisUp(t, c.a) == 1 && c.redisUp(t, c.b) == 1 }); !ok {
		t.Fatal("the instances are not connected to Redis")
	}
	// The balancer in front of one instance alone: what the balancer's hop
	// costs.
	lb1 := startCaddy(t, bin, t.TempDir(), "balancer-of-one", fmt.Sprintf(balancerConfig, t.TempDir(),
		fmt.Sprintf("127.0.0.1:%d", c.a.port), fmt.Sprintf("127.0.0.1:%d", c.a.port)))
	cases := []struct {
		name         string
		targets      []*gateway // context requests, in turn
		hookTargets  []*gateway
		withoutHooks bool
	}{
		{name: "one instance", targets: []*gateway{c.a}, hookTargets: []*gateway{c.a}},
		{name: "one instance behind the balancer", targets: []*gateway{lb1}, hookTargets: []*gateway{lb1}},
		{name: "two instances behind the balancer", targets: []*gateway{c.lb}, hookTargets: []*gateway{c.lb}},
		{name: "two instances, requests spread by the client", targets: []*gateway{c.a, c.b}, hookTargets: []*gateway{c.a, c.b}},
		{name: "one instance, no webhooks", targets: []*gateway{c.a}, withoutHooks: true},
		{name: "two instances behind the balancer, no webhooks", targets: []*gateway{c.lb}, withoutHooks: true},
	}
	t.Logf("%d workers, conversations 1..%d, %d webhooks/s, %d runs of %d s per case (medians)", workers, conversations, hooksPerSec, runs, seconds)
	loadRun(c, []*gateway{c.lb, c.a, c.b, lb1}, nil, time.Second, workers, conversations, hooksPerSec, true) // warm-up
	// Cases take turns, run by run, so that each sees the same moments of
	// a machine whose speed drifts.
	type series struct{ rates, p50s, p99s, hitRates []float64 }
	results := make([]series, len(cases))
	for range runs {
		for i, tc := range cases {
			r := loadRun(c, tc.targets, tc.hookTargets, time.Duration(seconds)*time.Second, workers, conversations, hooksPerSec, tc.withoutHooks)
			if r.errors > 0 {
				t.Errorf("%s: %d failed requests", tc.name, r.errors)
			}
			s := &results[i]
			s.rates = append(s.rates, r.rps)
			s.p50s = append(s.p50s, r.p50.Seconds()*1000)
			s.p99s = append(s.p99s, r.p99.Seconds()*1000)
			s.hitRates = append(s.hitRates, r.hitRate*100)
		}
	}
	for i, tc := range cases {
		s := results[i]
		t.Logf("%-48s %7.0f req/s (runs %s), p50 %.2f ms, p99 %.2f ms, cache hits %.0f%%",
			tc.name, median(s.rates), formatRates(s.rates), median(s.p50s), median(s.p99s), median(s.hitRates))
	}
}

type loadResult struct {
	rps, hitRate float64
	p50, p99     time.Duration
	errors       int64
}

func loadRun(c *cluster, targets, hookTargets []*gateway, d time.Duration, workers, conversations, hooksPerSec int, withoutHooks bool) loadResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var ok, hits, errs atomic.Int64
	deadline := time.Now().Add(d)
	latencies := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := w; time.Now().Before(deadline); i++ {
				g := targets[i%len(targets)]
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/_dashboard_apps/context?account=1&conversation=%d", g.base(), 1+rng.IntN(conversations)), nil)
				req.Host = clusterHost
				req.Header.Set("X-Helpdesk-Token", clusterToken)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				latencies[w] = append(latencies[w], time.Since(start))
				if resp.StatusCode != 200 {
					errs.Add(1)
					continue
				}
				ok.Add(1)
				if resp.Header.Get(cacheHeader) == "hit" {
					hits.Add(1)
				}
			}
		})
	}
	if !withoutHooks {
		wg.Go(func() {
			tick := time.NewTicker(time.Second / time.Duration(hooksPerSec))
			defer tick.Stop()
			rng := rand.New(rand.NewPCG(99, 7))
			for i := 0; time.Now().Before(deadline); i++ {
				<-tick.C
				conv := 1 + rng.IntN(conversations)
				g := hookTargets[i%len(hookTargets)]
				body := fmt.Sprintf(`{"event": "conversation_updated", "id": %d, "account": {"id": 1}, "meta": {"sender": {"id": %d}}}`, conv, 1000+conv)
				req, _ := http.NewRequest("POST", g.base()+"/_dashboard_apps/webhook?secret="+clusterSecret, strings.NewReader(body))
				req.Host = clusterHost
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	all := slices.Concat(latencies...)
	slices.Sort(all)
	r := loadResult{rps: float64(ok.Load()) / d.Seconds(), errors: errs.Load()}
	if n := len(all); n > 0 {
		r.p50, r.p99 = all[n/2], all[n*99/100]
	}
	if ok.Load() > 0 {
		r.hitRate = float64(hits.Load()) / float64(ok.Load())
	}
	return r
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func formatRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(parts, " ")
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
