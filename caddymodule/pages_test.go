package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// conversationPage stands in for the helpdesk's conversation view: a
// single-page app with a conversation sidebar.
const conversationPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Ndoto</title>
<style>body{margin:0;font:14px system-ui;display:grid;grid-template-columns:1fr 420px;height:100vh}
main{padding:24px}.conversation-sidebar{border-left:1px solid #ddd;display:flex;flex-direction:column;min-height:0}
.conversation-sidebar h2{margin:12px;font-size:14px}</style>
</head><body>
<main><h1>Conversation</h1><p>Jane Doe: where is my order?</p></main>
<aside class="conversation-sidebar"><h2>Contact</h2></aside>
</body></html>`

// conversationApps serves the apps of the conversation page tests.
func conversationApps() http.Handler {
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><html><head><meta charset=utf-8></head><body>"+body+"</body></html>")
	}
	// Listens exactly as the helpdesk's documentation shows.
	mux.HandleFunc("/seed/", func(w http.ResponseWriter, r *http.Request) {
		page(w, `<p id="out">waiting</p><script>
window.loadId = Math.random(); window.received = [];
window.addEventListener('load', function () { window.loadedAt = performance.now(); });
window.addEventListener('message', function (event) {
  if (event.data.event === 'appContext') {
    const { conversation, currentAgent } = event.data.data;
    window.received.push({ at: performance.now(), msg: event.data });
    document.getElementById('out').textContent = conversation.contact.email + ' for ' + currentAgent.name;
  }
});
</script>`)
	})
	// Written for Chatwoot: asks with the string form, receives strings.
	mux.HandleFunc("/cw/", func(w http.ResponseWriter, r *http.Request) {
		page(w, `<p id="out">waiting</p><script>
window.received = []; window.objects = 0;
window.addEventListener('message', function (e) {
  if (typeof e.data !== 'string') { window.objects++; return; }
  const m = JSON.parse(e.data);
  if (m.event === 'appContext') { window.received.push(m); document.getElementById('out').textContent = m.data.contact.name; }
});
window.parent.postMessage('chatwoot-dashboard-app:fetch-info', '*');
</script>`)
	})
	templateAppPages(mux)
	for path, body := range chatwootAppPages {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { page(w, body) })
	}
	// Shows the X-Dashboard-* headers it receives.
	mux.HandleFunc("/ident/", func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for name := range r.Header {
			if strings.HasPrefix(name, "X-Dashboard-") {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		var b strings.Builder
		for _, name := range names {
			fmt.Fprintf(&b, `<p data-header="%s">%s</p>`, name, r.Header.Get(name))
		}
		page(w, `<h1 id="who">headers</h1>`+b.String())
	})
	return mux
}
