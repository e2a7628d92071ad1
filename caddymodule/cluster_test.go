//go:build linux

package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/redis/go-redis/v9"
)

// The cluster test runs what an operator runs: a real redis-server, two
// gateway instances sharing a storage directory, and a Caddy load balancer
// in front, each a process of the custom Caddy (Caddy is a singleton per
// process, and this package's other tests use the in-process one), all on
// loopback ports picked at random, with a fake helpdesk API served by the
// test itself.

const (
	clusterHost     = "helpdesk.localhost"
	clusterAppHost  = "orders.helpdesk.localhost"
	clusterToken    = "token-a"
	clusterSecret   = "hook-secret"
	clusterRedisPwd = "cluster-pa55"
	clusterRedisDB  = 2
)

// requireRedis returns the path of redis-server. Without it the test is
// skipped, except in CI (CI=true), where it is required.
func requireRedis(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required in CI: apt-get install -y redis-server")
		}
		t.Skip("cluster test skipped: no redis-server on PATH (apt-get install -y redis-server)")
	}
	return path
}

// buildCaddy builds the custom Caddy (standard modules and this one) into
// dir, reusing Go's build cache.
func buildCaddy(t testing.TB, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the cluster test builds Caddy and needs go on PATH")
	}
	bin := filepath.Join(dir, "caddy")
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	t.Logf("built Caddy in %v", time.Since(start).Round(100*time.Millisecond))
	return bin
}

// loopbackPort is a loopback port free a moment ago.
func loopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a child process of the test, with its output in a file.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// startProcess starts bin; it is stopped at the end of owner (a test that
// may outlive t, one of its subtests).
func startProcess(t, owner testing.TB, name, logPath string, env []string, bin string, args ...string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Killed with the test process too, should it die before its cleanups
	// (a timeout's panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	owner.Cleanup(p.stop)
	return p
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// waitUntil polls cond every 10 ms for up to within, and says how long it
// took.
func waitUntil(within time.Duration, cond func() bool) (time.Duration, bool) {
	return pollUntil(within, 10*time.Millisecond, cond)
}

func pollUntil(within, every time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(every)
	}
}

// redisServer is a redis-server on a loopback port, with a password.
type redisServer struct {
	owner    testing.TB // the test it lives as long as
	bin, dir string
	port     int
	proc     *process
	starts   int
}

func (r *redisServer) url() string {
	return fmt.Sprintf("redis://default:%s@127.0.0.1:%d/%d", clusterRedisPwd, r.port, clusterRedisDB)
}

func (r *redisServer) start(t testing.TB) {
	t.Helper()
	r.starts++
	r.proc = startProcess(t, r.owner, "redis", filepath.Join(r.dir, fmt.Sprintf("redis-%d.log", r.starts)), nil, r.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--requirepass", clusterRedisPwd,
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no")
	if _, ok := waitUntil(10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(c, "AUTH %s\r\nPING\r\n", clusterRedisPwd)
		rd := bufio.NewReader(c)
		rd.ReadString('\n')
		line, _ := rd.ReadString('\n')
		return strings.HasPrefix(line, "+PONG")
	}); !ok {
		t.Fatalf("redis-server did not start:\n%s", r.proc.tail())
	}
}

// gateway is a Caddy process: an instance or the load balancer.
type gateway struct {
	*process
	name       string
	port, admi int
}

func (g *gateway) base() string  { return fmt.Sprintf("http://127.0.0.1:%d", g.port) }
func (g *gateway) admin() string { return fmt.Sprintf("http://127.0.0.1:%d", g.admi) }

func startCaddy(t testing.TB, bin, dir, name, config string, env ...string) *gateway {
	t.Helper()
	g := &gateway{name: name, port: loopbackPort(t), admi: loopbackPort(t)}
	config = strings.NewReplacer("ADMIN_PORT", strconv.Itoa(g.admi), "HTTP_PORT", strconv.Itoa(g.port)).Replace(config)
	home := filepath.Join(dir, name)
	os.MkdirAll(home, 0o755)
	cfg := filepath.Join(home, "caddy.json")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(env, "XDG_DATA_HOME="+home+"/data", "XDG_CONFIG_HOME="+home+"/config", "HOME="+home)
	g.process = startProcess(t, t, name, filepath.Join(home, "caddy.log"), env, bin, "run", "--config", cfg)
	if _, ok := waitUntil(30*time.Second, func() bool {
		if !g.running() {
			return true
		}
		resp, err := http.Get(g.admin() + "/config/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}); !ok || !g.running() {
		t.Fatalf("%s did not start:\n%s", name, g.tail())
	}
	return g
}

// instanceConfig is a gateway instance: origin mode (for tickets), the
// cluster's Redis from the environment, storage shared with the other
// instance, a header naming the instance.
const instanceConfig = `{
	"admin": {"listen": "127.0.0.1:ADMIN_PORT"},
	"storage": {"module": "file_system", "root": %[1]q},
	"logging": {"logs": {"default": {"level": "INFO", "encoder": {"format": "json"}}}},
	"apps": {
		"dashboard_apps": {
			"apps": {"orders": {"name": "Orders", "url": %[2]q}},
			"context": {"ttl": "5m"},
			"redis_url": "{env.REDIS_URL}"
		},
		"http": {"servers": {"gateway": {
			"listen": ["127.0.0.1:HTTP_PORT"],
			"automatic_https": {"disable": true},
			"routes": [{"handle": [
				{"handler": "headers", "response": {"set": {"X-Instance": [%[3]q]}}},
				{"handler": "dashboard_apps", "helpdesk_api": %[4]q, "webhook_secret": %[5]q,
				 "forward_headers": ["X-Helpdesk-Token"], "app_domain": %[6]q},
				{"handler": "static_response", "body": "the helpdesk"}
			]}]
		}}}
	}
}`

const balancerConfig = `{
	"admin": {"listen": "127.0.0.1:ADMIN_PORT"},
	"storage": {"module": "file_system", "root": %[1]q},
	"apps": {"http": {"servers": {"balancer": {
		"listen": ["127.0.0.1:HTTP_PORT"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [{"handler": "reverse_proxy",
			"upstreams": [{"dial": %[2]q}, {"dial": %[3]q}],
			"load_balancing": {"selection_policy": {"policy": "round_robin"}}}]}]
	}}}}
}`

// clusterHelpdesk is the helpdesk API the instances call: one agent, and
// conversations whose status the test changes.
type clusterHelpdesk struct {
	*httptest.Server
	status    atomic.Pointer[string]
	convCalls atomic.Int64
}

func newClusterHelpdesk(t testing.TB) *clusterHelpdesk {
	h := &clusterHelpdesk{}
	h.setStatus("open")
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Helpdesk-Token") != clusterToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/profile" {
			io.WriteString(w, `{"id": 7, "name": "Support Agent", "email": "agent@example.com", "role": "agent", "account_id": 1, "accounts": [{"id": 1, "role": "agent"}]}`)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/accounts/1/conversations/")
		n, err := strconv.Atoi(id)
		if !ok || err != nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h.convCalls.Add(1)
		// Each conversation's contact is 1000 + its id.
		fmt.Fprintf(w, `{"id": %s, "inbox_id": 1, "status": %q, "meta": {"sender": {"id": %d, "name": "Jane Doe", "email": "jane@example.com"}}}`, id, *h.status.Load(), 1000+n)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *clusterHelpdesk) setStatus(s string) { h.status.Store(&s) }

// tcpProxy relays connections to target until it is cut: then it closes
// them, and refuses new ones until healed (a network partition between one
// instance and Redis).
type tcpProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	isCut  bool
}

func startProxy(t testing.TB, target string) *tcpProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, target: target, conns: make(map[net.Conn]struct{})}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
	t.Cleanup(func() { l.Close(); p.cut() })
	return p
}

func (p *tcpProxy) relay(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	p.mu.Lock()
	if err != nil || p.isCut {
		p.mu.Unlock()
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := func() {
		c.Close()
		up.Close()
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, up)
		p.mu.Unlock()
	}
	go func() { io.Copy(up, c); done() }()
	io.Copy(c, up)
	done()
}

func (p *tcpProxy) addr() string { return p.l.Addr().String() }

// active is the number of connections relayed now.
func (p *tcpProxy) active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *tcpProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = false
}

// cluster is the whole set-up.
type cluster struct {
	redis    *redisServer
	proxyA   *tcpProxy // between instance a and Redis
	a, b, lb *gateway
	helpdesk *clusterHelpdesk
	client   *http.Client
}

func startCluster(t testing.TB, bin, redisBin string) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{helpdesk: newClusterHelpdesk(t)}
	c.client = &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(c.client.CloseIdleConnections)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "orders app")
	}))
	t.Cleanup(app.Close)
	c.redis = &redisServer{owner: t, bin: redisBin, dir: filepath.Join(dir, "redis"), port: loopbackPort(t)}
	os.MkdirAll(c.redis.dir, 0o755)
	c.redis.start(t)
	shared := filepath.Join(dir, "shared-storage")
	c.proxyA = startProxy(t, fmt.Sprintf("127.0.0.1:%d", c.redis.port))
	envA := "REDIS_URL=" + strings.Replace(c.redis.url(), fmt.Sprintf("127.0.0.1:%d", c.redis.port), c.proxyA.addr(), 1)
	envB := "REDIS_URL=" + c.redis.url()
	c.a = startCaddy(t, bin, dir, "instance-a", fmt.Sprintf(instanceConfig, shared, app.URL+"/", "a", c.helpdesk.URL, clusterSecret, clusterHost), envA)
	c.b = startCaddy(t, bin, dir, "instance-b", fmt.Sprintf(instanceConfig, shared, app.URL+"/", "b", c.helpdesk.URL, clusterSecret, clusterHost), envB)
	c.lb = startCaddy(t, bin, dir, "balancer", fmt.Sprintf(balancerConfig, filepath.Join(dir, "balancer-storage"),
		fmt.Sprintf("127.0.0.1:%d", c.a.port), fmt.Sprintf("127.0.0.1:%d", c.b.port)))
	return c
}

// do sends a request to a gateway with the helpdesk's host name.
func (c *cluster) do(t testing.TB, g *gateway, method, host, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, g.base()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, g.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// context is the appContext of a conversation as an instance serves it:
// the conversation's status, and whether it came from the cache.
func (c *cluster) context(t testing.TB, g *gateway, conv int) (status, cache, instance string) {
	t.Helper()
	resp, body := c.do(t, g, "GET", clusterHost, fmt.Sprintf("/_dashboard_apps/context?account=1&conversation=%d", conv), "", "X-Helpdesk-Token", clusterToken)
	if resp.StatusCode != 200 {
		t.Fatalf("context of %d on %s: %d %s", conv, g.name, resp.StatusCode, body)
	}
	var msg struct {
		Data struct {
			Conversation struct {
				Status string `json:"status"`
			} `json:"conversation"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &msg); err != nil {
		t.Fatalf("context: %v: %s", err, body)
	}
	return msg.Data.Conversation.Status, resp.Header.Get(cacheHeader), resp.Header.Get("X-Instance")
}

// webhook posts conversation 123's status change (contact 1123) to g.
func (c *cluster) webhook(t testing.TB, g *gateway) {
	t.Helper()
	resp, body := c.do(t, g, "POST", clusterHost, "/_dashboard_apps/webhook?secret="+clusterSecret,
		`{"event": "conversation_status_changed", "id": 123, "account": {"id": 1}, "meta": {"sender": {"id": 1123}}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("webhook on %s: %d %s", g.name, resp.StatusCode, body)
	}
}

// redisUp is caddy_dashboard_apps_redis_up on g's admin /metrics (-1:
// absent).
func (c *cluster) redisUp(t testing.TB, g *gateway) float64 {
	t.Helper()
	resp, err := c.client.Get(g.admin() + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", g.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "caddy_dashboard_apps_redis_up "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// redisLogs counts the lines that the link logged at level in g's log.
func redisLogs(t testing.TB, g *gateway, level string) (n int, msgs []string) {
	return logLines(t, g, "dashboard_apps.redis", level)
}

// logLines counts the lines of logger ("": any) at level in g's log.
func logLines(t testing.TB, g *gateway, logger, level string) (n int, msgs []string) {
	t.Helper()
	b, err := os.ReadFile(g.log)
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var entry struct{ Level, Logger, Msg string }
		if json.Unmarshal(line, &entry) == nil && (logger == "" || entry.Logger == logger) && entry.Level == level {
			n++
			msgs = append(msgs, entry.Msg)
		}
	}
	return n, msgs
}

// expectSeen waits until every gateway serves conversation 123 with
// status, within 1 s of the webhook, and returns the slowest time.
func (c *cluster) expectSeen(t *testing.T, status, what string, gws ...*gateway) time.Duration {
	t.Helper()
	var slowest time.Duration
	for _, g := range gws {
		took, ok := pollUntil(time.Second, time.Millisecond, func() bool { s, _, _ := c.context(t, g, 123); return s == status })
		if !ok {
			t.Errorf("%s: %s still serves a context older than %q after 1 s", what, g.name, status)
		}
		slowest = max(slowest, took)
	}
	return slowest
}

func TestCluster(t *testing.T) {
	redisBin := requireRedis(t)
	bin := buildCaddy(t, t.TempDir())
	c := startCluster(t, bin, redisBin)
	a, b, lb := c.a, c.b, c.lb
	for _, g := range []*gateway{a, b} {
		if _, ok := waitUntil(5*time.Second, func() bool { return c.redisUp(t, g) == 1 }); !ok {
			t.Fatalf("%s: redis_up is %v, not 1\n%s", g.name, c.redisUp(t, g), g.tail())
		}
	}

	t.Run("balancer", func(t *testing.T) {
		seen := map[string]bool{}
		for range 4 {
			status, _, inst := c.context(t, lb, 123)
			if status != "open" {
				t.Errorf("status %q", status)
			}
			seen[inst] = true
		}
		if !seen["a"] || !seen["b"] {
			t.Errorf("the balancer sent requests to %v, not to both instances", seen)
		}
	})

	t.Run("eviction on every instance", func(t *testing.T) {
		for _, g := range []*gateway{a, b} {
			c.context(t, g, 123)
			if _, cache, _ := c.context(t, g, 123); cache != "hit" {
				t.Fatalf("%s does not cache: %s", g.name, cache)
			}
		}
		for i, via := range []*gateway{a, b, lb, lb} {
			status := fmt.Sprintf("pending-%d", i)
			c.helpdesk.setStatus(status)
			if s, _, _ := c.context(t, a, 123); s == status {
				t.Fatal("the cache did not hold the old context")
			}
			c.webhook(t, via)
			took := c.expectSeen(t, status, "webhook through "+via.name, a, b)
			t.Logf("webhook through %s: both instances serve the new context after %v", via.name, took.Round(time.Millisecond))
		}
	})

	t.Run("signing keys", func(t *testing.T) {
		_, jwksA := c.do(t, a, "GET", clusterHost, "/_dashboard_apps/jwks.json", "")
		_, jwksB := c.do(t, b, "GET", clusterHost, "/_dashboard_apps/jwks.json", "")
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(jwksA), &set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("jwks.json of a: %v %s", err, jwksA)
		}
		if jwksA != jwksB {
			t.Errorf("the instances publish different keys:\n%s\n%s", jwksA, jwksB)
		}
		// A context token from one instance verifies with the other's key.
		_, body := c.do(t, a, "GET", clusterHost, "/_dashboard_apps/context?account=1&conversation=123&app=orders", "", "X-Helpdesk-Token", clusterToken)
		_, token := splitToken(t, body)
		var setB jose.JSONWebKeySet
		json.Unmarshal([]byte(jwksB), &setB)
		verify(t, token, setB.Keys[0], jose.EdDSA, "orders")
	})

	t.Run("tickets single use across instances", func(t *testing.T) {
		open := func(g *gateway) string {
			resp, body := c.do(t, g, "POST", clusterHost, "/_dashboard_apps/session", `{"app": "orders"}`,
				"X-Helpdesk-Token", clusterToken, "Origin", "http://"+clusterHost, "Content-Type", "application/json")
			var ans sessionAnswer
			if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &ans) != nil {
				t.Fatalf("opening a session on %s: %d %s", g.name, resp.StatusCode, body)
			}
			u, err := url.Parse(ans.URL)
			if err != nil || u.Host != clusterAppHost {
				t.Fatalf("ticket URL %q", ans.URL)
			}
			return u.RequestURI()
		}
		redeem := func(g *gateway, enter string) (int, string) {
			resp, _ := c.do(t, g, "GET", clusterAppHost, enter, "")
			cookie := ""
			for _, ck := range resp.Cookies() {
				if ck.Name == sessionCookieHTTP {
					cookie = ck.Name + "=" + ck.Value
				}
			}
			return resp.StatusCode, cookie
		}
		for _, order := range [][2]*gateway{{a, b}, {b, a}} {
			first, second := order[0], order[1]
			enter := open(a)
			code, cookie := redeem(first, enter)
			if code != http.StatusSeeOther || cookie == "" {
				t.Fatalf("a ticket from a redeemed on %s: %d", first.name, code)
			}
			if code, _ := redeem(second, enter); code != http.StatusUnauthorized {
				t.Errorf("a ticket redeemed on %s was accepted again on %s: %d", first.name, second.name, code)
			}
			// The session it opened holds on both.
			for _, g := range []*gateway{a, b} {
				if resp, body := c.do(t, g, "GET", clusterAppHost, "/", "", "Cookie", cookie); resp.StatusCode != 200 || body != "orders app" {
					t.Errorf("the session opened on %s on %s: %d %q", first.name, g.name, resp.StatusCode, body)
				}
			}
		}
		// Redeemed on both at once: exactly one gets in. (The loser waits
		// for the file storage's lock, polled every second.)
		for i := range 5 {
			enter := open(b)
			var wg sync.WaitGroup
			codes := make([]int, 2)
			for j, g := range []*gateway{a, b} {
				wg.Go(func() { codes[j], _ = redeem(g, enter) })
			}
			wg.Wait()
			if n := countOf(codes, http.StatusSeeOther); n != 1 {
				t.Errorf("race %d: a ticket redeemed on both instances at once let in %d times (%v)", i, n, codes)
			}
		}
	})

	t.Run("redis outage", func(t *testing.T) {
		c.helpdesk.setStatus("before-outage")
		c.webhook(t, a)
		c.expectSeen(t, "before-outage", "webhook before the outage", a, b)
		if n, _ := redisLogs(t, a, "warn"); n != 0 {
			t.Fatalf("a WARN before the outage")
		}

		c.redis.kill(t)
		killed := time.Now()
		for _, g := range []*gateway{a, b} {
			took, ok := waitUntil(5*time.Second, func() bool { return c.redisUp(t, g) == 0 })
			if !ok {
				t.Errorf("%s: redis_up still %v after Redis was killed", g.name, c.redisUp(t, g))
			}
			t.Logf("%s: redis_up 0 after %v", g.name, took.Round(time.Millisecond))
		}

		// Requests keep working, from the cache and from the helpdesk.
		for i := range 20 {
			if s, _, _ := c.context(t, lb, 123); s != "before-outage" {
				t.Errorf("request %d during the outage: status %q", i, s)
			}
		}
		for _, g := range []*gateway{a, b} {
			if _, cache, _ := c.context(t, g, 124); cache != "miss" {
				t.Errorf("%s: conversation 124 during the outage: %s", g.name, cache)
			}
			if _, cache, _ := c.context(t, g, 124); cache != "hit" {
				t.Errorf("%s: conversation 124 not cached during the outage: %s", g.name, cache)
			}
		}
		// A webhook is answered, and evicts on the instance that got it.
		c.helpdesk.setStatus("during-outage")
		start := time.Now()
		c.webhook(t, a)
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("the webhook took %v to answer during the outage", took)
		}
		if s, _, _ := c.context(t, a, 123); s != "during-outage" {
			t.Errorf("a: the webhook did not evict locally: %q", s)
		}
		if s, _, _ := c.context(t, b, 123); s != "before-outage" {
			t.Errorf("b learnt of a's eviction during the outage (%q) through what?", s)
		}

		// A WARN once per outage, however long it lasts (3 s, or
		// DASHBOARD_APPS_REDIS_OUTAGE_SECONDS).
		outage := 3 * time.Second
		if s, err := strconv.Atoi(os.Getenv("DASHBOARD_APPS_REDIS_OUTAGE_SECONDS")); err == nil && s > 0 {
			outage = time.Duration(s) * time.Second
		}
		time.Sleep(time.Until(killed.Add(outage)))
		for _, g := range []*gateway{a, b} {
			if n, msgs := redisLogs(t, g, "warn"); n != 1 {
				t.Errorf("%s: %d WARNs of the link for one outage: %q", g.name, n, msgs)
			}
		}

		c.redis.start(t)
		restarted := time.Now()
		for _, g := range []*gateway{a, b} {
			took, ok := waitUntil(5*time.Second, func() bool { return c.redisUp(t, g) == 1 })
			if !ok {
				t.Errorf("%s: redis_up still %v 5 s after Redis came back\n%s", g.name, c.redisUp(t, g), g.tail())
			}
			t.Logf("%s: redis_up 1 again %v after Redis came back", g.name, took.Round(time.Millisecond))
		}
		// What was cached while cut off is dropped: b's old context of
		// 123 (it missed a's eviction), and 124 on both.
		if s, cache, _ := c.context(t, b, 123); s != "during-outage" || cache != "miss" {
			t.Errorf("b after the outage: %q (%s), want the new context from the helpdesk", s, cache)
		}
		for _, g := range []*gateway{a, b} {
			if _, cache, _ := c.context(t, g, 124); cache != "miss" {
				t.Errorf("%s: conversation 124, cached while cut off, still served from the cache (%s)", g.name, cache)
			}
		}
		// Fan-out works again, within 5 s of Redis' return.
		c.helpdesk.setStatus("after-outage")
		c.webhook(t, b)
		c.expectSeen(t, "after-outage", "webhook after the outage", a, b)
		if since := time.Since(restarted); since > 5*time.Second {
			t.Errorf("fan-out took %v to resume", since)
		}
		for _, g := range []*gateway{a, b} {
			if n, _ := redisLogs(t, g, "warn"); n != 1 {
				t.Errorf("%s: %d WARNs for one outage", g.name, n)
			}
			if _, msgs := redisLogs(t, g, "info"); !strings.Contains(strings.Join(msgs, "\n"), "reachable again") {
				t.Errorf("%s: no INFO when Redis came back: %q", g.name, msgs)
			}
		}
	})

	// Only a loses Redis: b keeps it. What a evicts meanwhile reaches b
	// once a is back.
	t.Run("partition", func(t *testing.T) {
		c.helpdesk.setStatus("before-partition")
		c.webhook(t, b)
		c.expectSeen(t, "before-partition", "webhook before the partition", a, b)
		c.proxyA.cut()
		if _, ok := waitUntil(5*time.Second, func() bool { return c.redisUp(t, a) == 0 }); !ok {
			t.Fatalf("a: redis_up still %v behind a cut network", c.redisUp(t, a))
		}
		if up := c.redisUp(t, b); up != 1 {
			t.Errorf("b: redis_up %v, though its Redis is there", up)
		}
		c.helpdesk.setStatus("during-partition")
		c.webhook(t, a)
		if s, _, _ := c.context(t, a, 123); s != "during-partition" {
			t.Errorf("a: the webhook did not evict locally: %q", s)
		}
		time.Sleep(300 * time.Millisecond)
		if s, _, _ := c.context(t, b, 123); s != "before-partition" {
			t.Errorf("b learnt of a's eviction through a cut network: %q", s)
		}
		c.proxyA.heal()
		healed := time.Now()
		took, ok := waitUntil(5*time.Second, func() bool { s, _, _ := c.context(t, b, 123); return s == "during-partition" })
		if !ok {
			t.Errorf("b never learnt of a's eviction during the partition")
		}
		t.Logf("b learnt of a's eviction during the partition %v after the network was back", took.Round(time.Millisecond))
		if _, ok := waitUntil(5*time.Second-time.Since(healed), func() bool { return c.redisUp(t, a) == 1 }); !ok {
			t.Errorf("a: redis_up %v 5 s after the network was back", c.redisUp(t, a))
		}
	})

	// Redis stops answering without closing its connections (SIGSTOP: a
	// hung server, or a network that drops packets): the PINGs of the
	// idle subscription find out.
	t.Run("redis hangs", func(t *testing.T) {
		outages := map[*gateway]int{a: 3, b: 2} // a was cut off once more

		c.redis.proc.cmd.Process.Signal(syscall.SIGSTOP)
		stopped := true
		defer func() {
			if stopped {
				c.redis.proc.cmd.Process.Signal(syscall.SIGCONT)
			}
		}()
		for _, g := range []*gateway{a, b} {
			took, ok := waitUntil(8*time.Second, func() bool { return c.redisUp(t, g) == 0 })
			if !ok {
				t.Errorf("%s: redis_up still %v while Redis hangs", g.name, c.redisUp(t, g))
			}
			t.Logf("%s: redis_up 0 %v after Redis hung", g.name, took.Round(time.Millisecond))
		}
		c.helpdesk.setStatus("while-hung")
		start := time.Now()
		c.webhook(t, b)
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("the webhook took %v to answer while Redis hangs", took)
		}
		if s, _, _ := c.context(t, b, 123); s != "while-hung" {
			t.Errorf("b: the webhook did not evict locally: %q", s)
		}
		c.redis.proc.cmd.Process.Signal(syscall.SIGCONT)
		stopped = false
		for _, g := range []*gateway{a, b} {
			took, ok := waitUntil(5*time.Second, func() bool { return c.redisUp(t, g) == 1 })
			if !ok {
				t.Errorf("%s: redis_up still %v 5 s after Redis answers again", g.name, c.redisUp(t, g))
			}
			t.Logf("%s: redis_up 1 again %v after Redis answers again", g.name, took.Round(time.Millisecond))
		}
		c.expectSeen(t, "while-hung", "b's eviction while Redis hung, once it answers again", a)
		c.helpdesk.setStatus("after-hang")
		c.webhook(t, a)
		c.expectSeen(t, "after-hang", "webhook after Redis hung", a, b)
		for _, g := range []*gateway{a, b} {
			if n, msgs := redisLogs(t, g, "warn"); n != outages[g] {
				t.Errorf("%s: %d WARNs for %d outages: %q", g.name, n, outages[g], msgs)
			}
		}
	})

	// The connection outlives config reloads, and is closed when no config
	// uses it; a bad redis_url is refused, naming it.
	t.Run("reloads", func(t *testing.T) {
		conns := c.proxyA.active()
		if conns == 0 {
			t.Fatal("a has no connection to Redis")
		}
		_, connectedBefore := redisLogs(t, a, "info")
		admin := func(method, path, body string) (int, string) {
			req, _ := http.NewRequest(method, a.admin()+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := admin("PUT", "/config/apps/dashboard_apps/apps/billing", `{"name": "Billing", "url": "http://127.0.0.1:1/"}`); code != 200 {
			t.Fatalf("adding an app: %d %s", code, body)
		}
		time.Sleep(300 * time.Millisecond)
		if got := c.proxyA.active(); got != conns || c.redisUp(t, a) != 1 {
			t.Errorf("after a reload: %d connections to Redis (%d before), redis_up %v", got, conns, c.redisUp(t, a))
		}
		if _, after := redisLogs(t, a, "info"); len(after) != len(connectedBefore) {
			t.Errorf("the reload connected to Redis again: %q", after[len(connectedBefore):])
		}
		c.helpdesk.setStatus("after-reload")
		c.webhook(t, b)
		c.expectSeen(t, "after-reload", "webhook after a reload", a, b)

		for bad, want := range map[string]string{
			`"http://127.0.0.1:6379/0"`:        `redis_url \"http://127.0.0.1:6379/0\": must be a redis:// or rediss:// URL`,
			`"redis://:hunter2@127.0.0.1:0/0"`: `redis_url \"redis://:xxxxx@127.0.0.1:0/0\": port`,
		} {
			code, body := admin("PATCH", "/config/apps/dashboard_apps/redis_url", bad)
			if code != 400 || !strings.Contains(body, want) || strings.Contains(body, "hunter2") {
				t.Errorf("redis_url %s: %d %s", bad, code, body)
			}
		}
		if c.proxyA.active() != conns || c.redisUp(t, a) != 1 {
			t.Error("a refused change touched the connection")
		}

		if code, body := admin("DELETE", "/config/apps/dashboard_apps/redis_url", ""); code != 200 {
			t.Fatalf("removing redis_url: %d %s", code, body)
		}
		if _, ok := waitUntil(2*time.Second, func() bool { return c.proxyA.active() == 0 }); !ok {
			t.Errorf("without redis_url a keeps %d connections to Redis", c.proxyA.active())
		}
		if up := c.redisUp(t, a); up != -1 {
			t.Errorf("without redis_url a shows redis_up %v", up)
		}
		// Eviction is a's own now.
		c.helpdesk.setStatus("a-alone")
		c.webhook(t, b)
		time.Sleep(300 * time.Millisecond)
		if s, _, _ := c.context(t, a, 123); s != "after-reload" {
			t.Errorf("a without redis_url evicted on b's webhook: %q", s)
		}
		c.webhook(t, a)
		if s, _, _ := c.context(t, a, 123); s != "a-alone" {
			t.Errorf("a without redis_url: its webhook did not evict: %q", s)
		}
	})

	for _, g := range []*gateway{a, b, lb} {
		_, msgs := logLines(t, g, "", "error")
		_, refused := logLines(t, g, "admin.api", "error") // the refused redis_url changes
		if len(msgs) != len(refused) {
			t.Errorf("%s logged errors: %q", g.name, msgs)
		}
	}
	// Every process ends with the test.
	for _, p := range []*process{lb.process, b.process, a.process, c.redis.proc} {
		p.stop()
		if p.running() {
			t.Errorf("%s still runs", p.name)
		}
	}
}

func (r *redisServer) kill(t testing.TB) {
	r.proc.kill()
}

func countOf(xs []int, v int) int {
	n := 0
	for _, x := range xs {
		if x == v {
			n++
		}
	}
	return n
}

// TestRedisLinkInProcess runs the link's goroutines in the test's own
// process against a real redis-server, so that the race detector sees
// them, through a publish each way, an outage and a restart.
func TestRedisLinkInProcess(t *testing.T) {
	redisBin := requireRedis(t)
	dir := t.TempDir()
	r := &redisServer{owner: t, bin: redisBin, dir: dir, port: loopbackPort(t)}
	r.start(t)
	opts, _, err := parseRedisURL(r.url())
	if err != nil {
		t.Fatal(err)
	}
	link := newRedisLink(opts)
	var s sharedState
	link.attach(&s)
	link.start()
	stopped := false
	defer func() {
		if !stopped {
			link.Destruct()
		}
	}()
	if _, ok := waitUntil(5*time.Second, link.connected); !ok {
		t.Fatal("the link did not connect")
	}
	peerOpts, _, _ := parseRedisURL(r.url())
	peer := redis.NewClient(peerOpts)
	defer peer.Close()
	sub := peer.Subscribe(t.Context(), link.channel)
	defer sub.Close()
	if _, err := sub.Receive(t.Context()); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}

	slots := entrySlots(1, 123, 1123)
	alive := func(e []byte) bool { _, _, _, ok := s.gens.decodeEntry(e, time.Now()); return ok }
	stored := func() []byte { return s.gens.encodeEntry([]byte("ctx"), time.Now(), slots[:]) }

	// This instance's eviction reaches the peer.
	link.fanOut([]eviction{{aboutConversation, 1, 123}})
	msg, err := sub.ReceiveMessage(t.Context())
	if err != nil || !strings.Contains(msg.Payload, `"conversations":[[1,123]]`) || !strings.Contains(msg.Payload, instanceID) {
		t.Fatalf("published: %v %v", msg, err)
	}
	// The peer's eviction reaches this instance.
	e := stored()
	peer.Publish(t.Context(), link.channel, `{"from": "peer", "contacts": [[1, 1123]]}`)
	if _, ok := waitUntil(time.Second, func() bool { return !alive(e) }); !ok {
		t.Error("a peer's eviction was not applied")
	}

	// An outage: evictions made meanwhile are published once Redis is
	// back, and what was cached meanwhile is dropped.
	r.proc.kill()
	if _, ok := waitUntil(5*time.Second, func() bool { return !link.connected() }); !ok {
		t.Fatal("the link did not notice Redis was gone")
	}
	e = stored()
	link.fanOut([]eviction{{aboutContact, 1, 1123}})
	r.start(t)
	if _, ok := waitUntil(5*time.Second, link.connected); !ok {
		t.Fatal("the link did not connect again")
	}
	if alive(e) {
		t.Error("an entry cached while cut off survived the reconnection")
	}
	sub2 := peer.Subscribe(t.Context(), link.channel)
	defer sub2.Close()
	sub2.Receive(t.Context())
	link.fanOut([]eviction{{aboutConversation, 2, 7}})
	got := ""
	for !strings.Contains(got, `[2,7]`) {
		m, err := sub2.ReceiveMessage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got += m.Payload
	}

	link.Destruct()
	stopped = true
	if link.connected() && link.ctx.Err() == nil {
		t.Error("the link is still open")
	}
}
