/*
 * Herald in-app inbox: a notification bell for any web page. No dependencies.
 *
 *   <script src="https://herald.example.com/inbox/inbox.js" defer></script>
 *   <div data-herald-inbox data-token-url="/herald-token"></div>
 *
 * data-token-url  a URL on your site answering {"token": "..."} (for example by proxying
 *                 Herald's POST /api/v1/users/{user_id}/inbox-token for the signed-in
 *                 user); fetched again whenever the token runs out
 * data-token      a token, if you render one into the page instead
 * data-herald-url Herald's base URL; defaults to where this script was loaded from
 *
 * Or from script: HeraldInbox.mount(element, {getToken: async () => "...", baseUrl: "..."}).
 * The element fires "herald-inbox:change" events with {unreadCount} in `detail`, and
 * carries data-state (connecting | connected | offline | unauthorized) and data-unread.
 */
(function () {
  "use strict";

  if (window.HeraldInbox) return;

  var script = document.currentScript;
  var DEFAULT_BASE = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var UNAUTHORIZED = 4401;
  var MAX_BACKOFF_MS = 30000;
  var TOKEN_MARGIN_MS = 20000;

  var STYLE = [
    ":host{position:relative;display:inline-block;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;",
    "--herald-accent:#2563eb;--herald-badge:#dc2626}",
    "button{font:inherit;cursor:pointer}",
    ".bell{position:relative;display:flex;align-items:center;justify-content:center;width:40px;height:40px;border:0;border-radius:50%;background:transparent;color:inherit}",
    ".bell:hover,.bell[aria-expanded=true]{background:rgba(0,0,0,.06)}",
    ".bell svg{width:24px;height:24px}",
    ".badge{position:absolute;top:2px;right:0;min-width:18px;height:18px;padding:0 5px;box-sizing:border-box;border-radius:9px;",
    "background:var(--herald-badge);color:#fff;font-size:11px;font-weight:600;line-height:18px;text-align:center}",
    ".badge[hidden],.panel[hidden],.more[hidden],.status[hidden],.empty[hidden]{display:none}",
    ".panel{position:absolute;right:0;top:44px;z-index:2147483000;width:360px;max-width:92vw;max-height:480px;display:flex;flex-direction:column;",
    "background:#fff;border:1px solid #d0d7de;border-radius:10px;box-shadow:0 8px 24px rgba(0,0,0,.15);overflow:hidden}",
    "header{display:flex;align-items:center;justify-content:space-between;padding:10px 14px;border-bottom:1px solid #eaeef2;font-weight:600}",
    "header button{border:0;background:none;color:var(--herald-accent);font-size:13px;padding:2px 4px}",
    "header button:disabled{color:#8c959f;cursor:default}",
    ".status{padding:6px 14px;background:#fff8c5;font-size:12px}",
    ".list{list-style:none;margin:0;padding:0;overflow-y:auto;flex:1}",
    ".item{display:flex;gap:10px;padding:10px 14px;border-bottom:1px solid #f0f2f4;cursor:pointer;align-items:flex-start}",
    ".item:hover,.item:focus{background:#f6f8fa;outline:none}",
    ".item.unread{background:#eff6ff}",
    ".item img{width:32px;height:32px;border-radius:6px;object-fit:cover;flex:none}",
    ".text{flex:1;min-width:0}",
    ".title{font-weight:600;overflow-wrap:anywhere}",
    ".body{color:#424a53;overflow-wrap:anywhere;white-space:pre-line}",
    "time{color:#6e7781;font-size:12px}",
    ".dot{width:8px;height:8px;border-radius:50%;background:var(--herald-accent);flex:none;margin-top:6px;visibility:hidden}",
    ".item.unread .dot{visibility:visible}",
    ".archive{border:0;background:none;color:#6e7781;font-size:16px;line-height:1;padding:0 2px;visibility:hidden}",
    ".item:hover .archive,.item:focus-within .archive{visibility:visible}",
    ".empty{padding:28px 14px;text-align:center;color:#6e7781}",
    ".more{border:0;border-top:1px solid #eaeef2;background:#fff;color:var(--herald-accent);padding:8px}"
  ].join("");

  var BELL_SVG = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ' +
    'stroke-linejoin="round" aria-hidden="true"><path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/>' +
    '<path d="M13.73 21a2 2 0 0 1-3.46 0"/></svg>';

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function safeUrl(value) {
    // Only http(s) URLs and site paths; never javascript: or data:.
    if (typeof value !== "string" || !value) return null;
    if (value.charAt(0) === "/" && value.charAt(1) !== "/" && !/[\\\u0000-\u001f]/.test(value)) return value;
    try {
      var url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  var relative = typeof Intl !== "undefined" && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, {numeric: "auto"}) : null;

  function ago(iso) {
    var then = new Date(iso);
    var seconds = Math.round((then.getTime() - Date.now()) / 1000);
    if (!relative) return then.toLocaleString();
    var units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) return relative.format(Math.round(seconds / units[i][1]), units[i][0]);
    }
    return relative.format(0, "second");
  }

  function Inbox(host, options) {
    this.host = host;
    this.base = (options.baseUrl || DEFAULT_BASE).replace(/\/+$/, "");
    // The socket may be served apart from the REST API (WebSockets by the ASGI server).
    this.socketBase = (options.socketUrl || this.base).replace(/\/+$/, "");
    this.getTokenOption = options.getToken || null;
    this.tokenUrl = options.tokenUrl || null;
    this.staticToken = options.token || null;
    this.token = null;
    this.tokenExpires = 0;
    this.items = new Map();
    this.version = -1;
    this.unreadCount = 0;
    this.lastId = 0;
    this.nextPage = null;
    this.olderLoaded = false;
    this.ws = null;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.watchdog = null;
    this.heartbeatMs = 30000;
    this.stopped = false;
    this.build();
    this.connect();
    var self = this;
    window.addEventListener("online", function () { self.reconnectNow(); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") self.reconnectNow();
    });
  }

  Inbox.prototype.build = function () {
    var root = this.host.shadowRoot || this.host.attachShadow({mode: "open"});
    root.innerHTML = "";
    var style = el("style");
    style.textContent = STYLE;
    root.appendChild(style);

    this.bell = el("button", "bell");
    this.bell.type = "button";
    this.bell.setAttribute("aria-haspopup", "true");
    this.bell.setAttribute("aria-expanded", "false");
    this.bell.innerHTML = BELL_SVG;
    this.badge = el("span", "badge");
    this.badge.hidden = true;
    this.bell.appendChild(this.badge);

    this.panel = el("div", "panel");
    this.panel.hidden = true;
    this.panel.setAttribute("role", "dialog");
    this.panel.setAttribute("aria-label", "Notifications");
    var header = el("header");
    header.appendChild(el("span", null, "Notifications"));
    this.markAll = el("button", "mark-all", "Mark all as read");
    this.markAll.type = "button";
    header.appendChild(this.markAll);
    this.status = el("div", "status", "Reconnecting…");
    this.status.hidden = true;
    this.list = el("ul", "list");
    this.list.setAttribute("role", "list");
    this.empty = el("div", "empty", "You're all caught up.");
    this.more = el("button", "more", "Load older");
    this.more.type = "button";
    this.more.hidden = true;
    [header, this.status, this.list, this.empty, this.more].forEach(function (n) { this.panel.appendChild(n); }, this);
    root.appendChild(this.bell);
    root.appendChild(this.panel);

    var self = this;
    this.bell.addEventListener("click", function () { self.toggle(); });
    this.markAll.addEventListener("click", function () { self.markAllRead(); });
    this.more.addEventListener("click", function () { self.loadOlder(); });
    this.list.addEventListener("click", function (event) { self.onListClick(event); });
    this.list.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); self.onListClick(event); }
    });
    document.addEventListener("click", function (event) {
      if (!self.panel.hidden && event.composedPath().indexOf(self.host) === -1) self.toggle(false);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !self.panel.hidden) { self.toggle(false); self.bell.focus(); }
    });
    this.setState("connecting");
    this.render();
  };

  // --- connection ---------------------------------------------------------------------

  Inbox.prototype.fetchToken = function () {
    var self = this;
    if (this.token && this.tokenExpires - Date.now() > TOKEN_MARGIN_MS) return Promise.resolve(this.token);
    var pending;
    if (this.getTokenOption) {
      pending = Promise.resolve(this.getTokenOption());
    } else if (this.tokenUrl) {
      pending = fetch(this.tokenUrl, {credentials: "same-origin", cache: "no-store"}).then(function (response) {
        if (!response.ok) throw new Error("token URL answered " + response.status);
        return response.json();
      });
    } else if (this.staticToken) {
      pending = Promise.resolve(this.staticToken);
    } else {
      return Promise.reject(new Error("no token source: set data-token-url or data-token"));
    }
    return pending.then(function (answer) {
      var token = answer && typeof answer === "object" ? answer.token : answer;
      if (!token) throw new Error("no usable inbox token");
      self.token = token;
      var expires = answer && answer.expires_at ? Date.parse(answer.expires_at) : NaN;
      self.tokenExpires = isNaN(expires) ? Date.now() + 5 * 60000 : expires;
      return token;
    });
  };

  Inbox.prototype.connect = function () {
    var self = this;
    if (this.stopped || this.ws) return;
    clearTimeout(this.reconnectTimer);
    this.setState("connecting");
    this.fetchToken().then(function (token) {
      if (self.ws || self.stopped) return;
      var url = self.socketBase.replace(/^http/, "ws") + "/ws/inbox?token=" + encodeURIComponent(token);
      var ws = new WebSocket(url);
      self.ws = ws;
      ws.onmessage = function (event) {
        if (self.ws !== ws) return;
        self.armWatchdog();
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        self.onFrame(frame);
      };
      ws.onclose = function (event) {
        if (self.ws !== ws) return;
        self.ws = null;
        clearTimeout(self.watchdog);
        if (event.code === UNAUTHORIZED) {
          self.token = null;
          if (!self.getTokenOption && !self.tokenUrl) { self.setState("unauthorized"); return; }
        }
        self.setState("offline");
        self.scheduleReconnect();
      };
    }).catch(function (error) {
      if (self.staticToken && !self.tokenUrl && !self.getTokenOption) { self.setState("unauthorized"); return; }
      if (window.console) console.warn("Herald inbox:", error.message || error);
      self.setState("offline");
      self.scheduleReconnect();
    });
  };

  Inbox.prototype.scheduleReconnect = function () {
    if (this.stopped) return;
    var ceiling = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, this.attempt));
    this.attempt += 1;
    var delay = ceiling / 2 + Math.random() * ceiling / 2;
    var self = this;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(function () { self.connect(); }, delay);
  };

  Inbox.prototype.reconnectNow = function () {
    if (this.ws || this.stopped || this.state === "unauthorized") return;
    this.attempt = 0;
    this.connect();
  };

  Inbox.prototype.armWatchdog = function () {
    // Silence for two heartbeats means a dead connection the browser has not noticed.
    var self = this;
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(function () {
      if (self.ws) self.ws.close();
    }, this.heartbeatMs * 2 + 5000);
  };

  Inbox.prototype.send = function (message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === "connected") {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  };

  // --- frames -------------------------------------------------------------------------

  Inbox.prototype.onFrame = function (frame) {
    switch (frame.type) {
      case "init":
        var resumeFrom = this.lastId;
        this.heartbeatMs = (frame.heartbeat_seconds || 30) * 1000;
        this.version = Math.max(this.version, frame.version);
        this.unreadCount = frame.unread_count;
        // The server's newest items replace ours: anything archived or deleted elsewhere while
        // we were away is gone from them. Older pages are fetched again on demand.
        this.items = new Map();
        this.olderLoaded = false;
        frame.items.forEach(this.merge, this);
        this.nextPage = frame.has_more ? "first" : null;
        this.attempt = 0;
        this.setState("connected");
        this.armWatchdog();
        // Whatever arrived while we were away and is older than the newest items above.
        if (resumeFrom) this.send({type: "resume", last_id: resumeFrom});
        break;
      case "item":
        this.merge(frame.item);
        this.applyCount(frame);
        break;
      case "changed":
      case "resumed":
        frame.items.forEach(this.merge, this);
        this.applyCount(frame);
        break;
      case "all_read":
      case "all_seen":
        this.items.forEach(function (item) {
          if (item.version >= frame.version || item.archived_at) return;
          if (frame.type === "all_read") {
            if (item.read_at || (frame.category && item.category !== frame.category)) return;
            item.read_at = frame.read_at;
            item.seen_at = item.seen_at || frame.read_at;
          } else {
            if (item.seen_at) return;
            item.seen_at = frame.seen_at;
          }
          item.version = frame.version;
        });
        this.applyCount(frame);
        break;
      case "deleted":
        frame.ids.forEach(function (id) { this.items.delete(id); }, this);
        this.applyCount(frame);
        break;
      case "error":
        if (window.console && frame.error) console.warn("Herald inbox:", frame.error.code, frame.error.message);
        return;
      default:
        return; // heartbeat, pong, and frame types added later
    }
    this.render();
  };

  Inbox.prototype.merge = function (item) {
    var known = this.items.get(item.id);
    if (!known || item.version >= known.version) this.items.set(item.id, item);
    if (item.id > this.lastId) this.lastId = item.id;
  };

  Inbox.prototype.applyCount = function (frame) {
    if (frame.version >= this.version) {
      this.version = frame.version;
      this.unreadCount = frame.unread_count;
    }
  };

  // --- actions ------------------------------------------------------------------------

  Inbox.prototype.rest = function (method, path) {
    var self = this;
    return this.fetchToken().then(function (token) {
      return fetch(self.base + path, {method: method, headers: {Authorization: "Bearer " + token}});
    }).then(function (response) {
      if (response.status === 401) self.token = null;
      if (!response.ok) throw new Error(method + " " + path + " answered " + response.status);
      return response.status === 204 ? null : response.json();
    });
  };

  Inbox.prototype.change = function (type, id, path) {
    if (!this.send({type: type, id: id})) {
      var self = this;
      this.rest("POST", "/api/v1/inbox/items/" + id + "/" + path).then(function (item) {
        self.merge(item);
        self.render();
      }).catch(function (error) { if (window.console) console.warn("Herald inbox:", error.message); });
    }
  };

  Inbox.prototype.markRead = function (id) {
    var item = this.items.get(id);
    if (!item || item.read_at) return;
    // Shown at once; the server's broadcast (with its count) confirms or corrects it.
    var now = new Date().toISOString();
    item.seen_at = item.seen_at || now;
    item.read_at = now;
    if (!item.archived_at) this.unreadCount = Math.max(0, this.unreadCount - 1);
    this.render();
    this.change("mark_read", id, "read");
  };

  Inbox.prototype.archive = function (id) {
    var item = this.items.get(id);
    if (!item) return;
    if (!item.read_at && !item.archived_at) this.unreadCount = Math.max(0, this.unreadCount - 1);
    item.archived_at = new Date().toISOString();
    this.render();
    this.change("archive", id, "archive");
  };

  Inbox.prototype.markAllRead = function () {
    var now = new Date().toISOString();
    this.items.forEach(function (item) { if (!item.read_at) item.read_at = now; });
    this.unreadCount = 0;
    this.render();
    if (!this.send({type: "mark_all_read"})) {
      this.rest("POST", "/api/v1/inbox/mark-all-read").catch(function () {});
    }
  };

  Inbox.prototype.loadOlder = function () {
    var self = this;
    var path = this.nextPage && this.nextPage !== "first" ? this.nextPage : "/api/v1/inbox/items?limit=50";
    if (path.indexOf(this.base) === 0) path = path.slice(this.base.length);
    this.more.disabled = true;
    this.rest("GET", path).then(function (page) {
      page.results.forEach(self.merge, self);
      self.nextPage = page.next ? new URL(page.next).pathname + new URL(page.next).search : null;
      self.olderLoaded = true;
    }).catch(function (error) {
      if (window.console) console.warn("Herald inbox:", error.message);
    }).then(function () {
      self.more.disabled = false;
      self.render();
    });
  };

  Inbox.prototype.toggle = function (open) {
    var show = open === undefined ? this.panel.hidden : open;
    this.panel.hidden = !show;
    this.bell.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) {
      var unseen = false;
      this.items.forEach(function (item) { if (!item.seen_at && !item.archived_at) unseen = true; });
      if (unseen) this.send({type: "mark_all_seen"});
    }
  };

  Inbox.prototype.onListClick = function (event) {
    var path = event.composedPath();
    var row = null, archive = false;
    for (var i = 0; i < path.length && path[i] !== this.list; i++) {
      if (path[i].classList && path[i].classList.contains("archive")) archive = true;
      if (path[i].classList && path[i].classList.contains("item")) { row = path[i]; break; }
    }
    if (!row) return;
    var id = Number(row.getAttribute("data-id"));
    if (archive) { this.archive(id); return; }
    var item = this.items.get(id);
    this.markRead(id);
    var target = item && safeUrl(item.action_url);
    if (target) window.location.assign(target);
  };

  // --- rendering ----------------------------------------------------------------------

  Inbox.prototype.setState = function (state) {
    this.state = state;
    this.host.setAttribute("data-state", state);
    if (this.status) {
      this.status.hidden = state === "connected" || state === "connecting";
      this.status.textContent = state === "unauthorized" ? "Signed out of notifications." : "Offline – reconnecting…";
    }
  };

  Inbox.prototype.render = function () {
    var count = Math.max(0, this.unreadCount);
    this.badge.hidden = count === 0;
    this.badge.textContent = count > 99 ? "99+" : String(count);
    this.bell.setAttribute("aria-label", count ? "Notifications, " + count + " unread" : "Notifications");
    if (this.host.getAttribute("data-unread") !== String(count)) {
      this.host.setAttribute("data-unread", String(count));
      this.host.dispatchEvent(new CustomEvent("herald-inbox:change", {detail: {unreadCount: count}}));
    }
    var visible = [];
    this.items.forEach(function (item) { if (!item.archived_at) visible.push(item); });
    visible.sort(function (a, b) { return b.id - a.id; });
    var fragment = document.createDocumentFragment();
    visible.forEach(function (item) { fragment.appendChild(this.renderItem(item)); }, this);
    this.list.replaceChildren(fragment);
    this.empty.hidden = visible.length > 0;
    this.more.hidden = !this.nextPage;
    this.markAll.disabled = count === 0;
  };

  Inbox.prototype.renderItem = function (item) {
    var row = el("li", "item" + (item.read_at ? "" : " unread"));
    row.setAttribute("data-id", String(item.id));
    row.setAttribute("tabindex", "0");
    row.setAttribute("role", "listitem");
    var icon = safeUrl(item.icon);
    if (icon && icon.charAt(0) !== "/") {
      var img = el("img");
      img.src = icon;
      img.alt = "";
      img.loading = "lazy";
      img.onerror = function () { img.remove(); };
      row.appendChild(img);
    }
    var text = el("div", "text");
    if (item.title) text.appendChild(el("div", "title", item.title));
    if (item.body) text.appendChild(el("div", "body", item.body));
    var time = el("time", null, ago(item.created_at));
    time.dateTime = item.created_at;
    time.title = new Date(item.created_at).toLocaleString();
    text.appendChild(time);
    row.appendChild(text);
    row.appendChild(el("span", "dot"));
    var archive = el("button", "archive", "×");
    archive.type = "button";
    archive.title = "Archive";
    archive.setAttribute("aria-label", "Archive");
    row.appendChild(archive);
    return row;
  };

  function mount(element, options) {
    if (element.__heraldInbox) return element.__heraldInbox;
    options = options || {};
    var inbox = new Inbox(element, {
      baseUrl: options.baseUrl || element.getAttribute("data-herald-url"),
      socketUrl: options.socketUrl || element.getAttribute("data-socket-url"),
      tokenUrl: options.tokenUrl || element.getAttribute("data-token-url"),
      token: options.token || element.getAttribute("data-token"),
      getToken: options.getToken
    });
    element.__heraldInbox = inbox;
    return inbox;
  }

  function mountAll() {
    var nodes = document.querySelectorAll("[data-herald-inbox]");
    for (var i = 0; i < nodes.length; i++) mount(nodes[i]);
  }

  window.HeraldInbox = {mount: mount};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
