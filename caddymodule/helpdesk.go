package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// helpdeskError is a helpdesk API answer the gateway passes on: 401, 403
// and 404 keep their status; anything else is the helpdesk failing.
type helpdeskError struct {
	status int
	err    error
}

func (e *helpdeskError) Error() string { return e.err.Error() }

// passedStatus returns the status of a helpdesk answer that goes to the
// browser as it is (401, 403 or 404), or 0 for the helpdesk failing.
func passedStatus(err error) int {
	var he *helpdeskError
	if errors.As(err, &he) {
		switch he.status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return he.status
		}
	}
	return 0
}

// helpdeskClient calls the helpdesk's Chatwoot-compatible API.
type helpdeskClient struct {
	base    string // without a trailing slash
	client  *http.Client
	latency prometheus.Observer // of every call
}

// helpdeskTimeout bounds every helpdesk API call, answer read included.
const helpdeskTimeout = 10 * time.Second

func newHelpdeskClient(base string, latency prometheus.Observer) *helpdeskClient {
	return &helpdeskClient{
		base:    strings.TrimRight(base, "/"),
		latency: latency,
		client: &http.Client{
			Timeout: helpdeskTimeout,
			Transport: &http.Transport{
				Proxy:               nil, // the helpdesk is the gateway's neighbour, never behind a proxy from the environment
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// maxHelpdeskBody bounds what is read of one helpdesk API answer.
const maxHelpdeskBody = 4 << 20

// getJSON fetches path with the agent's credentials and decodes the JSON
// answer into v.
func (c *helpdeskClient) getJSON(ctx context.Context, path string, cred credentials, v any) error {
	defer func(start time.Time) { c.latency.Observe(time.Since(start).Seconds()) }(time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return &helpdeskError{status: http.StatusBadGateway, err: err}
	}
	for name, vals := range cred.header {
		req.Header[name] = vals
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: %v", path, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return &helpdeskError{status: resp.StatusCode, err: fmt.Errorf("helpdesk API %s: status %d", path, resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHelpdeskBody+1))
	if err != nil {
		return &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: reading: %v", path, err)}
	}
	if len(body) > maxHelpdeskBody {
		return &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: answer larger than %d bytes", path, maxHelpdeskBody)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: not the expected JSON: %v", path, err)}
	}
	return nil
}

// profile is what the gateway keeps of the helpdesk's profile answer:
// never its access_token or pubsub_token.
type profile struct {
	ID        *int64           `json:"id"`
	Name      *string          `json:"name"`
	Email     *string          `json:"email"`
	Role      *string          `json:"role,omitempty"`
	AccountID *int64           `json:"account_id,omitempty"`
	Accounts  []profileAccount `json:"accounts,omitempty"`
}

type profileAccount struct {
	ID   int64  `json:"id"`
	Role string `json:"role,omitempty"`
}

func (c *helpdeskClient) profile(ctx context.Context, cred credentials) (*profile, error) {
	var p profile
	if err := c.getJSON(ctx, "/api/v1/profile", cred, &p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, &helpdeskError{status: http.StatusBadGateway, err: errors.New("helpdesk API /api/v1/profile: answer has no id")}
	}
	return &p, nil
}

// conversation is what the gateway keeps of a conversation: never its
// messages.
type conversation struct {
	ID        *int64  `json:"id"`
	AccountID *int64  `json:"account_id"`
	InboxID   *int64  `json:"inbox_id"`
	Status    *string `json:"status"`
	Meta      struct {
		Sender *contact `json:"sender"`
	} `json:"meta"`
}

type contact struct {
	ID          *int64  `json:"id"`
	Name        *string `json:"name"`
	Email       *string `json:"email"`
	PhoneNumber *string `json:"phone_number"`
}

func (c *helpdeskClient) conversation(ctx context.Context, cred credentials, account, id int64) (*conversation, error) {
	var conv conversation
	path := "/api/v1/accounts/" + strconv.FormatInt(account, 10) + "/conversations/" + strconv.FormatInt(id, 10)
	if err := c.getJSON(ctx, path, cred, &conv); err != nil {
		return nil, err
	}
	return &conv, nil
}

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
