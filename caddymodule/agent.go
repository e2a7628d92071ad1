package caddymodule

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"
)

// agent is the signed-in agent a request comes from: the fingerprint of
// the request's helpdesk credentials, which keys everything cached on the
// agent's behalf, and the agent's profile as the helpdesk gave it.
type agent struct {
	key credentialKey
	*profile
}

// Why a request has no agent, before the helpdesk is asked.
var (
	errNoHelpdeskAPI = &helpdeskError{status: http.StatusServiceUnavailable, err: errors.New("helpdesk_api is not configured on this site")}
	errNoCredentials = &helpdeskError{status: http.StatusUnauthorized, err: errors.New("the request carries no helpdesk credentials")}
)

// identify tells who r comes from. It is the one place where a request's
// credentials become an agent, for the app proxy, the access checks and
// the endpoints alike: the profile is cached per credentials for the
// context TTL, and concurrent misses share one helpdesk call. A cache hit
// allocates nothing. While the helpdesk API fails (rather than refuses),
// a profile up to staleFor past its TTL is used.
//
// Errors are errNoHelpdeskAPI, errNoCredentials, or the helpdesk's
// (passedStatus tells its 401, 403 and 404 from a failure).
func (h *Handler) identify(r *http.Request) (agent, error) {
	if h.helpdesk == nil {
		return agent{}, errNoHelpdeskAPI
	}
	key, ok := h.credentialKeyOf(r)
	if !ok {
		return agent{}, errNoCredentials
	}
	cachedProfile, fresh, stale := h.state.agents.get(key, h.ttl)
	if fresh {
		return agent{key, cachedProfile}, nil
	}
	pk := profileKey(key)
	v, err, _ := h.state.flight.Do(string(pk[:]), func() (any, error) {
		// Detached from r: other requests may be waiting on this call;
		// the helpdesk client's timeout bounds it.
		p, err := h.helpdesk.profile(context.WithoutCancel(r.Context()), h.credentialsOf(r))
		if err != nil {
			return nil, err
		}
		h.state.agents.put(key, p, h.ttl)
		return p, nil
	})
	if err != nil {
		if stale && passedStatus(err) == 0 {
			// The helpdesk is failing, not refusing these credentials:
			// they were good moments ago, so the agent keeps working
			// for staleFor, as the context endpoint serves stale
			// contexts. A refusal (the agent signed out) is final.
			h.logger.Debug("vouching for an agent from a stale profile: the helpdesk API failed", zap.Error(err))
			return agent{key, cachedProfile}, nil
		}
		return agent{}, err
	}
	return agent{key, v.(*profile)}, nil
}
