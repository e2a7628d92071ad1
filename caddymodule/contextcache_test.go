package caddymodule

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// TestCacheMemoryBoundedByCacheSize stores 100k distinct contexts of about
// 1 KiB (100 MiB in all) in an 8 MiB cache: the heap does not grow past
// the cache's size, and recent entries are still served.
func TestCacheMemoryBoundedByCacheSize(t *testing.T) {
	const size = 8 << 20
	state, key, err := loadState(size)
	if err != nil {
		t.Fatal(err)
	}
	defer states.Delete(key)
	payload := bytes.Repeat([]byte("x"), 1000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := int64(1); i <= 100_000; i++ {
		k, n := contextKey('x', credentialKey{byte(i), byte(i >> 8), byte(i >> 16)}, 1, i, "")
		slots := entrySlots(1, i, i)
		state.store(k[:n], payload, time.Minute, slots[:])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap grew %d KiB for 100k entries in a %d KiB cache; %d entries kept", grown>>10, size>>10, state.cache.EntryCount())
	if grown > size { // 100 MiB went through it
		t.Errorf("heap grew by %d bytes: the cache is not bounded by its size", grown)
	}
	last := int64(100_000)
	k, n := contextKey('x', credentialKey{byte(last), byte(last >> 8), byte(last >> 16)}, 1, last, "")
	buf := make([]byte, 4096)
	if e, ok := state.lookup(k[:n], buf, time.Minute); !ok || !e.fresh || len(e.payload) != 1000 {
		t.Errorf("the newest entry is not served")
	}
}

func TestGenerationsEvict(t *testing.T) {
	var g generations
	slots := entrySlots(1, 123, 456)
	entry := g.encodeEntry([]byte("payload"), time.Now(), slots[:])
	if _, p, _, ok := g.decodeEntry(entry, time.Now()); !ok || string(p) != "payload" {
		t.Fatal("fresh entry not decoded")
	}
	g.bump(aboutContact, anyAccount, 456) // a contact event without an account
	if _, _, _, ok := g.decodeEntry(entry, time.Now()); ok {
		t.Error("an entry of the contact survived its eviction in every account")
	}
	entry = g.encodeEntry([]byte("payload"), time.Now(), slots[:])
	g.bump(aboutConversation, 2, 123) // the same number in another account
	if _, _, _, ok := g.decodeEntry(entry, time.Now()); !ok && slotOf(aboutConversation, 2, 123) != slots[0] {
		t.Error("an event in another account evicted the entry")
	}
	if _, _, _, ok := g.decodeEntry(entry[:5], time.Now()); ok {
		t.Error("a truncated entry decoded")
	}
}
