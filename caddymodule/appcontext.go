package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// appContext is the message posted to apps, exactly the helpdesk's
// documented payload plus conversation.account_id, data.contact and
// data.token. Missing values are null, never omitted.
type appContext struct {
	Event string         `json:"event"`
	Data  appContextData `json:"data"`
}

type appContextData struct {
	Conversation contextConversation `json:"conversation"`
	Contact      contact             `json:"contact"`
	CurrentAgent contextAgent        `json:"currentAgent"`
	Token        string              `json:"token,omitempty"`
}

type contextConversation struct {
	ID        *int64  `json:"id"`
	AccountID *int64  `json:"account_id"`
	InboxID   *int64  `json:"inbox_id"`
	Status    *string `json:"status"`
	Contact   contact `json:"contact"`
}

type contextAgent struct {
	ID    *int64  `json:"id"`
	Name  *string `json:"name"`
	Email *string `json:"email"`
}

// buildAppContext assembles the message from the helpdesk's answers.
func buildAppContext(conv *conversation, agent *profile, account int64) appContext {
	var who contact
	if conv.Meta.Sender != nil {
		who = *conv.Meta.Sender
	}
	accountID := conv.AccountID
	if accountID == nil {
		accountID = &account // Chatwoot's conversation answer has carried it only in some versions
	}
	return appContext{Event: "appContext", Data: appContextData{
		Conversation: contextConversation{ID: conv.ID, AccountID: accountID, InboxID: conv.InboxID, Status: conv.Status, Contact: who},
		Contact:      who,
		CurrentAgent: contextAgent{ID: agent.ID, Name: agent.Name, Email: agent.Email},
	}}
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
// the helpdesk gives it (fetched once for every app, and cached) and, for
// an app, that context with the app's token.
func (h *Handler) contextFor(r *http.Request, who agent, key []byte, account, conv int64, app *AppConfig) ([]byte, error) {
	v, err, _ := h.state.flight.Do(string(key), func() (any, error) {
		baseKeyBuf, n := contextKey('b', who.key, account, conv, "")
		baseKey := baseKeyBuf[:n]
		bp := entryBufs.Get().(*[]byte)
		defer entryBufs.Put(bp)
		base, ok := h.state.lookup(baseKey, *bp, h.ttl)
		if !ok || !base.fresh {
			header, payload, err := h.fetchContext(r, who, baseKey, account, conv)
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

// contextToken signs data.token for app: the agent's claims plus where the
// context came from.
func (h *Handler) contextToken(who agent, app *AppConfig, account int64, msg *appContext) (string, error) {
	role, _ := who.roleIn(account)
	claims := newAgentClaims(who.profile, account, role, app.id, time.Now())
	claims.Conversation = msg.Data.Conversation.ID
	claims.Contact = msg.Data.Contact.ID
	p, ok := h.lookupApp(app.id)
	if !ok {
		return "", errors.New("app " + app.id + " is gone")
	}
	return sign(p.signer, claims)
}

// fetchContext builds the conversation's context from the helpdesk's API
// and caches it under key; it returns the entry's header and payload. It
// runs detached from the request, which other requests may be waiting on.
func (h *Handler) fetchContext(r *http.Request, who agent, key []byte, account, conv int64) (header, payload []byte, err error) {
	ctx := context.WithoutCancel(r.Context()) // the client's timeout bounds the call
	c, err := h.helpdesk.conversation(ctx, h.credentialsOf(r), account, conv)
	if err != nil {
		return nil, nil, err
	}
	if payload, err = json.Marshal(buildAppContext(c, who.profile, account)); err != nil {
		return nil, nil, err
	}
	var contactID int64
	if c.Meta.Sender != nil && c.Meta.Sender.ID != nil {
		contactID = *c.Meta.Sender.ID
	}
	slots := entrySlots(account, conv, contactID)
	return h.state.store(key, payload, h.ttl, slots[:]), payload, nil
}
