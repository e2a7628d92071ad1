package caddymodule

import (
	"io"
	"net/http"
	"strings"
)

// mediaTypeOf returns the media type of a response's Content-Type, lower
// case, without its parameters (mime.ParseMediaType would parse them into
// a map, on every response).
func mediaTypeOf(h http.Header) string {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// prepareBody readies the header of a response whose body the gateway
// changes: it returns the decoder of the body's coding (nil for none), or
// false when it cannot decode it; else it drops what describes the
// upstream's bytes and makes the validator weak, with etagMark appended.
func prepareBody(h http.Header, etagMark string) (decode func(io.Reader) (io.Reader, error), coding string, ok bool) {
	if decode, coding, ok = bodyDecoder(h); ok {
		dropUpstreamBodyHeaders(h, decode != nil)
		markETag(h, etagMark)
	}
	return decode, coding, ok
}

// dropUpstreamBodyHeaders removes what describes the upstream's bytes of a
// body the gateway changes: its length, ranges, digests and, once decoded,
// its coding.
func dropUpstreamBodyHeaders(h http.Header, decoded bool) {
	for _, name := range []string{"Content-Length", "Accept-Ranges", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest"} {
		h.Del(name)
	}
	if decoded {
		h.Del("Content-Encoding")
	}
}

// etagMark is appended to the helpdesk's validators for injected pages, so
// that a new host script version is a new page version.
func etagMark(version string) string { return "-da" + version }

// markETag makes a validator weak, as the bytes are no longer the
// upstream's, and appends mark (for injected pages, etagMark: a new host
// script version is a new page version). One that is not a quoted string
// cannot be marked, and is dropped rather than left strong.
func markETag(hd http.Header, mark string) {
	etag := hd.Get("Etag")
	if etag == "" {
		return
	}
	if !strings.HasSuffix(etag, `"`) {
		hd.Del("Etag")
		return
	}
	etag = strings.TrimPrefix(etag, "W/")
	hd.Set("Etag", "W/"+etag[:len(etag)-1]+mark+`"`)
}

// unmarkETags undoes markETag in an If-None-Match value.
func unmarkETags(v, version string) string {
	return strings.ReplaceAll(v, etagMark(version)+`"`, `"`)
}
