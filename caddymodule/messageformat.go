package caddymodule

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"
)

// formatReport is what the host script sends when an app asks for
// appContext in the form its message_format does not post.
type formatReport struct {
	App   string `json:"app"`
	Asked string `json:"asked"` // "object" or "json_string"
}

const maxFormatReportBody = 1 << 10

// serveFormatReport takes the host script's report of an app that asked
// for appContext in the other form than its message_format forces (POST
// /_dashboard_apps/message-format), and warns the operator, once per app
// per config, what to change: such an app receives messages it does not
// read. Only the helpdesk's own pages may report.
func (h *Handler) serveFormatReport(w http.ResponseWriter, r *http.Request) error {
	var rep formatReport
	if !readPagePost(w, r, maxFormatReportBody, &rep, "only the helpdesk's own pages report message formats", `{"app": "crm", "asked": "json_string"}`) {
		return nil
	}
	p, ok := h.lookupApp(rep.App)
	if !ok {
		return writeJSONError(w, http.StatusBadRequest, "app "+strconv.Quote(rep.App)+": no such app")
	}
	if rep.Asked != FormatObject && rep.Asked != FormatJSONString {
		return writeJSONError(w, http.StatusBadRequest, "asked "+strconv.Quote(rep.Asked)+`: must be "object" or "json_string"`)
	}
	if f := p.app.format(); f != FormatAuto && f != rep.Asked && p.formatWarned.CompareAndSwap(false, true) {
		h.logger.Warn("an app asks for appContext in the other form than its message_format posts, and may not read what it receives: set its message_format to "+rep.Asked+", or to auto (logged once per app)",
			zap.String("app", p.app.id), zap.String("message_format", f), zap.String("asked", rep.Asked))
	}
	w.Header()["Cache-Control"] = privateCache
	w.WriteHeader(http.StatusNoContent)
	return nil
}
