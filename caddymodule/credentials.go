package caddymodule

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/ndoto/caddy-dashboard-apps/caddymodule/rewrite"
)

// credentials are the agent's helpdesk credentials as the helpdesk API is
// to receive them.
type credentials struct {
	header http.Header
}

// credentialKey is the fingerprint of a request's helpdesk credentials,
// which keys everything cached on the agent's behalf, so that one agent
// never receives what another agent's request fetched.
type credentialKey [sha256.Size]byte

// deviseHeaders are the headers Chatwoot's dashboard keeps in its session
// cookie and sends on every API call (devise-token-auth).
var deviseHeaders = []string{"access-token", "client", "uid", "token-type", "expiry"}

const defaultSessionCookie = "cw_d_session_info"

var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// credentialKeyOf fingerprints the credentials in r without building them,
// so that a cache hit costs no allocation: the helpdesk's cookies (not the
// apps' own), Authorization, api_access_token and the forward_headers. The
// dashboard session cookie is among the cookies. ok is false when the
// request carries none of them.
func (h *Handler) credentialKeyOf(r *http.Request) (key credentialKey, ok bool) {
	bp := keyBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			pair = strings.TrimSpace(pair)
			if pair == "" || strings.HasPrefix(pair, rewrite.CookiePrefix) {
				continue
			}
			buf = append(append(buf, "c\x00"...), pair...)
		}
	}
	for _, name := range h.credentialHeaders {
		for _, v := range r.Header[name] {
			buf = append(append(append(append(buf, 'h'), name...), 0), v...)
		}
	}
	if ok = len(buf) > 0; ok {
		key = sha256.Sum256(buf)
	}
	*bp = buf
	keyBufs.Put(bp)
	return key, ok
}

// credentialsOf collects the agent's credentials from r for a call to the
// helpdesk API: the cookies credentialKeyOf fingerprints, the credential
// headers, and the headers inside the dashboard session cookie.
func (h *Handler) credentialsOf(r *http.Request) credentials {
	c := credentials{header: make(http.Header, 4)}
	var kept []string
	for _, ck := range r.Cookies() {
		if strings.HasPrefix(ck.Name, rewrite.CookiePrefix) {
			continue // an app's cookie: neither a credential nor the helpdesk's business
		}
		kept = append(kept, ck.Name+"="+ck.Value)
		if ck.Name == h.sessionCookie() {
			addSessionHeaders(c.header, ck.Value)
		}
	}
	if len(kept) > 0 {
		c.header.Set("Cookie", strings.Join(kept, "; "))
	}
	for _, name := range h.credentialHeaders {
		if v := r.Header[name]; len(v) > 0 {
			c.header[name] = v
		}
	}
	return c
}

func (h *Handler) sessionCookie() string {
	if h.SessionCookie == "" {
		return defaultSessionCookie
	}
	return h.SessionCookie
}

// addSessionHeaders sets the devise-token-auth headers held, as a
// URL-encoded JSON object, in a dashboard session cookie.
func addSessionHeaders(h http.Header, cookie string) {
	raw, err := url.QueryUnescape(cookie)
	if err != nil {
		return
	}
	var session map[string]any
	if json.Unmarshal([]byte(raw), &session) != nil {
		return
	}
	for _, name := range deviseHeaders {
		switch v := session[name].(type) {
		case string:
			h.Set(name, v)
		case float64:
			h.Set(name, strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
}
