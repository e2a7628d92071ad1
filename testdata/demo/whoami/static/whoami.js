/* The headers on this page describe the request that rendered it. When the
 * agent switches to another helpdesk account, fetch the page again so the
 * gateway sends the agent's identity for that account (once per account). */
(function () {
  'use strict';
  window.addEventListener('message', function (event) {
    if (event.source !== window.parent || !event.data || event.data.event !== 'appContext') return;
    var conv = event.data.data && event.data.data.conversation;
    var shown = document.body.getAttribute('data-account');
    if (!conv || conv.account_id == null || !shown || String(conv.account_id) === shown) return;
    var key = 'whoami.reloadedFor';
    try {
      if (sessionStorage.getItem(key) === String(conv.account_id)) return; // the gateway chose another account: keep it
      sessionStorage.setItem(key, String(conv.account_id));
    } catch (e) { return; }
    location.reload();
  });
})();
