package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// Where origin mode keeps its records in Caddy storage. A record's key is
// the SHA-256 (hex) of the ticket, secret or handle it belongs to, never the
// token itself: whoever can read the storage (a backup, a shared bucket)
// cannot get in with what it finds there.
const (
	originTicketsPrefix  = "dashboard_apps/origin/tickets/"
	originSessionsPrefix = "dashboard_apps/origin/sessions/"
	originRenewalsPrefix = "dashboard_apps/origin/renewals/"
)

const (
	// maxTicketLifetime bounds a ticket's life: it travels in a URL.
	maxTicketLifetime = 30 * time.Second

	// tokenBytes is the randomness of a ticket, secret or handle; tokenLen
	// its length in unpadded URL-safe base64.
	tokenBytes = 32
	tokenLen   = (tokenBytes*8 + 5) / 6

	// sessionCacheSize bounds the sessions an instance keeps in memory; one
	// that falls out is loaded from storage again when next asked for.
	sessionCacheSize = 10000
)

// errRefused is wrapped by every error that means "not let in" (a ticket,
// handle or session that is unknown, spent, expired, malformed or bound to
// another app or agent), as opposed to a storage failure.
var errRefused = errors.New("origin session refused")

func refused(why string) error { return fmt.Errorf("%w: %s", errRefused, why) }

// sessionStore keeps origin mode's sessions and one-time tickets in Caddy
// storage, so that they hold across a gateway restart and on every instance
// sharing that storage, with a small in-memory cache in front so that a
// request on an app origin costs a map lookup.
type sessionStore struct {
	storage        certmagic.Storage
	lifetime       time.Duration // of a session, unless renewed
	ticketLifetime time.Duration
	// grace is how long sweep leaves an expired record in place, so that it
	// never deletes a session that a renewal, having seen it live an instant
	// before it expired, is extending.
	grace time.Duration

	mu       sync.RWMutex
	cache    map[[sha256.Size]byte]appSession // by the SHA-256 of the secret
	cacheMax int

	// redeeming holds the keys of tickets being redeemed here: a second
	// redeem of one of them is a replay, refused at once rather than queued
	// on the storage's lock.
	redeeming sync.Map
}

// appSession is what a session knows: the app it is bound to, the verified
// agent, and the helpdesk origin whose page opened it. Its Agent is shared
// by every lookup of the session: read it, never change it.
type appSession struct {
	App            string    `json:"app"`
	Agent          *profile  `json:"agent"`
	HelpdeskOrigin string    `json:"helpdesk_origin"`
	Expires        time.Time `json:"expires"`

	// digest is the SHA-256 of the session's secret, set on what lookup
	// returns (the cache's key, not kept in its values): the name of its
	// record and the key of what is cached on its agent's behalf, so that
	// a request hashes its secret once.
	digest [sha256.Size]byte
}

// ticketRecord is a ticket not yet redeemed: the session it starts and the
// renewal record (its key's hash) that will extend that session.
type ticketRecord struct {
	Session appSession `json:"session"`
	Renewal string     `json:"renewal"`
	Expires time.Time  `json:"expires"`
}

// renewalRecord ties a renewal handle to its session (the hash of the
// session's secret), once the session's ticket has been redeemed.
type renewalRecord struct {
	Session string    `json:"session,omitempty"`
	Expires time.Time `json:"expires"`
}

// newSessionStore returns a store whose sessions last lifetime unless
// renewed, and whose tickets last min(30 s, lifetime).
func newSessionStore(storage certmagic.Storage, lifetime time.Duration) *sessionStore {
	return &sessionStore{
		storage:        storage,
		lifetime:       lifetime,
		ticketLifetime: min(maxTicketLifetime, lifetime),
		grace:          min(lifetime, time.Minute),
		cache:          make(map[[sha256.Size]byte]appSession),
		cacheMax:       sessionCacheSize,
	}
}

// open issues a one-time ticket for sess (bound to sess.App, valid
// min(30 s, lifetime)), and a renewal handle. sess.Agent must have an id:
// a renewal is checked against it. sess.Expires is set when the ticket is
// redeemed.
func (s *sessionStore) open(ctx context.Context, sess appSession) (ticket, renew string, err error) {
	if sess.App == "" || sess.Agent == nil || sess.Agent.ID == nil {
		return "", "", errors.New("opening an origin session: it needs an app and an agent with an id")
	}
	ticket, renew = newToken(), newToken()
	renewal := hashToken(renew)
	expires := time.Now().Add(s.ticketLifetime)
	sess.Expires = time.Time{}
	// The renewal record first, so that a ticket that can be redeemed
	// always has one.
	if err := s.put(ctx, originRenewalsPrefix+renewal, renewalRecord{Expires: expires}); err != nil {
		return "", "", err
	}
	err = s.put(ctx, originTicketsPrefix+hashToken(ticket), ticketRecord{Session: sess, Renewal: renewal, Expires: expires})
	if err != nil {
		return "", "", err
	}
	return ticket, renew, nil
}

// redeem spends a ticket for app and starts its session (expiring
// lifetime from now); it returns the session's secret, for the session
// cookie. A ticket is spent by its first presentation, on any instance
// sharing the storage, whatever the outcome: one presented for another
// app, or too late, has leaked and cannot be tried again.
func (s *sessionStore) redeem(ctx context.Context, app, ticket string) (secret string, sess appSession, err error) {
	if !wellFormed(ticket) {
		return "", appSession{}, refused("malformed ticket")
	}
	key := originTicketsPrefix + hashToken(ticket)
	if _, busy := s.redeeming.LoadOrStore(key, struct{}{}); busy {
		return "", appSession{}, refused("ticket already being redeemed")
	}
	defer s.redeeming.Delete(key)
	rec, err := s.take(ctx, key)
	if err != nil {
		return "", appSession{}, err
	}
	now := time.Now()
	if rec.Session.App != app {
		return "", appSession{}, refused("ticket is for another app")
	}
	if !now.Before(rec.Expires) {
		return "", appSession{}, refused("ticket expired")
	}
	secret = newToken()
	digest := digestToken(secret)
	id := hex.EncodeToString(digest[:])
	sess = rec.Session
	sess.Expires = now.Add(s.lifetime)
	if err := s.put(ctx, originSessionsPrefix+id, sess); err != nil {
		return "", appSession{}, err
	}
	if err := s.put(ctx, originRenewalsPrefix+rec.Renewal, renewalRecord{Session: id, Expires: sess.Expires}); err != nil {
		return "", appSession{}, err
	}
	s.remember(digest, sess)
	return secret, sess, nil
}

// take loads and deletes the ticket at key under the storage's lock on it,
// so that of all the redeems of a ticket, on every instance sharing the
// storage, exactly one gets it.
func (s *sessionStore) take(ctx context.Context, key string) (ticketRecord, error) {
	var rec ticketRecord
	if err := s.storage.Lock(ctx, key); err != nil {
		return rec, fmt.Errorf("locking %s: %v", key, err)
	}
	// Unlocked even when the request is gone; a lock that cannot be
	// released goes stale and is taken over.
	defer s.storage.Unlock(context.WithoutCancel(ctx), key)
	err := s.load(ctx, key, &rec)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, refused("ticket unknown or already spent")
	}
	if err != nil {
		return rec, err
	}
	if err := s.storage.Delete(ctx, key); err != nil {
		return rec, fmt.Errorf("spending ticket %s: %v", key, err)
	}
	return rec, nil
}

// lookup returns the live session with that secret for app; ok is false
// when there is none (missing, expired, bound to another app, or storage
// failing). A cached session is returned without touching storage unless
// it has expired here: another instance may have renewed it.
func (s *sessionStore) lookup(ctx context.Context, app, secret string) (appSession, bool) {
	if !wellFormed(secret) {
		return appSession{}, false
	}
	// The map is keyed by the secret's hash, so its comparisons time
	// nothing an attacker can steer.
	digest := digestToken(secret)
	s.mu.RLock()
	sess, cached := s.cache[digest]
	s.mu.RUnlock()
	if cached && sess.App != app {
		return appSession{}, false // a session's app never changes
	}
	if !cached || !time.Now().Before(sess.Expires) {
		var ok bool
		if sess, ok = s.reload(ctx, app, digest); !ok {
			return appSession{}, false
		}
	}
	sess.digest = digest
	return sess, true
}

// reload is lookup's way to storage, apart so that a hit does not pay for
// the session decoded here (it escapes to the heap).
func (s *sessionStore) reload(ctx context.Context, app string, digest [sha256.Size]byte) (appSession, bool) {
	var sess appSession
	if err := s.load(ctx, originSessionsPrefix+hex.EncodeToString(digest[:]), &sess); err != nil {
		return appSession{}, false
	}
	if sess.App != app || !time.Now().Before(sess.Expires) {
		return appSession{}, false
	}
	s.remember(digest, sess)
	return sess, true
}

// renew extends by lifetime from now the session that handle renews, when
// it is bound to app, still live, and agentID's. The handler calls it after
// checking the agent's helpdesk credentials again, so that an agent who
// signed out of the helpdesk loses access within lifetime.
func (s *sessionStore) renew(ctx context.Context, app, handle string, agentID int64) error {
	if !wellFormed(handle) {
		return refused("malformed renewal handle")
	}
	key := originRenewalsPrefix + hashToken(handle)
	var rec renewalRecord
	err := s.load(ctx, key, &rec)
	if errors.Is(err, fs.ErrNotExist) {
		return refused("renewal handle unknown")
	}
	if err != nil {
		return err
	}
	digest, err := hex.DecodeString(rec.Session)
	if rec.Session == "" || err != nil || len(digest) != sha256.Size {
		return refused("session not started: its ticket was not redeemed")
	}
	var sess appSession
	err = s.load(ctx, originSessionsPrefix+rec.Session, &sess)
	if errors.Is(err, fs.ErrNotExist) {
		return refused("session gone")
	}
	if err != nil {
		return err
	}
	now := time.Now()
	switch {
	case sess.App != app:
		return refused("session is for another app")
	case !now.Before(sess.Expires):
		return refused("session expired")
	case sess.Agent == nil || sess.Agent.ID == nil || *sess.Agent.ID != agentID:
		return refused("session is another agent's")
	}
	sess.Expires = now.Add(s.lifetime)
	if err := s.put(ctx, originSessionsPrefix+rec.Session, sess); err != nil {
		return err
	}
	rec.Expires = sess.Expires
	if err := s.put(ctx, key, rec); err != nil {
		return err
	}
	s.remember([sha256.Size]byte(digest), sess)
	return nil
}

// sweep deletes the tickets, sessions and renewal records that expired
// more than a grace period ago, from storage and from the cache. Several
// instances may sweep at once: a record another one deleted is skipped.
func (s *sessionStore) sweep(ctx context.Context) error {
	now := time.Now()
	s.mu.Lock()
	for digest, sess := range s.cache {
		if !now.Before(sess.Expires) {
			delete(s.cache, digest)
		}
	}
	s.mu.Unlock()

	var errs []error
	for _, prefix := range []string{originTicketsPrefix, originSessionsPrefix, originRenewalsPrefix} {
		keys, err := s.storage.List(ctx, strings.TrimSuffix(prefix, "/"), false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("listing %s: %v", prefix, err))
			continue
		}
		for _, key := range keys {
			if !isRecordName(path.Base(key)) {
				continue // not a record: a storage's temporary file, say
			}
			expires, err := s.expires(ctx, key)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err == nil && now.Before(expires.Add(s.grace)) {
				continue
			}
			if err == nil {
				err = s.storage.Delete(ctx, key)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("sweeping %s: %v", key, err))
			}
		}
	}
	return errors.Join(errs...)
}

// expires says when the record at key expires. A record that does not
// parse (which no reader accepts) counts as expired when last written.
func (s *sessionStore) expires(ctx context.Context, key string) (time.Time, error) {
	b, err := s.storage.Load(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	var rec struct {
		Expires time.Time `json:"expires"`
	}
	if json.Unmarshal(b, &rec) != nil {
		info, err := s.storage.Stat(ctx, key)
		return info.Modified, err
	}
	return rec.Expires, nil
}

// remember caches sess, making room when the cache is full: expired
// sessions go first; when all are live, a tenth of them (arbitrary ones)
// go, so that a full cache is not scanned on every insertion.
func (s *sessionStore) remember(digest [sha256.Size]byte, sess appSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cache[digest]; !ok && len(s.cache) >= s.cacheMax {
		now := time.Now()
		for d, cached := range s.cache {
			if !now.Before(cached.Expires) {
				delete(s.cache, d)
			}
		}
		for d := range s.cache {
			if len(s.cache) < s.cacheMax-s.cacheMax/10 {
				break
			}
			delete(s.cache, d)
		}
	}
	s.cache[digest] = sess
}

func (s *sessionStore) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err == nil {
		err = s.storage.Store(ctx, key, b)
	}
	if err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

// load decodes the record at key into v; a missing record is an error that
// wraps fs.ErrNotExist.
func (s *sessionStore) load(ctx context.Context, key string, v any) error {
	b, err := s.storage.Load(ctx, key)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("loading %s: %w", key, err)
	}
	return nil
}

// newToken returns a fresh ticket, secret or handle.
func newToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never fails: it crashes the program rather
	return base64.RawURLEncoding.EncodeToString(b)
}

// wellFormed says whether tok looks like a token that newToken made, so
// that nothing else (a crafted cookie like "../../x") gets near storage.
func wellFormed(tok string) bool {
	if len(tok) != tokenLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// digestToken hashes a well-formed token without allocating: the copy to
// a fixed-size array stays on the stack.
func digestToken(tok string) [sha256.Size]byte {
	var b [tokenLen]byte
	copy(b[:], tok)
	return sha256.Sum256(b[:])
}

// hashToken is a well-formed token's storage name.
func hashToken(tok string) string {
	d := digestToken(tok)
	return hex.EncodeToString(d[:])
}

// isRecordName says whether name is a record's: a SHA-256 in lowercase hex.
func isRecordName(name string) bool {
	if len(name) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
