package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// appContext is the message posted to apps: the helpdesk's documented
// payload (conversation id, inbox_id, status and contact; the current
// agent) plus conversation.account_id, data.contact and data.token, with
// the rest of the helpdesk's conversation and contact records as Chatwoot
// posts them. The documented fields come first and are null, never
// omitted, when the helpdesk has no value.
type appContext struct {
	Event string         `json:"event"`
	Data  appContextData `json:"data"`
}

type appContextData struct {
	Conversation json.RawMessage `json:"conversation"`
	Contact      json.RawMessage `json:"contact"`
	CurrentAgent contextAgent    `json:"currentAgent"`
	Token        string          `json:"token,omitempty"`
}

// contextAgent is all of the agent's profile that leaves the gateway.
type contextAgent struct {
	ID    *int64  `json:"id"`
	Name  *string `json:"name"`
	Email *string `json:"email"`
}

// The documented fields of the conversation and the contact, first in
// their objects, in the documentation's order.
var (
	conversationFirst = []string{"id", "account_id", "inbox_id", "status", "contact"}
	contactFirst      = []string{"id", "name", "email", "phone_number"}
	// What an app gets only with context_messages: what agents and
	// customers wrote.
	messageFields = []string{"messages", "last_non_activity_message"}
)

// buildAppContext assembles the message from the helpdesk's answers: the
// conversation as the helpdesk gave it (without its messages unless
// withMessages), its contact from meta.sender, and of the agent's
// profile only id, name and email.
func buildAppContext(conv *conversation, agent *profile, account int64, withMessages bool) (appContext, error) {
	c, err := parseObject(conv.raw)
	if err != nil {
		return appContext{}, err
	}
	var sender jsonObject
	if meta := c.object("meta"); meta != nil {
		sender = meta.object("sender")
	}
	who, err := json.Marshal(sender.withFirst(contactFirst, nil))
	if err != nil {
		return appContext{}, err
	}
	override := map[string]json.RawMessage{"contact": who}
	if conv.AccountID == nil {
		// Chatwoot's conversation answer has carried it only in some versions.
		override["account_id"] = strconv.AppendInt(nil, account, 10)
	}
	drop := []string(nil)
	if !withMessages {
		drop = messageFields
	}
	whole, err := json.Marshal(c.withFirst(conversationFirst, override, drop...))
	if err != nil {
		return appContext{}, err
	}
	return appContext{Event: "appContext", Data: appContextData{
		Conversation: whole,
		Contact:      who,
		CurrentAgent: contextAgent{ID: agent.ID, Name: agent.Name, Email: agent.Email},
	}}, nil
}

// Shared header values of the context endpoint, so that writing them does
// not allocate.
var (
	cacheHit   = []string{"hit"}
	cacheMiss  = []string{"miss"}
	cacheStale = []string{"stale"}
)

const cacheHeader = "X-Dashboard-Apps-Cache"

// serveContext answers with the appContext message of a conversation for
// the requesting agent, from the cache when it can. With ?app=<id>, for an
// app the agent may use in the account, the message carries data.token
// for that app alone; without, it carries no token: a token is bound to
// one app, never to a list of them.
func (h *Handler) serveContext(w http.ResponseWriter, r *http.Request) error {
	account, ok1 := queryID(r.URL.RawQuery, "account")
	conv, ok2 := queryID(r.URL.RawQuery, "conversation")
	if !ok1 || !ok2 {
		return writeJSONError(w, http.StatusBadRequest, "account and conversation must be positive integers")
	}
	var app *AppConfig
	if id := queryValue(r.URL.RawQuery, "app"); id != "" {
		p, ok := h.lookupApp(id)
		if !ok {
			return writeJSONError(w, http.StatusBadRequest, "no such app")
		}
		app = p.app
	}
	who, err := h.identify(r)
	if err != nil {
		return h.helpdeskFailed(w, err, "building appContext")
	}
	kind, appID := byte('b'), ""
	if app != nil {
		if !who.mayUseIn(app, account) {
			return writeJSONError(w, http.StatusForbidden, "the agent may not use this app in this account")
		}
		kind, appID = 'x', app.id
		if app.ContextMessages {
			kind = 'y'
		}
	}
	keyBuf, n := contextKey(kind, who.key, account, conv, appID)
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
	payload, err := h.contextFor(r, who, key, account, conv, app)
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

// contextFor builds the message under key: the conversation's context as
// the helpdesk gives it (fetched once for every app, and cached; with its
// messages, a variant cached apart, for apps with context_messages) and,
// for an app, that context with the app's token.
func (h *Handler) contextFor(r *http.Request, who agent, key []byte, account, conv int64, app *AppConfig) ([]byte, error) {
	v, err, _ := h.state.flight.Do(string(key), func() (any, error) {
		withMessages := app != nil && app.ContextMessages
		baseKeyBuf, n := contextKey(baseKind(withMessages), who.key, account, conv, "")
		baseKey := baseKeyBuf[:n]
		bp := entryBufs.Get().(*[]byte)
		defer entryBufs.Put(bp)
		base, ok := h.state.lookup(baseKey, *bp, h.ttl)
		if !ok || !base.fresh {
			header, payload, err := h.fetchContext(r, who, account, conv, withMessages)
			if err != nil {
				return nil, err
			}
			base = cached{header: header, payload: payload, fresh: true}
		}
		if app == nil {
			return append([]byte(nil), base.payload...), nil // base.payload may be in the pooled buffer
		}
		var msg appContext
		if err := json.Unmarshal(base.payload, &msg); err != nil {
			return nil, err
		}
		token, err := h.contextToken(who, app, account, &msg)
		if err != nil {
			return nil, err
		}
		msg.Data.Token = token
		payload, err := json.Marshal(msg)
		if err != nil {
			return nil, err
		}
		h.state.storeDerived(key, base.header, payload, h.ttl)
		return payload, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// baseKind is the cache key kind of a conversation's context, without a
// token: 'b' without its messages, 'm' with them.
func baseKind(withMessages bool) byte {
	if withMessages {
		return 'm'
	}
	return 'b'
}

// contextToken signs data.token for app: the agent's claims plus where the
// context came from.
func (h *Handler) contextToken(who agent, app *AppConfig, account int64, msg *appContext) (string, error) {
	var conv, contact struct {
		ID *int64 `json:"id"`
	}
	if err := json.Unmarshal(msg.Data.Conversation, &conv); err != nil {
		return "", err
	}
	if err := json.Unmarshal(msg.Data.Contact, &contact); err != nil {
		return "", err
	}
	role, _ := who.roleIn(account)
	claims := newAgentClaims(who.profile, account, role, app.id, time.Now())
	claims.Conversation = conv.ID
	claims.Contact = contact.ID
	p, ok := h.lookupApp(app.id)
	if !ok {
		return "", errors.New("app " + app.id + " is gone")
	}
	return sign(p.signer, claims)
}

// fetchContext builds the conversation's context from the helpdesk's API
// and caches it, with or without the conversation's messages (and the
// other variant too, when an app of the registry wants it: both come from
// the one answer); it returns the entry's header and payload. It runs
// detached from the request, which other requests may be waiting on.
func (h *Handler) fetchContext(r *http.Request, who agent, account, conv int64, withMessages bool) (header, payload []byte, err error) {
	ctx := context.WithoutCancel(r.Context()) // the client's timeout bounds the call
	c, err := h.helpdesk.conversation(ctx, h.credentialsOf(r), account, conv)
	if err != nil {
		return nil, nil, err
	}
	var contactID int64
	if c.Meta.Sender != nil && c.Meta.Sender.ID != nil {
		contactID = *c.Meta.Sender.ID
	}
	slots := entrySlots(account, conv, contactID)
	for _, variant := range [2]bool{!withMessages, withMessages} { // the one asked for last
		if variant != withMessages && !h.contextMessages {
			continue
		}
		msg, err := buildAppContext(c, who.profile, account, variant)
		if err != nil {
			return nil, nil, &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API conversation %d: %v", conv, err)}
		}
		if payload, err = json.Marshal(msg); err != nil {
			return nil, nil, err
		}
		keyBuf, n := contextKey(baseKind(variant), who.key, account, conv, "")
		header = h.state.store(keyBuf[:n], payload, h.ttl, slots[:])
	}
	return header, payload, nil
}
