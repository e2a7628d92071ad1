package caddymodule

import (
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

// TestMain keeps Caddy's config autosave and data (certificates, keys) in a
// temporary directory, away from the developer's own Caddy.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dashboard-apps-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", dir+"/data")
	os.Setenv("XDG_CONFIG_HOME", dir+"/config")
	// Caddy computed its default storage's directory when its package was
	// initialized, before the environment above was set.
	caddy.DefaultStorage = &certmagic.FileStorage{Path: caddy.AppDataDir()}
	code := m.Run()
	stopUpstreams()
	os.RemoveAll(dir)
	os.Exit(code)
}
