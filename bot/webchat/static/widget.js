/*
 * CareLoop chat widget. Embed it on any page with one tag:
 *
 *   <script src="https://YOUR-GATEWAY/webchat/widget.js" defer></script>
 *
 * and optionally, before it:
 *
 *   <script>window.CareLoopWidget = {title: "Help", greeting: "Hi!", colour: "#0a7", position: "left"};</script>
 *
 * (the same options also work as data-title, data-greeting, data-colour, data-position on the tag).
 * A shop whose customer is logged in adds external_id (its own customer id) and user_hash, the
 * HMAC-SHA256 of that id with WIDGET_IDENTITY_SECRET computed on the shop's server (README,
 * "Connect your shop"); the gateway checks it, and a wrong hash leaves the visitor anonymous.
 * Message content is only ever set with textContent, never parsed as HTML.
 */
(function () {
  "use strict";

  if (window.__careloopWidget) return;
  window.__careloopWidget = true;

  var script = document.currentScript || document.querySelector('script[src*="/webchat/widget.js"]');
  var scriptUrl = new URL(script ? script.src : "/webchat/widget.js", location.href);
  var data = (script && script.dataset) || {};
  var options = window.CareLoopWidget || {};
  var base = (data.gateway || scriptUrl.origin).replace(/\/+$/, "");
  var config = {
    title: String(options.title || data.title || "Customer care"),
    greeting: String(options.greeting || data.greeting || "Hi! How can we help you today?"),
    colour: validColour(options.colour || options.color || data.colour) || "#6b3e26",
    position: (options.position || data.position) === "left" ? "left" : "right",
    maxLength: Number(options.maxLength || data.maxLength) || 4000,
  };
  var AUTHORS = { bot: config.title, agent: "Agent", customer: "You", system: "Notice" };
  var identity = typeof options.external_id === "string" && typeof options.user_hash === "string"
    ? { external_id: options.external_id, user_hash: options.user_hash } : null;
  var ANONYMOUS_KEY = "careloop.widget:" + base;
  // Each logged-in customer has a chat of their own in this browser: after a log-out, or another
  // customer's log-in, the next person does not see it.
  var KEY = identity ? ANONYMOUS_KEY + ":user:" + identity.external_id : ANONYMOUS_KEY;
  var RECONNECT_MAX_MS = 15000;
  var TYPING_TIMEOUT_MS = 30000;
  var TYPING_EVERY_MS = 3000; // how often "still typing" is sent (a person may be reading)
  var TYPING_IDLE_MS = 4000;

  adoptAnonymousChat();
  var state = {
    token: load("token"),
    outbox: load("outbox") || [],
    open: sessionStorage.getItem(KEY + ":open") === "1",
    socket: null,
    ready: false,
    retries: 0,
    reconnectTimer: null,
    typingTimer: null,
    typingSentAt: 0,
    typingIdleTimer: null,
    unread: 0,
    rendered: {},
    pending: {},
    receipts: [],
  };

  function validColour(value) {
    return typeof value === "string" && window.CSS && CSS.supports("color", value) ? value : null;
  }

  // A visitor who logs in mid-conversation takes their anonymous chat along (the gateway moves it
  // to their customer record when the hello carries their identity).
  function adoptAnonymousChat() {
    try {
      if (KEY === ANONYMOUS_KEY || localStorage.getItem(KEY + ":token")) return;
      ["token", "outbox"].forEach(function (name) {
        var value = localStorage.getItem(ANONYMOUS_KEY + ":" + name);
        if (value !== null) localStorage.setItem(KEY + ":" + name, value);
        localStorage.removeItem(ANONYMOUS_KEY + ":" + name);
      });
    } catch (e) {
      /* storage blocked: this page view starts a fresh chat */
    }
  }

  function load(name) {
    try {
      return JSON.parse(localStorage.getItem(KEY + ":" + name) || "null");
    } catch (e) {
      return null;
    }
  }

  function save(name, value) {
    try {
      if (value === null) localStorage.removeItem(KEY + ":" + name);
      else localStorage.setItem(KEY + ":" + name, JSON.stringify(value));
    } catch (e) {
      /* storage full or blocked: the widget still works for this page view */
    }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "hidden") node.hidden = !!attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  /* ---------- the interface (in a shadow root, so the host page's CSS cannot break it) ---------- */

  var host = el("div", { id: "careloop-widget" });
  var shadow = host.attachShadow({ mode: "open" });
  var stylesheet = el("link", { rel: "stylesheet", href: base + "/webchat/widget.css" });
  var badge = el("span", { class: "cl-badge", "aria-hidden": "true", hidden: true });
  var launcher = el("button", {
    type: "button", class: "cl-launcher", "aria-controls": "cl-panel", "aria-expanded": "false",
  }, [icon(), badge]);
  var title = el("h2", { class: "cl-title", id: "cl-title", text: config.title });
  var status = el("span", { class: "cl-status", role: "status", "aria-live": "polite" });
  var closer = el("button", { type: "button", class: "cl-close", "aria-label": "Close chat", text: "\u00d7" });
  var log = el("ol", { class: "cl-log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
  var typingWho = el("span", { class: "cl-sr", text: config.title + " is typing" });
  var typing = el("div", { class: "cl-typing", role: "status", hidden: true }, [
    typingWho,
    el("span", { class: "cl-dot", "aria-hidden": "true" }),
    el("span", { class: "cl-dot", "aria-hidden": "true" }),
    el("span", { class: "cl-dot", "aria-hidden": "true" }),
  ]);
  var input = el("textarea", {
    id: "cl-input", class: "cl-input", rows: "1", maxlength: String(config.maxLength),
    placeholder: "Write a message\u2026", "aria-label": "Message", autocomplete: "off",
  });
  var sendButton = el("button", { type: "submit", class: "cl-send", "aria-label": "Send message" }, [sendIcon()]);
  var composer = el("form", { class: "cl-composer" }, [input, sendButton]);
  var panel = el("section", {
    id: "cl-panel", class: "cl-panel", role: "dialog", "aria-labelledby": "cl-title", hidden: true,
  }, [el("header", { class: "cl-header" }, [title, status, closer]), log, typing, composer]);
  var root = el("div", { class: "cl-root cl-" + config.position + " cl-loading" }, [panel, launcher]);
  root.style.setProperty("--cl-colour", config.colour);
  stylesheet.addEventListener("load", function () { root.classList.remove("cl-loading"); });
  stylesheet.addEventListener("error", function () { root.classList.remove("cl-loading"); });
  shadow.appendChild(stylesheet);
  shadow.appendChild(root);

  function icon() {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  function sendIcon() {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M3 20l18-8L3 4v6l12 2-12 2z");
    svg.appendChild(path);
    return svg;
  }

  function setOpen(open, focus) {
    state.open = open;
    sessionStorage.setItem(KEY + ":open", open ? "1" : "0");
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    root.classList.toggle("cl-open", open);
    if (open) {
      state.unread = 0;
      showUnread();
      scrollDown();
      if (focus) input.focus();
    } else if (focus) {
      launcher.focus();
    }
  }

  function showUnread() {
    badge.hidden = state.unread === 0;
    badge.textContent = state.unread > 9 ? "9+" : String(state.unread);
    var label = state.open ? "Close chat" : "Open chat: " + config.title;
    if (state.unread) label += " (" + state.unread + " unread message" + (state.unread > 1 ? "s" : "") + ")";
    launcher.setAttribute("aria-label", label);
  }

  function setStatus(text) {
    status.textContent = text;
    root.classList.toggle("cl-offline", !!text);
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function clock(at) {
    var date = at ? new Date(at) : new Date();
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function showTyping(on, who) {
    clearTimeout(state.typingTimer);
    if (on) {
      var name = who === "agent" ? AUTHORS.agent : config.title;
      typingWho.textContent = name + " is typing";
      typing.setAttribute("data-who", who === "agent" ? "agent" : "bot");
    }
    typing.hidden = !on;
    if (on) state.typingTimer = setTimeout(function () { typing.hidden = true; }, TYPING_TIMEOUT_MS);
    if (on) scrollDown();
  }

  /* ---------- messages ---------- */

  function renderMessage(message, extraClass) {
    var author = AUTHORS[message.author] ? message.author : "system";
    var item = el("li", { class: "cl-msg cl-msg--" + author + (extraClass ? " " + extraClass : "") });
    if (message.id) item.setAttribute("data-id", String(message.id));
    item.appendChild(el("span", { class: "cl-sr", text: AUTHORS[author] + ": " }));
    var bubble = el("div", { class: "cl-bubble" });
    if (message.text) bubble.appendChild(el("p", { class: "cl-text", text: message.text }));
    if (typeof message.image === "string" && /^https?:\/\//.test(message.image)) {
      var image = el("img", { class: "cl-image", alt: "Image from " + config.title, loading: "lazy" });
      image.src = message.image;
      bubble.appendChild(image);
    }
    item.appendChild(bubble);
    if (message.buttons && message.buttons.length && message.id) {
      var group = el("div", { class: "cl-buttons", role: "group", "aria-label": "Suggested replies" });
      message.buttons.forEach(function (button, index) {
        var chip = el("button", { type: "button", class: "cl-chip", text: button.title });
        chip.addEventListener("click", function () { sendButton_(message.id, index, button.title); });
        group.appendChild(chip);
      });
      item.appendChild(group);
    }
    var meta = el("div", { class: "cl-meta" }, [el("time", { datetime: message.at || "", text: clock(message.at) })]);
    item.appendChild(meta);
    log.appendChild(item);
    scrollDown();
    return item;
  }

  function receive(message) {
    if (message.author !== "customer") state.receipts.push(message.id);
    if (state.rendered[message.id]) return;
    state.rendered[message.id] = true;
    if (message.author !== "customer") {
      removeGreeting();
      showTyping(false);
      if (!state.open) {
        state.unread += 1;
        showUnread();
      }
    }
    renderMessage(message);
  }

  function removeGreeting() {
    var greeting = log.querySelector(".cl-greeting");
    if (greeting) greeting.remove();
  }

  function markPending(item, text) {
    var meta = item.querySelector(".cl-meta");
    var label = meta.querySelector(".cl-state") || meta.appendChild(el("span", { class: "cl-state" }));
    label.textContent = text;
  }

  function queue(frame, display) {
    frame.client_id = uuid();
    frame.at = new Date().toISOString();
    frame.display = display;
    state.outbox.push(frame);
    save("outbox", state.outbox);
    showPending(frame);
    transmit(frame);
    showTyping(true);
  }

  function showPending(frame) {
    removeGreeting();
    var item = renderMessage({ author: "customer", text: frame.display, at: frame.at }, "cl-pending");
    markPending(item, state.ready ? "Sending\u2026" : "Waiting for connection\u2026");
    state.pending[frame.client_id] = item;
  }

  function transmit(frame) {
    if (!state.ready) return;
    var wire = { type: frame.type, client_id: frame.client_id };
    if (frame.type === "message") wire.text = frame.text;
    else { wire.message_id = frame.message_id; wire.index = frame.index; }
    state.socket.send(JSON.stringify(wire));
  }

  function settle(clientId, serverId, failure) {
    state.outbox = state.outbox.filter(function (f) { return f.client_id !== clientId; });
    save("outbox", state.outbox);
    var item = state.pending[clientId];
    delete state.pending[clientId];
    if (!item) return;
    item.classList.remove("cl-pending");
    if (serverId) {
      item.setAttribute("data-id", String(serverId));
      state.rendered[serverId] = true;
    }
    if (failure) {
      item.classList.add("cl-failed");
      markPending(item, "Not sent");
    } else {
      var label = item.querySelector(".cl-state");
      if (label) label.remove();
    }
  }

  function sendText(text) {
    if (!text.trim()) return;
    queue({ type: "message", text: text }, text);
  }

  function sendButton_(messageId, index, label) {
    queue({ type: "button", message_id: messageId, index: index }, label);
  }

  function sendTyping(on) {
    clearTimeout(state.typingIdleTimer);
    if (!state.ready) return;
    var now = Date.now();
    if (on) {
      state.typingIdleTimer = setTimeout(function () { sendTyping(false); }, TYPING_IDLE_MS);
      if (now - state.typingSentAt < TYPING_EVERY_MS) return;
      state.typingSentAt = now;
    } else {
      if (!state.typingSentAt) return;
      state.typingSentAt = 0;
    }
    state.socket.send(JSON.stringify({ type: "typing", on: on }));
  }

  function flushReceipts() {
    if (!state.ready || !state.receipts.length) return;
    state.socket.send(JSON.stringify({ type: "received", ids: state.receipts.splice(0, 200) }));
  }

  /* ---------- talking to the gateway ---------- */

  function api(path, options) {
    return fetch(base + path, options).then(function (response) {
      if (response.status === 401) throw new Error("unauthorized");
      if (!response.ok) throw new Error("http " + response.status);
      return response.json();
    });
  }

  function ensureSession() {
    if (state.token) return Promise.resolve(state.token);
    return api("/webchat/session", { method: "POST" }).then(function (session) {
      state.token = session.token;
      save("token", state.token);
      return state.token;
    });
  }

  function loadHistory(retried) {
    return ensureSession()
      .then(function (token) {
        return api("/webchat/history", { headers: { Authorization: "Bearer " + token } });
      })
      .then(function (history) {
        if (history.token) {  // renewed (see the ready frame)
          state.token = history.token;
          save("token", state.token);
        }
        var stored = {};
        history.messages.forEach(function (message) {
          if (message.client_id) stored[message.client_id] = true;
          receive(message);
        });
        state.outbox = state.outbox.filter(function (f) { return !stored[f.client_id]; });
        save("outbox", state.outbox);
        state.outbox.forEach(showPending);
        if (!history.messages.length && !state.outbox.length) {
          renderMessage({ author: "bot", text: config.greeting }, "cl-greeting");
        }
        // What arrived while the visitor was away (e.g. a proactive message) counts as unread.
        state.unread = state.open ? 0 : history.messages.filter(function (m) { return m.unread; }).length;
        showUnread();
      })
      .catch(function (error) {
        if (error.message === "unauthorized" && !retried) {
          state.token = null;
          save("token", null);
          return loadHistory(true);
        }
        throw error;
      });
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    if (state.socket && state.socket.readyState <= 1) return;
    var url = base.replace(/^http/, "ws") + "/webchat/ws";
    var socket = new WebSocket(url);
    state.socket = socket;
    socket.addEventListener("open", function () {
      var hello = { type: "hello", token: state.token };
      if (identity) { hello.external_id = identity.external_id; hello.user_hash = identity.user_hash; }
      socket.send(JSON.stringify(hello));
    });
    socket.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handle(frame);
    });
    socket.addEventListener("close", function (event) {
      if (state.socket !== socket) return;
      state.ready = false;
      showTyping(false);
      if (event.code === 4401) {  // not ours or expired: start a new visitor session
        state.token = null;
        save("token", null);
      }
      if (event.code === 4429) {  // open in too many tabs: this one waits to be used again
        setStatus("Chat is open in too many windows \u2013 close one to chat here.");
        state.reconnectTimer = setTimeout(function () { ensureSession().then(connect, scheduleRetry); }, RECONNECT_MAX_MS);
        return;
      }
      setStatus("Reconnecting\u2026");
      var delay = Math.min(RECONNECT_MAX_MS, 1000 * Math.pow(2, state.retries++)) * (0.75 + Math.random() / 2);
      state.reconnectTimer = setTimeout(function () { ensureSession().then(connect, scheduleRetry); }, delay);
    });
  }

  function scheduleRetry() {
    setStatus("Offline \u2013 retrying\u2026");
    state.reconnectTimer = setTimeout(function () { ensureSession().then(connect, scheduleRetry); }, RECONNECT_MAX_MS);
  }

  function handle(frame) {
    if (frame.type === "ready") {
      if (frame.token) {  // a renewed token: each visit keeps the chat for another 30 days
        state.token = frame.token;
        save("token", state.token);
      }
      if (frame.identity) host.setAttribute("data-identity", frame.identity);  // verified or anonymous
      state.ready = true;
      state.retries = 0;
      setStatus("");
      state.outbox.forEach(function (f) {
        if (state.pending[f.client_id]) markPending(state.pending[f.client_id], "Sending\u2026");
        transmit(f);
      });
      flushReceipts();
    } else if (frame.type === "message" && frame.message) {
      receive(frame.message);
      flushReceipts();
    } else if (frame.type === "ack") {
      settle(frame.client_id, frame.id, false);
    } else if (frame.type === "typing") {
      showTyping(!!frame.on, frame.who);
    } else if (frame.type === "notice") {
      if (frame.client_id) settle(frame.client_id, null, true);
      showTyping(false);
      if (!frame.quiet && frame.text) renderMessage({ author: "system", text: frame.text, at: new Date().toISOString() });
    }
  }

  /* ---------- wiring ---------- */

  launcher.addEventListener("click", function () { setOpen(!state.open, true); });
  closer.addEventListener("click", function () { setOpen(false, true); });
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") setOpen(false, true);
  });
  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    sendTyping(false);
    sendText(text);
    input.focus();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit ? composer.requestSubmit() : composer.dispatchEvent(new Event("submit"));
    }
  });
  input.addEventListener("input", function () { sendTyping(!!input.value.trim()); });
  window.addEventListener("online", function () { if (!state.ready) ensureSession().then(connect, scheduleRetry); });

  function start() {
    document.body.appendChild(host);
    showUnread();
    setOpen(state.open, false);
    loadHistory(false)
      .catch(function () { setStatus("Offline \u2013 retrying\u2026"); })
      .then(function () { return ensureSession(); })
      .then(connect, scheduleRetry);
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
