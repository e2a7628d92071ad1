package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// maxWebhookBody bounds a webhook's body; Chatwoot's are a few KiB.
const maxWebhookBody = 1 << 20

// webhookEvent is what the gateway reads of a Chatwoot webhook.
type webhookEvent struct {
	Event     string `json:"event"`
	ID        *int64 `json:"id"`
	AccountID *int64 `json:"account_id"`
	Account   *struct {
		ID *int64 `json:"id"`
	} `json:"account"`
	Meta *struct {
		Sender *struct {
			ID *int64 `json:"id"`
		} `json:"sender"`
	} `json:"meta"`
}

// serveWebhook takes the helpdesk's webhook and evicts the cached
// contexts it makes stale.
func (h *Handler) serveWebhook(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return writeJSONError(w, http.StatusMethodNotAllowed, "the webhook takes POST")
	}
	if h.webhookSecret == "" {
		return writeJSONError(w, http.StatusNotFound, "webhook_secret is not configured on this site")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil {
		return writeJSONError(w, http.StatusBadRequest, "reading the body failed")
	}
	if len(body) > maxWebhookBody {
		return writeJSONError(w, http.StatusRequestEntityTooLarge, "the body is larger than 1 MiB")
	}
	if !h.webhookAuthentic(r, body) {
		return writeJSONError(w, http.StatusUnauthorized, "wrong or missing webhook secret")
	}
	var ev webhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return writeJSONError(w, http.StatusBadRequest, "the body is not a JSON webhook event")
	}
	evicted := h.evict(&ev)
	h.logger.Debug("webhook", zap.String("event", ev.Event), zap.Bool("evicted", evicted))
	return writeJSON(w, http.StatusOK, []byte(`{"ok":true}`+"\n"))
}

// webhookAuthentic checks the secret, given as ?secret= or as
// X-Dashboard-Apps-Signature: sha256=<hex HMAC-SHA256 of the body>, in
// constant time.
func (h *Handler) webhookAuthentic(r *http.Request, body []byte) bool {
	if sig := r.Header.Get("X-Dashboard-Apps-Signature"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil || !strings.HasPrefix(sig, "sha256=") {
			return false
		}
		mac := hmac.New(sha256.New, []byte(h.webhookSecret))
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	secret := r.URL.Query().Get("secret")
	return secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(h.webhookSecret)) == 1
}

// evict bumps the generations an event makes stale and reports whether it
// was an event that does.
func (h *Handler) evict(ev *webhookEvent) bool {
	account := int64(anyAccount)
	switch {
	case ev.AccountID != nil:
		account = *ev.AccountID
	case ev.Account != nil && ev.Account.ID != nil:
		account = *ev.Account.ID
	}
	gens := &h.state.gens
	switch ev.Event {
	case "conversation_created", "conversation_updated", "conversation_status_changed":
		if ev.ID != nil {
			gens.bump(aboutConversation, account, *ev.ID)
		}
		if ev.Meta != nil && ev.Meta.Sender != nil && ev.Meta.Sender.ID != nil {
			gens.bump(aboutContact, account, *ev.Meta.Sender.ID)
		}
	case "contact_updated", "contact_deleted":
		if ev.ID != nil {
			gens.bump(aboutContact, account, *ev.ID)
		}
	default:
		return false
	}
	h.metrics.evictions.Inc()
	return true
}
