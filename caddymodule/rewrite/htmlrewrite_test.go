package rewrite

import (
	"bytes"
	"encoding/binary"
	"flag"
	"html"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// The app of the tests: base path /tools/ upstream, /dashboard-apps/t/ on
// the helpdesk's site.
var (
	testMapper  = NewMapper(mustParse("http://app.internal:8080/tools/"), "/dashboard-apps/t/")
	testDoc     = mustParse("http://app.internal:8080/tools/index.php")
	testCSSDoc  = mustParse("http://app.internal:8080/tools/css/app.css")
	nomatchMap  = NewMapper(mustParse("http://nomatch.invalid/"), "/")
	prefixedMap = NewMapper(mustParse("http://nomatch.invalid/"), "/~~PFX~~/")
)

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// rewriteHTML runs in through an HTMLRewriter, written in pieces of the
// sizes that split returns (all of it at once when split is nil).
func rewriteHTML(t testing.TB, in string, m *Mapper, doc *url.URL, split func(rest int) int) string {
	t.Helper()
	return rewriteHTMLPaths(t, in, m, doc, split, false)
}

// rewriteHTMLPaths is rewriteHTML with the rewriter's fast paths turned
// off when noFastPaths.
func rewriteHTMLPaths(t testing.TB, in string, m *Mapper, doc *url.URL, split func(rest int) int, noFastPaths bool) string {
	t.Helper()
	var out bytes.Buffer
	r := NewHTMLRewriter(&out, m, doc)
	r.ref.noFastPaths = noFastPaths
	writeSplit(t, r, []byte(in), split)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func writeSplit(t testing.TB, w io.Writer, in []byte, split func(rest int) int) {
	t.Helper()
	for len(in) > 0 {
		n := len(in)
		if split != nil {
			n = split(len(in))
		}
		if _, err := w.Write(in[:n]); err != nil {
			t.Fatal(err)
		}
		in = in[n:]
	}
}

func byteAtATime(int) int { return 1 }

func randomSplit(seed uint64) func(int) int {
	rng := rand.New(rand.NewPCG(seed, seed))
	return func(rest int) int { return 1 + rng.IntN(min(rest, 64)) }
}

// checkHTML checks one-shot, byte-at-a-time and randomly split rewriting
// of in against want.
func checkHTML(t *testing.T, in, want string) {
	t.Helper()
	if got := rewriteHTML(t, in, testMapper, testDoc, nil); got != want {
		t.Errorf("rewrite(%q)\n got %q\nwant %q", in, got, want)
	}
	if got := rewriteHTML(t, in, testMapper, testDoc, byteAtATime); got != want {
		t.Errorf("rewrite(%q) byte at a time\n got %q\nwant %q", in, got, want)
	}
	for seed := range uint64(8) {
		if got := rewriteHTML(t, in, testMapper, testDoc, randomSplit(seed)); got != want {
			t.Errorf("rewrite(%q) split with seed %d\n got %q\nwant %q", in, seed, got, want)
		}
	}
}

type rewriteCase struct{ name, in, want string }

func runCases(t *testing.T, cases []rewriteCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == "" {
				want = c.in
			}
			checkHTML(t, c.in, want)
			checkOracle(t, []byte(c.in))
		})
	}
}

func TestHTMLRewriteAttributes(t *testing.T) {
	runCases(t, []rewriteCase{
		{"root-relative", `<a href="/tools/x?a=1#f">`, `<a href="/dashboard-apps/t/x?a=1#f">`},
		{"uppercase and single quotes", `<A HREF='/tools/x'>`, `<A HREF='/dashboard-apps/t/x'>`},
		{"unquoted", `<a href=/tools/x>t</a>`, `<a href=/dashboard-apps/t/x>t</a>`},
		{"unquoted slash before >", `<img src=/tools/x/>`, `<img src=/dashboard-apps/t/x/>`},
		{"spaces around =", "<a href =\n '/tools/x' >", "<a href =\n '/dashboard-apps/t/x' >"},
		{"white space in value kept", `<a href=" /tools/x ">`, `<a href=" /dashboard-apps/t/x ">`},
		{"app origin", `<img src="http://app.internal:8080/tools/i.png">`, `<img src="/dashboard-apps/t/i.png">`},
		{"app origin, other case", `<img src="HTTP://App.Internal:8080/tools/i.png">`, `<img src="/dashboard-apps/t/i.png">`},
		{"protocol-relative", `<script src="//app.internal:8080/tools/a.js"></script>`, `<script src="/dashboard-apps/t/a.js"></script>`},
		{"other origin", `<img src="https://cdn.example/tools/x.png"><a href="//cdn.example/tools/">`, ""},
		{"other scheme, same host", `<a href="https://app.internal:8080/tools/x">`, ""},
		{"outside the base path", `<a href="/other/x"><a href="/">`, ""},
		{"base path without slash", `<a href="/tools">`, `<a href="/dashboard-apps/t/">`},
		{"already proxied", `<a href="/dashboard-apps/t/x">`, ""},
		{"relative", `<a href="x.php?id=1"><a href="sub/../y"><a href="#top"><a href="?q=1">`, ""},
		{"relative climbing out of the prefix", `<link rel=stylesheet href="../tools/static/app.css">`,
			`<link rel=stylesheet href="/dashboard-apps/t/static/app.css">`},
		{"relative climbing above the app", `<a href="../../x">`, ""},
		{"other schemes", `<a href="javascript:go('/tools/x')"><a href="mailto:a@b"><img src="data:image/png;base64,AAAA">`, ""},
		{"all URL attributes", `<form action="/tools/f"><button formaction="/tools/b"><video poster="/tools/p.jpg">` +
			`<object data="/tools/o.svg"><body background="/tools/bg.gif"><use xlink:href="/tools/i.svg#a">` +
			`<html manifest="/tools/m.appcache"><q cite="/tools/c"><img longdesc="/tools/l">`,
			`<form action="/dashboard-apps/t/f"><button formaction="/dashboard-apps/t/b"><video poster="/dashboard-apps/t/p.jpg">` +
				`<object data="/dashboard-apps/t/o.svg"><body background="/dashboard-apps/t/bg.gif"><use xlink:href="/dashboard-apps/t/i.svg#a">` +
				`<html manifest="/dashboard-apps/t/m.appcache"><q cite="/dashboard-apps/t/c"><img longdesc="/dashboard-apps/t/l">`},
		{"data only on object", `<div data="/tools/x"><OBJECT DATA=/tools/y>`, `<div data="/tools/x"><OBJECT DATA=/dashboard-apps/t/y>`},
		{"not URL attributes", `<input value="/tools/x" title='/tools/y' data-href="/tools/z" hreflang=en>`, ""},
		{"ping list", `<a ping=" /tools/p1  /tools/p2 http://x/p3">`, `<a ping=" /dashboard-apps/t/p1  /dashboard-apps/t/p2 http://x/p3">`},
		{"quoted >", `<a title="a>b" href="/tools/x">`, `<a title="a>b" href="/dashboard-apps/t/x">`},
		{"no space between attributes", `<a href="/tools/x"src='/tools/y'>`, `<a href="/dashboard-apps/t/x"src='/dashboard-apps/t/y'>`},
		{"slash between attributes", `<a/href="/tools/x">`, `<a/href="/dashboard-apps/t/x">`},
		{"= starts a name", `<a =href="/tools/x">`, ""},
		{"valueless and empty", `<a href><a href=""><a href=''>`, ""},
		{"end tag with attributes", `</div title=">" href="/tools/x"><a href="/tools/y">`, `</div title=">" href="/tools/x"><a href="/dashboard-apps/t/y">`},
		{"self-closing", `<img src="/tools/x"/><br/>`, `<img src="/dashboard-apps/t/x"/><br/>`},
		{"invalid UTF-8 and BOM", "\ufeff<p>\xff\xfe<a href='/tools/\xff'>\xc3</a>", "\ufeff<p>\xff\xfe<a href='/dashboard-apps/t/\xff'>\xc3</a>"},
		{"not a tag", `a < b <3 <> <=<a href=/tools/x>`, `a < b <3 <> <=<a href=/dashboard-apps/t/x>`},
		{"names close to URL attributes", "<a hreF=/tools/x hr@f=/tools/y sr\x03=/tools/z HREF_=/tools/w formxxtion=/tools/s xlink:hreF=/tools/v formactioN=/tools/u>",
			"<a hreF=/dashboard-apps/t/x hr@f=/tools/y sr\x03=/tools/z HREF_=/tools/w formxxtion=/tools/s xlink:hreF=/dashboard-apps/t/v formactioN=/dashboard-apps/t/u>"},
		{"percent-encoded punctuation", `<a href="/tools/C%2B%2B">`, `<a href="/dashboard-apps/t/C%2B%2B">`},
		// Found by fuzzing with the oracle: browsers drop the tabs and
		// newlines of a URL ("/\n/x" is protocol-relative).
		{"tabs and newlines", "<a href=\"/\n/tools/x\"><a href=\"/to\tols/x\"><a href=\"/tools/x\ny\"><a href=\"ht\ttp://app.internal:8080/tools/z\"><a href=\"/tools/.\n./x\">",
			"<a href=\"/\n/tools/x\"><a href=\"/dashboard-apps/t/x\"><a href=\"/dashboard-apps/t/x\ny\"><a href=\"/dashboard-apps/t/z\"><a href=\"/tools/.\n./x\">"},
		{"percent-encoded dot segments", `<a href="/tools/a/%2e%2E/b"><a href="/tools/%2e%2e/x">`, `<a href="/dashboard-apps/t/b"><a href="/tools/%2e%2e/x">`},
	})
}

// TestNameKeyExact holds nameKey to what urlAttrKind relies on: the URL
// attributes' names of eight bytes or fewer are lower-case letters, so
// that equal keys mean equal names.
func TestNameKeyExact(t *testing.T) {
	for _, attrs := range urlAttrs {
		for _, a := range attrs {
			if len(a.name) > 8 {
				continue
			}
			for _, c := range []byte(a.name) {
				if c < 'a' || c > 'z' {
					t.Errorf("URL attribute %q has %q: nameKey cannot tell it apart", a.name, c)
				}
			}
			if got := nameKey([]byte(strings.ToUpper(a.name))); got != a.key {
				t.Errorf("nameKey(%q) = %x, want %x", strings.ToUpper(a.name), got, a.key)
			}
		}
	}
}

func TestHTMLRewriteCharacterReferences(t *testing.T) {
	runCases(t, []rewriteCase{
		{"query entities kept", `<a href="/tools/x?a=1&amp;b=2">`, `<a href="/dashboard-apps/t/x?a=1&amp;b=2">`},
		{"encoded slash", `<a href="&#47;tools/x">`, `<a href="&#47;dashboard-apps/t/x">`},
		{"encoded origin", `<a href="http:&#x2F;&#x2f;app.internal:8080&sol;tools/x?a&amp;b">`, `<a href="/dashboard-apps/t/x?a&amp;b">`},
		{"encoded white space kept", `<a href="&#32;/tools/x">`, `<a href="&#32;/dashboard-apps/t/x">`},
		{"encoded relative", `<a href="&#47;x">`, ""},
		{"unknown reference", `<a href="&bogus;/tools/x">`, ""},
		// Found by fuzzing with the oracle: legacy names need no ";".
		{"legacy name without ;", `<a style=url(&quot/tools/x&quot)><a style="b:url(&quotx/tools/y&quot)"><a style="b:url(&quot=/tools/z&quot)">`,
			`<a style=url(&quot/dashboard-apps/t/x&quot)><a style="b:url(&quotx/tools/y&quot)"><a style="b:url(&quot=/tools/z&quot)">`},
		{"legacy name before letters", `<a href="/tools/x?a=&ampx;&copy;&COPY/&amp">`, `<a href="/dashboard-apps/t/x?a=&ampx;&copy;&COPY/&amp">`},
		// Found by fuzzing with the oracle: "&#X2F" then "d" is U+2FD.
		{"reference without ;", `<a href=&#X2Ftools><a href="&#47tools/x"><a href="&#x2F;tools/x"><a href="&#x2ftools/x"><a href="&#x2F&#x74ools/x">`,
			`<a href=/dashboard-apps/t/><a href="&#47dashboard-apps/t/x"><a href="&#x2F;dashboard-apps/t/x"><a href="/dashboard-apps/t/x"><a href="/dashboard-apps/t/x">`},
	})
}

func TestHTMLRewriteSrcset(t *testing.T) {
	runCases(t, []rewriteCase{
		{"descriptors", `<img srcset="/tools/a.png 1x, /tools/b.png 2x">`, `<img srcset="/dashboard-apps/t/a.png 1x, /dashboard-apps/t/b.png 2x">`},
		{"no descriptors", `<img srcset="/tools/a.png, /tools/b.png">`, `<img srcset="/dashboard-apps/t/a.png, /dashboard-apps/t/b.png">`},
		{"comma inside a URL", `<img srcset="/tools/a,b.png 100w,/tools/c.png 200w">`, `<img srcset="/dashboard-apps/t/a,b.png 100w,/dashboard-apps/t/c.png 200w">`},
		{"trailing commas end a URL", `<img SRCSET='/tools/a.png,,, /tools/b.png'>`, `<img SRCSET='/dashboard-apps/t/a.png,,, /dashboard-apps/t/b.png'>`},
		{"one URL with a comma", `<img srcset="/tools/a.png,/tools/b.png 2x">`, `<img srcset="/dashboard-apps/t/a.png,/tools/b.png 2x">`},
		{"parentheses in descriptors", `<img srcset="/tools/a.png (x, y) 1x, /tools/b.png">`, `<img srcset="/dashboard-apps/t/a.png (x, y) 1x, /dashboard-apps/t/b.png">`},
		{"imagesrcset, mixed", "<link imagesrcset=\" x.png 1x,\n/tools/y.png 2x , https://cdn/z.png 3x\">",
			"<link imagesrcset=\" x.png 1x,\n/dashboard-apps/t/y.png 2x , https://cdn/z.png 3x\">"},
	})
}

func TestHTMLRewriteMetaRefresh(t *testing.T) {
	runCases(t, []rewriteCase{
		{"url=", `<meta http-equiv="refresh" content="5; url=/tools/next">`, `<meta http-equiv="refresh" content="5; url=/dashboard-apps/t/next">`},
		{"content first, quoted URL", `<META CONTENT="0;URL='/tools/x'" HTTP-EQUIV=Refresh>`, `<META CONTENT="0;URL='/dashboard-apps/t/x'" HTTP-EQUIV=Refresh>`},
		{"no url key", `<meta http-equiv=refresh content="1, /tools/x">`, `<meta http-equiv=refresh content="1, /dashboard-apps/t/x">`},
		{"no URL", `<meta http-equiv="refresh" content="30">`, ""},
		{"not refresh", `<meta name="x" content="0; url=/tools/x">`, ""},
		// Found by the oracle: browsers go by the first http-equiv, and
		// match "refresh" exactly but for case.
		{"first http-equiv only", `<meta http-equiv=x http-equiv=refresh content="0;url=/tools/x"><meta http-equiv=refresh http-equiv=x content="0;url=/tools/y">`,
			`<meta http-equiv=x http-equiv=refresh content="0;url=/tools/x"><meta http-equiv=refresh http-equiv=x content="0;url=/dashboard-apps/t/y">`},
		{"white space around refresh", `<meta http-equiv=" refresh" content="0;url=/tools/x"><meta http-equiv="refresh " content="0;url=/tools/y">`, ""},
		{"character references", `<meta http-equiv="&#82;efresh" content="0;url=/tools/x">`, `<meta http-equiv="&#82;efresh" content="0;url=/dashboard-apps/t/x">`},
	})
}

func TestMapRefresh(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"0; url=/tools/x", "0; url=/dashboard-apps/t/x"},
		{"0;URL = \"http://app.internal:8080/tools/x\" ", "0;URL = \"/dashboard-apps/t/x\" "},
		{"3.5 url='/tools/x'?'", "3.5 url='/dashboard-apps/t/x'?'"},
		{"0;/tools/x", "0;/dashboard-apps/t/x"},
		{"0; u/tools", ""}, // "u/tools" is a relative URL
		{"0; url=https://elsewhere/tools/x", ""},
		{"0", ""},
		{"x; url=/tools/x", ""},
		{"", ""},
	} {
		got, ok := MapRefresh(c.in, testMapper, testDoc)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("MapRefresh(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
}

func TestHTMLRewriteBase(t *testing.T) {
	runCases(t, []rewriteCase{
		{"base on the app", `<base href="/tools/sub/"><a href="../x"><a href="../../tools/y"><img src="/tools/z">`,
			`<base href="/dashboard-apps/t/sub/"><a href="../x"><a href="/dashboard-apps/t/y"><img src="/dashboard-apps/t/z">`},
		{"relative base", `<base href="sub/deeper/"><a href="../../../tools/y">`,
			`<base href="sub/deeper/"><a href="/dashboard-apps/t/y">`},
		{"only the first base counts", `<base target=_top><base href="/tools/a/b/"><base href="/tools/"><a href="../tools/y">`,
			`<base target=_top><base href="/dashboard-apps/t/a/b/"><base href="/dashboard-apps/t/"><a href="../tools/y">`},
		{"base on another origin", `<base href="https://cdn.example/"><a href="/tools/x"><a href="../tools/y"><img src="http://app.internal:8080/tools/z">`,
			`<base href="https://cdn.example/"><a href="/tools/x"><a href="../tools/y"><img src="/dashboard-apps/t/z">`},
		// Found by the oracle: neither is the document's base.
		{"base in svg", `<svg><base href="https://cdn.example/"/></svg><a href="/tools/x">`,
			`<svg><base href="https://cdn.example/"/></svg><a href="/dashboard-apps/t/x">`},
		{"base in a template", `<template><p><template/><base href="https://cdn.example/"></template><a href="/tools/x"></template></TEMPLATE ><a href="/tools/y"><base href="/tools/b/"><a href="../../tools/z">`,
			`<template><p><template/><base href="https://cdn.example/"></template><a href="/dashboard-apps/t/x"></template></TEMPLATE ><a href="/dashboard-apps/t/y"><base href="/dashboard-apps/t/b/"><a href="/dashboard-apps/t/z">`},
		// Found by the oracle (fuzzing): the first href is the base's,
		// and one without a value is href="".
		{"first href only", `<BAse href href=//cdn.example/><A href=/tools/x><base href=https://cdn.example/><a href=/tools/y>`,
			`<BAse href href=//cdn.example/><A href=/dashboard-apps/t/x><base href=https://cdn.example/><a href=/dashboard-apps/t/y>`},
		{"first href, valued", `<base href="/tools/b/" href="https://cdn.example/"><a href="../../tools/z">`,
			`<base href="/dashboard-apps/t/b/" href="https://cdn.example/"><a href="/dashboard-apps/t/z">`},
		// Found by fuzzing with the oracle: "/\n0" is "/0".
		{"tabs and newlines", "<base href=\"/tools/\n\tsub/\"><a href=\"../../tools/y\">",
			"<base href=\"/dashboard-apps/t/\n\tsub/\"><a href=\"/dashboard-apps/t/y\">"},
		{"controls", "<base href=\"/tools/\x00/\"><a href=\"../../tools/y\"><BASE href=/x><base href=\"/tools/\x01/\">",
			"<base href=\"/dashboard-apps/t/\x00/\"><a href=\"/dashboard-apps/t/y\"><BASE href=/x><base href=\"/dashboard-apps/t/\x01/\">"},
		{"template in svg", `<svg><template></svg><base href="/tools/b/"><a href="../../tools/z">`,
			`<svg><template></svg><base href="/dashboard-apps/t/b/"><a href="/dashboard-apps/t/z">`},
	})
}

func TestHTMLRewriteStyle(t *testing.T) {
	runCases(t, []rewriteCase{
		{"style attribute", `<div style="background:url('/tools/bg.png') no-repeat">`, `<div style="background:url('/dashboard-apps/t/bg.png') no-repeat">`},
		{"double quotes in single", `<div STYLE='background: URL( "/tools/bg.png" )'>`, `<div STYLE='background: URL( "/dashboard-apps/t/bg.png" )'>`},
		{"&quot;", `<div style="background-image:url(&quot;/tools/a&amp;b.png&quot;)">`, `<div style="background-image:url(&quot;/dashboard-apps/t/a&amp;b.png&quot;)">`},
		{"unquoted attribute", `<div style=background:url(/tools/bg.png)>`, `<div style=background:url(/dashboard-apps/t/bg.png)>`},
		{"style element", "<style>\n@import \"/tools/x.css\";\nbody{background:url(/tools/bg.png)}/* url(/tools/c.png) */</style><a href=/tools/y>",
			"<style>\n@import \"/dashboard-apps/t/x.css\";\nbody{background:url(/dashboard-apps/t/bg.png)}/* url(/tools/c.png) */</style><a href=/dashboard-apps/t/y>"},
		{"style ends at its end tag", `<style>a{content:"</style>"} b{background:url(/tools/x)}</STYLE ><a href=/tools/y>`,
			`<style>a{content:"</style>"} b{background:url(/tools/x)}</STYLE ><a href=/dashboard-apps/t/y>`},
		{"markup in style is CSS", `<style><a href="/tools/x"></style>`, ""},
		{"NUL", "<style>a{b:url(/tools/\x00x)}</style><p style='b:url(/tools/\x00y)'>", "<style>a{b:url(/dashboard-apps/t/\x00x)}</style><p style='b:url(/dashboard-apps/t/\x00y)'>"},
		{"hash and at-keyword", `<style>a{b:#url(/tools/x)}@url(/tools/y)</style><p style="b:#url(/tools/z)">`, ""},
		{"unterminated style", `<style>a{background:url(/tools/x)}`, `<style>a{background:url(/dashboard-apps/t/x)}`},
	})
}

func TestHTMLRewriteRawText(t *testing.T) {
	const a = `<a href="/tools/y">`
	const mapped = `<a href="/dashboard-apps/t/y">`
	runCases(t, []rewriteCase{
		{"script with markup", `<script>document.write('<a href="/tools/x">' + "<img src=/tools/i>")</script>` + a,
			`<script>document.write('<a href="/tools/x">' + "<img src=/tools/i>")</script>` + mapped},
		{"script type and end tag case", `<SCRIPT type="text/template"><a href="/tools/x"></sCrIpT >` + a,
			`<SCRIPT type="text/template"><a href="/tools/x"></sCrIpT >` + mapped},
		{"script end tag needs a delimiter", `<script>x = "</scripts>"; y = '<a href="/tools/x">'</script/>` + a,
			`<script>x = "</scripts>"; y = '<a href="/tools/x">'</script/>` + mapped},
		{"escaped script", `<script><!-- document.write("<a href='/tools/x'>") --></script>` + a,
			`<script><!-- document.write("<a href='/tools/x'>") --></script>` + mapped},
		{"double escaped script", `<script><!--<script><a href="/tools/x"></script><a href="/tools/x2">--></script>` + a,
			`<script><!--<script><a href="/tools/x"></script><a href="/tools/x2">--></script>` + mapped},
		{"escaped script ends at end tag", `<script><!--<script>x</script>y</script><a href="/tools/q">-->` + a,
			`<script><!--<script>x</script>y</script><a href="/dashboard-apps/t/q">-->` + mapped},
		{"script in svg", `<svg><script>if(a<b)x()</script></svg>` + a, `<svg><script>if(a<b)x()</script></svg>` + mapped},
		{"textarea", `<textarea><a href="/tools/x"></textarea>` + a, `<textarea><a href="/tools/x"></textarea>` + mapped},
		{"title", `<title>A <b href=/tools/x> page</title>` + a, `<title>A <b href=/tools/x> page</title>` + mapped},
		{"noscript, iframe, xmp, noembed, noframes", `<noscript><img src="/tools/x"></noscript><iframe><a href="/tools/x"></iframe>` +
			`<xmp><a href=/tools/x></xmp><noembed><a href=/tools/x></noembed><noframes><a href=/tools/x></noframes>` + a,
			`<noscript><img src="/tools/x"></noscript><iframe><a href="/tools/x"></iframe>` +
				`<xmp><a href=/tools/x></xmp><noembed><a href=/tools/x></noembed><noframes><a href=/tools/x></noframes>` + mapped},
		{"self-closing raw text tag", `<script/><a href="/tools/x"></script>` + a, `<script/><a href="/tools/x"></script>` + mapped},
		{"self-closing in svg", `<svg><style/><a href="/tools/x"></svg>`, `<svg><style/><a href="/dashboard-apps/t/x"></svg>`},
		{"plaintext", `<plaintext><a href="/tools/x"></plaintext><a href="/tools/x">`, ""},
		{"unterminated script", `<script>document.write('<a href="/tools/x">')`, ""},
	})
}

func TestHTMLRewriteComments(t *testing.T) {
	const a = `<a href="/tools/y">`
	const mapped = `<a href="/dashboard-apps/t/y">`
	runCases(t, []rewriteCase{
		{"comment", `<!-- <a href="/tools/x"> -- > --->` + a, `<!-- <a href="/tools/x"> -- > --->` + mapped},
		{"comment ended by --!>", `<!-- <a href="/tools/x"> --!>` + a, `<!-- <a href="/tools/x"> --!>` + mapped},
		{"abrupt comments", `<!--><a href="/tools/x"><!---><a href="/tools/x">`, `<!--><a href="/dashboard-apps/t/x"><!---><a href="/dashboard-apps/t/x">`},
		{"empty comment", `<!----><a href="/tools/x">`, `<!----><a href="/dashboard-apps/t/x">`},
		{"nested comment start", `<!-- <!-- <a href="/tools/x"> -->` + a, `<!-- <!-- <a href="/tools/x"> -->` + mapped},
		{"conditional comment", `<!--[if IE]><link href="/tools/ie.css"><![endif]-->` + a, `<!--[if IE]><link href="/tools/ie.css"><![endif]-->` + mapped},
		{"doctype", `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1.dtd">` + a,
			`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1.dtd">` + mapped},
		{"bogus comments", `<?xml version="1.0"?></ a href="/tools/x"></><!x <a href="/tools/x">` + a,
			`<?xml version="1.0"?></ a href="/tools/x"></><!x <a href="/tools/x">` + mapped},
		{"CDATA in svg", `<svg><![CDATA[ a > <a href="/tools/x"> ]]><a href="/tools/x"></svg>`,
			`<svg><![CDATA[ a > <a href="/tools/x"> ]]><a href="/dashboard-apps/t/x"></svg>`},
		{"CDATA outside svg is a bogus comment", `<![CDATA[ x ]]><a href="/tools/x">`, `<![CDATA[ x ]]><a href="/dashboard-apps/t/x">`},
		{"after svg", `<svg></svg><![CDATA[ x > <a href="/tools/x"> ]]>`, `<svg></svg><![CDATA[ x > <a href="/dashboard-apps/t/x"> ]]>`},
		{"unterminated comment", `<!-- <a href="/tools/x">`, ""},
		{"unterminated tag", `<p>x</p><a href="/tools/x" title="`, ""},
		{"lone <", `x <`, ""},
	})
}

// TestHTMLRewriteFlush checks that complete tokens are passed on without
// waiting for the rest of the document.
func TestHTMLRewriteFlush(t *testing.T) {
	var out bytes.Buffer
	r := NewHTMLRewriter(&out, testMapper, testDoc)
	io.WriteString(r, `<p>Loading <a href="/tools/x">x</a><img src="/tools/`)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := `<p>Loading <a href="/dashboard-apps/t/x">x</a>`; out.String() != want {
		t.Errorf("after Flush: %q, want %q", out.String(), want)
	}
	io.WriteString(r, `i.png">`)
	r.Close()
	if want := `<p>Loading <a href="/dashboard-apps/t/x">x</a><img src="/dashboard-apps/t/i.png">`; out.String() != want {
		t.Errorf("after Close: %q, want %q", out.String(), want)
	}
}

// TestHTMLRewriteLarge checks that a large document streams: its output
// keeps pace with its input, and what is held stays small.
func TestHTMLRewriteLarge(t *testing.T) {
	page := readGolden(t, "html", "admin.in.html")
	var out countingWriter
	r := NewHTMLRewriter(&out, testMapper, testDoc)
	for in := 0; in < 100<<20; {
		// Cut the page where it leaves a tag incomplete.
		for _, p := range bytes.SplitAfter(page, []byte(`<a href="/tools/`)) {
			if _, err := r.Write(p); err != nil {
				t.Fatal(err)
			}
			in += len(p)
			if held := len(r.held.buf); held > 64 || out.n < in-held {
				t.Fatalf("after %d bytes in, %d out and %d held", in, out.n, held)
			}
		}
	}
	r.Close()
}

// TestHTMLRewriteLongTokens checks that long comments, scripts and
// stylesheet tokens stream through instead of being held (CSS holds a
// token only while it may still be a URL to rewrite).
func TestHTMLRewriteLongTokens(t *testing.T) {
	for _, doc := range longTokenDocs() {
		r := NewHTMLRewriter(io.Discard, testMapper, testDoc)
		for in := []byte(doc); len(in) > 0; {
			n := min(len(in), 4<<10)
			r.Write(in[:n])
			in = in[n:]
			if held := len(r.held.buf); held > maxCSSRef+n {
				t.Fatalf("%.20s...: holding %d bytes", doc, held)
			}
		}
		r.Close()
	}
}

// longTokenDocs are documents made of one long token each.
func longTokenDocs() []string {
	long := strings.Repeat("A<", 1<<20)
	return []string{
		"<!--" + long + "-->",
		"<script>" + long + "</script>",
		"<style>a{background:url(data:image/png;base64," + long + ")}</style>",
		"<style>/*" + long + "*/</style>",
		"<textarea>" + long + "</textarea>",
	}
}

type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

func TestHTMLRewriteWriteError(t *testing.T) {
	r := NewHTMLRewriter(failingWriter{}, testMapper, testDoc)
	if _, err := r.Write([]byte("<p>x")); err != io.ErrClosedPipe {
		t.Errorf("Write: %v", err)
	}
	if err := r.Close(); err != io.ErrClosedPipe {
		t.Errorf("Close: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func readGolden(t testing.TB, kind, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/golden", kind, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkGolden compares got with the golden file kind/name, or rewrites it
// with -update.
func checkGolden(t *testing.T, kind, name string, got []byte) {
	t.Helper()
	path := filepath.Join("../../testdata/golden", kind, name)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update to accept):\n%s", path, firstDiff(got, want))
	}
}

func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-60)
	return "got:  " + string(got[from:min(len(got), i+60)]) + "\nwant: " + string(want[from:min(len(want), i+60)])
}

func goldenInputs(t *testing.T, kind, ext string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("../../testdata/golden", kind, "*.in."+ext))
	if err != nil || len(names) == 0 {
		t.Fatalf("no golden inputs in testdata/golden/%s: %v", kind, err)
	}
	for i, n := range names {
		names[i] = strings.TrimSuffix(filepath.Base(n), ".in."+ext)
	}
	return names
}

func TestHTMLRewriteGolden(t *testing.T) {
	for _, name := range goldenInputs(t, "html", "html") {
		t.Run(name, func(t *testing.T) {
			in := string(readGolden(t, "html", name+".in.html"))
			got := rewriteHTML(t, in, testMapper, testDoc, nil)
			checkGolden(t, "html", name+".out.html", []byte(got))
			if split := rewriteHTML(t, in, testMapper, testDoc, randomSplit(1)); split != got {
				t.Errorf("split input: %s", firstDiff([]byte(split), []byte(got)))
			}
			if same := rewriteHTML(t, in, nomatchMap, testDoc, nil); same != in {
				t.Errorf("with nothing to rewrite: %s", firstDiff([]byte(same), []byte(in)))
			}
		})
	}
}

func FuzzHTMLRewrite(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		checkRewriteProperties(t, in, seed, func(in []byte, m *Mapper, doc *url.URL, split func(int) int) []byte {
			return []byte(rewriteHTML(t, string(in), m, doc, split))
		})
		checkFastPathsAgree(t, in, seed)
		checkOracle(t, in)
	})
}

// fastPathCases are inputs for the shortcuts' corner cases (the oracle
// reads them too).
var fastPathCases = []string{
	`<a href="../../tools/x"><base href="/tools/a/b/c/"><a href="../../tools/x">`,
	`<BASE HREF=http://app.internal:8080/tools/b/ ><a href=../../x>`,
	`<object data="/tools/o"><embed src="/tools/e">`,
	`<meta http-equiv=refresh content="0;url=/tools/x"><meta content="/tools/y">`,
	`<svg><style>a{b:url(/tools/s)}</style><a href="/tools/x"/></svg ><style>c{d:url(/tools/t)}</style>`,
	`<title><a href="/tools/x"></title><textarea><img src=/tools/y></textarea>`,
	`<a href=/tools/x/><a/href=/tools/y><a href = '/tools/z' ><a =href=/tools/w><a href>`,
	`<img src=/tools/a srcset="/tools/b 1x, /tools/c 2x" style="background:url(/tools/d)">`,
	`<a ping="/tools/p /tools/q" href="/tools/y" cite=/tools/c action=/tools/a poster=/tools/p>`,
	`<a href="/tools/x?a=1&amp;b=2"><a href="&#47;tools/x"><a href="/tools/&#46;./x"><a href="http:&#47;&#47;app.internal:8080/tools/x">`,
	`<div title="<a href=/tools/x>"></div ><p a='>' href=/tools/y><a = href=/tools/z>`,
	`<svg><![CDATA[ > <a href="/tools/x"> ]]></svg><![CDATA[ > <a href="/tools/y"> ]]><math></math>`,
	`<template><base href="https://cdn.example/"></template ><a href="/tools/x"></TEMPLATE><template/><base href=/tools/b/></template><a href=../../tools/z>`,
	`<a href="//app.internal:8080/tools/x"><a href="HTTP://APP.INTERNAL:8080/tools/y"><a href="https://else/z"><a href="#f">`,
	// The word-at-a-time shortcuts: common attributes and end tags.
	`<p class="a>b" title='/tools/t' id="i" style="color:red" hreflang="en" href="/tools/x"></p><li style="background:url(/tools/s)"></li>`,
	`<a href="/tools/x"/><span class=x href="/tools/y"></span ></spanx></A></li></div></divx><p id="` + "\n" + `x" class="`,
}

// TestFastPathsAgree holds the shortcuts for common tags and references
// to the general lexer and MapRef, byte for byte, on real pages and the
// golden inputs (the fuzz corpus runs the same check).
func TestFastPathsAgree(t *testing.T) {
	for _, in := range fastPathCases {
		checkFastPathsAgree(t, []byte(in), 0)
	}
	// simpleTag's one-load shortcut decides the kind of class, title,
	// href, id and style itself: it must agree with urlAttrs on every
	// element the table names, and on others.
	tags := []string{"a", "p", "BASE"}
	for _, attrs := range urlAttrs {
		for _, a := range attrs {
			if a.tag != "" {
				tags = append(tags, a.tag)
			}
		}
	}
	for _, tag := range tags {
		for _, attr := range []string{"class", "title", "href", "id", "style"} {
			checkFastPathsAgree(t, []byte(`<`+tag+` `+attr+`="/tools/x" `+attr+`="background:url(/tools/y)"><a href="z">`), 0)
		}
	}
	pages, _ := filepath.Glob("../../testdata/golden/html/*.in.html")
	pages = append(pages, "../../testdata/bench/wikipedia-go.html")
	for _, p := range pages {
		in, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			t.Parallel() // the setting is the rewriter's own: fast and slow ones run side by side
			for seed := range uint64(4) {
				checkFastPathsAgree(t, in, seed)
			}
		})
	}
}

func checkFastPathsAgree(t *testing.T, in []byte, seed uint64) {
	t.Helper()
	wiki := NewMapper(mustParse("https://en.wikipedia.org/"), "/dashboard-apps/wiki/")
	for _, m := range []*Mapper{testMapper, wiki} {
		want := rewriteHTMLPaths(t, string(in), m, testDoc, nil, true)
		for _, split := range []func(int) int{nil, randomSplit(seed)} {
			if got := rewriteHTML(t, string(in), m, testDoc, split); got != want {
				t.Fatalf("fast paths: %s", firstDiff([]byte(got), []byte(want)))
			}
		}
	}
}

// checkRewriteProperties checks what must hold of a rewriter for any
// input: nothing changes when nothing maps; how the input is split does
// not matter; and what it writes is the input with proxied prefixes
// inserted, nothing else.
func checkRewriteProperties(t *testing.T, in []byte, seed uint64, rewrite func([]byte, *Mapper, *url.URL, func(int) int) []byte) {
	lower := bytes.ToLower(in)
	if bytes.Contains(lower, []byte("nomatch.invalid")) || bytes.Contains(lower, []byte("~~pfx~~")) {
		return
	}
	if got := rewrite(in, nomatchMap, testDoc, randomSplit(seed)); !bytes.Equal(got, in) {
		t.Fatalf("nothing to rewrite, yet\n in %q\nout %q", in, got)
	}
	whole := rewrite(in, testMapper, testDoc, nil)
	if split := rewrite(in, testMapper, testDoc, randomSplit(seed)); !bytes.Equal(split, whole) {
		t.Fatalf("split input\n in %q\nout %q\nwant %q", in, split, whole)
	}
	if mayNormalize(in) {
		return
	}
	prefixed := rewrite(in, prefixedMap, nil, randomSplit(seed))
	if stripped := bytes.ReplaceAll(prefixed, []byte("/~~PFX~~"), nil); !bytes.Equal(stripped, in) {
		t.Fatalf("more than prefixes inserted\n in %q\nout %q", in, prefixed)
	}
}

// mayNormalize reports whether in may hold a root-relative reference that
// MapRef normalizes (dot segments, back slashes, spelt with tabs and
// newlines between their bytes too) rather than prefixes.
func mayNormalize(in []byte) bool {
	s := dropTabsNewlines(html.UnescapeString(string(in)))
	return strings.Contains(s, "\\") || strings.Contains(s, "/.") || strings.Contains(s, "%2")
}

// BenchmarkHTMLRewrite runs the rewriter over a real-world page (the
// Wikipedia article on Go, 128 KB, 434 root-relative URLs) and over the
// golden admin page, a torture test with a URL in every other tag.
func BenchmarkHTMLRewrite(b *testing.B) {
	wiki, err := os.ReadFile("../../testdata/bench/wikipedia-go.html")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		page []byte
		m    *Mapper
		doc  *url.URL
	}{
		{"wikipedia", wiki, NewMapper(mustParse("https://en.wikipedia.org/"), "/dashboard-apps/wiki/"), mustParse("https://en.wikipedia.org/wiki/Go_(programming_language)")},
		{"admin", readGolden(b, "html", "admin.in.html"), testMapper, testDoc},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.page)))
			b.ReportAllocs()
			for b.Loop() {
				r := NewHTMLRewriter(io.Discard, c.m, c.doc)
				for p := c.page; len(p) > 0; {
					n := min(len(p), 32<<10)
					r.Write(p[:n])
					p = p[n:]
				}
				r.Close()
			}
		})
	}
}

func TestPrefixWords(t *testing.T) {
	for _, c := range []struct {
		got  uint64
		want string
	}{{classQ, `class="`}, {titleQ, `title="`}, {styleQ, `style="`}, {hrefQ, `href="`}, {idQ, `id="`},
		{endA, "</a>"}, {endSpan, "</span>"}, {endLi, "</li>"}, {endDiv, "</div>"}} {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], c.got)
		if got := string(bytes.TrimRight(b[:], "\x00")); got != c.want {
			t.Errorf("prefix word %q, want %q", got, c.want)
		}
	}
}
