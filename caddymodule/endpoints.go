package caddymodule

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// serveOwn serves the gateway's endpoints under /_dashboard_apps/.
func (h *Handler) serveOwn(w http.ResponseWriter, r *http.Request, name string) error {
	switch name {
	case "host.js":
		return h.assets.js.serve(w, r, h.assets.version)
	case "host.css":
		return h.assets.css.serve(w, r, h.assets.version)
	case "apps":
		return h.serveApps(w, r)
	case "context":
		return h.serveContext(w, r)
	case "webhook":
		return h.serveWebhook(w, r)
	}
	return writeJSONError(w, http.StatusNotFound, "no such endpoint")
}

// Shared header values, so that writing them does not allocate.
var (
	jsonType     = []string{"application/json"}
	privateCache = []string{"private, no-store"}
	nosniff      = []string{"nosniff"}
	cacheHit     = []string{"hit"}
	cacheMiss    = []string{"miss"}
	cacheStale   = []string{"stale"}
)

const cacheHeader = "X-Dashboard-Apps-Cache"

func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	hd := w.Header()
	hd["Content-Type"] = jsonType
	hd["Cache-Control"] = privateCache
	hd["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

func writeJSONError(w http.ResponseWriter, status int, msg string) error {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return writeJSON(w, status, b)
}

// queryID reads a positive integer query parameter without allocating.
func queryID(rawQuery, name string) (int64, bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil && n > 0
		}
	}
	return 0, false
}

// Cache key layouts: a kind byte, the credential fingerprint, then ids.
const (
	profileKeyLen = 1 + len(credentialKey{})
	contextKeyLen = profileKeyLen + 16
)

func profileKey(cred credentialKey) (k [profileKeyLen]byte) {
	k[0] = 'p'
	copy(k[1:], cred[:])
	return k
}

func contextKey(cred credentialKey, account, conversation int64) (k [contextKeyLen]byte) {
	k[0] = 'x'
	copy(k[1:], cred[:])
	binary.LittleEndian.PutUint64(k[profileKeyLen:], uint64(account))
	binary.LittleEndian.PutUint64(k[profileKeyLen+8:], uint64(conversation))
	return k
}

// serveContext answers with the appContext message of a conversation for
// the requesting agent, from the cache when it can.
func (h *Handler) serveContext(w http.ResponseWriter, r *http.Request) error {
	account, ok1 := queryID(r.URL.RawQuery, "account")
	conv, ok2 := queryID(r.URL.RawQuery, "conversation")
	if !ok1 || !ok2 {
		return writeJSONError(w, http.StatusBadRequest, "account and conversation must be positive integers")
	}
	if h.helpdesk == nil {
		return writeJSONError(w, http.StatusServiceUnavailable, "helpdesk_api is not configured on this site")
	}
	cred, ok := h.credentialKeyOf(r)
	if !ok {
		return writeJSONError(w, http.StatusUnauthorized, "sign in to the helpdesk")
	}
	key := contextKey(cred, account, conv)
	bp := entryBufs.Get().(*[]byte)
	defer entryBufs.Put(bp)
	payload, fresh, found := h.state.lookup(key[:], *bp, h.ttl)
	if fresh {
		h.metrics.cacheHits.Inc()
		w.Header()[cacheHeader] = cacheHit
		return writeJSON(w, http.StatusOK, payload)
	}
	h.metrics.cacheMisses.Inc()
	v, err, _ := h.state.flight.Do(string(key[:]), func() (any, error) {
		return h.fetchContext(r, cred, key[:], account, conv)
	})
	if err == nil {
		w.Header()[cacheHeader] = cacheMiss
		return writeJSON(w, http.StatusOK, v.([]byte))
	}
	var he *helpdeskError
	if errors.As(err, &he) && he.passThrough() {
		return writeJSONError(w, he.status, http.StatusText(he.status))
	}
	if found {
		h.logger.Warn("serving a stale appContext: the helpdesk API failed", zap.Error(err))
		w.Header()[cacheHeader] = cacheStale
		return writeJSON(w, http.StatusOK, payload)
	}
	h.logger.Error("building appContext: the helpdesk API failed", zap.Error(err))
	return writeJSONError(w, http.StatusBadGateway, "the helpdesk API is not answering")
}

// fetchContext builds and caches a context from the helpdesk's API. It is
// shared by concurrent requests, so it runs detached from the first one.
func (h *Handler) fetchContext(r *http.Request, cred credentialKey, key []byte, account, conv int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), helpdeskTimeout)
	defer cancel()
	creds := h.credentialsOf(r)
	agentc := make(chan error, 1)
	var agent *profile
	go func() {
		var err error
		agent, err = h.agent(ctx, cred, creds)
		agentc <- err
	}()
	c, convErr := timedHelpdesk(h, func() (*conversation, error) { return h.helpdesk.conversation(ctx, creds, account, conv) })
	if err := <-agentc; err != nil {
		return nil, err // the agent's own standing comes first: 401 before 404
	}
	if convErr != nil {
		return nil, convErr
	}
	payload, err := json.Marshal(buildAppContext(c, agent, account))
	if err != nil {
		return nil, err
	}
	var contactID int64
	if c.Meta.Sender != nil && c.Meta.Sender.ID != nil {
		contactID = *c.Meta.Sender.ID
	}
	slots := entrySlots(account, conv, contactID)
	h.state.store(key, payload, h.ttl, slots[:])
	return payload, nil
}

// agent returns the signed-in agent's profile, cached per credentials.
func (h *Handler) agent(ctx context.Context, cred credentialKey, creds credentials) (*profile, error) {
	key := profileKey(cred)
	bp := entryBufs.Get().(*[]byte)
	defer entryBufs.Put(bp)
	if b, fresh, _ := h.state.lookup(key[:], *bp, h.ttl); fresh {
		var p profile
		if json.Unmarshal(b, &p) == nil {
			return &p, nil
		}
	}
	v, err, _ := h.state.flight.Do(string(key[:]), func() (any, error) {
		p, err := timedHelpdesk(h, func() (*profile, error) { return h.helpdesk.profile(ctx, creds) })
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(p)
		h.state.store(key[:], b, h.ttl, nil)
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*profile), nil
}

// timedHelpdesk records the latency of a helpdesk API call.
func timedHelpdesk[T any](h *Handler, call func() (T, error)) (T, error) {
	start := time.Now()
	v, err := call()
	h.metrics.helpdeskLatency.Observe(time.Since(start).Seconds())
	return v, err
}

// appEntry is one app in the /apps answer.
type appEntry struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	URL           string `json:"url"`
	Position      int    `json:"position"`
	MessageFormat string `json:"message_format"`
}

// serveApps lists the apps shown in an account, in tab order.
func (h *Handler) serveApps(w http.ResponseWriter, r *http.Request) error {
	account, ok := queryID(r.URL.RawQuery, "account")
	if !ok {
		return writeJSONError(w, http.StatusBadRequest, "account must be a positive integer")
	}
	if h.helpdesk != nil {
		cred, ok := h.credentialKeyOf(r)
		if !ok {
			return writeJSONError(w, http.StatusUnauthorized, "sign in to the helpdesk")
		}
		if _, err := h.agent(r.Context(), cred, h.credentialsOf(r)); err != nil {
			var he *helpdeskError
			if errors.As(err, &he) && he.passThrough() {
				return writeJSONError(w, he.status, http.StatusText(he.status))
			}
			return writeJSONError(w, http.StatusBadGateway, "the helpdesk API is not answering")
		}
	}
	list := make([]appEntry, 0, len(h.registry.ordered))
	for _, a := range h.registry.ordered {
		if a.inAccount(int(account)) {
			list = append(list, appEntry{ID: a.id, Name: a.Name, URL: h.apps[a.id].entryURL(), Position: a.Position, MessageFormat: a.format()})
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.Encode(list)
	return writeJSON(w, http.StatusOK, buf.Bytes())
}
