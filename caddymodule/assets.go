package caddymodule

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
)

//go:embed hostjs/host.js hostjs/host.css hostjs/appshim.js
var hostFiles embed.FS

// asset is one embedded file of the host script, served with a validator
// from its content and, to browsers that take it, gzipped ahead of time.
type asset struct {
	name, contentType string
	body, gzipped     []byte
	etag              string
}

// hostAssets are the host script and its stylesheet. version, a hash of
// both, goes in their URLs, so a new build is fetched at once and an
// unchanged one is cached for good.
type hostAssets struct {
	js, css     asset
	version     string
	jsIntegrity string // "sha256-<base64>", for Subresource Integrity and CSP hashes

	// The path-mode shim, first script of every app page: a version and
	// integrity of its own, so that it changes apart from the host script.
	shim                       asset
	shimVersion, shimIntegrity string
}

var loadAssets = sync.OnceValue(func() *hostAssets {
	js := newAsset("hostjs/host.js", "text/javascript; charset=utf-8")
	css := newAsset("hostjs/host.css", "text/css; charset=utf-8")
	both := sha256.Sum256(append(append([]byte(nil), js.body...), css.body...))
	jsSum := sha256.Sum256(js.body)
	shim := newAsset("hostjs/appshim.js", "text/javascript; charset=utf-8")
	shimSum := sha256.Sum256(shim.body)
	return &hostAssets{
		js: js, css: css,
		version:       hex.EncodeToString(both[:6]),
		jsIntegrity:   "sha256-" + base64.StdEncoding.EncodeToString(jsSum[:]),
		shim:          shim,
		shimVersion:   hex.EncodeToString(shimSum[:6]),
		shimIntegrity: "sha256-" + base64.StdEncoding.EncodeToString(shimSum[:]),
	}
})

func newAsset(path, contentType string) asset {
	body, err := hostFiles.ReadFile(path)
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(body)
	zw.Close()
	sum := sha256.Sum256(body)
	return asset{
		name: path[strings.LastIndexByte(path, '/')+1:], contentType: contentType,
		body: body, gzipped: gz.Bytes(),
		etag: `"` + hex.EncodeToString(sum[:8]) + `"`,
	}
}

// serve answers GET and HEAD for the asset; the version in the URL decides
// whether it may be cached for good.
func (a *asset) serve(w http.ResponseWriter, r *http.Request, version string) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writeJSONError(w, http.StatusMethodNotAllowed, "GET only")
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if r.URL.Query().Get("v") == version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	body, etag := a.body, a.etag
	if slices.Contains(encode.AcceptedEncodings(r, nil), "gzip") { // Caddy's reading of q-values
		body, etag = a.gzipped, strings.TrimSuffix(a.etag, `"`)+`-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Etag", etag)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(body))
	return nil
}
