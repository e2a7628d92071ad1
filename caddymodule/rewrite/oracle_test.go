package rewrite

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/net/html"
)

// This file holds the HTML rewriter to an oracle that shares none of its
// code: goquery (x/net/html's tree builder, which follows the HTML
// standard's parsing algorithm) parses a page before and after rewriting,
// and the two trees must be the same, node for node, attribute for
// attribute (names, values, order) and text for text, but for the URLs
// that the contract's proxy rules name, which must read as the Mapper maps
// them. The oracle finds those URLs itself, in the parsed values: it
// splits srcset, ping, meta refresh and CSS by the HTML and CSS standards'
// own algorithms (oracleattr_test.go, oraclecss_test.go), and asks the
// Mapper only for the mapping of each URL. It cannot see what the parser
// normalizes away (the case of names, quotes, white space in tags,
// duplicate attributes): checkRewriteProperties holds the bytes.

// oracleApps are the apps the oracle rewrites each page for: the tests'
// app under /tools/, the same origin served from its root (so that every
// root-relative reference of a page is mapped), and Wikipedia, whose
// article the benchmark reads.
var oracleApps = []struct {
	name string
	m    *Mapper
	doc  *url.URL
}{
	{"tools", testMapper, testDoc},
	{"root", NewMapper(mustParse("http://app.internal:8080/"), "/dashboard-apps/t/"), testDoc},
	{"wiki", NewMapper(mustParse("https://en.wikipedia.org/"), "/dashboard-apps/wiki/"), mustParse("https://en.wikipedia.org/wiki/Go_(programming_language)")},
}

// checkOracle rewrites in for each of oracleApps and holds the result to
// the oracle.
func checkOracle(t testing.TB, in []byte) {
	t.Helper()
	for _, app := range oracleApps {
		out := rewriteHTML(t, string(in), app.m, app.doc, nil)
		if diffs := oracleDiffs(in, []byte(out), app.m, app.doc); len(diffs) > 0 {
			t.Errorf("app %s: the rewritten page is not the page with its URLs mapped:\n\t%s\nin:  %s\nout: %s",
				app.name, strings.Join(diffs, "\n\t"), excerpt(in), excerpt([]byte(out)))
		}
	}
}

func excerpt(b []byte) string {
	if len(b) > 400 {
		return fmt.Sprintf("%q... (%d bytes)", b[:400], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// oracleDiffs parses in and out and returns how out differs from in with
// the URLs of the contract mapped by m for a document at doc.
func oracleDiffs(in, out []byte, m *Mapper, doc *url.URL) []string {
	din, err := goquery.NewDocumentFromReader(bytes.NewReader(in))
	if err != nil {
		return []string{err.Error()}
	}
	dout, err := goquery.NewDocumentFromReader(bytes.NewReader(out))
	if err != nil {
		return []string{err.Error()}
	}
	o := &oracle{m: m, base: doc, origin: mustParse(m.Origin()), src: asciiLower(string(in))}
	o.walk("", din.Selection, dout.Selection, scope{})
	return o.diffs
}

// oracle walks two parsed pages side by side.
type oracle struct {
	m       *Mapper
	origin  *url.URL // the app's
	base    *url.URL // what references resolve against: the document's URL, then its <base href>
	baseSet bool
	diffs   []string

	src          string // the page, ASCII lower-case
	lenientAfter bool   // see lenient
}

const maxOracleDiffs = 8

func (o *oracle) fail(path, format string, args ...any) {
	if len(o.diffs) == maxOracleDiffs {
		o.diffs = append(o.diffs, "...")
	}
	if len(o.diffs) < maxOracleDiffs {
		o.diffs = append(o.diffs, path+": "+fmt.Sprintf(format, args...))
	}
}

// scope is what the oracle knows of where a node is.
type scope struct {
	// inert is true inside a <template>, whose contents belong to no
	// document: a <base> there sets nothing.
	inert bool

	// foreignRaw is true inside an element that HTML reads as raw text
	// (script, style, title...) but that is in SVG or MathML, where the
	// parser reads markup in it and breaks out of SVG at HTML elements.
	// The rewriter, which follows no tree, reads raw text up to the end
	// tag, as in HTML (see HTMLRewriter.openElement: the safe side, as it
	// leaves alone what it cannot place). The oracle holds what is inside
	// to be as it was or as it maps it; css says that a <style>'s content
	// may be mapped as CSS.
	foreignRaw, css bool
}

// oracleRawText are the elements whose content HTML's tokenizer reads
// as raw text or RCDATA (scripting on, as in the helpdesk's frames).
var oracleRawText = []string{"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext"}

// walk compares the node of in with the node of out, then their
// children.
func (o *oracle) walk(path string, in, out *goquery.Selection, sc scope) {
	n, m := in.Get(0), out.Get(0)
	if n.Type != m.Type || n.Namespace != m.Namespace || goquery.NodeName(in) != goquery.NodeName(out) {
		o.fail(path, "%s, rewritten %s", describe(n), describe(m))
		return
	}
	switch n.Type {
	case html.ElementNode:
		o.element(path, n, m, sc)
	case html.TextNode:
		want := n.Data
		if p := n.Parent; sc.css || p != nil && p.Type == html.ElementNode && p.Namespace == "" && p.Data == "style" {
			want = o.mapCSS(n.Data)
		}
		if m.Data != want && !(o.lenient(sc) && m.Data == n.Data) {
			o.fail(path, "text %s, want %s", excerpt([]byte(m.Data)), excerpt([]byte(want)))
		}
	case html.CommentNode, html.DoctypeNode:
		if m.Data != n.Data || fmt.Sprint(m.Attr) != fmt.Sprint(n.Attr) {
			o.fail(path, "%s, rewritten %s", describe(n), describe(m))
		}
	}
	inKids, outKids := in.Contents(), out.Contents()
	if inKids.Length() != outKids.Length() {
		o.fail(path, "%d children, rewritten %d", inKids.Length(), outKids.Length())
		return
	}
	if n.Type == html.ElementNode {
		sc.inert = sc.inert || n.Namespace == "" && n.Data == "template"
		if n.Namespace != "" && slices.Contains(oracleRawText, n.Data) {
			sc.foreignRaw = true
			sc.css = sc.css || n.Data == "style"
			o.lenientAfter = o.lenientAfter || !o.closedAsText(n)
		}
	}
	inKids.Each(func(i int, kid *goquery.Selection) {
		o.walk(fmt.Sprintf("%s/%s[%d]", path, goquery.NodeName(kid), i), kid, outKids.Eq(i), sc)
	})
}

// lenient reports whether the oracle takes a value left as it was for
// one it would map: inside an element of SVG or MathML that the
// rewriter reads as raw text, and after one whose raw text the parser
// may not end where the rewriter does.
func (o *oracle) lenient(sc scope) bool { return sc.foreignRaw || o.lenientAfter }

// closedAsText reports whether the rewriter's raw text in the foreign
// element n ends where the parser's element does: n holds nothing but
// text, and the source has that text right before n's end tag (not so
// where the parser decoded a character reference: the oracle is lenient
// for longer than it might be, never shorter). Else the
// rewriter may read as raw text some of what follows n in the tree, up to
// an end tag the parser took for something else, or to the end (an
// unclosed <title> in SVG, markup that breaks out of it).
func (o *oracle) closedAsText(n *html.Node) bool {
	text := ""
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type != html.TextNode {
			return false
		}
		text += c.Data
	}
	if n.Data == "plaintext" {
		return false // raw text to the end
	}
	end := asciiLower(text + "</" + n.Data)
	for i := 0; ; {
		k := strings.Index(o.src[i:], end)
		if k < 0 {
			return false
		}
		i += k + len(end)
		if i == len(o.src) || strings.IndexByte("\t\n\f\r />", o.src[i]) >= 0 {
			return true
		}
	}
}

func describe(n *html.Node) string {
	switch n.Type {
	case html.ElementNode:
		return fmt.Sprintf("element %s %q", n.Namespace, n.Data)
	case html.TextNode:
		return "text " + excerpt([]byte(n.Data))
	}
	return fmt.Sprintf("node type %d %q %v", n.Type, n.Data, n.Attr)
}

// element compares the attributes of the element in with those of out,
// and takes note of the first <base href>.
func (o *oracle) element(path string, in, out *html.Node, sc scope) {
	if len(in.Attr) != len(out.Attr) {
		o.fail(path, "attributes %v, rewritten %v", in.Attr, out.Attr)
		return
	}
	refresh := in.Data == "meta" && in.Namespace == "" && isRefreshMeta(in)
	for i, a := range in.Attr {
		b := out.Attr[i]
		if a.Namespace != b.Namespace || a.Key != b.Key {
			o.fail(path, "attribute %d is %s:%s, rewritten %s:%s", i, a.Namespace, a.Key, b.Namespace, b.Key)
			continue
		}
		want := o.attr(in, a, refresh)
		if sc.css {
			want = o.mapCSS(a.Val)
		}
		if b.Val != want && !(o.lenient(sc) && b.Val == a.Val) {
			o.fail(path, "attribute %s=%q: got %q, want %q", a.Key, a.Val, b.Val, want)
		}
	}
	// The HTML standard: the document's base URL is the href of its first
	// <base> element with one, resolved against the document's URL. (The
	// rewriter goes by the first in the source, which is the first in the
	// tree: the parser moves no <base> ahead of another.)
	if in.Data != "base" || in.Namespace != "" || sc.inert || o.baseSet {
		return
	}
	for _, a := range in.Attr {
		if a.Namespace == "" && a.Key == "href" {
			o.baseSet = true
			if u, err := browserURL(a.Val); err == nil {
				o.base = o.base.ResolveReference(u)
			}
		}
	}
}

// isRefreshMeta reports whether the <meta> n is a refresh pragma: its
// http-equiv (the first; the parser drops repeats) is "refresh", ASCII
// case-insensitive, as enumerated attributes are matched.
func isRefreshMeta(n *html.Node) bool {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == "http-equiv" {
			return asciiLower(a.Val) == "refresh"
		}
	}
	return false
}

// attr returns what the attribute a of element el must read after
// rewriting: the URL attributes of the contract (href, src, action,
// formaction, srcset, poster, object data, meta refresh content, style)
// and the others that hold URLs and that the rewriter maps too (cite,
// ping, manifest, longdesc, background, xlink:href, imagesrcset) with their
// URLs mapped, every other attribute as it was.
func (o *oracle) attr(el *html.Node, a html.Attribute, refresh bool) string {
	name := a.Key
	if a.Namespace != "" {
		name = a.Namespace + ":" + a.Key // xlink:href in SVG
	}
	switch name {
	case "href", "src", "action", "formaction", "poster", "cite", "manifest", "longdesc", "background", "xlink:href":
		return o.mapURL(a.Val)
	case "data":
		if el.Data == "object" {
			return o.mapURL(a.Val)
		}
	case "srcset", "imagesrcset":
		return o.mapSpans(a.Val, srcsetURLs(a.Val))
	case "ping":
		return o.mapSpans(a.Val, pingURLs(a.Val))
	case "style":
		return o.mapCSS(a.Val)
	case "content":
		if refresh {
			if start, end, ok := refreshURLSpan(a.Val); ok {
				return o.mapSpans(a.Val, []span{{start: start, end: end}})
			}
		}
	}
	return a.Val
}

// mapURL returns what the URL reference ref must be after rewriting:
// left alone when the browser, resolving it against the document's base,
// goes to another origin; else what the Mapper maps it to, or itself.
func (o *oracle) mapURL(ref string) string {
	mapped, ok := o.m.MapRef(ref, o.base)
	if u, err := browserURL(ref); err == nil && !o.onApp(o.base.ResolveReference(u)) {
		// One exception, the Mapper's on purpose (see MapRef, and
		// caddymodule's TestAttackOpenRedirectsThroughTheMapping): a
		// reference on another origin only through its tabs or newlines
		// ("/\t/host/") is mapped as the root-relative path it is spelt
		// as, under the app's prefix.
		if ok && strings.ContainsAny(ref, "\t\n\r") && strings.HasPrefix(dropTabsNewlines(strings.TrimSpace(mapped)), o.m.Proxied()) {
			return mapped
		}
		return ref
	}
	if ok {
		return mapped
	}
	return ref
}

// browserURL parses ref as the URL standard does before it parses: it
// strips leading and trailing C0 controls and spaces, drops tabs and
// newlines, and reads "\" as "/" (in http and https URLs, the only ones
// that can be on an app's origin).
func browserURL(ref string) (*url.URL, error) {
	ref = strings.TrimFunc(ref, func(r rune) bool { return r <= ' ' })
	ref = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(ref)
	return url.Parse(ref)
}

// onApp reports whether u is on the app's origin.
func (o *oracle) onApp(u *url.URL) bool {
	return strings.EqualFold(u.Scheme, o.origin.Scheme) && originHost(u) == originHost(o.origin)
}

func originHost(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" || u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443" {
		return host
	}
	return host + ":" + port
}

// span is where a URL is in an attribute value or a stylesheet. keep
// marks one that the rewriter leaves as it is on purpose (see cssURLs).
type span struct {
	start, end int
	keep       bool
}

// mapSpans returns v with the URLs at spans mapped.
func (o *oracle) mapSpans(v string, spans []span) string {
	var b strings.Builder
	done := 0
	for _, s := range spans {
		b.WriteString(v[done:s.start])
		if s.keep {
			b.WriteString(v[s.start:s.end])
		} else {
			b.WriteString(o.mapURL(v[s.start:s.end]))
		}
		done = s.end
	}
	b.WriteString(v[done:])
	return b.String()
}

func (o *oracle) mapCSS(css string) string { return o.mapSpans(css, cssURLs(css)) }

// oraclePages are the pages of the repository's testdata that the HTML
// rewriter is tested on or meant for: the golden inputs (of this
// package's tests and of the injection's), the benchmark's Wikipedia
// article and the demo's apps.
func oraclePages(t *testing.T) []string {
	t.Helper()
	var pages []string
	for _, pattern := range []string{
		"../../testdata/golden/html/*.in.html",
		"../../testdata/golden/inject/*.in.html",
		"../../testdata/bench/*.html",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil || len(m) == 0 {
			t.Fatalf("no pages match %s: %v", pattern, err)
		}
		pages = append(pages, m...)
	}
	err := filepath.WalkDir("../../testdata/demo", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".html") {
			pages = append(pages, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

// TestHTMLOracle holds the rewriter to the oracle on the repository's
// pages and on the inputs of the tests that have no table of their own
// (the table fixtures run it in runCases, the fuzz corpus in
// FuzzHTMLRewrite).
func TestHTMLOracle(t *testing.T) {
	for _, p := range oraclePages(t) {
		t.Run(strings.TrimPrefix(p, "../../testdata/"), func(t *testing.T) {
			t.Parallel()
			in, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			checkOracle(t, in)
		})
	}
	t.Run("fast paths", func(t *testing.T) {
		for _, in := range fastPathCases {
			checkOracle(t, []byte(in))
		}
	})
	t.Run("head end", func(t *testing.T) {
		for _, in := range headEndCases {
			checkOracle(t, []byte(in))
		}
	})
	t.Run("long tokens", func(t *testing.T) {
		for _, in := range longTokenDocs() {
			checkOracle(t, []byte(in))
		}
	})
	t.Run("flush", func(t *testing.T) {
		checkOracle(t, []byte(`<p>Loading <a href="/tools/x">x</a><img src="/tools/i.png">`))
	})
}

// asciiLower lower-cases the ASCII letters of s, and only those: CSS
// compares names ASCII case-insensitively.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}, s)
}
