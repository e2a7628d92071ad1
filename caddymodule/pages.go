package caddymodule

import (
	"html"
	"net/http"
	"strconv"
)

// writePage writes the gateway's own small HTML page: an error shown inside
// an app's tab, styled to sit quietly in the helpdesk, light or dark.
func writePage(w http.ResponseWriter, status int, title, text string) error {
	body := `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
		`<meta name="color-scheme" content="light dark"><title>` + html.EscapeString(title) + `</title><style>` + pageCSS + `</style></head>` +
		`<body><main><p class="status">` + strconv.Itoa(status) + `</p><h1>` + html.EscapeString(title) + `</h1><p>` + html.EscapeString(text) + `</p></main></body></html>`
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, err := w.Write([]byte(body))
	return err
}

const pageCSS = `html{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;background:#fff}` +
	`@media (prefers-color-scheme:dark){html{color:#e5e7eb;background:#111827}}` +
	`main{max-width:28rem;margin:15vh auto;padding:0 1.25rem;text-align:center}` +
	`.status{margin:0;font-size:.8rem;letter-spacing:.08em;color:#6b7280}` +
	`h1{font-size:1.15rem;margin:.25rem 0 .5rem}p{margin:0 0 .75rem}`
