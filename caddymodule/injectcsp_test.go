package caddymodule

import (
	"net/http"
	"testing"
)

func TestAdaptPageCSP(t *testing.T) {
	const origin, prefix, hash = "https://hd.test", "/dashboard-apps/", "sha256-AAA"
	for _, tc := range []struct {
		name, in, want, nonce string
		integrity             bool
	}{
		{"no policy", "", "", "", false},
		{"self allows everything we need", "default-src 'self'", "default-src 'self'", "", false},
		{"nonce reused", "script-src 'nonce-abc' 'strict-dynamic'; frame-src 'none'",
			"script-src 'nonce-abc' 'strict-dynamic'; frame-src https://hd.test/dashboard-apps/", "abc", false},
		{"strict-dynamic with hashes only", "script-src 'sha256-X' 'strict-dynamic'",
			"script-src 'sha256-X' 'strict-dynamic' 'sha256-AAA'", "", true},
		{"default-src none", "default-src 'none'",
			"default-src 'none'; script-src 'sha256-AAA' https://hd.test/_dashboard_apps/host.js; style-src https://hd.test/_dashboard_apps/host.css; connect-src https://hd.test/_dashboard_apps/; frame-src https://hd.test/dashboard-apps/", "", true},
		{"script host list", "script-src https://cdn.test; object-src 'none'",
			"script-src https://cdn.test 'sha256-AAA' https://hd.test/_dashboard_apps/host.js; object-src 'none'", "", true},
		{"child-src fallback for frames", "child-src https://x.test",
			"child-src https://x.test; frame-src https://x.test https://hd.test/dashboard-apps/", "", false},
		{"two policies", "default-src 'self', frame-src 'none'",
			"default-src 'self', frame-src https://hd.test/dashboard-apps/", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.in != "" {
				h.Set("Content-Security-Policy", tc.in)
			}
			nonce, integrity := adaptPageCSP(h, origin, prefix, hash)
			if got := h.Get("Content-Security-Policy"); got != tc.want {
				t.Errorf("policy:\n got %q\nwant %q", got, tc.want)
			}
			if nonce != tc.nonce || integrity != tc.integrity {
				t.Errorf("nonce %q integrity %v, want %q %v", nonce, integrity, tc.nonce, tc.integrity)
			}
		})
	}
}

func TestNonceIsNeverCopiedUnlessSafe(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Security-Policy", `script-src 'nonce-"><script>alert(1)</script>'`)
	if nonce, _ := adaptPageCSP(h, "https://x", "/p/", "sha256-A"); nonce != "" {
		t.Errorf("unsafe nonce copied: %q", nonce)
	}
}
