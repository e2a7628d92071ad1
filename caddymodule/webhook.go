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
//
// A secret given in the query is checked before the body is read, so a
// caller without it cannot make the gateway read (up to 1 MiB of) anything;
// only a signature needs the body first, and a malformed one is refused
// before it too.
func (h *Handler) serveWebhook(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return writeJSONError(w, http.StatusMethodNotAllowed, "the webhook takes POST")
	}
	if h.webhookSecret == "" {
		return writeJSONError(w, http.StatusNotFound, "webhook_secret is not configured on this site")
	}
	sig, signed := webhookSignature(r)
	if !signed && !h.webhookQuerySecret(r) || signed && sig == nil {
		return writeJSONError(w, http.StatusUnauthorized, "wrong or missing webhook secret")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil {
		return writeJSONError(w, http.StatusBadRequest, "reading the body failed")
	}
	if len(body) > maxWebhookBody {
		return writeJSONError(w, http.StatusRequestEntityTooLarge, "the body is larger than 1 MiB")
	}
	if signed && !h.webhookSigned(sig, body) {
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

// webhookSignature reads X-Dashboard-Apps-Signature: sha256=<hex HMAC-SHA256
// of the body>. signed is whether the header is there: then it alone
// counts, even beside a query secret. sig is nil when it is not a
// well-formed SHA-256 HMAC.
func webhookSignature(r *http.Request) (sig []byte, signed bool) {
	v := r.Header.Get("X-Dashboard-Apps-Signature")
	if v == "" {
		return nil, false
	}
	hexSum, ok := strings.CutPrefix(v, "sha256=")
	if !ok {
		return nil, true
	}
	if sig, err := hex.DecodeString(hexSum); err == nil && len(sig) == sha256.Size {
		return sig, true
	}
	return nil, true
}

// webhookSigned checks a signature of body, in constant time.
func (h *Handler) webhookSigned(sig, body []byte) bool {
	mac := hmac.New(sha256.New, []byte(h.webhookSecret))
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// webhookQuerySecret checks the secret given as ?secret=, in constant time.
func (h *Handler) webhookQuerySecret(r *http.Request) bool {
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
	evs := make([]eviction, 0, 2)
	switch ev.Event {
	case "conversation_created", "conversation_updated", "conversation_status_changed":
		if ev.ID != nil {
			evs = append(evs, eviction{aboutConversation, account, *ev.ID})
		}
		if ev.Meta != nil && ev.Meta.Sender != nil && ev.Meta.Sender.ID != nil {
			evs = append(evs, eviction{aboutContact, account, *ev.Meta.Sender.ID})
		}
	case "contact_updated", "contact_deleted":
		if ev.ID != nil {
			evs = append(evs, eviction{aboutContact, account, *ev.ID})
		}
	default:
		return false
	}
	// Here first and always; then, in a cluster, on the other instances.
	h.state.gens.apply(evs)
	if l := h.registry.redis; l != nil {
		l.fanOut(evs)
	}
	h.metrics.evictions.Inc()
	return true
}
