package rewrite

import (
	"bytes"
	"io"
	"math"
	"net/url"
	"strings"
	"testing"
)

// rewriteCSS runs in through a CSSRewriter, written in pieces of the sizes
// that split returns (all at once when split is nil).
func rewriteCSS(t testing.TB, in []byte, m *Mapper, doc *url.URL, split func(int) int) []byte {
	t.Helper()
	var out bytes.Buffer
	r := NewCSSRewriter(&out, m, doc)
	writeSplit(t, r, in, split)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestRewriteCSS(t *testing.T) {
	for _, c := range []rewriteCase{
		{"unquoted", `a{background:url(/tools/a.png)}`, `a{background:url(/dashboard-apps/t/a.png)}`},
		{"quotes, case, white space", `a{b:URL( "/tools/a.png" ) url('/tools/b.png') Url(	/tools/c.png	)}`,
			`a{b:URL( "/dashboard-apps/t/a.png" ) url('/dashboard-apps/t/b.png') Url(	/dashboard-apps/t/c.png	)}`},
		{"@import", `@import "/tools/x.css"; @import '/tools/y.css' screen; @IMPORT url(/tools/z.css);`,
			`@import "/dashboard-apps/t/x.css"; @import '/dashboard-apps/t/y.css' screen; @IMPORT url(/dashboard-apps/t/z.css);`},
		{"@import after a comment", "@import /* c */\n\"/tools/x.css\";", "@import /* c */\n\"/dashboard-apps/t/x.css\";"},
		{"other at-rules and strings", `@imports "/tools/x.css"; @import x "/tools/y.css"; a{content:"/tools/z"}`, ""},
		{"comments", `/* url(/tools/a.png) @import "/tools/x.css"; */ a{b:url(/tools/b.png)}`,
			`/* url(/tools/a.png) @import "/tools/x.css"; */ a{b:url(/dashboard-apps/t/b.png)}`},
		{"url( in strings", `a{content:"url(/tools/a.png)" 'url(/tools/b.png)'}`, ""},
		{"longer names", `a{b:myurl(/tools/a.png) -url(/tools/b.png) x-url(/tools/c)}`, ""},
		// Found by the oracle: a hash and an at-keyword, no url tokens.
		// Found by the oracle: CSS reads NUL as U+FFFD, a name's byte.
		{"NUL", "a{b:url(/tools/\x00a.png) \x00url(/tools/b.png)}", "a{b:url(/dashboard-apps/t/\x00a.png) \x00url(/tools/b.png)}"},
		{"hash and at-keyword", `a{b:#url(/tools/a.png) @url(/tools/b.png) #fff url(/tools/c.png)}`, `a{b:#url(/tools/a.png) @url(/tools/b.png) #fff url(/dashboard-apps/t/c.png)}`},
		{"escapes left alone", `a{b:url(/tools/a\).png) url("/tools/\61.png") \"url(/tools/c.png) \75rl(/tools/d.png)}`, ""},
		{"bad urls", `a{b:url(/tools/a b.png) url(/tools/c"d) url(/tools/e(f)) url(/tools/g.png)}`,
			`a{b:url(/tools/a b.png) url(/tools/c"d) url(/tools/e(f)) url(/dashboard-apps/t/g.png)}`},
		{"bad string", "a{content:\"/tools/x\n} @import \"/tools/y.css\n;", ""},
		{"origins", `a{b:url(http://app.internal:8080/tools/a.png) url(//app.internal:8080/tools/b.png) url(https://cdn.example/tools/c.png)}`,
			`a{b:url(/dashboard-apps/t/a.png) url(/dashboard-apps/t/b.png) url(https://cdn.example/tools/c.png)}`},
		{"relative", `a{b:url(../img/a.png) url(img/b.png) url(../../tools/img/c.png) url(../../../d.png)}`,
			`a{b:url(../img/a.png) url(img/b.png) url(/dashboard-apps/t/img/c.png) url(../../../d.png)}`},
		{"data and empty", `a{b:url(data:image/png;base64,iVBO/tools/=) url() url("")}`, ""},
		{"unterminated", `a{b:url("/tools/a.png`, `a{b:url("/dashboard-apps/t/a.png`},
		{"unterminated comment", `/* a{b:url(/tools/a.png)}`, ""},
		{"cut url", `a{b:url(/tools/a.png`, `a{b:url(/dashboard-apps/t/a.png`},
		{"non-ASCII", "\ufeff.\u00e9url(/tools/a) é{b:url(/tools/b)}\xff", "\ufeff.\u00e9url(/tools/a) é{b:url(/dashboard-apps/t/b)}\xff"},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == "" {
				want = c.in
			}
			if got := rewriteCSSAtOnce([]byte("prefix:"), []byte(c.in), testMapper, testCSSDoc); string(got) != "prefix:"+want {
				t.Errorf("rewriteCSSAtOnce(%q)\n got %q\nwant %q", c.in, got, "prefix:"+want)
			}
			for seed := range uint64(8) {
				if got := rewriteCSS(t, []byte(c.in), testMapper, testCSSDoc, randomSplit(seed)); string(got) != want {
					t.Errorf("CSSRewriter(%q), seed %d\n got %q\nwant %q", c.in, seed, got, want)
				}
			}
			if got := rewriteCSS(t, []byte(c.in), testMapper, testCSSDoc, byteAtATime); string(got) != want {
				t.Errorf("CSSRewriter(%q) byte at a time\n got %q\nwant %q", c.in, got, want)
			}
		})
	}
}

// TestCSSRewriteLongTokens checks that tokens too long to hold a URL
// worth rewriting (data: URIs) stream through, whatever the split, and
// that the same rule applies to a stylesheet rewritten at once.
func TestCSSRewriteLongTokens(t *testing.T) {
	long := strings.Repeat("A", maxCSSRef)
	for _, c := range []rewriteCase{
		{"data URI", "a{b:url(data:image/png;base64," + long + ")} c{d:url(/tools/x)}", "a{b:url(data:image/png;base64," + long + ")} c{d:url(/dashboard-apps/t/x)}"},
		{"quoted", "a{b:url('/tools/" + long + "') url(\"/tools/x\")}", "a{b:url('/tools/" + long + "') url(\"/dashboard-apps/t/x\")}"},
		{"long path", "a{b:url(/tools/" + long + ")}", ""},
		{"comment", "/* " + long + " url(/tools/x) */ a{b:url(/tools/y)}", "/* " + long + " url(/tools/x) */ a{b:url(/dashboard-apps/t/y)}"},
		{"string", "a{content:'" + long + "\\' url(/tools/x)'} @import '/tools/" + long + "';", ""},
		{"unterminated", "a{b:url(data:" + long + "\\", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == "" {
				want = c.in
			}
			if got := rewriteCSSAtOnce(nil, []byte(c.in), testMapper, testCSSDoc); string(got) != want {
				t.Errorf("rewriteCSSAtOnce: %s", firstDiff(got, []byte(want)))
			}
			for _, size := range []int{1, 7, 1000} {
				var out bytes.Buffer
				r := NewCSSRewriter(&out, testMapper, testCSSDoc)
				for in := []byte(c.in); len(in) > 0; {
					n := min(size, len(in))
					r.Write(in[:n])
					in = in[n:]
					if len(r.held.buf) > maxCSSRef+size {
						t.Fatalf("holding %d bytes", len(r.held.buf))
					}
				}
				r.Close()
				if out.String() != want {
					t.Errorf("in pieces of %d: %s", size, firstDiff(out.Bytes(), []byte(want)))
				}
			}
		})
	}
}

func TestCSSRewriterFlush(t *testing.T) {
	var out bytes.Buffer
	r := NewCSSRewriter(&out, testMapper, testCSSDoc)
	io.WriteString(r, `a{b:url(/tools/a.png)} c{d:url(/tools/`)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := `a{b:url(/dashboard-apps/t/a.png)} c{d:`; out.String() != want {
		t.Errorf("after Flush: %q, want %q", out.String(), want)
	}
	io.WriteString(r, `e.png)}`)
	r.Close()
	if want := `a{b:url(/dashboard-apps/t/a.png)} c{d:url(/dashboard-apps/t/e.png)}`; out.String() != want {
		t.Errorf("after Close: %q, want %q", out.String(), want)
	}
}

func TestRewriteCSSGolden(t *testing.T) {
	for _, name := range goldenInputs(t, "css", "css") {
		t.Run(name, func(t *testing.T) {
			in := readGolden(t, "css", name+".in.css")
			got := rewriteCSSAtOnce(nil, in, testMapper, testCSSDoc)
			checkGolden(t, "css", name+".out.css", got)
			if split := rewriteCSS(t, in, testMapper, testCSSDoc, randomSplit(1)); !bytes.Equal(split, got) {
				t.Errorf("split input: %s", firstDiff(split, got))
			}
		})
	}
}

func FuzzCSSRewrite(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		checkRewriteProperties(t, in, seed, func(in []byte, m *Mapper, doc *url.URL, split func(int) int) []byte {
			return rewriteCSS(t, in, m, doc, split)
		})
		if one := rewriteCSSAtOnce(nil, in, testMapper, testDoc); !bytes.Equal(one, rewriteCSS(t, in, testMapper, testDoc, nil)) {
			t.Fatalf("rewriteCSSAtOnce and CSSRewriter differ on %q", in)
		}
	})
}

func BenchmarkCSSRewrite(b *testing.B) {
	css := readGolden(b, "css", "app.in.css")
	b.SetBytes(int64(len(css)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewCSSRewriter(io.Discard, testMapper, testCSSDoc)
		r.Write(css)
		r.Close()
	}
}

// rewriteCSSAtOnce appends css to dst rewritten by the lexer in one pass,
// without CSSRewriter's holding across writes: what the streaming
// rewriter must give, however its input is cut.
func rewriteCSSAtOnce(dst, css []byte, m *Mapper, doc *url.URL) []byte {
	out := outSink{buf: dst, limit: math.MaxInt}
	rm := refMapper{m: m, doc: doc}
	var l cssLexer
	l.rewrite(&out, css, true, &rm)
	return out.buf
}
