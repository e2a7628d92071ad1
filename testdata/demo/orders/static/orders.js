/* Acme Orders: order history of the helpdesk conversation's contact.
 * Listens for the helpdesk's appContext message exactly as its docs show.
 * Data is fetched with a URL relative to the page, so it works both at
 * http://127.0.0.1:9101/orders/ and proxied under the helpdesk. */
(function () {
  'use strict';

  var byId = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  };
  var detailPage = document.body.classList.contains('page-detail');
  var data = fetch('../static/orders.json', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
    .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status)); });

  var STATUS = { processing: 'Processing', shipped: 'Shipped', delivered: 'Delivered', refunded: 'Refunded', cancelled: 'Cancelled' };
  var money = function (v, currency) {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency: currency || 'USD' }).format(v);
  };
  var date = function (iso) {
    return new Date(iso + 'T12:00:00').toLocaleDateString('en-US', { month: 'short', day: 'numeric', year: 'numeric' });
  };
  var show = function (id, on) { byId(id).hidden = !on; };

  var current = '';
  var render = function (contact) {
    var email = contact && contact.email ? String(contact.email).trim().toLowerCase() : '';
    var name = (contact && contact.name) || 'Unknown contact';
    current = email;
    show('loading', false);
    show('standalone', false);
    show('customer', true);
    byId('customer-name').textContent = name;
    byId('customer-email').textContent = email || 'No email address';
    if (!email) {
      renderOrders([], name);
      byId('empty-title').textContent = 'No email address on this contact';
      byId('empty-text').textContent = 'Orders are looked up by email. Add one to the contact in the helpdesk.';
      return;
    }
    byId('loading-text').textContent = 'Loading orders…';
    data.then(function (d) {
      if (current !== email) return; // another conversation was opened meanwhile
      var orders = (d.orders || []).filter(function (o) { return String(o.email).toLowerCase() === email; });
      orders.sort(function (a, b) { return a.placed_at < b.placed_at ? 1 : -1; });
      renderOrders(orders, name, d.currency);
      byId('empty-title').textContent = 'No orders for ' + email;
      byId('empty-text').textContent = 'Orders placed with this email address will show up here.';
    }, function (err) {
      byId('error').textContent = 'Orders could not be loaded (' + err.message + ').';
      show('error', true);
    });
  };

  var renderOrders = function (orders, name, currency) {
    var list = byId('orders');
    list.replaceChildren();
    var spent = 0;
    orders.forEach(function (o) {
      if (o.status !== 'cancelled' && o.status !== 'refunded') spent += o.total;
      var li = el('li');
      var a = el('a', 'order');
      a.href = encodeURIComponent(o.number); // relative: /orders/<number>
      var top = el('div', 'order-top');
      top.append(el('span', 'order-number', '#' + o.number), el('span', 'badge badge-' + o.status, STATUS[o.status] || o.status));
      var count = o.items.reduce(function (n, i) { return n + i.quantity; }, 0);
      var meta = el('div', 'order-meta');
      meta.append(el('span', '', date(o.placed_at) + ' · ' + count + (count === 1 ? ' item' : ' items')),
        el('span', 'order-total', money(o.total, o.currency)));
      var items = el('div', 'order-items', o.items.map(function (i) {
        return i.name + (i.quantity > 1 ? ' × ' + i.quantity : '');
      }).join(', '));
      a.append(top, items, meta);
      if (o.tracking && o.status === 'shipped') a.append(el('div', 'order-track', o.carrier + ' ' + o.tracking));
      li.append(a);
      list.append(li);
    });
    byId('stat-count').textContent = String(orders.length);
    byId('stat-total').textContent = money(spent, currency);
    show('orders', orders.length > 0);
    show('empty', orders.length === 0);
  };

  window.addEventListener('message', function (event) {
    if (event.data.event === 'appContext') {
      const { conversation, currentAgent } = event.data.data;
      if (event.source !== window.parent) return; // only the helpdesk page that frames us
      var contact = conversation && conversation.contact;
      if (detailPage) {
        // Another customer's conversation was opened: back to the list.
        var mine = document.body.getAttribute('data-customer-email');
        if (contact && String(contact.email || '').toLowerCase() !== mine) location.replace('./');
        return;
      }
      document.body.setAttribute('data-agent', (currentAgent && currentAgent.name) || '');
      render(contact);
    }
  });

  if (!detailPage) {
    // Opened on its own, not inside the helpdesk: say how to use it.
    setTimeout(function () {
      if (current === '' && byId('customer').hidden) {
        if (window.parent === window) { show('loading', false); show('standalone', true); }
        else byId('loading-text').textContent = 'Still waiting for the helpdesk…';
      }
    }, window.parent === window ? 600 : 6000);
  }
})();
