package rewrite

import (
	"net/url"
	"testing"
)

// FuzzAppendPlain checks that MapRef's fast path agrees with MapRef on
// every reference it takes.
func FuzzAppendPlain(f *testing.F) {
	for _, seed := range []string{"/", "/a/b.css?v=1#x", "/tools/x", "/tools", "/dashboard-apps/t/x", "/dashboard-apps/t", "/./x", "/%2e%2e/x", "/a\\b", "//host/x", "/a?b=/..", " /x", "/x ", "http://app.internal:8080/x", "HTTP://APP.INTERNAL:8080/tools/a?b", "http://app.internal:8080/dashboard-apps/t/x", "http://app.internal:8080//x", "http://app.internal:8080/./x", "#x", "?q=1", "//other.example/x", "//APP.internal:8080/x", "//app.internal:8080", "https://other.example/x?a=1", "mailto:a@b", "javascript:x()", "http:/x", "http://app.internal:8080?x", "http://app.internal:8080#x", "http://app.inte\u212anal:8080/x", "//user@app.internal:8080/x", "//app.internal%3a8080/x", "http://app.internal:8080\\x", "a:b", "HTTP://other/"} {
		f.Add(seed, "/")
		f.Add(seed, "/tools/")
	}
	f.Fuzz(func(t *testing.T, ref, base string) {
		u, err := url.Parse("http://app.internal:8080" + base)
		if err != nil || u.Host != "app.internal:8080" || u.RawQuery != "" || u.Fragment != "" {
			return
		}
		m := NewMapper(u, "/dashboard-apps/t/")
		doc, _ := url.Parse("http://app.internal:8080" + m.Base() + "page")
		fast, ok := m.appendPlain(nil, []byte(ref))
		if !ok {
			return
		}
		want, mapped := m.MapRef(ref, doc)
		if !mapped {
			want = ref
		}
		if string(fast) != want {
			t.Errorf("base %q, ref %q: fast path %q, MapRef %q", m.Base(), ref, fast, want)
		}
	})
}

func BenchmarkMapRefPlain(b *testing.B) {
	u, _ := url.Parse("http://app.internal:8080/")
	m := NewMapper(u, "/dashboard-apps/t/")
	ref := []byte("/static/js/app.3f9a1c.js?v=12")
	b.Run("MapRef", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.MapRef(string(ref), nil)
		}
	})
	b.Run("appendPlain", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 128)
		for b.Loop() {
			buf, _ = m.appendPlain(buf[:0], ref)
		}
	})
}
