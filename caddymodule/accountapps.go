package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/text/unicode/norm"
)

// Account apps are the apps that a helpdesk account's administrators add
// from the settings page (/_dashboard_apps/settings?account=N), beside the
// operator's apps of the config. Each is shown in its own account only.
// They live in Caddy's storage, never in the config, so that they survive
// restarts and config reloads, and every instance sharing the storage
// serves them:
//
//	dashboard_apps/accounts/<N>/apps.json   account N's apps: {"apps": {<id>: app}, "retired": [ids]}
//	dashboard_apps/accounts.version         rewritten (random) after every change
//
// Every change is made under the storage's lock dashboard_apps/accounts,
// from what storage holds at that moment, and ends by rewriting the
// version key. Each instance reads the version key every accountPollEvery
// (and, at most once a second, when a request names an app it does not
// know) and, when it changed, reads the account files again. A change is
// seen by the instance that made it at once, and by the others within
// accountPollEvery.
//
// Clusters that want a change seen at once everywhere (the Redis pub/sub
// of the cluster feature): set accountStore.announce to publish the
// account, and have each instance's subscriber call
// (*App).AccountAppsChanged(account) with what it receives.
const (
	accountAppsDir     = "dashboard_apps/accounts"
	accountAppsFile    = "apps.json"
	accountAppsVersion = "dashboard_apps/accounts.version"
	accountAppsLock    = "dashboard_apps/accounts"

	accountPollEvery   = 2 * time.Second
	missRefreshEvery   = time.Second
	missRefreshTimeout = 2 * time.Second
	storageOpTimeout   = 10 * time.Second
	maxAccountApps     = 50
	maxAccountAppBody  = 64 << 10
)

func accountAppsKey(account int64) string {
	return accountAppsDir + "/" + strconv.FormatInt(account, 10) + "/" + accountAppsFile
}

// accountOfKey returns N of dashboard_apps/accounts/<N>/apps.json.
func accountOfKey(key string) (int64, bool) {
	rest, ok := strings.CutPrefix(key, accountAppsDir+"/")
	if !ok {
		return 0, false
	}
	n, file, ok := strings.Cut(rest, "/")
	if !ok || file != accountAppsFile {
		return 0, false
	}
	id, err := strconv.ParseInt(n, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != n {
		return 0, false
	}
	return id, true
}

// accountFile is an account's record in storage.
type accountFile struct {
	Apps map[string]*AppConfig `json:"apps"`

	// Ids this account's apps had: never given to another account's app,
	// because agents' browsers may still hold the old app's cookies for
	// them (path mode: under {prefix}<id>/; origin mode: on <id>.<domain>).
	Retired []string `json:"retired,omitempty"`
}

// accountApp is an account app as served: its config, validated, shown in
// its account only.
type accountApp struct {
	account int64
	cfg     *AppConfig
	raw     json.RawMessage // its record in the account's file
}

// accountSnapshot is what an instance knows of every account's apps; it
// is never changed once published.
type accountSnapshot struct {
	gen     uint64
	byID    map[string]*accountApp
	retired map[string]int64 // id: the account that retired it
	raw     map[int64][]byte // each account's file as read, to keep what did not change
	apps    map[int64]map[string]*accountApp
}

// accountStore keeps the account apps of every account, from storage.
type accountStore struct {
	storage certmagic.Storage
	policy  *netPolicy
	logger  *zap.Logger
	snap    atomic.Pointer[accountSnapshot]

	mu      sync.Mutex // orders reloads and the publication of changes
	version []byte     // the version key as last read

	lastMiss   atomic.Int64 // UnixNano of the last refresh for a lookup miss
	failing    atomic.Bool  // storage failed at the last poll (logged once)
	configApps func(id string) bool

	// announce, when set, is called after this instance changed an
	// account's apps, e.g. to tell other instances at once.
	announce func(account int64)
}

func newAccountStore(storage certmagic.Storage, policy *netPolicy, logger *zap.Logger, configApps func(string) bool) *accountStore {
	s := &accountStore{storage: storage, policy: policy, logger: logger, configApps: configApps}
	s.snap.Store(&accountSnapshot{byID: map[string]*accountApp{}, retired: map[string]int64{}, raw: map[int64][]byte{}, apps: map[int64]map[string]*accountApp{}})
	return s
}

func (s *accountStore) snapshot() *accountSnapshot { return s.snap.Load() }

// reload reads every account's apps from storage.
func (s *accountStore) reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(ctx)
}

func (s *accountStore) reloadLocked(ctx context.Context) error {
	version, err := s.storage.Load(ctx, accountAppsVersion)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", accountAppsVersion, err)
	}
	keys, err := s.storage.List(ctx, accountAppsDir, true)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listing %s: %w", accountAppsDir, err)
	}
	files := make(map[int64][]byte)
	for _, key := range keys {
		account, ok := accountOfKey(key)
		if !ok {
			continue
		}
		b, err := s.storage.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", key, err)
		}
		files[account] = b
	}
	s.version = version
	s.install(files, nil)
	return nil
}

// reloadAccount reads one account's apps from storage.
func (s *accountStore) reloadAccount(ctx context.Context, account int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.storage.Load(ctx, accountAppsKey(account))
	if errors.Is(err, fs.ErrNotExist) {
		b = nil
	} else if err != nil {
		return fmt.Errorf("reading %s: %w", accountAppsKey(account), err)
	}
	s.install(map[int64][]byte{account: b}, []int64{account})
	return nil
}

// install publishes a new snapshot from account files: all of them
// (only == nil), or those of the accounts in only (a nil file: none). The
// apps of a file that did not change are kept as they were, so that their
// proxies are kept too. The generation moves only when something changed.
func (s *accountStore) install(files map[int64][]byte, only []int64) {
	prev := s.snap.Load()
	next := &accountSnapshot{byID: map[string]*accountApp{}, retired: map[string]int64{}, raw: map[int64][]byte{}, apps: map[int64]map[string]*accountApp{}}
	changed := false
	accounts := only
	if only == nil {
		for account := range files {
			accounts = append(accounts, account)
		}
		for account := range prev.raw {
			if _, ok := files[account]; !ok {
				changed = true // its file is gone
			}
		}
	} else {
		for account, raw := range prev.raw {
			if !slices.Contains(only, account) {
				next.raw[account], next.apps[account] = raw, prev.apps[account]
			}
		}
	}
	for _, account := range accounts {
		raw := files[account]
		if raw == nil {
			changed = changed || prev.raw[account] != nil
			continue
		}
		next.raw[account] = raw
		if old, ok := prev.raw[account]; ok && bytes.Equal(old, raw) {
			next.apps[account] = prev.apps[account]
			continue
		}
		changed = true
		next.apps[account] = s.parse(account, raw, prev.apps[account])
	}
	if !changed {
		return
	}
	for account, apps := range next.apps {
		for id, a := range apps {
			if other, dup := next.byID[id]; dup {
				// Two instances raced past the lock (a storage whose lock
				// failed): the lower account keeps the id.
				s.logger.Error("two accounts have an app with the same id; serving the lower account's",
					zap.String("app", id), zap.Int64("account", account), zap.Int64("other_account", other.account))
				if other.account < account {
					continue
				}
			}
			next.byID[id] = a
		}
	}
	for account, raw := range next.raw {
		var f accountFile
		if json.Unmarshal(raw, &f) == nil {
			for _, id := range f.Retired {
				next.retired[id] = account
			}
		}
	}
	next.gen = prev.gen + 1
	s.snap.Store(next)
}

// parse reads an account's file; an app whose record is as it was in
// prev is kept as it was (and so is its proxy). Apps that fail validation
// (a file edited by hand, or a validator grown stricter) are logged and
// left out.
func (s *accountStore) parse(account int64, raw []byte, prev map[string]*accountApp) map[string]*accountApp {
	var f struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		s.logger.Error("account apps: unreadable record in storage; the account's apps are not served", zap.Int64("account", account),
			zap.String("key", accountAppsKey(account)), zap.Error(err))
		return nil
	}
	apps := make(map[string]*accountApp, len(f.Apps))
	for id, rec := range f.Apps {
		if old, ok := prev[id]; ok && bytes.Equal(old.raw, rec) {
			apps[id] = old
			continue
		}
		var cfg *AppConfig
		if err := json.Unmarshal(rec, &cfg); err != nil || cfg == nil {
			s.logger.Error("account apps: unreadable app in storage; not served", zap.Int64("account", account), zap.String("app", id), zap.Error(err))
			continue
		}
		if err := validateAccountApp(id, account, cfg); err != nil {
			s.logger.Error("account apps: invalid app in storage; not served", zap.Int64("account", account), zap.Error(err))
			continue
		}
		apps[id] = &accountApp{account: account, cfg: cfg, raw: rec}
	}
	return apps
}

// validateAccountApp checks an app of account with the registry's own
// validator, after forcing its accounts to [account] and refusing what
// only the gateway's operator may set: placeholders in identity_secret
// (which read the gateway's environment and files) and tls ca_file (a
// file on the gateway), and placeholders in tls server_name.
func validateAccountApp(id string, account int64, a *AppConfig) error {
	a.Accounts = []int{int(account)}
	fail := func(field string, value any, why string) error {
		return &fieldError{msg: fmt.Sprintf("app %q: %s %#v: %s", id, field, value, why), Field: field, Why: why}
	}
	if strings.Contains(a.IdentitySecret, "{") {
		return fail("identity_secret", "(hidden)", "must be the secret itself: placeholders are for the gateway's operator")
	}
	if t := a.TLS; t != nil {
		if t.CAFile != "" {
			return fail("tls", t.CAFile, "ca_file names a file on the gateway, which only the gateway's operator may set")
		}
		if strings.Contains(t.ServerName, "{") {
			return fail("tls", t.ServerName, "server_name must be a host name, without placeholders")
		}
	}
	return a.validate(id)
}

// poll refreshes the snapshot every accountPollEvery until ctx is done.
func (s *accountStore) poll(ctx context.Context) {
	every(ctx, accountPollEvery, func() { s.refresh(ctx) })
}

// refresh reads the version key and, if it changed, every account's apps.
// It reports whether the snapshot changed.
func (s *accountStore) refresh(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, storageOpTimeout)
	defer cancel()
	version, err := s.storage.Load(ctx, accountAppsVersion)
	if errors.Is(err, fs.ErrNotExist) {
		version, err = nil, nil
	}
	if err == nil {
		s.mu.Lock()
		same := bytes.Equal(version, s.version)
		s.mu.Unlock()
		if same {
			s.failing.Store(false)
			return false
		}
		gen := s.snapshot().gen
		if err = s.reload(ctx); err == nil {
			if s.failing.Swap(false) {
				s.logger.Info("account apps: storage readable again")
			}
			return s.snapshot().gen != gen
		}
	}
	if !s.failing.Swap(true) {
		s.logger.Warn("account apps: reading Caddy storage failed; serving the account apps last read, and retrying (logged once until it works again)", zap.Error(err))
	}
	return false
}

// refreshForMiss refreshes the snapshot for a request naming an app this
// instance does not know (another instance may have just added it), at
// most once every missRefreshEvery, however many such requests come.
func (s *accountStore) refreshForMiss() bool {
	now := time.Now().UnixNano()
	last := s.lastMiss.Load()
	if now-last < int64(missRefreshEvery) || !s.lastMiss.CompareAndSwap(last, now) {
		return false
	}
	// The request waits for this: not for long.
	ctx, cancel := context.WithTimeout(context.Background(), missRefreshTimeout)
	defer cancel()
	return s.refresh(ctx)
}

// accountChange is a change to one account's apps, made by update.
type accountChange func(f *accountFile, taken func(id string) bool) error

// update changes account's apps in storage under the storage's lock, from
// what storage holds then, and publishes the result here at once.
func (s *accountStore) update(ctx context.Context, account int64, change accountChange) error {
	ctx, cancel := context.WithTimeout(ctx, storageOpTimeout)
	defer cancel()
	if err := s.storage.Lock(ctx, accountAppsLock); err != nil {
		return fmt.Errorf("locking %s: %w", accountAppsLock, err)
	}
	defer s.storage.Unlock(context.WithoutCancel(ctx), accountAppsLock)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(ctx); err != nil {
		return err
	}
	snap := s.snap.Load()
	f := accountFile{Apps: map[string]*AppConfig{}}
	if raw := snap.raw[account]; raw != nil {
		if err := json.Unmarshal(raw, &f); err != nil {
			return fmt.Errorf("reading %s: %w", accountAppsKey(account), err)
		}
		if f.Apps == nil {
			f.Apps = map[string]*AppConfig{}
		}
	}
	taken := func(id string) bool {
		if s.configApps != nil && s.configApps(id) {
			return true
		}
		if a, ok := snap.byID[id]; ok && a.account != account {
			return true
		}
		if _, ok := f.Apps[id]; ok {
			return true
		}
		if by, ok := snap.retired[id]; ok && by != account {
			return true
		}
		return false
	}
	if err := change(&f, taken); err != nil {
		return err
	}
	raw, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := s.storage.Store(ctx, accountAppsKey(account), raw); err != nil {
		return fmt.Errorf("storing %s: %w", accountAppsKey(account), err)
	}
	version := newVersion()
	if err := s.storage.Store(ctx, accountAppsVersion, version); err != nil {
		// The change is stored; other instances see it at their next
		// reload of everything (a restart, a config load) or the next
		// change that writes the version.
		s.logger.Error("account apps: storing the version key failed: other instances may not see this change until the next one", zap.Error(err))
	} else {
		s.version = version
	}
	s.install(map[int64][]byte{account: raw}, []int64{account})
	if s.announce != nil {
		s.announce(account)
	}
	return nil
}

func newVersion() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return []byte(time.Now().UTC().Format(time.RFC3339Nano) + " " + hex.EncodeToString(b))
}

// has reports whether id is an account app's.
func (s *accountStore) has(id string) bool {
	_, ok := s.snapshot().byID[id]
	return ok
}

// hasAccountApp reports whether id is an account app's, for the TLS
// permission: when this instance does not know it, storage is read again
// (at most once a second), since another instance may have just added it.
func (a *App) hasAccountApp(id string) bool {
	if a.accounts == nil {
		return false
	}
	return a.accounts.has(id) || a.accounts.refreshForMiss() && a.accounts.has(id)
}

// appIDFor derives an app id from a name: letters folded to ASCII where
// Unicode decomposes them (é → e) or by a few common spellings (ß → ss),
// other runs of characters become "-", at most 63 characters; "app" when
// nothing is left. The first of id, id-2, id-3, ... that is not taken is
// returned.
func appIDFor(name string, taken func(string) bool) string {
	var b strings.Builder
	dash := false
	for _, r := range norm.NFKD.String(strings.ToLower(name)) {
		if unicode.Is(unicode.Mn, r) {
			continue // a combining mark of a decomposed letter
		}
		s := string(r)
		if f, ok := asciiFold[r]; ok {
			s = f
		}
		for _, c := range s {
			if c < 128 && (unicode.IsLetter(c) || unicode.IsDigit(c)) {
				if dash && b.Len() > 0 {
					b.WriteByte('-')
				}
				b.WriteRune(c)
				dash = false
			} else {
				dash = true
			}
		}
	}
	base := b.String()
	if base == "" {
		base = "app"
	}
	for n := 1; ; n++ {
		suffix := ""
		if n > 1 {
			suffix = "-" + strconv.Itoa(n)
		}
		id := base
		if len(id)+len(suffix) > 63 {
			id = strings.TrimRight(id[:63-len(suffix)], "-")
		}
		id += suffix
		if !taken(id) {
			return id
		}
	}
}

// asciiFold spells letters that Unicode does not decompose into ASCII.
var asciiFold = map[rune]string{
	'\'': "", '’': "", 'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'đ': "d", 'ð': "d", 'þ': "th", 'ł': "l", 'ı': "i", 'ħ': "h", 'ŧ': "t", 'ŋ': "ng",
}

// provisionAccountApps reads the account apps from the config's storage
// and keeps them fresh until the config is unloaded. A storage that
// cannot be read now does not stop the config: the account apps come as
// soon as a poll reads it.
func (a *App) provisionAccountApps(ctx caddy.Context) error {
	policy, err := newNetPolicy(a.AccountApps)
	if err != nil {
		return err
	}
	a.accounts = newAccountStore(ctx.Storage(), policy, a.logger.Named("account_apps"), func(id string) bool {
		_, ok := a.Apps[id]
		return ok
	})
	rctx, cancel := context.WithTimeout(ctx, storageOpTimeout)
	defer cancel()
	if err := a.accounts.reload(rctx); err != nil {
		a.accounts.failing.Store(true)
		a.logger.Error("account apps: reading Caddy storage failed; they are served once it can be read", zap.Error(err))
	}
	go a.accounts.poll(ctx)
	return nil
}

// AccountAppsChanged makes this instance read account's apps from storage
// now, rather than at its next poll: the hook for a cluster's pub/sub
// (each instance's subscriber calls it with the account another instance
// announced through accountStore.announce).
func (a *App) AccountAppsChanged(account int64) error {
	if a.accounts == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storageOpTimeout)
	defer cancel()
	return a.accounts.reloadAccount(ctx, account)
}
