package caddymodule

import (
	"net/http"

	"go.uber.org/zap"
)

// accounts are the agent's accounts with their roles. Chatwoot's profile
// lists them in accounts; older answers carry only account_id and role.
func (p *profile) accounts() []profileAccount {
	if len(p.Accounts) > 0 {
		return p.Accounts
	}
	if p.AccountID != nil {
		role := ""
		if p.Role != nil {
			role = *p.Role
		}
		return []profileAccount{{ID: *p.AccountID, Role: role}}
	}
	return nil
}

// roleIn returns the agent's role in account, and whether the agent is in
// it at all.
func (p *profile) roleIn(account int64) (string, bool) {
	for _, a := range p.accounts() {
		if a.ID == account {
			return a.Role, true
		}
	}
	return "", false
}

// mayUseIn reports whether the agent may use app in account: the app is
// shown there, the agent belongs to it, and has one of the app's roles.
func (p *profile) mayUseIn(app *AppConfig, account int64) bool {
	role, member := p.roleIn(account)
	return member && app.allows(account, role)
}

// accountFor picks the account the agent uses app in: the agent's current
// account when the app allows it there, else the first one that does.
// ok is false when there is none: the agent may not use the app.
func (p *profile) accountFor(app *AppConfig) (account int64, role string, ok bool) {
	if p.AccountID != nil {
		if role, member := p.roleIn(*p.AccountID); member && app.allows(*p.AccountID, role) {
			return *p.AccountID, role, true
		}
	}
	for _, a := range p.accounts() {
		if app.allows(a.ID, a.Role) {
			return a.ID, a.Role, true
		}
	}
	return 0, "", false
}

// authorize checks that the request comes from a signed-in agent allowed
// to use the app, and answers it otherwise, inside the app's tab. It
// returns the verified agent (the zero agent for a public app).
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, app *AppConfig) (agent, bool) {
	if app.Public {
		return agent{}, true
	}
	who, err := h.identify(r)
	if err != nil {
		if passedStatus(err) != 0 { // no credentials, or the helpdesk refused them
			writeSignInPage(w)
		} else {
			h.logger.Error("checking the agent's sign-in: the helpdesk API failed", zap.Error(err))
			writePage(w, http.StatusBadGateway, "Cannot check your sign-in", "The helpdesk is not answering, so this app cannot tell who you are. Try again in a moment.")
		}
		return agent{}, false
	}
	if _, _, ok := who.accountFor(app); !ok {
		writePage(w, http.StatusForbidden, "Not available to you", app.Name+" is not available in your accounts or to your role. Ask an administrator if you need it.")
		return agent{}, false
	}
	return who, true
}

func writeSignInPage(w http.ResponseWriter) {
	writePage(w, http.StatusUnauthorized, "Sign in to the helpdesk", "This app is for signed-in agents. Sign in to the helpdesk, then reload this tab.")
}
