package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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
	_, err := c.getJSONBody(ctx, path, cred, v)
	return err
}

// getJSONBody is getJSON that returns the answer's body too.
func (c *helpdeskClient) getJSONBody(ctx context.Context, path string, cred credentials, v any) ([]byte, error) {
	defer func(start time.Time) { c.latency.Observe(time.Since(start).Seconds()) }(time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, &helpdeskError{status: http.StatusBadGateway, err: err}
	}
	for name, vals := range cred.header {
		req.Header[name] = vals
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: %v", path, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &helpdeskError{status: resp.StatusCode, err: fmt.Errorf("helpdesk API %s: status %d", path, resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHelpdeskBody+1))
	if err != nil {
		return nil, &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: reading: %v", path, err)}
	}
	if len(body) > maxHelpdeskBody {
		return nil, &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: answer larger than %d bytes", path, maxHelpdeskBody)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, &helpdeskError{status: http.StatusBadGateway, err: fmt.Errorf("helpdesk API %s: not the expected JSON: %v", path, err)}
	}
	return body, nil
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
	Name string `json:"name,omitempty"` // for the settings page's title
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

// conversation is the helpdesk's answer for a conversation: raw, as it
// came (apps get it whole, but for its messages unless they ask for
// them), and the fields the gateway reads itself, whose types it checks.
type conversation struct {
	ID        *int64  `json:"id"`
	AccountID *int64  `json:"account_id"`
	InboxID   *int64  `json:"inbox_id"`
	Status    *string `json:"status"`
	Meta      struct {
		Sender *contact `json:"sender"`
	} `json:"meta"`
	raw []byte
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
	raw, err := c.getJSONBody(ctx, path, cred, &conv)
	if err != nil {
		return nil, err
	}
	conv.raw = raw
	return &conv, nil
}
