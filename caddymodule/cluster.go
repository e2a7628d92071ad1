package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// A cluster: several gateways behind a load balancer, each with its own
// context cache (freecache, the local tier), connected through Redis
// (redis_url). A webhook is answered by one instance; it evicts there at
// once and publishes the eviction on a Redis channel, to which every
// instance is subscribed and where each applies it to its own generations.
// While an instance is cut off from Redis it keeps serving from its own
// cache with its TTL and evicts only locally; once it is subscribed again
// it drops every context it cached (it may have missed evictions) and
// publishes the evictions it made meanwhile.
//
// The connection (a redisLink) lives in a caddy.UsagePool keyed by the
// URL, as the cache does, so a config reload keeps it, and it is closed
// when no config uses it any longer.

const (
	// redisRetry is the pause between attempts to reach Redis again.
	redisRetry = 500 * time.Millisecond
	// redisHealth is how often an idle subscription is checked with a
	// PING; one that has answered nothing for 3 of these is dropped and
	// dialled again (a peer gone without closing the connection).
	redisHealth = time.Second
	// redisDialTimeout bounds one dial (unless the URL sets dial_timeout),
	// so that a reconnection is not held up long by a lost packet.
	redisDialTimeout = 2 * time.Second
	// redisPublishTimeout bounds one PUBLISH.
	redisPublishTimeout = 2 * time.Second
	// maxPendingEvictions bounds the evictions kept to publish while Redis
	// cannot be reached; past it, one "evict everything" is sent instead.
	maxPendingEvictions = 4096
)

// redisChannelPrefix names the channel of evictions; the database number
// follows, since Redis pub/sub is not scoped by database: clusters that
// share a Redis server stay apart by using different db numbers.
const redisChannelPrefix = "dashboard_apps:evictions:db"

// eviction is a generation bump: what a webhook made stale.
type eviction struct {
	about   byte // aboutConversation or aboutContact
	account int64
	id      int64
}

// apply bumps the generations of evs.
func (g *generations) apply(evs []eviction) {
	for _, e := range evs {
		g.bump(e.about, e.account, e.id)
	}
}

// instanceID tells this process's messages from its peers': an instance
// does not apply its own evictions a second time.
var instanceID = func() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}()

// wireEvictions is a message on the channel. Pairs are [account, id];
// account 0 is every account. All evicts every cached context.
type wireEvictions struct {
	From          string     `json:"from"`
	Conversations [][2]int64 `json:"conversations,omitempty"`
	Contacts      [][2]int64 `json:"contacts,omitempty"`
	All           bool       `json:"all,omitempty"`
}

func encodeEvictions(evs []eviction, all bool) []byte {
	m := wireEvictions{From: instanceID, All: all}
	if !all {
		for _, e := range evs {
			switch e.about {
			case aboutConversation:
				m.Conversations = append(m.Conversations, [2]int64{e.account, e.id})
			case aboutContact:
				m.Contacts = append(m.Contacts, [2]int64{e.account, e.id})
			}
		}
	}
	b, _ := json.Marshal(m)
	return b
}

func decodeEvictions(payload string) (m wireEvictions, evs []eviction, err error) {
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return m, nil, err
	}
	for _, p := range m.Conversations {
		evs = append(evs, eviction{aboutConversation, p[0], p[1]})
	}
	for _, p := range m.Contacts {
		evs = append(evs, eviction{aboutContact, p[0], p[1]})
	}
	return m, evs, nil
}

// parseRedisURL resolves the global placeholders in raw ({env.REDIS_URL})
// and reads it as go-redis options. It accepts redis:// and rediss:// URLs
// with a host, optional user and password, a db number as the path, and
// go-redis's query parameters (dial_timeout, ...). resolved is raw with
// its placeholders replaced; the error says what is wrong and never shows
// the password.
func parseRedisURL(raw string) (opts *redis.Options, resolved string, err error) {
	resolved, err = caddy.NewReplacer().ReplaceOrErr(raw, true, true)
	if err != nil || strings.TrimSpace(resolved) == "" {
		return nil, "", errors.New("empty or unknown placeholder (is the environment variable set?)")
	}
	const form = "must be a redis:// or rediss:// URL, such as redis://:password@127.0.0.1:6379/0"
	u, err := url.Parse(resolved)
	if err != nil && !strings.Contains(resolved, "://") {
		return nil, resolved, errors.New(form)
	}
	if err != nil {
		return nil, resolved, errors.New("not a URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, resolved, errors.New(form)
	}
	if u.Hostname() == "" {
		return nil, resolved, errors.New("needs a host, as in redis://127.0.0.1:6379/0")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, resolved, fmt.Errorf("port %q: must be 1..65535", p)
		}
	}
	if u.Fragment != "" {
		return nil, resolved, errors.New("must not have a fragment")
	}
	opts, err = redis.ParseURL(resolved)
	if err != nil {
		return nil, resolved, errors.New(strings.TrimPrefix(err.Error(), "redis: "))
	}
	if opts.DB < 0 {
		return nil, resolved, errors.New("the db number must not be negative")
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisDialTimeout
	}
	// One dial per attempt: the link tries again every redisRetry itself.
	opts.DialerRetries = 1
	return opts, resolved, nil
}

// redactURL is a URL as it may be shown: without its password.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Whatever stands before an "@" may be a password.
		if scheme, rest, ok := strings.Cut(s, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				return scheme + "://xxxxx" + rest[at:]
			}
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// validateRedisURL is Validate's check of redis_url; the error names it
// (and what its placeholders became), without the password.
func validateRedisURL(raw string) error {
	if raw == "" {
		return nil
	}
	_, resolved, err := parseRedisURL(raw)
	if err == nil {
		return nil
	}
	name := strconv.Quote(redactURL(raw))
	if resolved != "" && resolved != raw {
		name += " (" + strconv.Quote(redactURL(resolved)) + ")"
	}
	return fmt.Errorf("redis_url %s: %v", name, err)
}

// links holds the connections to Redis, keyed by URL.
var links = caddy.NewUsagePool()

// loadLink returns the connection to the Redis at opts, and its key in
// links, to be released with links.Delete at cleanup. It does not dial:
// start does.
func loadLink(opts *redis.Options) (*redisLink, string, error) {
	key := "dashboard_apps.redis." + opts.Network + "://" + opts.Username + ":" + opts.Password + "@" + opts.Addr + "/" + strconv.Itoa(opts.DB)
	v, _, err := links.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newRedisLink(opts), nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*redisLink), key, nil
}

// redisLink is an instance's connection to its cluster through Redis: a
// subscription that applies its peers' evictions, and a publisher that
// sends this instance's.
type redisLink struct {
	client  *redis.Client
	channel string
	addr    string // for logs: host:port/db, never the password

	up     atomic.Bool // subscribed, and the subscription answers
	outage bool        // a WARN has been logged for the current outage; the subscriber's own

	mu     sync.Mutex
	states map[*sharedState]int // the caches evicted, with how many configs use each

	out      chan []eviction // to the publisher
	overflow atomic.Bool     // out was full: publish "evict everything"
	wake     chan struct{}   // subscribed (again): publish what is pending

	startOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	done      sync.WaitGroup
	psMu      sync.Mutex
	ps        *redis.PubSub
}

func newRedisLink(opts *redis.Options) *redisLink {
	setRedisLogger()
	ctx, cancel := context.WithCancel(context.Background())
	return &redisLink{
		client:  redis.NewClient(opts),
		channel: redisChannelPrefix + strconv.Itoa(opts.DB),
		addr:    opts.Addr + "/" + strconv.Itoa(opts.DB),
		states:  make(map[*sharedState]int),
		out:     make(chan []eviction, 1024),
		wake:    make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
	}
}

var redisLoggerOnce sync.Once

// setRedisLogger sends go-redis's own messages (each failed dial, ...) to
// Caddy's log at DEBUG: the link logs what an operator needs, once per
// outage. go-redis's logger is global: another module built into the same
// Caddy that uses go-redis logs there too.
func setRedisLogger() {
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("dashboard_apps.redis.client").Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (l *redisLink) logger() *zap.Logger {
	return caddy.Log().Named("dashboard_apps.redis").With(zap.String("redis", l.addr))
}

// start dials Redis and keeps the link up until Destruct; it is called by
// every config's App.Start and runs once.
func (l *redisLink) start() {
	l.startOnce.Do(func() {
		l.done.Add(2)
		go l.subscribe()
		go l.publish()
	})
}

// Destruct implements caddy.Destructor: the last config using the link is
// gone.
func (l *redisLink) Destruct() error {
	l.cancel()
	l.psMu.Lock()
	if l.ps != nil {
		l.ps.Close() // unblocks a receive
	}
	l.psMu.Unlock()
	l.done.Wait()
	return l.client.Close()
}

// attach makes the link evict s. A cache newly attached may hold entries
// that missed evictions, so they are dropped.
func (l *redisLink) attach(s *sharedState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.states[s] == 0 {
		s.gens.bumpAll()
	}
	l.states[s]++
}

func (l *redisLink) detach(s *sharedState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.states[s]--; l.states[s] <= 0 {
		delete(l.states, s)
	}
}

// connected reports whether the instance is subscribed to its peers'
// evictions (the metric redis_up).
func (l *redisLink) connected() bool { return l.up.Load() }

// fanOut sends evictions made here to the other instances. It never
// blocks: the webhook has been answered by the local eviction already.
func (l *redisLink) fanOut(evs []eviction) {
	if len(evs) == 0 {
		return
	}
	select {
	case l.out <- evs:
	default:
		l.overflow.Store(true)
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// subscribe receives the peers' evictions, and keeps the subscription up:
// it is dialled again every redisRetry while Redis cannot be reached.
func (l *redisLink) subscribe() {
	defer l.done.Done()
	defer l.closePubSub()
	lastHeard := time.Now()
	for l.ctx.Err() == nil {
		ps := l.pubSub()
		if ps == nil {
			return
		}
		msg, err := ps.ReceiveTimeout(l.ctx, redisHealth)
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(lastHeard) < 3*redisHealth {
					if !l.up.Load() {
						continue // the subscription is on its way
					}
					if err = ps.Ping(l.ctx); err == nil {
						continue
					}
				} else {
					// The connection looks open but nothing comes:
					// dial again.
					err = errors.New("no answer for " + (3 * redisHealth).String())
					l.closePubSub()
				}
			}
			// A broken connection is dropped by go-redis, which dials
			// again (and subscribes again) on the next receive.
			l.down(err)
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(redisRetry):
			}
			lastHeard = time.Now()
			continue
		}
		lastHeard = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == l.channel {
				l.subscribed()
			}
		case *redis.Message:
			l.receive(m.Payload)
		}
	}
}

// pubSub is the current subscription, made anew after closePubSub.
func (l *redisLink) pubSub() *redis.PubSub {
	l.psMu.Lock()
	defer l.psMu.Unlock()
	if l.ctx.Err() != nil {
		return nil
	}
	if l.ps == nil {
		// Subscribe dials at once, and reports a failure on the first
		// receive.
		l.ps = l.client.Subscribe(l.ctx, l.channel)
	}
	return l.ps
}

func (l *redisLink) closePubSub() {
	l.psMu.Lock()
	defer l.psMu.Unlock()
	if l.ps != nil {
		l.ps.Close()
		l.ps = nil
	}
}

// subscribed runs when the subscription is confirmed, at first and after
// every outage: from now on the peers' evictions arrive, but some may have
// been missed before, so every cache drops what it holds, and the
// evictions made here meanwhile are published.
func (l *redisLink) subscribed() {
	l.mu.Lock()
	for s := range l.states {
		s.gens.bumpAll()
	}
	l.up.Store(true)
	l.mu.Unlock()
	if l.outage {
		l.outage = false
		l.logger().Info("Redis is reachable again: evictions reach every instance again; the contexts cached while cut off were dropped")
	} else {
		l.logger().Info("connected to Redis: webhook evictions reach every instance")
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// down notes that Redis cannot be reached, with a WARN once per outage.
func (l *redisLink) down(err error) {
	l.up.Store(false)
	if l.outage {
		l.logger().Debug("Redis still unreachable", zap.Error(err))
		return
	}
	l.outage = true
	l.logger().Warn("Redis is unreachable: serving from this instance's cache with its TTL, and webhooks evict on this instance only until it is back",
		zap.Error(err))
}

// receive applies a peer's evictions to every cache.
func (l *redisLink) receive(payload string) {
	m, evs, err := decodeEvictions(payload)
	if err != nil {
		l.logger().Debug("ignored a message that is not an eviction", zap.Error(err))
		return
	}
	if m.From == instanceID {
		return // applied when it was made
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.states {
		if m.All {
			s.gens.bumpAll()
		} else {
			s.gens.apply(evs)
		}
	}
}

// publish sends the evictions made here, batched, while the subscription
// is up; those made or failed while it is down are kept (up to
// maxPendingEvictions, then "evict everything" stands for them) and sent
// once it is up again, so that peers that never lost Redis learn of them.
func (l *redisLink) publish() {
	defer l.done.Done()
	var pending []eviction
	all := false
	retry := time.NewTimer(redisRetry)
	retry.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case evs := <-l.out:
			pending = append(pending, evs...)
		drain:
			for len(pending) < maxPendingEvictions {
				select {
				case evs := <-l.out:
					pending = append(pending, evs...)
				default:
					break drain
				}
			}
		case <-l.wake:
		case <-retry.C:
		}
		if l.overflow.Swap(false) || len(pending) > maxPendingEvictions {
			all, pending = true, nil
		}
		if !l.up.Load() {
			continue
		}
		if len(pending) == 0 && !all {
			// Subscribed (again): have a connection ready for the next
			// eviction, rather than dial when it comes.
			ctx, cancel := context.WithTimeout(l.ctx, redisPublishTimeout)
			l.client.Ping(ctx)
			cancel()
			continue
		}
		ctx, cancel := context.WithTimeout(l.ctx, redisPublishTimeout)
		err := l.client.Publish(ctx, l.channel, encodeEvictions(pending, all)).Err()
		cancel()
		if err != nil {
			l.logger().Debug("publishing evictions failed; they are sent again", zap.Error(err))
			retry.Reset(redisRetry)
			continue
		}
		pending, all = pending[:0], false
	}
}
