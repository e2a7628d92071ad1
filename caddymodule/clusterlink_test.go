package caddymodule

import (
	"strings"
	"testing"
	"time"
)

// TestRedisURLValidation: redis_url takes redis:// and rediss:// URLs with
// user, password and db, and placeholders; anything else is refused at
// config time, naming redis_url and its value, never the password.
func TestRedisURLValidation(t *testing.T) {
	t.Setenv("TEST_REDIS_URL", "rediss://gateway:pa55word@redis.internal:6380/3")
	t.Setenv("TEST_BAD_REDIS_URL", "http://:pa55word@redis.internal:6379/0")
	for _, good := range []string{
		"redis://127.0.0.1:6379/0",
		"redis://127.0.0.1",
		"redis://:pa55word@127.0.0.1:6379/2",
		"redis://default:pa55word@[::1]:6379/15",
		"rediss://gateway:pa55word@redis.internal/1?dial_timeout=3s",
		"{env.TEST_REDIS_URL}",
	} {
		app := &App{Apps: map[string]*AppConfig{}, RedisURL: good}
		if err := app.Validate(); err != nil {
			t.Errorf("%s refused: %v", good, err)
		}
	}
	for bad, why := range map[string]string{
		"http://127.0.0.1:6379/0":             "redis:// or rediss://",
		"unix:///run/redis.sock":              "redis:// or rediss://",
		"127.0.0.1:6379":                      "redis:// or rediss://",
		"redis://":                            "needs a host",
		"redis:///0":                          "needs a host",
		"redis://127.0.0.1:0/0":               "port",
		"redis://127.0.0.1:70000/0":           "port",
		"redis://:pa55word@127.0.0.1:port/0":  "not a URL",
		"redis://127.0.0.1:6379/zero":         "database number",
		"redis://127.0.0.1:6379/-1":           "negative",
		"redis://127.0.0.1:6379/0/1":          "path",
		"redis://127.0.0.1:6379/0?colour=red": "colour",
		"redis://127.0.0.1:6379/0#frag":       "fragment",
		"{env.TEST_UNSET_REDIS_URL}":          "placeholder",
		"{env.TEST_BAD_REDIS_URL}":            "redis:// or rediss://",
	} {
		app := &App{Apps: map[string]*AppConfig{}, RedisURL: bad}
		err := app.Validate()
		if err == nil {
			t.Errorf("%s accepted", bad)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "redis_url \"") || !strings.Contains(msg, why) {
			t.Errorf("%s: error %q does not name redis_url, its value and %q", bad, msg, why)
		}
		if strings.Contains(msg, "pa55word") {
			t.Errorf("%s: error shows the password: %q", bad, msg)
		}
	}
}

// TestRedisURLInCaddyfile: the dashboard_apps global option takes
// redis_url, and caddy adapt refuses it without exactly one argument.
func TestRedisURLInCaddyfile(t *testing.T) {
	out, _, err := adaptCaddyfile([]byte("{\n\tdashboard_apps {\n\t\tredis_url {env.REDIS_URL}\n\t}\n}\n"), "Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"redis_url":"{env.REDIS_URL}"`) {
		t.Errorf("adapted: %s", out)
	}
	for _, bad := range []string{"redis_url", "redis_url redis://a redis://b"} {
		if _, _, err := adaptCaddyfile([]byte("{\n\tdashboard_apps {\n\t\t"+bad+"\n\t}\n}\n"), "Caddyfile"); err == nil {
			t.Errorf("%q adapted", bad)
		}
	}
}

// TestEvictionMessages: what one instance publishes, the others apply to
// every cache they keep; an instance ignores its own messages (it evicted
// before publishing), and "all" drops every context.
func TestEvictionMessages(t *testing.T) {
	opts, _, err := parseRedisURL("redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	link := newRedisLink(opts) // never started: no dial
	defer link.Destruct()
	var s sharedState
	link.attach(&s)
	slots := entrySlots(1, 123, 456)
	fresh := func() []byte { return s.gens.encodeEntry([]byte("ctx"), time.Now(), slots[:]) }
	alive := func(e []byte) bool { _, _, _, ok := s.gens.decodeEntry(e, time.Now()); return ok }

	e := fresh()
	evs := []eviction{{aboutConversation, 1, 123}, {aboutContact, anyAccount, 456}}
	msg := encodeEvictions(evs, false)
	if want := `"conversations":[[1,123]],"contacts":[[0,456]]`; !strings.Contains(string(msg), want) {
		t.Errorf("message %s lacks %s", msg, want)
	}
	link.receive(string(msg))
	if !alive(e) {
		t.Error("the instance applied its own message a second time")
	}
	peer := strings.Replace(string(msg), instanceID, "another-instance", 1)
	link.receive(peer)
	if alive(e) {
		t.Error("a peer's eviction was not applied")
	}
	e = fresh()
	link.receive(`{"from":"another-instance","contacts":[[2,999]]}`)
	if !alive(e) && slotOf(aboutContact, 2, 999) != slots[2] {
		t.Error("an eviction of another contact evicted the entry")
	}
	link.receive(`not json`)
	if !alive(e) {
		t.Error("a malformed message evicted the entry")
	}
	link.receive(`{"from":"another-instance","all":true}`)
	if alive(e) {
		t.Error("evicting everything left the entry")
	}
	e = fresh()
	link.detach(&s)
	link.receive(peer)
	if !alive(e) {
		t.Error("a detached cache was evicted")
	}
}

// TestRedisLinkShared: configs with the same redis_url share one link,
// which lives while one of them does.
func TestRedisLinkShared(t *testing.T) {
	opts, _, _ := parseRedisURL("redis://:secret@127.0.0.1:1/4")
	a, keyA, err := loadLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	opts2, _, _ := parseRedisURL("redis://:secret@127.0.0.1:1/4")
	b, keyB, _ := loadLink(opts2)
	if a != b || keyA != keyB {
		t.Fatal("the same URL gave two links")
	}
	if a.channel != "dashboard_apps:evictions:db4" {
		t.Errorf("channel %q", a.channel)
	}
	if n, _ := links.References(keyA); n != 2 {
		t.Errorf("%d references", n)
	}
	links.Delete(keyA)
	if deleted, _ := links.Delete(keyB); !deleted {
		t.Error("the link outlived its last config")
	}
	if a.ctx.Err() == nil {
		t.Error("the link was not closed")
	}
}

func TestBumpAll(t *testing.T) {
	var g generations
	slots := entrySlots(1, 123, 456)
	e := g.encodeEntry([]byte("ctx"), time.Now(), slots[:])
	g.bump(aboutConversation, 1, 124)
	if _, _, _, ok := g.decodeEntry(e, time.Now()); !ok && slotOf(aboutConversation, 1, 124) != slots[0] {
		t.Fatal("another conversation's eviction evicted the entry")
	}
	g.bumpAll()
	if _, _, _, ok := g.decodeEntry(e, time.Now()); ok {
		t.Error("the entry survived bumpAll")
	}
}
