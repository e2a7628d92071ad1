package caddymodule

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// probeStorage counts the calls made to a storage, and can slow its Loads
// down to widen the window in which two redeems could both see a ticket.
type probeStorage struct {
	certmagic.Storage
	calls     atomic.Int64
	loadDelay time.Duration
}

func (p *probeStorage) Store(ctx context.Context, key string, value []byte) error {
	p.calls.Add(1)
	return p.Storage.Store(ctx, key, value)
}

func (p *probeStorage) Load(ctx context.Context, key string) ([]byte, error) {
	p.calls.Add(1)
	b, err := p.Storage.Load(ctx, key)
	time.Sleep(p.loadDelay)
	return b, err
}

func (p *probeStorage) Delete(ctx context.Context, key string) error {
	p.calls.Add(1)
	return p.Storage.Delete(ctx, key)
}

func (p *probeStorage) Exists(ctx context.Context, key string) bool {
	p.calls.Add(1)
	return p.Storage.Exists(ctx, key)
}

func (p *probeStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	p.calls.Add(1)
	return p.Storage.List(ctx, prefix, recursive)
}

func (p *probeStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	p.calls.Add(1)
	return p.Storage.Stat(ctx, key)
}

func (p *probeStorage) Lock(ctx context.Context, name string) error {
	p.calls.Add(1)
	return p.Storage.Lock(ctx, name)
}

func (p *probeStorage) Unlock(ctx context.Context, name string) error {
	p.calls.Add(1)
	return p.Storage.Unlock(ctx, name)
}

// newProbedStore is a store over a FileStorage in dir, as Caddy's default.
func newProbedStore(dir string, lifetime time.Duration) (*sessionStore, *probeStorage) {
	p := &probeStorage{Storage: &certmagic.FileStorage{Path: dir}}
	return newSessionStore(p, lifetime), p
}

func testSession(app string, agentID int64) appSession {
	name := "Ada"
	return appSession{App: app, Agent: &profile{ID: &agentID, Name: &name}, HelpdeskOrigin: "https://support.example.com"}
}

// openAndRedeem opens a session for agent 7 on app and starts it.
func openAndRedeem(t testing.TB, s *sessionStore, app string) (secret, renew string) {
	t.Helper()
	ticket, renew, err := s.open(context.Background(), testSession(app, 7))
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err = s.redeem(context.Background(), app, ticket)
	if err != nil {
		t.Fatal(err)
	}
	return secret, renew
}

func wantRefused(t *testing.T, what string, err error, why string) {
	t.Helper()
	if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), why) {
		t.Errorf("%s: got %v, want refused: %s", what, err, why)
	}
}

func TestSessionOpenRedeemLookup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, probe := newProbedStore(dir, time.Hour)
	ticket, renew, err := s.open(ctx, testSession("orders", 7))
	if err != nil {
		t.Fatal(err)
	}
	if !wellFormed(ticket) || !wellFormed(renew) || ticket == renew {
		t.Fatalf("ticket %q, renewal handle %q", ticket, renew)
	}
	secret, sess, err := s.redeem(ctx, "orders", ticket)
	if err != nil {
		t.Fatal(err)
	}
	if !wellFormed(secret) || secret == ticket || secret == renew {
		t.Fatalf("secret %q", secret)
	}
	if sess.App != "orders" || *sess.Agent.ID != 7 || *sess.Agent.Name != "Ada" || sess.HelpdeskOrigin != "https://support.example.com" {
		t.Errorf("redeemed session: %+v", sess)
	}
	if d := time.Until(sess.Expires); d < time.Hour-time.Minute || d > time.Hour {
		t.Errorf("session expires in %v, want an hour", d)
	}

	got, ok := s.lookup(ctx, "orders", secret)
	if !ok || got.App != "orders" || *got.Agent.ID != 7 || !got.Expires.Equal(sess.Expires) {
		t.Errorf("lookup: %+v %v", got, ok)
	}
	// Its digest keys what is cached for its agent: the secret's hash.
	if got.digest != digestToken(secret) {
		t.Errorf("looked-up session's digest %x, want the secret's hash", got.digest)
	}
	// A hit is served from memory.
	before := probe.calls.Load()
	if _, ok := s.lookup(ctx, "orders", secret); !ok || probe.calls.Load() != before {
		t.Errorf("cached lookup: ok %v, %d storage calls", ok, probe.calls.Load()-before)
	}
	// A session is bound to its app; an unknown secret is no session.
	if _, ok := s.lookup(ctx, "billing", secret); ok {
		t.Error("session for orders let into billing")
	}
	if _, ok := s.lookup(ctx, "orders", newToken()); ok {
		t.Error("unknown secret let in")
	}

	// Storage holds hashes: no token appears in any key or record.
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, tok := range []string{ticket, renew, secret} {
			if strings.Contains(path, tok) || strings.Contains(string(b), tok) {
				t.Errorf("%s holds a token", path)
			}
		}
		return nil
	})
	for _, prefix := range []string{originSessionsPrefix, originRenewalsPrefix} {
		if keys, err := s.storage.List(ctx, strings.TrimSuffix(prefix, "/"), false); err != nil || len(keys) != 1 {
			t.Errorf("%s: %v %v, want one record", prefix, keys, err)
		}
	}
}

func TestSessionOpenNeedsAgentID(t *testing.T) {
	s, _ := newProbedStore(t.TempDir(), time.Hour)
	noID := testSession("orders", 7)
	noID.Agent.ID = nil
	for _, sess := range []appSession{noID, {App: "orders"}, testSession("", 7)} {
		if _, _, err := s.open(context.Background(), sess); err == nil {
			t.Errorf("opened %+v", sess)
		}
	}
}

func TestTicketLifetime(t *testing.T) {
	for _, tc := range []struct {
		lifetime, want time.Duration
	}{
		{time.Hour, 30 * time.Second},
		{15 * time.Minute, 30 * time.Second},
		{2 * time.Second, 2 * time.Second},
	} {
		s, _ := newProbedStore(t.TempDir(), tc.lifetime)
		ticket, _, err := s.open(context.Background(), testSession("orders", 7))
		if err != nil {
			t.Fatal(err)
		}
		var rec ticketRecord
		if err := s.load(context.Background(), originTicketsPrefix+hashToken(ticket), &rec); err != nil {
			t.Fatal(err)
		}
		if d := time.Until(rec.Expires); d > tc.want || d < tc.want-5*time.Second {
			t.Errorf("lifetime %v: ticket expires in %v, want %v", tc.lifetime, d, tc.want)
		}
	}
}

func TestTicketReplay(t *testing.T) {
	ctx := context.Background()
	t.Run("sequential", func(t *testing.T) {
		s, _ := newProbedStore(t.TempDir(), time.Hour)
		ticket, _, _ := s.open(ctx, testSession("orders", 7))
		if _, _, err := s.redeem(ctx, "orders", ticket); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.redeem(ctx, "orders", ticket)
		wantRefused(t, "second redeem", err, "already spent")
	})
	// 20 concurrent redeems, on one store or spread over two sharing the
	// storage (two instances); Loads are slowed down so that without the
	// storage's lock two redeems would both find the ticket.
	for _, instances := range []int{1, 2} {
		t.Run(map[int]string{1: "concurrent", 2: "concurrent on two instances"}[instances], func(t *testing.T) {
			dir := t.TempDir()
			var stores []*sessionStore
			for range instances {
				s, probe := newProbedStore(dir, time.Hour)
				probe.loadDelay = 50 * time.Millisecond
				stores = append(stores, s)
			}
			ticket, _, _ := stores[0].open(ctx, testSession("orders", 7))
			var wins, refusals atomic.Int64
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					_, _, err := stores[i%instances].redeem(ctx, "orders", ticket)
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, errRefused):
						refusals.Add(1)
					default:
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 || refusals.Load() != 19 {
				t.Errorf("%d redeems won, %d refused; want 1 and 19", wins.Load(), refusals.Load())
			}
		})
	}
}

func TestTicketForAnotherApp(t *testing.T) {
	ctx := context.Background()
	s, _ := newProbedStore(t.TempDir(), time.Hour)
	ticket, _, _ := s.open(ctx, testSession("orders", 7))
	_, _, err := s.redeem(ctx, "billing", ticket)
	wantRefused(t, "redeem for billing", err, "another app")
	// Presented once, to the wrong app: spent.
	_, _, err = s.redeem(ctx, "orders", ticket)
	wantRefused(t, "redeem for orders after", err, "already spent")
}

func TestSessionTwoInstances(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, _ := newProbedStore(dir, time.Hour)
	b, _ := newProbedStore(dir, time.Hour)
	ticket, renew, _ := a.open(ctx, testSession("orders", 7))
	secret, _, err := a.redeem(ctx, "orders", ticket)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = b.redeem(ctx, "orders", ticket)
	wantRefused(t, "redeem on the other instance", err, "already spent")
	if _, ok := b.lookup(ctx, "billing", secret); ok {
		t.Error("other instance lets a session for orders into billing")
	}
	if sess, ok := b.lookup(ctx, "orders", secret); !ok || *sess.Agent.ID != 7 {
		t.Errorf("other instance does not see the session: %+v %v", sess, ok)
	}
	if err := b.renew(ctx, "orders", renew, 7); err != nil {
		t.Errorf("renewal on the other instance: %v", err)
	}
	// And a ticket opened on one is redeemed on the other.
	ticket, _, _ = b.open(ctx, testSession("orders", 7))
	if _, _, err := a.redeem(ctx, "orders", ticket); err != nil {
		t.Errorf("redeem of the other instance's ticket: %v", err)
	}
}

func TestSessionRenewedOnAnotherInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	a, _ := newProbedStore(dir, time.Second)
	b, _ := newProbedStore(dir, time.Second)
	secret, renew := openAndRedeem(t, a, "orders")
	first, ok := b.lookup(ctx, "orders", secret) // b caches it
	if !ok {
		t.Fatal("b does not see the session")
	}
	time.Sleep(500 * time.Millisecond)
	if err := a.renew(ctx, "orders", renew, 7); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(first.Expires) + 100*time.Millisecond)
	// b's copy has expired: b loads the renewed session instead of refusing.
	if sess, ok := b.lookup(ctx, "orders", secret); !ok || !sess.Expires.After(first.Expires) {
		t.Errorf("after its first expiry, b: %v (expires %v, first %v)", ok, sess.Expires, first.Expires)
	}
	time.Sleep(time.Second)
	if _, ok := b.lookup(ctx, "orders", secret); ok {
		t.Error("b still lets in after the renewed expiry")
	}
}

func TestSessionSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	before, _ := newProbedStore(dir, time.Hour)
	secret, renew := openAndRedeem(t, before, "orders")
	ticket, _, _ := before.open(ctx, testSession("orders", 8))

	after, _ := newProbedStore(dir, time.Hour)
	if sess, ok := after.lookup(ctx, "orders", secret); !ok || *sess.Agent.ID != 7 || sess.digest != digestToken(secret) {
		t.Errorf("session lost across a restart: %+v %v", sess, ok)
	}
	if err := after.renew(ctx, "orders", renew, 7); err != nil {
		t.Errorf("renewal after a restart: %v", err)
	}
	if _, sess, err := after.redeem(ctx, "orders", ticket); err != nil || *sess.Agent.ID != 8 {
		t.Errorf("ticket after a restart: %+v %v", sess, err)
	}
}

func TestSessionExpiry(t *testing.T) {
	ctx := context.Background()
	t.Run("ticket expired", func(t *testing.T) {
		t.Parallel()
		s, _ := newProbedStore(t.TempDir(), time.Second)
		ticket, _, _ := s.open(ctx, testSession("orders", 7))
		time.Sleep(1100 * time.Millisecond)
		_, _, err := s.redeem(ctx, "orders", ticket)
		wantRefused(t, "late redeem", err, "ticket expired")
	})
	t.Run("session expired", func(t *testing.T) {
		t.Parallel()
		s, _ := newProbedStore(t.TempDir(), time.Second)
		secret, renew := openAndRedeem(t, s, "orders")
		if _, ok := s.lookup(ctx, "orders", secret); !ok {
			t.Fatal("fresh session refused")
		}
		time.Sleep(1100 * time.Millisecond)
		if _, ok := s.lookup(ctx, "orders", secret); ok {
			t.Error("expired session let in")
		}
		wantRefused(t, "renewal of an expired session", s.renew(ctx, "orders", renew, 7), "session expired")
	})
	t.Run("renewed session outlives its first expiry", func(t *testing.T) {
		t.Parallel()
		s, _ := newProbedStore(t.TempDir(), time.Second)
		secret, renew := openAndRedeem(t, s, "orders")
		first, _ := s.lookup(ctx, "orders", secret)
		time.Sleep(500 * time.Millisecond)
		if err := s.renew(ctx, "orders", renew, 7); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(first.Expires) + 100*time.Millisecond)
		if _, ok := s.lookup(ctx, "orders", secret); !ok {
			t.Error("renewed session refused after its first expiry")
		}
		time.Sleep(time.Second)
		if _, ok := s.lookup(ctx, "orders", secret); ok {
			t.Error("renewed session let in after its renewed expiry")
		}
	})
}

func TestSessionRenewRefused(t *testing.T) {
	ctx := context.Background()
	s, _ := newProbedStore(t.TempDir(), time.Hour)
	ticket, renew, _ := s.open(ctx, testSession("orders", 7))
	wantRefused(t, "renewal before the ticket is redeemed", s.renew(ctx, "orders", renew, 7), "not started")
	secret, _, err := s.redeem(ctx, "orders", ticket)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.lookup(ctx, "orders", secret)
	for _, tc := range []struct {
		name, app, handle string
		agent             int64
		why               string
	}{
		{"wrong agent", "orders", renew, 8, "another agent's"},
		{"wrong app", "billing", renew, 7, "another app"},
		{"unknown handle", "orders", newToken(), 7, "unknown"},
		{"ticket as handle", "orders", ticket, 7, "unknown"},
		{"secret as handle", "orders", secret, 7, "unknown"},
		{"malformed handle", "orders", renew + "x", 7, "malformed"},
	} {
		wantRefused(t, tc.name, s.renew(ctx, tc.app, tc.handle, tc.agent), tc.why)
	}
	if sess, _ := s.lookup(ctx, "orders", secret); !sess.Expires.Equal(first.Expires) {
		t.Errorf("a refused renewal moved the expiry: %v → %v", first.Expires, sess.Expires)
	}
	time.Sleep(10 * time.Millisecond)
	if err := s.renew(ctx, "orders", renew, 7); err != nil {
		t.Fatal(err)
	}
	if sess, _ := s.lookup(ctx, "orders", secret); !sess.Expires.After(first.Expires) {
		t.Errorf("renewal did not extend: %v → %v", first.Expires, sess.Expires)
	}
}

func TestSessionCraftedSecretsNeverReachStorage(t *testing.T) {
	ctx := context.Background()
	s, probe := newProbedStore(t.TempDir(), time.Hour)
	valid := newToken()
	for _, tok := range []string{
		"",
		"../x",
		"../../" + valid[6:], // the right length
		valid[:len(valid)-1] + "/",
		valid[:len(valid)-1] + "=",
		valid[:len(valid)-1] + "+",
		valid[:len(valid)-1] + ".",
		valid[:len(valid)-2] + "é",
		valid[:len(valid)-1] + "\x00",
		valid + "A",
		valid[:len(valid)-1],
		strings.Repeat("A", 4096),
	} {
		if _, ok := s.lookup(ctx, "orders", tok); ok {
			t.Errorf("lookup %q let in", tok)
		}
		_, _, err := s.redeem(ctx, "orders", tok)
		wantRefused(t, "redeem "+tok, err, "malformed")
		wantRefused(t, "renew "+tok, s.renew(ctx, "orders", tok, 7), "malformed")
	}
	if n := probe.calls.Load(); n != 0 {
		t.Errorf("crafted tokens made %d storage calls", n)
	}
}

func TestSessionSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	a, _ := newProbedStore(dir, time.Second)
	b, _ := newProbedStore(dir, time.Second)
	if err := a.sweep(ctx); err != nil {
		t.Fatalf("sweep of empty storage: %v", err)
	}
	expiredTicket, expiredTicketRenew, _ := a.open(ctx, testSession("orders", 7))
	expiredSecret, expiredRenew := openAndRedeem(t, a, "orders")
	// A record that does not parse, last written long ago, goes too; a
	// file that is not a record (a storage's temporary file) stays.
	garbage := originSessionsPrefix + hashToken(newToken())
	a.storage.Store(ctx, garbage, []byte("{"))
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, garbage), old, old)
	a.storage.Store(ctx, originTicketsPrefix+"12345", []byte("partial"))
	time.Sleep(2100 * time.Millisecond) // past expiry and the grace period

	liveTicket, liveTicketRenew, _ := a.open(ctx, testSession("orders", 7))
	liveSecret, liveRenew := openAndRedeem(t, a, "orders")
	var wg sync.WaitGroup
	for _, s := range []*sessionStore{a, b, a, b} { // several instances at once
		wg.Go(func() {
			if err := s.sweep(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	for prefix, want := range map[string][]string{
		originTicketsPrefix:  {hashToken(liveTicket), "12345"},
		originSessionsPrefix: {hashToken(liveSecret)},
		originRenewalsPrefix: {hashToken(liveTicketRenew), hashToken(liveRenew)},
	} {
		keys, err := a.storage.List(ctx, strings.TrimSuffix(prefix, "/"), false)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range keys {
			got = append(got, strings.TrimPrefix(k, prefix))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s after sweep: %v, want %v (expired: ticket %s, renewals %s %s, session %s)", prefix, got, want,
				hashToken(expiredTicket), hashToken(expiredTicketRenew), hashToken(expiredRenew), hashToken(expiredSecret))
		}
	}
	if _, ok := b.lookup(ctx, "orders", liveSecret); !ok {
		t.Error("live session lost in the sweep")
	}
	if len(a.cache) != 1 {
		t.Errorf("a caches %d sessions after the sweep, want the live one", len(a.cache))
	}
}

func TestSessionCacheBounded(t *testing.T) {
	ctx := context.Background()
	s, probe := newProbedStore(t.TempDir(), time.Hour)
	s.cacheMax = 10
	var secrets []string
	for range 25 {
		secret, _ := openAndRedeem(t, s, "orders")
		secrets = append(secrets, secret)
		if len(s.cache) > s.cacheMax {
			t.Fatalf("cache holds %d sessions, bound %d", len(s.cache), s.cacheMax)
		}
	}
	before := probe.calls.Load()
	for _, secret := range secrets {
		if _, ok := s.lookup(ctx, "orders", secret); !ok {
			t.Error("session evicted from the cache is lost")
		}
	}
	if probe.calls.Load() == before {
		t.Error("no lookup went to storage: the cache is not bounded")
	}
	if len(s.cache) > s.cacheMax {
		t.Errorf("cache holds %d sessions, bound %d", len(s.cache), s.cacheMax)
	}
}

// TestSessionLookupHitAllocatesNothing: a request on an app origin with a
// cached session costs no allocation.
func TestSessionLookupHitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s, probe := newProbedStore(t.TempDir(), time.Hour)
	secret, _ := openAndRedeem(t, s, "orders")
	before := probe.calls.Load()
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := s.lookup(context.Background(), "orders", secret); !ok {
			t.Fatal("lookup refused")
		}
	})
	if allocs != 0 || probe.calls.Load() != before {
		t.Errorf("lookup hit: %.1f allocations, %d storage calls", allocs, probe.calls.Load()-before)
	}
}

// BenchmarkSessionLookupHit is what origin mode adds to a request on an app
// origin with a cached session: the secret's check and hash, a map lookup.
func BenchmarkSessionLookupHit(b *testing.B) {
	s, _ := newProbedStore(b.TempDir(), time.Hour)
	secret, _ := openAndRedeem(b, s, "orders")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.lookup(ctx, "orders", secret); !ok {
			b.Fatal("lookup refused")
		}
	}
}
