// Command benchcompare measures what the dashboard apps gateway costs: it
// starts an origin, a plain Caddy reverse_proxy to it and the gateway in
// front of it, all in this process on loopback, drives load at both in
// alternation (A B A B ...), and prints the gateway/plain ratio of each
// scenario, pair by pair, with medians over the rounds.
//
//	go run ./cmd/benchcompare [-rounds 5] [-duration 2s] [-slice 250ms] [-conns 16]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/ndoto/caddy-dashboard-apps"
)

// scenario is one pair of requests: the same work through plain Caddy and
// through the gateway (at the same path unless gateway says otherwise), in
// path mode, on an app's own origin, or, as a control, through a second
// plain Caddy instead of the gateway.
type scenario struct {
	name, plain, gateway string
	mode                 mode
	want                 float64 // the ratio to reach; 0: shown for scale only
}

type mode int

const (
	pathMode mode = iota
	originMode
	// control measures plain Caddy against plain Caddy, with the requests
	// of the origin-mode rows: what a ratio moves by on its own in the
	// same run.
	control
)

func (s scenario) target() string {
	if s.want == 0 {
		return "none"
	}
	return fmt.Sprintf("≥ %.2f", s.want)
}

func main() {
	rounds := flag.Int("rounds", 5, "A/B rounds per scenario")
	slice := flag.Duration("slice", 250*time.Millisecond, "how long each side runs before the other takes over, within a round")
	duration := flag.Duration("duration", 2*time.Second, "load per run")
	conns := flag.Int("conns", 16, "concurrent connections")
	only := flag.String("only", "", "run only scenarios whose name matches this regular expression (a part of a name will do)")
	verbose := flag.Bool("v", false, "print each round's ratio")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile of the whole run to this file (go tool pprof -sample_index=alloc_objects)")
	flag.Parse()
	log.SetFlags(0)
	onlyRE, err := regexp.Compile(*only)
	if err != nil {
		log.Fatalf("-only %q: %v", *only, err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	if *memProfile != "" {
		defer writeMemProfile(*memProfile)
	}

	page, err := os.ReadFile("testdata/bench/wikipedia-go.html")
	if err != nil {
		log.Fatalf("run from the repository root: %v", err)
	}
	torture, err := os.ReadFile("testdata/golden/html/admin.in.html")
	if err != nil {
		log.Fatalf("run from the repository root: %v", err)
	}
	origin := startOrigin(page, torture)
	plainAddr, gatewayAddr, originModeAddr, plainOriginAddr := freeAddr(), freeAddr(), freeAddr(), freeAddr()
	controlAddrs := [2]string{freeAddr(), freeAddr()}
	if err := loadCaddy(origin, plainAddr, gatewayAddr, originModeAddr, plainOriginAddr, controlAddrs); err != nil {
		log.Fatal(err)
	}
	defer caddy.Stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true}}
	// Origin mode: the app "bench" on bench.apps.test, reached at
	// originModeAddr, with a session opened as the helpdesk page does.
	appSession, err := openAppSession(originModeAddr)
	if err != nil {
		log.Fatalf("opening an origin-mode session: %v", err)
	}
	targetOf := func(addr, path string) target { return target{url: "http://" + addr + path} }

	scenarios := []scenario{
		{"asset 1 MiB (app proxy)", "/dashboard-apps/bench/asset.bin", "", pathMode, 0.97},
		{"HTML 128 KB real-world page (rewritten)", "/dashboard-apps/bench/page.html", "", pathMode, 0.70},
		{"HTML 130 KB torture page (rewritten)", "/dashboard-apps/bench/torture.html", "", pathMode, 0},
		{"SPA shell (injected)", "/app/accounts/1/conversations/1", "", pathMode, 0.95},
		{"helpdesk JSON (passed)", "/api/v1/accounts/1/conversations", "", pathMode, 0.97},
		{"context, cache hit", "/_static_context", "/_dashboard_apps/context?account=1&conversation=1&app=bench", pathMode, 0.80},
		{"asset 1 MiB (origin mode)", "/asset.bin", "", originMode, 0.97},
		{"HTML 128 KB real-world page (origin mode, untouched)", "/page.html", "", originMode, 0.97},
		{"control: HTML 128 KB page, plain Caddy on both sides (origin mode requests)", "/page.html", "", control, 0},
	}
	for i := range scenarios {
		if scenarios[i].gateway == "" {
			scenarios[i].gateway = scenarios[i].plain
		}
	}
	sides := func(s scenario) (plain, gateway target) {
		plain, gateway = targetOf(plainAddr, s.plain), targetOf(gatewayAddr, s.gateway)
		if s.mode != pathMode {
			// A plain server of their own, idle and busy when the
			// origin-mode server is: a server that sat idle while another
			// was loaded measures 8-10% slower than that one for tens of
			// seconds (two plain servers do it too), which would be
			// charged to origin mode.
			//
			// Both get the same request: the app's Host and the session
			// cookie, which plain Caddy passes on and the gateway takes out.
			plain = target{url: "http://" + plainOriginAddr + s.plain, host: "bench.apps.test", cookie: appSession}
			gateway = target{url: "http://" + originModeAddr + s.gateway, host: "bench.apps.test", cookie: appSession}
			if s.mode == control {
				// Two plain servers of their own, for the same reason.
				plain.url, gateway.url = "http://"+controlAddrs[0]+s.plain, "http://"+controlAddrs[1]+s.gateway
			}
		}
		return plain, gateway
	}
	// Warm up: connections, the context cache, the profile cache.
	for _, s := range scenarios {
		plain, gateway := sides(s)
		for _, t := range []target{plain, gateway} {
			if status := fetch(client, t); status != 200 {
				log.Fatalf("warm-up %s: status %d", t.url, status)
			}
		}
	}

	fmt.Printf("benchcompare: %d rounds × %s per side in turns of %s, %d connections, GOMAXPROCS=%d, %s\n\n", *rounds, *duration, *slice, *conns, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("| scenario | plain req/s | gateway req/s | ratio (median) | target | p50 plain / gateway | p99 plain / gateway | allocs/req plain / gateway |\n")
	fmt.Printf("|---|---:|---:|---:|---|---|---|---|\n")
	failed := false
	for _, s := range scenarios {
		if !onlyRE.MatchString(s.name) {
			continue
		}
		var ratios []float64
		var plainRuns, gwRuns []result
		plain, gateway := sides(s)
		for i := 0; i < *rounds; i++ {
			p, g := driveAlternately(client, plain, gateway, *conns, *duration, *slice)
			plainRuns, gwRuns = append(plainRuns, p), append(gwRuns, g)
			ratios = append(ratios, g.rps/p.rps)
			if *verbose {
				fmt.Fprintf(os.Stderr, "%s: round %d: %.0f / %.0f req/s = %.3f\n", s.name, i+1, g.rps, p.rps, g.rps/p.rps)
			}
		}
		p, g, ratio := medianResult(plainRuns), medianResult(gwRuns), median(ratios)
		mark := ""
		if ratio < s.want {
			mark, failed = " ✗", true
		}
		fmt.Printf("| %s | %.0f | %.0f | %.2f%s | %s | %s / %s | %s / %s | %.0f / %.0f |\n",
			s.name, p.rps, g.rps, ratio, mark, s.target(), ms(p.p50), ms(g.p50), ms(p.p99), ms(g.p99), p.allocs, g.allocs)
	}
	fmt.Printf("\npeak RSS of this process (origin, both Caddy servers, load generator): %d MiB\n", peakRSS()>>20)
	if failed {
		fmt.Println("\nsome ratios are below target (✗)")
		pprof.StopCPUProfile()
		if *memProfile != "" {
			writeMemProfile(*memProfile)
		}
		caddy.Stop()
		os.Exit(1) // so that a script can tell
	}
}

// writeMemProfile writes the allocations made since the start.
func writeMemProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		log.Fatal(err)
	}
}

// result is one run's measurements.
type result struct {
	rps, allocs float64
	p50, p99    time.Duration
}

// load is what runs at one side add up to.
type load struct {
	n       int64
	elapsed time.Duration
	mallocs uint64
	lat     []time.Duration
}

// driveAlternately loads a and b for d each, taking turns every slice, so
// that both see the same moments of a machine whose speed drifts (a
// shared virtual machine's does, by tens of percent over seconds). Each
// turn starts after a garbage collection, so that neither side pays for
// the other's garbage, and which side goes first alternates.
func driveAlternately(client *http.Client, a, b target, conns int, d, slice time.Duration) (result, result) {
	var la, lb load
	turn := func(url target, s time.Duration, l *load) {
		runtime.GC()
		drive(client, url, conns, s, l)
	}
	for n, done := 0, time.Duration(0); done < d; n, done = n+1, done+slice {
		s := min(slice, d-done)
		if n%2 == 0 {
			turn(a, s, &la)
			turn(b, s, &lb)
		} else {
			turn(b, s, &lb)
			turn(a, s, &la)
		}
	}
	return la.result(), lb.result()
}

// drive keeps conns requests in flight at url for d, adding to l.
func drive(client *http.Client, url target, conns int, d time.Duration, l *load) {
	var n atomic.Int64
	lat := make([][]time.Duration, conns)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if fetch(client, url) != 200 {
					log.Fatalf("%s: bad status", url.url)
				}
				lat[i] = append(lat[i], time.Since(t0))
				n.Add(1)
			}
		}(i)
	}
	wg.Wait()
	l.elapsed += time.Since(start)
	runtime.ReadMemStats(&after)
	l.mallocs += after.Mallocs - before.Mallocs
	l.n += n.Load()
	for _, x := range lat {
		l.lat = append(l.lat, x...)
	}
}

func (l *load) result() result {
	sort.Slice(l.lat, func(i, j int) bool { return l.lat[i] < l.lat[j] })
	count := float64(l.n)
	return result{
		rps:    count / l.elapsed.Seconds(),
		allocs: float64(l.mallocs) / count,
		p50:    l.lat[len(l.lat)/2],
		p99:    l.lat[len(l.lat)*99/100],
	}
}

var discardBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// target is where one side's requests go: a URL, and the Host and
// cookie for an app's own origin.
type target struct{ url, host, cookie string }

func fetch(client *http.Client, t target) int {
	req, _ := http.NewRequest(http.MethodGet, t.url, nil)
	req.Host = t.host
	cookie := "bench_session=agent"
	if t.cookie != "" {
		cookie = t.cookie
	}
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := client.Do(req)
	if err != nil {
		log.Fatalf("%s: %v", t.url, err)
	}
	// Read in large pieces, as a browser does: io.CopyBuffer into
	// io.Discard would ignore the buffer and read 8 KiB at a time.
	bp := discardBufs.Get().(*[]byte)
	for {
		if _, err := resp.Body.Read(*bp); err != nil {
			break
		}
	}
	discardBufs.Put(bp)
	resp.Body.Close()
	return resp.StatusCode
}

// startOrigin serves the app's assets and pages and the helpdesk's pages
// and API, the same bytes to both sides.
func startOrigin(page, torture []byte) string {
	asset := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	shell := []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ndoto</title>` +
		`<link rel="stylesheet" href="/packs/css/application.css"><script src="/packs/js/application.js" defer></script>` +
		`</head><body><div id="app"></div><noscript>Ndoto needs JavaScript.</noscript></body></html>`)
	var list bytes.Buffer
	list.WriteString(`{"data":{"meta":{"all_count":20},"payload":[`)
	for i := 1; i <= 20; i++ {
		if i > 1 {
			list.WriteByte(',')
		}
		fmt.Fprintf(&list, `{"id":%d,"account_id":1,"inbox_id":1,"status":"open","meta":{"sender":{"id":%d,"name":"Contact %d","email":"c%d@example.com"}},"unread_count":0}`, i, 400+i, i, i)
	}
	list.WriteString(`]}}`)
	mux := http.NewServeMux()
	serve := func(path, ctype string, body []byte) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Write(body)
		})
	}
	serve("/asset.bin", "application/octet-stream", asset)
	serve("/page.html", "text/html; charset=utf-8", page)
	serve("/torture.html", "text/html; charset=utf-8", torture)
	serve("/app/", "text/html; charset=utf-8", shell)
	serve("/api/v1/accounts/1/conversations", "application/json", list.Bytes())
	serve("/api/v1/accounts/1/conversations/1", "application/json",
		[]byte(`{"id":1,"account_id":1,"inbox_id":1,"status":"open","meta":{"sender":{"id":401,"name":"Contact 1","email":"c1@example.com","phone_number":null}}}`))
	serve("/api/v1/profile", "application/json",
		[]byte(`{"id":7,"name":"Bench Agent","email":"agent@example.com","account_id":1,"role":"agent","accounts":[{"id":1,"role":"agent"}]}`))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, mux)
	return ln.Addr().String()
}

// contextBody is what the plain side's static respond sends for the
// context scenario: a message of the same size as the gateway's.
const contextBody = `{"event":"appContext","data":{"conversation":{"id":1,"account_id":1,"inbox_id":1,"status":"open","contact":{"id":401,"name":"Contact 1","email":"c1@example.com","phone_number":null}},"contact":{"id":401,"name":"Contact 1","email":"c1@example.com","phone_number":null},"currentAgent":{"id":7,"name":"Bench Agent","email":"agent@example.com"},"token":"` +
	`eyJhbGciOiJFZERTQSIsImtpZCI6IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAiLCJ0eXAiOiJKV1QifQ.eyJhY2NvdW50IjoxLCJhdWQiOiJiZW5jaCIsImNvbnRhY3QiOjQwMSwiY29udmVyc2F0aW9uIjoxLCJlbWFpbCI6ImFnZW50QGV4YW1wbGUuY29tIiwiZXhwIjoxNzAwMDAwMzAwLCJpYXQiOjE3MDAwMDAwMDAsIm5hbWUiOiJCZW5jaCBBZ2VudCIsInJvbGUiOiJhZ2VudCIsInN1YiI6IjcifQ.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}`

func loadCaddy(origin, plainAddr, gatewayAddr, originModeAddr, plainOriginAddr string, controlAddrs [2]string) error {
	dir, err := os.MkdirTemp("", "benchcompare-")
	if err != nil {
		return err
	}
	proxy := map[string]any{"handler": "reverse_proxy", "upstreams": []map[string]string{{"dial": origin}}}
	plainServer := func(addr string) map[string]any {
		return map[string]any{"listen": []string{addr}, "routes": []any{map[string]any{"handle": []any{proxy}}}}
	}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": dir},
		"apps": map[string]any{
			"dashboard_apps": map[string]any{
				"apps":    map[string]any{"bench": map[string]any{"name": "Bench", "url": "http://" + origin + "/"}},
				"context": map[string]any{"ttl": "1h"},
			},
			"http": map[string]any{"servers": map[string]any{
				"plain": map[string]any{
					"listen": []string{plainAddr},
					"routes": []any{
						map[string]any{
							"match":  []any{map[string]any{"path": []string{"/_static_context"}}},
							"handle": []any{map[string]any{"handler": "static_response", "body": contextBody, "headers": map[string][]string{"Content-Type": {"application/json"}, "Cache-Control": {"private, no-store"}}}},
						},
						map[string]any{
							"match":  []any{map[string]any{"path": []string{"/dashboard-apps/bench/*"}}},
							"handle": []any{map[string]any{"handler": "rewrite", "strip_path_prefix": "/dashboard-apps/bench"}, proxy},
						},
						map[string]any{"handle": []any{proxy}},
					},
				},
				"gateway": map[string]any{
					"listen": []string{gatewayAddr},
					"routes": []any{map[string]any{"handle": []any{
						map[string]any{"handler": "dashboard_apps", "helpdesk_api": "http://" + origin},
						proxy,
					}}},
				},
				"plain_origin_mode": plainServer(plainOriginAddr),
				"control_a":         plainServer(controlAddrs[0]),
				"control_b":         plainServer(controlAddrs[1]),
				"origin_mode": map[string]any{
					"listen": []string{originModeAddr},
					"routes": []any{map[string]any{"handle": []any{
						map[string]any{"handler": "dashboard_apps", "helpdesk_api": "http://" + origin, "app_domain": "apps.test"},
						proxy,
					}}},
				},
			}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return caddy.Load(b, true)
}

// openAppSession opens a session for the app "bench" on the origin-mode
// server at addr as the helpdesk page's host script does (a ticket for
// the signed-in agent, spent on the app's origin), and returns the Cookie
// header of the app's requests.
func openAppSession(addr string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/_dashboard_apps/session", strings.NewReader(`{"app":"bench"}`))
	req.Host = "apps.test"
	req.Header.Set("Origin", "http://apps.test")
	req.Header.Set("Cookie", "bench_session=agent")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer struct{ URL string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("session: status %d %v", resp.StatusCode, err)
	}
	enter, err := http.NewRequest(http.MethodGet, answer.URL, nil)
	if err != nil {
		return "", err
	}
	enter.Host, enter.URL.Host = enter.URL.Host, addr
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Do(enter)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		return c.Name + "=" + c.Value, nil
	}
	return "", fmt.Errorf("enter: status %d, no session cookie", resp.StatusCode)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// medianResult is the run with the median throughput.
func medianResult(runs []result) result {
	s := append([]result(nil), runs...)
	sort.Slice(s, func(i, j int) bool { return s[i].rps < s[j].rps })
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// peakRSS reads the process's high-water mark of resident memory.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
