package rewrite

import (
	"net/http"
	"slices"
	"strings"
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

// FuzzAdaptPageCSP holds AdaptPageCSP to what it promises on any policy:
// a policy it has adapted needs nothing more (adapting again changes
// nothing), it only ever adds the sources it was given, a nonce it returns
// is safe to copy into markup, and it keeps the number of policies.
func FuzzAdaptPageCSP(f *testing.F) {
	for _, s := range []string{
		"", "default-src 'none'", "script-src 'nonce-abc' 'strict-dynamic'; frame-src 'none'",
		"default-src 'self', frame-src 'none'", "child-src https://x.test", "SCRIPT-SRC 'NONCE-a+b/c=' ; style-src 'nonce-A'",
		"default-src 'none'; script-src\u00a0'self'", "script-src 'self' 'ſtrict-dynamic'", ";,; ,", "script-src-elem 'none'; default-src *",
	} {
		f.Add(s)
	}
	src := PageSources{Origin: "https://hd.test", Script: "https://hd.test/s.js", ScriptHash: "sha256-AAA",
		Style: "https://hd.test/s.css", Connect: "https://hd.test/api/", Frame: "https://hd.test/apps/"}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.ContainsAny(v, "\r\n") {
			return // not a header value
		}
		h := http.Header{"Content-Security-Policy": {v}}
		nonce, _ := AdaptPageCSP(h, src)
		once := h.Get("Content-Security-Policy")
		if nonce != "" && !validNonce(nonce) {
			t.Fatalf("unsafe nonce %q from %q", nonce, v)
		}
		if strings.Count(once, ",") != strings.Count(v, ",") {
			t.Fatalf("policy count changed: %q -> %q", v, once)
		}
		for _, tok := range strings.FieldsFunc(strings.NewReplacer(";", " ", ",", " ").Replace(once), isCSPSpace) {
			if !strings.Contains(v, tok) && !slices.Contains([]string{"'sha256-AAA'", src.Script, src.Style, src.Connect, src.Frame,
				"script-src", "style-src", "connect-src", "frame-src"}, tok) {
				t.Fatalf("added %q: %q -> %q", tok, v, once)
			}
		}
		h = http.Header{"Content-Security-Policy": {once}}
		if again, _ := AdaptPageCSP(h, src); again != nonce || h.Get("Content-Security-Policy") != once {
			t.Fatalf("not settled: %q -> %q -> %q", v, once, h.Get("Content-Security-Policy"))
		}
	})
}

// TestAdaptPageCSPScriptOnly: a script without stylesheet, API or frames
// (the path-mode shim in an app's page) touches only script sources; and
// a policy that runs inline scripts by 'unsafe-inline' alone keeps doing
// so: a hash there would turn it off, so the script's URL is added.
func TestAdaptPageCSPScriptOnly(t *testing.T) {
	src := PageSources{Origin: "https://hd.test", Script: "https://hd.test/shim.js", ScriptHash: "sha256-AAA"}
	for _, tc := range []struct {
		in, want, nonce string
		integrity       bool
	}{
		{"default-src 'none'; img-src 'self'", "default-src 'none'; img-src 'self'; script-src 'sha256-AAA' https://hd.test/shim.js", "", true},
		{"default-src 'self'", "default-src 'self'", "", false},
		{"script-src 'nonce-n1' 'strict-dynamic'; object-src 'none'", "script-src 'nonce-n1' 'strict-dynamic'; object-src 'none'", "n1", false},
		{"script-src 'sha256-BBB'", "script-src 'sha256-BBB' 'sha256-AAA' https://hd.test/shim.js", "", true},
		{"script-src 'sha256-BBB' 'strict-dynamic'", "script-src 'sha256-BBB' 'strict-dynamic' 'sha256-AAA'", "", true},
		{"script-src 'unsafe-inline' https://cdn.test", "script-src 'unsafe-inline' https://cdn.test https://hd.test/shim.js", "", false},
		{"script-src 'unsafe-inline' 'sha256-BBB'", "script-src 'unsafe-inline' 'sha256-BBB' 'sha256-AAA' https://hd.test/shim.js", "", true},
		{"frame-ancestors 'self'", "frame-ancestors 'self'", "", false},
	} {
		h := http.Header{"Content-Security-Policy": {tc.in}}
		nonce, integrity := AdaptPageCSP(h, src)
		if got := h.Get("Content-Security-Policy"); got != tc.want || nonce != tc.nonce || integrity != tc.integrity {
			t.Errorf("%q:\n got %q %q %v\nwant %q %q %v", tc.in, got, nonce, integrity, tc.want, tc.nonce, tc.integrity)
		}
	}
}
