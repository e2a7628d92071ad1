package rewrite

import (
	"net/http"
	"testing"
)

// TestAdaptPageCSPReadsPoliciesAsBrowsers holds AdaptPageCSP to the
// browser's reading of a policy where Unicode-aware string functions
// would differ: white space is ASCII only, keywords fold ASCII case only,
// nonces are compared exactly.
func TestAdaptPageCSPReadsPoliciesAsBrowsers(t *testing.T) {
	src := PageSources{Origin: "https://HD.test", Script: "https://hd.test/s.js", ScriptHash: "sha256-AAA",
		Style: "https://hd.test/s.css", Connect: "https://hd.test/api/", Frame: "https://hd.test/apps/"}
	for _, tc := range []struct {
		name, in, want, nonce string
		integrity             bool
	}{
		{"no-break space is not white space: script-src\u00a0'self' is no script-src",
			"default-src 'none'; script-src\u00a0'self'",
			"default-src 'none'; script-src\u00a0'self'; script-src 'sha256-AAA' https://hd.test/s.js; style-src https://hd.test/s.css; connect-src https://hd.test/api/; frame-src https://hd.test/apps/", "", true},
		{"a nonce in another case is another nonce",
			"script-src 'nonce-abc'; style-src 'nonce-ABC'",
			"script-src 'nonce-abc'; style-src 'nonce-ABC' https://hd.test/s.css", "abc", false},
		{"keywords in any ASCII case", "SCRIPT-SRC 'NONCE-abc' 'Strict-Dynamic'; Default-Src 'SELF'",
			"SCRIPT-SRC 'NONCE-abc' 'Strict-Dynamic'; Default-Src 'SELF'", "abc", false},
		{"the long s is not an s: 'ſtrict-dynamic' is no keyword", "script-src 'self' 'ſtrict-dynamic'",
			"script-src 'self' 'ſtrict-dynamic'", "", false},
		{"the page's origin in another case", "default-src https://hd.TEST", "default-src https://hd.TEST", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Content-Security-Policy", tc.in)
			nonce, integrity := AdaptPageCSP(h, src)
			if got := h.Get("Content-Security-Policy"); got != tc.want {
				t.Errorf("policy:\n got %q\nwant %q", got, tc.want)
			}
			if nonce != tc.nonce || integrity != tc.integrity {
				t.Errorf("nonce %q integrity %v, want %q %v", nonce, integrity, tc.nonce, tc.integrity)
			}
		})
	}
}
