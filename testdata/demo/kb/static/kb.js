/* Acme help center: the articles to send a customer, picked by the open
 * conversation's words. Not registered in the Caddyfile: the README's tour
 * adds it from the settings page (/_dashboard_apps/settings?account=1). It
 * listens for appContext as the helpdesk documents (an object). */
(function () {
  'use strict';
  var articles = [
    { title: 'Where is my order?', words: ['order', 'tracking', 'shipping', 'delivery', 'kettle'], minutes: 2 },
    { title: 'Returns and refunds in 30 days', words: ['refund', 'return', 'broken', 'damaged'], minutes: 3 },
    { title: 'Changing your delivery address', words: ['address', 'delivery', 'moved'], minutes: 1 },
    { title: 'Caring for your gooseneck kettle', words: ['kettle', 'descale', 'limescale'], minutes: 4 },
    { title: 'Paying with a gift card', words: ['gift', 'card', 'payment', 'invoice'], minutes: 2 }
  ];
  var list = document.getElementById('articles');
  var render = function (ctx) {
    var conv = ctx.conversation || {};
    var contact = ctx.contact || conv.contact || {};
    var text = JSON.stringify(conv).toLowerCase();
    var scored = articles.map(function (a) {
      return { a: a, score: a.words.filter(function (w) { return text.indexOf(w) >= 0; }).length };
    }).sort(function (x, y) { return y.score - x.score; });
    document.getElementById('for').textContent = 'For ' + (contact.name || 'this contact') + ', conversation #' + conv.id;
    list.replaceChildren.apply(list, scored.map(function (s) {
      var li = document.createElement('li');
      var title = document.createElement('span');
      title.className = 'title';
      title.textContent = s.a.title;
      var meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = s.a.minutes + ' min read' + (s.score ? ' · matches this conversation' : '');
      if (s.score) li.className = 'match';
      li.append(title, meta);
      return li;
    }));
  };
  window.addEventListener('message', function (event) {
    if (event.source !== window.parent) return;
    var m = event.data;
    if (m && m.event === 'appContext') render(m.data || {});
  });
  window.parent.postMessage({ event: 'fetch-info' }, '*');
})();
