package caddymodule

import (
	"os"
	"testing"
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
	code := m.Run()
	stopUpstreams()
	os.RemoveAll(dir)
	os.Exit(code)
}
