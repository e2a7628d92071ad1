package rewrite

import (
	"bytes"
	"testing"
)

// FuzzPlainPath holds plainPath to the definition it is written for
// speed against.
func FuzzPlainPath(f *testing.F) {
	for _, s := range []string{"/wiki/Go_(programming_language)", "/a/./b", "/a/b/.", "/x.css?v=/./", "/%2e%2e/", "/%2E", "/%2", "/a%2Bb", "/a%20b", "/a\\\\b", "/a&amp;b", "/a#/./", "/.", ".", "/a.b/c.d/e.f/g.h/i.j", "/abcdefgh/.ijklmnop", "/\n/host", "/a\tb", "/abcdefgh\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ref []byte) {
		path := ref
		if i := bytes.IndexAny(ref, "?#"); i >= 0 {
			path = ref[:i]
		}
		want := !bytes.ContainsAny(path, "\\&\t\n\r") && !bytes.Contains(path, []byte("/.")) && !bytes.Contains(bytes.ToLower(path), []byte("%2e"))
		if got := plainPath(ref); got != want {
			t.Errorf("plainPath(%q) = %v, want %v", ref, got, want)
		}
	})
}
