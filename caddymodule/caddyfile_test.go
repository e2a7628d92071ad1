package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestCaddyfileAdapt adapts each testdata/caddyfile_adapt/*.caddyfile and
// compares the JSON with the .json beside it.
func TestCaddyfileAdapt(t *testing.T) {
	files, _ := filepath.Glob("../testdata/caddyfile_adapt/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no adapt fixtures")
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := caddyfile.Adapter{ServerType: httpServerType()}.Adapt(src, map[string]any{"filename": in})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %v", warnings)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, out, "", "\t")
			pretty.WriteByte('\n')
			checkGoldenFile(t, strings.TrimSuffix(in, ".caddyfile")+".json", pretty.Bytes())
		})
	}
}

// checkGoldenFile compares got with the golden file at path, or writes it
// there with -update.
func checkGoldenFile(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n%s", path, got)
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"app without url", "{\n dashboard_apps {\n app a \"A\"\n }\n}\n:80\n", "app needs an id, a name and a URL"},
		{"duplicate app", "{\n dashboard_apps {\n app a A http://x/\n app a B http://y/\n }\n}\n:80\n", `app "a" is defined twice`},
		{"unknown app option", "{\n dashboard_apps {\n app a A http://x/ {\n colour red\n }\n }\n}\n:80\n", `unrecognized app option "colour"`},
		{"bad position", "{\n dashboard_apps {\n app a A http://x/ {\n position first\n }\n }\n}\n:80\n", `position "first": not an integer`},
		{"bad accounts", "{\n dashboard_apps {\n app a A http://x/ {\n accounts one\n }\n }\n}\n:80\n", `accounts "one": not an integer`},
		{"bad ttl", "{\n dashboard_apps {\n context_ttl soon\n }\n}\n:80\n", `context_ttl "soon"`},
		{"bad cache size", "{\n dashboard_apps {\n cache_size 1KB\n }\n}\n:80\n", `cache_size "1KB": must be between`},
		{"unknown handler option", ":80 {\n dashboard_apps {\n colour red\n }\n}\n", `unrecognized dashboard_apps option "colour"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := caddyfile.Adapter{ServerType: httpServerType()}.Adapt([]byte(tc.src), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func httpServerType() caddyfile.ServerType { return httpcaddyfile.ServerType{} }
