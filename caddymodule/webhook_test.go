package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// endlessBody is a request body that never ends and counts the bytes read
// from it.
type endlessBody struct{ read int }

func (b *endlessBody) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	b.read += len(p)
	return len(p), nil
}

// TestWebhookRefusesBeforeReadingTheBody: a webhook without the right
// query secret, or with a signature that cannot be a SHA-256 HMAC, is
// refused (401) without a byte of its body read, so that anyone who can
// reach the endpoint cannot make the gateway read a megabyte per request.
// The body here never ends: read first, it gives 413, not 401.
func TestWebhookRefusesBeforeReadingTheBody(t *testing.T) {
	h := newTestHandler(t, "http://127.0.0.1:1", time.Minute)
	for _, tc := range []struct {
		name, query string
		header      []string
	}{
		{"no secret", "", nil},
		{"wrong secret", "?secret=wrong", nil},
		{"empty secret", "?secret=", nil},
		{"secret prefix", "?secret=hook-secre", nil},
		{"secret with a suffix", "?secret=hook-secret2", nil},
		{"wrong secret first", "?secret=x&secret=hook-secret", nil},
		{"secret under another name", "?Secret=hook-secret", nil},
		{"signature without sha256=", "", []string{"X-Dashboard-Apps-Signature", strings.Repeat("00", 32)}},
		{"signature not hex", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + strings.Repeat("zz", 32)}},
		{"signature too short", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + strings.Repeat("00", 31)}},
		{"signature too long", "", []string{"X-Dashboard-Apps-Signature", "sha256=" + strings.Repeat("00", 33)}},
		{"empty signature", "", []string{"X-Dashboard-Apps-Signature", "sha256="}},
		{"malformed signature beside a good query secret", "?secret=hook-secret", []string{"X-Dashboard-Apps-Signature", "sha256=x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &endlessBody{}
			r := httptest.NewRequest(http.MethodPost, "/_dashboard_apps/webhook"+tc.query, body)
			for i := 0; i+1 < len(tc.header); i += 2 {
				r.Header.Set(tc.header[i], tc.header[i+1])
			}
			w := httptest.NewRecorder()
			h.serveOwn(w, r, "webhook")
			if w.Code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", w.Code)
			}
			if body.read != 0 {
				t.Errorf("%d bytes of the body read before the secret was checked", body.read)
			}
		})
	}

	// The right query secret reads the body (and its limit still holds);
	// so does a well-formed signature, which is checked against it.
	for name, tc := range map[string]struct {
		query, sig string
		want       int
	}{
		"good query secret":         {"?secret=hook-secret", "", http.StatusRequestEntityTooLarge},
		"well-formed signature":     {"", "sha256=" + strings.Repeat("00", 32), http.StatusRequestEntityTooLarge},
		"good secret, another name": {"?secret=hook-secret&x=1", "", http.StatusRequestEntityTooLarge},
	} {
		body := &endlessBody{}
		r := httptest.NewRequest(http.MethodPost, "/_dashboard_apps/webhook"+tc.query, body)
		if tc.sig != "" {
			r.Header.Set("X-Dashboard-Apps-Signature", tc.sig)
		}
		w := httptest.NewRecorder()
		h.serveOwn(w, r, "webhook")
		if w.Code != tc.want || body.read <= maxWebhookBody || body.read > 2*maxWebhookBody {
			t.Errorf("%s: status %d after %d bytes read, want %d after just over %d", name, w.Code, body.read, tc.want, maxWebhookBody)
		}
	}
}
