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
	case "jwks.json":
		return h.serveJWKS(w, r)
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
	n, err := strconv.ParseInt(queryValue(rawQuery, name), 10, 64)
	return n, err == nil && n > 0
}

// Cache key layouts: a kind byte, the credential fingerprint, then ids.
const (
	profileKeyLen = 1 + len(credentialKey{})
	contextKeyLen = profileKeyLen + 16
	maxAppIDLen   = 63
)

func profileKey(cred credentialKey) (k [profileKeyLen]byte) {
	k[0] = 'p'
	copy(k[1:], cred[:])
	return k
}

// contextKeyBuf holds a key of a conversation's context for an agent:
// kind 'b' is the context as the helpdesk gave it, without a token; kind
// 'x' the message for an app (whose token it carries; "" for all apps);
// kind 'a' an identity assertion for an app in an account (conversation 0).
type contextKeyBuf [contextKeyLen + maxAppIDLen]byte

func contextKey(kind byte, cred credentialKey, account, conversation int64, app string) (k contextKeyBuf, n int) {
	k[0] = kind
	copy(k[1:], cred[:])
	binary.LittleEndian.PutUint64(k[profileKeyLen:], uint64(account))
	binary.LittleEndian.PutUint64(k[profileKeyLen+8:], uint64(conversation))
	return k, contextKeyLen + copy(k[contextKeyLen:], app)
}

// queryValue reads a query parameter without allocating; it is only for
// values that need no unescaping, such as app ids.
func queryValue(rawQuery, name string) string {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// serveContext answers with the appContext message of a conversation for
// the requesting agent, with a token for the app named by ?app= (or for
// every app of the account), from the cache when it can.
func (h *Handler) serveContext(w http.ResponseWriter, r *http.Request) error {
	account, ok1 := queryID(r.URL.RawQuery, "account")
	conv, ok2 := queryID(r.URL.RawQuery, "conversation")
	if !ok1 || !ok2 {
		return writeJSONError(w, http.StatusBadRequest, "account and conversation must be positive integers")
	}
	var app *AppConfig
	if id := queryValue(r.URL.RawQuery, "app"); id != "" {
		p, ok := h.apps[id]
		if !ok {
			return writeJSONError(w, http.StatusBadRequest, "no such app")
		}
		app = p.app
	}
	cred, ok := h.endpointCredentials(w, r)
	if !ok {
		return nil
	}
	appID := ""
	if app != nil {
		appID = app.id
	}
	keyBuf, n := contextKey('x', cred, account, conv, appID)
	key := keyBuf[:n]
	bp := entryBufs.Get().(*[]byte)
	defer entryBufs.Put(bp)
	entry, found := h.state.lookup(key, *bp, h.ttl)
	if found && entry.fresh {
		h.metrics.cacheHits.Inc()
		w.Header()[cacheHeader] = cacheHit
		return writeJSON(w, http.StatusOK, entry.payload)
	}
	h.metrics.cacheMisses.Inc()
	payload, err := h.contextFor(r, cred, key, account, conv, app)
	if err == nil {
		w.Header()[cacheHeader] = cacheMiss
		return writeJSON(w, http.StatusOK, payload)
	}
	if found && passedStatus(err) == 0 {
		h.logger.Warn("serving a stale appContext: the helpdesk API failed", zap.Error(err))
		w.Header()[cacheHeader] = cacheStale
		return writeJSON(w, http.StatusOK, entry.payload)
	}
	return h.helpdeskFailed(w, err, "building appContext")
}

// endpointCredentials returns the credentials of a request to an endpoint
// that acts for the signed-in agent, or answers it: 503 when the site has
// no helpdesk_api to check them with, 401 when there are none.
func (h *Handler) endpointCredentials(w http.ResponseWriter, r *http.Request) (credentialKey, bool) {
	if h.helpdesk == nil {
		writeJSONError(w, http.StatusServiceUnavailable, "helpdesk_api is not configured on this site")
		return credentialKey{}, false
	}
	cred, ok := h.credentialKeyOf(r)
	if !ok {
		writeJSONError(w, http.StatusUnauthorized, "sign in to the helpdesk")
	}
	return cred, ok
}

// helpdeskFailed answers an endpoint request whose helpdesk API call
// failed: the helpdesk's 401, 403 or 404 as it is; anything else is
// logged, with what the gateway was doing, and answered 502.
func (h *Handler) helpdeskFailed(w http.ResponseWriter, err error, doing string) error {
	if status := passedStatus(err); status != 0 {
		return writeJSONError(w, status, http.StatusText(status))
	}
	h.logger.Error(doing+": the helpdesk API failed", zap.Error(err))
	return writeJSONError(w, http.StatusBadGateway, "the helpdesk API is not answering")
}

// contextFor builds the message for one app (nil: for every app of the
// account) from the conversation's context, which it fetches once for all
// apps, and caches it under key.
func (h *Handler) contextFor(r *http.Request, cred credentialKey, key []byte, account, conv int64, app *AppConfig) ([]byte, error) {
	baseKeyBuf, n := contextKey('b', cred, account, conv, "")
	baseKey := baseKeyBuf[:n]
	v, err, _ := h.state.flight.Do(string(key), func() (any, error) {
		bp := entryBufs.Get().(*[]byte)
		defer entryBufs.Put(bp)
		base, ok := h.state.lookup(baseKey, *bp, h.ttl)
		if !ok || !base.fresh {
			header, payload, err := h.fetchContext(r, cred, baseKey, account, conv)
			if err != nil {
				return nil, err
			}
			base = cached{header: header, payload: payload, fresh: true}
		}
		agent, err := h.agent(r, cred)
		if err != nil {
			return nil, err
		}
		if app != nil && !agent.mayUseIn(app, account) {
			return nil, &helpdeskError{status: http.StatusForbidden, err: errors.New("the agent may not use this app in this account")}
		}
		token, err := h.contextToken(agent, app, account, base.payload)
		if err != nil {
			return nil, err
		}
		payload := withToken(base.payload, token)
		h.state.storeDerived(key, base.header, payload, h.ttl)
		return payload, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// withToken adds data.token to a message that has none: it is the last
// field of data, so it goes before the message's two closing braces.
func withToken(payload []byte, token string) []byte {
	end := bytes.LastIndex(payload, []byte("}}"))
	out := make([]byte, 0, len(payload)+len(token)+12)
	out = append(out, payload[:end]...)
	out = append(out, `,"token":"`...)
	out = append(out, token...)
	out = append(out, `"}}`...)
	return out
}

// contextToken signs data.token: the agent's claims plus where the context
// came from, for one app or for all the account's apps the agent may use.
func (h *Handler) contextToken(agent *profile, app *AppConfig, account int64, payload []byte) (string, error) {
	var msg appContext
	if err := json.Unmarshal(payload, &msg); err != nil {
		return "", err
	}
	role, _ := agent.roleIn(account)
	audience := []string{} // never null, even when the agent may use no app
	signer := h.registry.identity.signer
	if app != nil {
		audience = []string{app.id}
		signer = h.apps[app.id].signer
	} else {
		for _, a := range h.registry.ordered {
			if agent.mayUseIn(a, account) {
				audience = append(audience, a.id)
			}
		}
	}
	claims := newAgentClaims(agent, account, role, audience, time.Now())
	claims.Conversation = msg.Data.Conversation.ID
	claims.Contact = msg.Data.Contact.ID
	return sign(signer, claims)
}

// fetchContext builds the conversation's context from the helpdesk's API
// and caches it under key; it returns the entry's header and payload. It
// runs detached from the request, which other requests may be waiting on.
func (h *Handler) fetchContext(r *http.Request, cred credentialKey, key []byte, account, conv int64) (header, payload []byte, err error) {
	ctx := context.WithoutCancel(r.Context()) // the client's timeout bounds the calls
	agentc := make(chan error, 1)
	var agent *profile
	go func() {
		var err error
		agent, err = h.agent(r, cred)
		agentc <- err
	}()
	c, convErr := h.helpdesk.conversation(ctx, h.credentialsOf(r), account, conv)
	if err := <-agentc; err != nil {
		return nil, nil, err // the agent's own standing comes first: 401 before 404
	}
	if convErr != nil {
		return nil, nil, convErr
	}
	if payload, err = json.Marshal(buildAppContext(c, agent, account)); err != nil {
		return nil, nil, err
	}
	var contactID int64
	if c.Meta.Sender != nil && c.Meta.Sender.ID != nil {
		contactID = *c.Meta.Sender.ID
	}
	slots := entrySlots(account, conv, contactID)
	return h.state.store(key, payload, h.ttl, slots[:]), payload, nil
}

// agent returns the signed-in agent's profile, cached per credentials.
func (h *Handler) agent(r *http.Request, cred credentialKey) (*profile, error) {
	if p, ok := h.state.agents.get(cred, h.ttl); ok {
		return p, nil
	}
	key := profileKey(cred)
	v, err, _ := h.state.flight.Do(string(key[:]), func() (any, error) {
		p, err := h.helpdesk.profile(context.WithoutCancel(r.Context()), h.credentialsOf(r))
		if err != nil {
			return nil, err
		}
		h.state.agents.put(cred, p, h.ttl)
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*profile), nil
}

// appEntry is one app in the /apps answer.
type appEntry struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	URL           string `json:"url"`
	Position      int    `json:"position"`
	MessageFormat string `json:"message_format"`
	Inboxes       []int  `json:"inboxes,omitempty"`
}

// serveApps lists the apps the agent may use in an account (and inbox, if
// given), in tab order.
func (h *Handler) serveApps(w http.ResponseWriter, r *http.Request) error {
	account, ok := queryID(r.URL.RawQuery, "account")
	if !ok {
		return writeJSONError(w, http.StatusBadRequest, "account must be a positive integer")
	}
	inbox, hasInbox := queryID(r.URL.RawQuery, "inbox")
	if !hasInbox && queryValue(r.URL.RawQuery, "inbox") != "" {
		return writeJSONError(w, http.StatusBadRequest, "inbox must be a positive integer")
	}
	cred, ok := h.endpointCredentials(w, r)
	if !ok {
		return nil
	}
	agent, err := h.agent(r, cred)
	if err != nil {
		return h.helpdeskFailed(w, err, "listing the agent's apps")
	}
	list := make([]appEntry, 0, len(h.registry.ordered))
	for _, a := range h.registry.ordered {
		if !agent.mayUseIn(a, account) || (hasInbox && !a.inInbox(int(inbox))) {
			continue
		}
		list = append(list, appEntry{ID: a.id, Name: a.Name, URL: h.apps[a.id].entryURL(),
			Position: a.Position, MessageFormat: a.format(), Inboxes: a.Inboxes})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

// serveJWKS publishes the gateway's public key, with which apps without an
// identity_secret verify assertions and context tokens.
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	hd := w.Header()
	hd["Content-Type"] = jsonType
	hd.Set("Cache-Control", "public, max-age=300")
	hd["X-Content-Type-Options"] = nosniff
	_, err := w.Write(h.registry.identity.jwks)
	return err
}
