package rewrite

import (
	"net/url"
	"testing"
)

// FuzzAppendRooted checks that MapRef's fast path agrees with MapRef on
// every reference it takes.
func FuzzAppendRooted(f *testing.F) {
	for _, seed := range []string{"/", "/a/b.css?v=1#x", "/tools/x", "/tools", "/dashboard-apps/t/x", "/dashboard-apps/t", "/./x", "/%2e%2e/x", "/a\\b", "//host/x", "/a?b=/..", " /x", "/x ", "http://app.internal:8080/x", "HTTP://APP.INTERNAL:8080/tools/a?b", "http://app.internal:8080/dashboard-apps/t/x", "http://app.internal:8080//x", "http://app.internal:8080/./x"} {
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
		fast, ok := m.appendRooted(nil, []byte(ref))
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

func BenchmarkMapRefRooted(b *testing.B) {
	u, _ := url.Parse("http://app.internal:8080/")
	m := NewMapper(u, "/dashboard-apps/t/")
	ref := []byte("/static/js/app.3f9a1c.js?v=12")
	b.Run("MapRef", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.MapRef(string(ref), nil)
		}
	})
	b.Run("appendRooted", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 128)
		for b.Loop() {
			buf, _ = m.appendRooted(buf[:0], ref)
		}
	})
}
