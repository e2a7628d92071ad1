package caddymodule

import (
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/coocood/freecache"
	"golang.org/x/sync/singleflight"
)

// sharedState is what outlives config reloads: the cache of profiles and
// appContext payloads, the generations that evict them, and the in-flight
// helpdesk calls that concurrent misses share. It lives in a
// caddy.UsagePool, so an admin API change keeps the cache warm.
type sharedState struct {
	cache  *freecache.Cache
	gens   generations
	flight singleflight.Group
	agents agentCache
}

// Destruct implements caddy.Destructor; freecache holds no resources
// beyond memory.
func (*sharedState) Destruct() error { return nil }

var states = caddy.NewUsagePool()

// loadState returns the shared state for a cache size; a new size starts a
// new cache. The key is to be released with states.Delete at cleanup.
func loadState(size int) (*sharedState, string, error) {
	key := "dashboard_apps.state." + strconv.Itoa(size)
	v, _, err := states.LoadOrNew(key, func() (caddy.Destructor, error) {
		return &sharedState{cache: freecache.NewCache(size)}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*sharedState), key, nil
}

// generations evict cached contexts by what they are about (a
// conversation, a contact) without an index from those to cache keys: an
// entry records the generation of its slots when it is stored and is
// stale once any of them has moved on. Slots are hashed into a fixed array,
// so memory stays bounded; a collision only evicts more than needed. One
// more slot, globalSlot, is in every context entry: moving it on evicts
// them all (a cluster instance that was cut off from its peers does so).
type generations struct {
	slots [1<<16 + 1]atomic.Uint32
}

// globalSlot is the slot every context entry depends on; slotOf never
// returns it.
const globalSlot = 1 << 16

// What a generation slot is about.
const (
	aboutConversation byte = 'v'
	aboutContact      byte = 'c'
)

// anyAccount stands for "every account" in a slot, for webhooks that name
// no account.
const anyAccount = 0

func slotOf(about byte, account, id int64) uint32 {
	// splitmix64 finaliser: cheap and well spread.
	x := uint64(id)*0x9e3779b97f4a7c15 ^ uint64(account)<<17 ^ uint64(about)<<56
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return uint32(x) & (1<<16 - 1)
}

// bump evicts every entry about id in account (anyAccount: in every
// account).
func (g *generations) bump(about byte, account, id int64) {
	g.slots[slotOf(about, account, id)].Add(1)
}

// bumpAll evicts every context entry.
func (g *generations) bumpAll() {
	g.slots[globalSlot].Add(1)
}

// entrySlots are the slots a context entry depends on.
func entrySlots(account, conversation, contact int64) [5]uint32 {
	return [5]uint32{
		slotOf(aboutConversation, account, conversation),
		slotOf(aboutConversation, anyAccount, conversation),
		slotOf(aboutContact, account, contact),
		slotOf(aboutContact, anyAccount, contact),
		globalSlot,
	}
}

// A cache entry is a header followed by the payload:
//
//	created  int64, Unix nanoseconds
//	n        uint8, number of generation slots
//	n × (slot uint32, generation uint32)
const entryFixed = 9

// encodeEntry lays out an entry for payload, depending on slots.
func (g *generations) encodeEntry(payload []byte, created time.Time, slots []uint32) []byte {
	b := make([]byte, entryFixed+8*len(slots), entryFixed+8*len(slots)+len(payload))
	binary.LittleEndian.PutUint64(b, uint64(created.UnixNano()))
	b[8] = byte(len(slots))
	for i, s := range slots {
		binary.LittleEndian.PutUint32(b[entryFixed+8*i:], s)
		binary.LittleEndian.PutUint32(b[entryFixed+8*i+4:], g.slots[s].Load())
	}
	return append(b, payload...)
}

// decodeEntry returns an entry's header and payload and its age; ok is
// false when the entry is malformed or a webhook has evicted it.
func (g *generations) decodeEntry(b []byte, now time.Time) (header, payload []byte, age time.Duration, ok bool) {
	if len(b) < entryFixed {
		return nil, nil, 0, false
	}
	n := int(b[8])
	if len(b) < entryFixed+8*n {
		return nil, nil, 0, false
	}
	for i := 0; i < n; i++ {
		s := binary.LittleEndian.Uint32(b[entryFixed+8*i:])
		if s >= uint32(len(g.slots)) || g.slots[s].Load() != binary.LittleEndian.Uint32(b[entryFixed+8*i+4:]) {
			return nil, nil, 0, false
		}
	}
	age = now.Sub(time.Unix(0, int64(binary.LittleEndian.Uint64(b))))
	return b[:entryFixed+8*n], b[entryFixed+8*n:], age, true
}

// staleFor is how long past its TTL an entry is kept to be served, marked
// stale, when the helpdesk cannot be reached.
const staleFor = 10 * time.Minute

// store caches payload under key for ttl (and staleFor beyond it), and
// returns the header of the entry it stored.
func (s *sharedState) store(key, payload []byte, ttl time.Duration, slots []uint32) (header []byte) {
	entry := s.gens.encodeEntry(payload, time.Now(), slots)
	_ = s.cache.Set(key, entry, expireSeconds(ttl))
	return entry[:len(entry)-len(payload)]
}

// expireSeconds is how long freecache keeps an entry of the given TTL.
func expireSeconds(ttl time.Duration) int {
	return int((ttl + staleFor + time.Second - 1) / time.Second)
}

// storeDerived caches payload under key as an entry derived from another,
// whose header (creation time and generations) it shares: a webhook that
// evicted the source between its lookup and now evicts this one too.
func (s *sharedState) storeDerived(key, header, payload []byte, ttl time.Duration) {
	_ = s.cache.Set(key, append(append(make([]byte, 0, len(header)+len(payload)), header...), payload...), expireSeconds(ttl))
}

// cached is an entry read from the cache; its slices point into the
// caller's buffer.
type cached struct {
	header, payload []byte
	fresh           bool // within the TTL
}

// lookup reads key into buf. ok is false when there is no live entry.
func (s *sharedState) lookup(key, buf []byte, ttl time.Duration) (c cached, ok bool) {
	b, err := s.cache.GetWithBuf(key, buf)
	if err != nil {
		return c, false
	}
	header, payload, age, ok := s.gens.decodeEntry(b, time.Now())
	return cached{header: header, payload: payload, fresh: age < ttl}, ok
}

// entryBufs are reused to read cache entries without allocating.
var entryBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }} // freecache reads into buf only when len(buf) fits the value

// agentCache keeps verified agents' profiles, decoded, per credentials: a
// proxied request checks its agent with a map lookup instead of decoding
// JSON. It is bounded: past maxAgents entries, expired ones are dropped,
// and if that is not enough, all of them (they are refetched on demand).
type agentCache struct {
	mu sync.RWMutex
	m  map[credentialKey]agentEntry
}

type agentEntry struct {
	p       *profile
	fetched time.Time
}

const maxAgents = 20000

// get returns the profile cached for key and whether it is fresh (within
// ttl); ok is false when there is none, or it is older than ttl+staleFor.
func (c *agentCache) get(key credentialKey, ttl time.Duration) (p *profile, fresh, ok bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok {
		return nil, false, false
	}
	age := time.Since(e.fetched)
	return e.p, age < ttl, age < ttl+staleFor
}

func (c *agentCache) put(key credentialKey, p *profile, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[credentialKey]agentEntry)
	}
	if len(c.m) >= maxAgents {
		for k, e := range c.m {
			if time.Since(e.fetched) >= ttl+staleFor {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxAgents {
			clear(c.m)
		}
	}
	c.m[key] = agentEntry{p: p, fetched: time.Now()}
}

// Cache key layouts: a kind byte, the credential fingerprint, then ids.
const (
	profileKeyLen = 1 + len(credentialKey{})
	contextKeyLen = profileKeyLen + 16
	maxAppIDLen   = 63
)

func profileKey(cred credentialKey) (k [profileKeyLen]byte) {
	k[0] = 'p'
	copy(k[1:], cred[:])
	return k
}

// contextKeyBuf holds a key of a conversation's context for an agent:
// kind 'b' is the context as the helpdesk gave it, without a token; kind
// 'x' the message for an app (whose token it carries; "" for all apps);
// kind 'a' an identity assertion for an app in an account (conversation 0).
type contextKeyBuf [contextKeyLen + maxAppIDLen]byte

func contextKey(kind byte, cred credentialKey, account, conversation int64, app string) (k contextKeyBuf, n int) {
	k[0] = kind
	copy(k[1:], cred[:])
	binary.LittleEndian.PutUint64(k[profileKeyLen:], uint64(account))
	binary.LittleEndian.PutUint64(k[profileKeyLen+8:], uint64(conversation))
	return k, contextKeyLen + copy(k[contextKeyLen:], app)
}
