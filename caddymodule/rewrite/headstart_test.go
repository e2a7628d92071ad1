package rewrite

import (
	"strings"
	"testing"
)

func TestHeadStart(t *testing.T) {
	// "|" marks where the script goes.
	cases := []string{
		`<!doctype html><html><head>|<title>x</title></head>`,
		`<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">|\n  <meta name="viewport" content="width=device-width">`,
		`<!doctype html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">|<meta http-equiv="Content-Security-Policy" content="script-src 'none'">`,
		`<!doctype html><head>|<meta http-equiv="Content-Security-Policy" content="script-src 'none'"><meta charset=utf-8>`,
		`<!-- a comment --><html><!-- another -->|<body>hi`,
		"\xef\xbb\xbf|<p>text",
		"\xef\xbb\xbf<!doctype html>|<script>app()</script>",
		`|plain text page`,
		`<html><head>|</head><body>`,
		`<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head>|<title>x</title>`,
		`<html>|<div>`,
		`<!doctype html>|`,
		`|`,
	}
	for _, c := range cases {
		c = strings.ReplaceAll(c, `\n`, "\n")
		want := strings.Index(c, "|")
		doc := []byte(strings.Replace(c, "|", "", 1))
		at, found, more := HeadStart(doc, true)
		if !found || more || at != want {
			t.Errorf("%q: at %d found %v more %v, want %d", c, at, found, more, want)
		}
		// Fed in two pieces, it waits for the piece that decides or finds
		// the same place.
		for cut := 0; cut < len(doc); cut++ {
			at, found, more := HeadStart(doc[:cut], false)
			if found && at != want {
				t.Errorf("%q cut at %d: at %d, want %d", c, cut, at, want)
			}
			if !found && !more {
				t.Errorf("%q cut at %d: neither found nor more", c, cut)
			}
		}
	}
	for _, utf16 := range []string{"\xff\xfe<\x00h\x00", "\xfe\xff\x00<"} {
		if _, found, more := HeadStart([]byte(utf16), true); found || more {
			t.Errorf("UTF-16 %q: found %v more %v", utf16, found, more)
		}
	}
}
