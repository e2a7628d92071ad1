package rewrite

import (
	"bytes"
	"regexp"
	"testing"

	"golang.org/x/net/html"
)

var headEndCases = []string{
	"<!doctype html><html><head><title>x</title></head><body>b</body></html>",
	"<HTML><HEAD><TITLE>x</TITLE></HEAD><BODY>b</BODY></HTML>",
	`<head><script>document.write("</head>")</script></head><body></body>`,
	`<head><script><!--<script>x</script>--></head></script></head>`,
	`<head><!-- </head> --><meta charset=utf-8></head>`,
	`<head><!--></head>`,
	`<head><meta content="</head>"></head><body>`,
	`<head><title></head></title></head>`,
	`<head><style>a{b:"</head>"}</style><noscript></head></noscript></head>`,
	`<!doctype html><body class="x"><p>hi`,
	`<!doctype html><div id="app"></div>`,
	"\xef\xbb\xbf<html><head></head>",
	`<html><head><meta charset=utf-8>Hello`,
	`<html><head><title>t</title>`,
	`<head><template><div></div></template></head>`,
	`<head><template></head></template></head>`,
	`<head><template><template><p></template>x<p></template></head>`,
	`<head><template><script>"</template>"</script></template><link></head>`,
	`<?xml version="1.0"?><!DOCTYPE html></ x><head></head>`,
	`<head> a < b </head>`,
	`<head></>`,
	"just text",
	"<!doctype html><!-- x -->",
	"<head><link rel=x href='/a>b'></head >",
}

func TestHeadEndAgreesWithTokenizer(t *testing.T) {
	for _, doc := range headEndCases {
		checkHeadEnd(t, []byte(doc))
	}
	// Where the tokenizer version was wrong, the answer is written out.
	for doc, want := range map[string]int{
		`<head><template><div></div></template></head>`:                          38,
		`<head><template></head></template></head>`:                              34,
		`<head><template><template><p></template>x<p></template></head>`:         55,
		`<head><template><script>"</template>"</script></template><link></head>`: 63,
		`<head><script/>var x;</script></head>`:                                  30,
	} {
		if at, found, _ := HeadEnd([]byte(doc), true); !found || at != want || doc[at:at+2] != "</" {
			t.Errorf("HeadEnd(%q) = %d %v, want %d", doc, at, found, want)
		}
	}
}

func FuzzHeadEnd(f *testing.F) {
	for _, doc := range headEndCases {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) { checkHeadEnd(t, doc) })
}

// oracleWrong matches what the tokenizer-based oracle gets wrong: after
// "<script/>" it reads raw text, which its caller took for the body, and
// it took a tag inside a <template> for the start of the body, which put
// the script in the template's inert content.
var oracleWrong = regexp.MustCompile(`(?i)<(script|style|title|noscript)[^>]*/>|<template`)

// checkHeadEnd holds HeadEnd to what x/net/html's tokenizer finds in
// doc, and to deciding nothing on a prefix of doc, as it arrives, that the
// whole would not: it may decide sooner than the tokenizer, never later.
func checkHeadEnd(t *testing.T, doc []byte) {
	t.Helper()
	if bytes.IndexByte(doc, 0) >= 0 || bytes.Contains(doc, []byte("\r")) {
		return
	}
	at, found, more := HeadEnd(doc, true)
	wat, wfound, wmore := headEndTokenizer(doc, true)
	if !oracleWrong.Match(doc) && (at != wat || found != wfound || more != wmore) {
		t.Fatalf("HeadEnd(%q) = %d %v %v, tokenizer %d %v %v", doc, at, found, more, wat, wfound, wmore)
	}
	for n := range len(doc) {
		pat, pfound, pmore := HeadEnd(doc[:n], false)
		if !pmore && (pat != at || pfound != found) {
			t.Fatalf("HeadEnd(%q, not final) = %d %v, but the whole doc %q gives %d %v", doc[:n], pat, pfound, doc, at, found)
		}
		if _, wfound, _ := headEndTokenizer(doc[:n], false); wfound && !pfound && !oracleWrong.Match(doc) {
			t.Fatalf("HeadEnd(%q, not final) waits for more; the tokenizer does not", doc[:n])
		}
	}
}

// headEndTokenizer is HeadEnd written on x/net/html's tokenizer, as the
// gateway first had it: slower, but the tokenizer is the reference.
func headEndTokenizer(doc []byte, final bool) (at int, found, more bool) {
	z := html.NewTokenizer(bytes.NewReader(doc))
	offset := 0
	rawIn := ""
	for {
		tt := z.Next()
		raw := z.Raw()
		start, end := offset, offset+len(raw)
		offset = end
		switch tt {
		case html.ErrorToken:
			return 0, false, !final
		case html.TextToken:
			if end == len(doc) && !final {
				return 0, false, true
			}
			if rawIn != "" || isBlank(raw) {
				continue
			}
			return start, true, false
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "html", "head", "base", "link", "meta", "basefont", "bgsound":
			case "script", "style", "title", "noscript", "template":
				if tt == html.StartTagToken {
					rawIn = string(name)
				}
			case "body":
				if end == len(doc) && !final {
					return 0, false, true
				}
				return end, true, false
			default:
				return start, true, false
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if string(name) == rawIn {
				rawIn = ""
			} else if string(name) == "head" && rawIn == "" {
				return start, true, false
			}
		}
	}
}

func BenchmarkHeadEnd(b *testing.B) {
	shell := []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ndoto</title>` +
		`<link rel="stylesheet" href="/packs/css/application.css"><script src="/packs/js/application.js" defer></script>` +
		`</head><body><div id="app"></div></body></html>`)
	b.Run("lexer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			HeadEnd(shell, true)
		}
	})
	b.Run("tokenizer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			headEndTokenizer(shell, true)
		}
	})
}
