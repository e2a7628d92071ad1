package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestConfigsValidate adapts every example config and the demo Caddyfile
// and validates them as `caddy validate` does: every module is
// provisioned, nothing is started.
func TestConfigsValidate(t *testing.T) {
	t.Setenv("CRM_IDENTITY_SECRET", strings.Repeat("s", 40))
	t.Setenv("DASHBOARD_APPS_WEBHOOK_SECRET", "webhook-secret")
	t.Setenv("REDIS_URL", "redis://:redis-password@127.0.0.1:6390/0")
	files, _ := filepath.Glob("../configs/*")
	more, _ := filepath.Glob("../configs/*/*")
	files = append(append(files, more...), "../Caddyfile")
	n := 0
	for _, path := range files {
		isCaddyfile := strings.HasSuffix(path, "Caddyfile")
		if !isCaddyfile && !strings.HasSuffix(path, ".json") {
			continue
		}
		n++
		t.Run(strings.TrimPrefix(path, "../"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if isCaddyfile {
				var warnings []string
				src, warnings, err = adaptCaddyfile(src, path)
				if err != nil {
					t.Fatalf("adapt: %v", err)
				}
				for _, w := range warnings {
					t.Errorf("adapt warning: %s", w)
				}
			}
			var cfg caddy.Config
			if err := json.Unmarshal(src, &cfg); err != nil {
				t.Fatalf("JSON: %v", err)
			}
			// Keep validation's storage writes (the identity key) in a
			// temporary directory, whatever storage the config names.
			cfg.StorageRaw = json.RawMessage(`{"module":"file_system","root":` + jsonString(t.TempDir()) + `}`)
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
	if n < 6 {
		t.Errorf("only %d configs found", n)
	}
}

func adaptCaddyfile(src []byte, filename string) ([]byte, []string, error) {
	out, warnings, err := caddyfile.Adapter{ServerType: httpServerType()}.Adapt(src, map[string]any{"filename": filename})
	var ws []string
	for _, w := range warnings {
		ws = append(ws, w.String())
	}
	return out, ws, err
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
