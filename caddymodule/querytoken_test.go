package caddymodule

import (
	"strings"
	"testing"
)

// tokenSpellings are query strings in which some server framework reads
// an api_access_token parameter (its value always starts with SECRET),
// with what must remain of each.
var tokenSpellings = []struct{ query, want string }{
	{"api_access_token=SECRET", ""},
	{"api_access_token=SECRET&keep=1", "keep=1"},
	{"keep=1&api_access_token=SECRET", "keep=1"},
	{"a=1&api_access_token=SECRET1&b=2&api_access_token=SECRET2&c=3", "a=1&b=2&c=3"},
	{"api_access_token", ""},
	{"api_access_token&keep=1", "keep=1"},
	// After ";", which Rack (before 3) and old Pythons read as "&".
	{"keep=1;api_access_token=SECRET", "keep=1"},
	{"api_access_token=SECRET;keep=1", "keep=1"},
	{"a=1;api_access_token=SECRET&b=2", "a=1&b=2"},
	{"a=1&api_access_token=SECRET;b=2", "a=1;b=2"},
	{"a=1;b=2;api_access_token=SECRET", "a=1;b=2"},
	// Arrays and hashes: Rails, PHP, Express, ASP.NET.
	{"api_access_token[]=SECRET&keep=1", "keep=1"},
	{"api_access_token[x]=SECRET&keep=1", "keep=1"},
	{"api_access_token[0]=SECRET&api_access_token[1]=SECRET", ""},
	{"api_access_token[x][y]=SECRET", ""},
	{"api_access_token%5B%5D=SECRET&keep=1", "keep=1"},
	{"api_access_token%5b%5d=SECRET", ""},
	{"api_access_token[=SECRET", ""},
	{"api_access_token]=SECRET", ""},    // Rack 2
	{"[api_access_token]=SECRET", ""},   // Rack 2
	{"[]api_access_token[]=SECRET", ""}, // Rack 2
	{";api_access_token[]=SECRET", ""},
	// Percent-encoded, "+" as a space.
	{"api%5Faccess%5Ftoken=SECRET&keep=1", "keep=1"},
	{"%61%70%69%5f%61%63%63%65%73%73%5f%74%6f%6b%65%6e=SECRET", ""},
	{"api_access_to%6Ben=SECRET", ""},
	{"api_access_token%5B%zz%5D=SECRET", ""}, // not an escape: kept as written, still an array
	// PHP: leading spaces, " " and "." as "_", an unclosed "[" as "_",
	// the key ended at a NUL.
	{"+api_access_token=SECRET&keep=1", "keep=1"},
	{"%20%20api_access_token=SECRET", ""},
	{"api.access.token=SECRET", ""},
	{"api+access+token=SECRET", ""},
	{"api%20access.token=SECRET", ""},
	{"api[access_token=SECRET", ""},
	{"api_access[token=SECRET", ""},
	{"api.access.token[x]=SECRET", ""},
	{"api_access_token%00junk=SECRET", ""},
	// ASP.NET: names compared ignoring ASCII case.
	{"API_ACCESS_TOKEN=SECRET&keep=1", "keep=1"},
	{"Api_Access_Token=SECRET", ""},
	{"API_ACCESS_TOKEN[]=SECRET", ""},
	{"%41PI_ACCESS_TOKEN=SECRET", ""},
}

func TestWithoutQueryParam(t *testing.T) {
	for _, tc := range tokenSpellings {
		if got := withoutQueryParam(tc.query, "api_access_token"); got != tc.want {
			t.Errorf("%s\n got %q\nwant %q", tc.query, got, tc.want)
		}
	}
	// No framework reads these as the token: every byte stays.
	for _, q := range []string{
		"",
		"keep=1",
		"q=caf%C3%A9&page=2",
		"api_access_tokens=1",
		"api_access_token_id=1",
		"xapi_access_token=1",
		"my_api_access_token=1",
		"api_access_token2[]=1",
		"api-access-token=1",
		"apiaccesstoken=1",
		"api%255Faccess%255Ftoken=1", // decoded once only
		"api_access_token%2B=1",      // "api_access_token+"
		"q=api_access_token%3Dx",
		"a=1;b=2&&c=3;;",
		"&a=1&",
		";a",
		"a=%zz&b=%",
		"redirect=%2Fx%3Fapi_access_token%3Dy",
		"[]=1&[x]=2&]=3",
		"api_access_token_[x]=1",
		"api.access.token_=1",
	} {
		if got := withoutQueryParam(q, "api_access_token"); got != q {
			t.Errorf("%q became %q", q, got)
		}
	}
	// Every other byte as it was, separators included.
	for q, want := range map[string]string{
		"&api_access_token=SECRET&a=1":                  "&a=1",
		"a=1&&api_access_token=SECRET":                  "a=1&",
		"a=1&api_access_token=SECRET&":                  "a=1&",
		"a=%zz;api_access_token=x;b=+":                  "a=%zz;b=+",
		"api_access_token=x&api_access_token=y":         "",
		"a=1;api_access_token=x&api_access_token=y;b=2": "a=1;b=2",
		"q=api_access_token&r=x;api_access_token":       "q=api_access_token&r=x",
		"api access token=x&a=1":                        "a=1", // PHP; not a valid query, but it may come
	} {
		if got := withoutQueryParam(q, "api_access_token"); got != want {
			t.Errorf("%q became %q, want %q", q, got, want)
		}
	}
}

// TestAttackTokenSpellingsNeverReachApps sends every spelling above to an
// app that echoes its query: no spelling reaches it, and its own
// parameters do.
func TestAttackTokenSpellingsNeverReachApps(t *testing.T) {
	tester := newGateway(t)
	for _, tc := range tokenSpellings {
		for _, path := range []string{"/dashboard-apps/tools/echo", "/dashboard-apps/evil/echo"} {
			resp, body := get(t, tester, path+"?"+tc.query)
			if resp.StatusCode != 200 {
				t.Errorf("%s?%s: %d %.200s", path, tc.query, resp.StatusCode, body)
				continue
			}
			_, query := echoed(t, body)
			if strings.Contains(query, "SECRET") {
				t.Errorf("%s?%s: the token reached the app as %q", path, tc.query, query)
			}
			if query != tc.want {
				t.Errorf("%s?%s: the app got %q, want %q", path, tc.query, query, tc.want)
			}
		}
	}
}
