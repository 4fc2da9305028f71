/*
 * The agents' desk: the live queue and the chat view. A websocket says when to refresh; the data
 * comes from JSON endpoints and is only ever set with textContent, never parsed as HTML.
 */
(function () {
  "use strict";

  var desk = document.getElementById("desk");
  if (!desk) return;
  var root = desk.dataset.root;
  var csrf = desk.dataset.csrf;
  var page = desk.dataset.page;
  var handoff = desk.dataset.handoff ? Number(desk.dataset.handoff) : null;
  var live = document.getElementById("desk-live");
  var socket = null;
  var retries = 0;
  var typingSentAt = 0;
  var typingIdle = null;
  var customerTypingTimer = null;
  var leaving = false; // a form is being submitted: the next page comes from its answer

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function say(text) {
    live.textContent = text;
  }

  function getJson(path) {
    return fetch(root + path, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 303 || response.redirected) location.reload();
        if (!response.ok) throw new Error("http " + response.status);
        return response.json();
      });
  }

  function post(path, fields) {
    var body = new URLSearchParams(fields || {});
    return fetch(root + path, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "Something went wrong (" + response.status + ").");
        return data;
      });
    });
  }

  /* The same units as bot/console/humane.py's duration(): "45 s", "12 min", "2 h 15 min", "1 day 3 h". */
  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 24) return hours + " h" + (minutes ? " " + minutes + " min" : "");
    var days = Math.floor(hours / 24);
    hours = hours % 24;
    return days + (days === 1 ? " day" : " days") + (hours ? " " + hours + " h" : "");
  }

  function waited(since) {
    return duration((Date.now() - new Date(since).getTime()) / 1000);
  }

  function hhmm(at) {
    return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  /* ---------- the queue ---------- */

  function claimForm(entry) {
    var form = el("form", { method: "post", action: root + "/handoffs/" + entry.handoff_id + "/claim" }, [
      el("input", { type: "hidden", name: "csrf_token", value: csrf }),
      el("button", { type: "submit", text: "Claim" }),
    ]);
    return form;
  }

  function cell(text, extra) {
    return el("td", extra ? extra : { text: text });
  }

  function segment(entry) {
    return el("td", {}, [el("span", { class: "seg seg-" + entry.segment, text: entry.segment_label })]);
  }

  function urgencyCell(entry) {
    var td = el("td", { class: "urgency", "data-level": entry.urgency });
    if (entry.urgency) {
      td.appendChild(el("span", {
        class: "flag flag-" + entry.urgency, text: (entry.urgency === "overdue" ? "\u26a0 " : "") + entry.urgency_text,
      }));
    } else {
      td.textContent = entry.urgency_text;
    }
    return td;
  }

  function priorityCell(entry) {
    var why = entry.priority_text.indexOf(": ") >= 0 ? entry.priority_text.split(": ").slice(1).join(": ") : "";
    return el("td", {}, [el("span", { class: "priority", title: entry.priority_text, text: String(entry.priority) }),
      el("div", { class: "why", text: why })]);
  }

  function followUpChip(td, entry) {
    if (!entry.follow_up) return;
    td.appendChild(document.createTextNode(" "));
    td.appendChild(el("span", { class: "chip follow-up", text: "Follow-up" }));
  }

  function renderQueue(entries) {
    var waiting = document.getElementById("waiting");
    var claimed = document.getElementById("claimed");
    var w = [], c = [];
    entries.forEach(function (e) {
      if (e.status === "queued") {
        var who = el("td", {}, [el("a", { href: root + "/chats/" + e.handoff_id, text: e.customer })]);
        followUpChip(who, e);
        if (e.notice) who.appendChild(el("div", { class: "notice", text: e.notice }));
        var mode = el("td", { text: e.mode_label });
        if (e.promised) {
          mode.appendChild(document.createTextNode(" "));
          mode.appendChild(el("span", {
            class: "promised", title: e.callback_by.slice(0, 16).replace("T", " ") + " UTC", text: "(" + e.promised + ")",
          }));
        }
        var reason = cell(e.reason_label);
        if (e.facts_text) reason.appendChild(el("div", { class: "facts", text: e.facts_text }));
        var row = el("tr", { "data-handoff": String(e.handoff_id) }, [
          who, urgencyCell(e), segment(e), cell(e.temperament_label), reason, cell(e.channel_label),
          mode, el("td", { class: "contact", text: e.contact_text }),
          el("td", { class: "wait", "data-since": e.requested_at, text: e.wait_text }),
          priorityCell(e), el("td", {}, [claimForm(e)]),
        ]);
        if (e.urgency) row.className = "urgent-" + e.urgency;
        w.push(row);
      } else {
        var mine = e.agent_id !== null && String(e.agent_id) === desk.dataset.me;
        var whoClaimed = el("td", { text: e.customer });
        followUpChip(whoClaimed, e);
        c.push(el("tr", { "data-handoff": String(e.handoff_id) }, [
          whoClaimed, segment(e), cell(e.reason_label), cell(e.channel_label), cell(e.mode_label), cell(e.agent || ""),
          el("td", {}, [el("a", { href: root + "/chats/" + e.handoff_id, text: mine ? "Continue" : "View" })]),
        ]));
      }
    });
    if (!w.length) w.push(el("tr", { class: "empty" }, [el("td", { colspan: "11", text: "Nobody is waiting." })]));
    if (!c.length) c.push(el("tr", { class: "empty" }, [el("td", { colspan: "7", text: "No chat is being handled." })]));
    waiting.replaceChildren.apply(waiting, w);
    claimed.replaceChildren.apply(claimed, c);
  }

  function refreshQueue() {
    return getJson("/queue.json").then(function (data) {
      var before = document.querySelectorAll("#waiting tr[data-handoff]").length;
      renderQueue(data.entries);
      var now = document.querySelectorAll("#waiting tr[data-handoff]").length;
      if (now > before) say(now + " waiting.");
      fresh();
    }, function () { say("Could not refresh the queue; retrying."); });
  }

  /* ---------- the chat ---------- */

  function renderMessage(m) {
    var item = el("li", {
      class: "msg msg-" + m.author + (m.before_handoff ? " msg-bot-part" : ""), "data-id": String(m.id),
    }, [el("span", { class: "who", text: m.who }), el("p", { class: "text", text: m.text })]);
    if (m.buttons && m.buttons.length) {
      item.appendChild(el("p", { class: "buttons" }, m.buttons.map(function (b) {
        return el("span", { class: "chip", text: b });
      })));
    }
    var status = el("span", { class: "status", text: m.status_label });
    if (m.error) status.setAttribute("title", m.error);
    item.appendChild(el("span", { class: "meta" }, [el("time", { datetime: m.at, text: hhmm(m.at) }), document.createTextNode(" "), status]));
    return item;
  }

  function atBottom(log) {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function toNewest() {
    var log = document.getElementById("log");
    log.scrollTop = log.scrollHeight;
    document.getElementById("new-messages").hidden = true;
  }

  /* Follow new messages like every chat tool: stay at the newest unless the agent scrolled up to
     read; then leave the view where it is and show a "new messages" marker instead. */
  function renderState(state) {
    var log = document.getElementById("log");
    var following = atBottom(log);
    var last = log.lastElementChild ? Number(log.lastElementChild.dataset.id) : 0;
    var keep = log.scrollTop;
    log.replaceChildren.apply(log, state.messages.map(renderMessage));
    var newest = state.messages.length ? state.messages[state.messages.length - 1].id : 0;
    if (following) toNewest();
    else {
      log.scrollTop = keep;
      if (newest > last) document.getElementById("new-messages").hidden = false;
    }
    fresh();
    var notes = document.getElementById("notes");
    notes.replaceChildren.apply(notes, state.notes.length ? state.notes.map(function (n) {
      return el("li", {}, [el("span", { class: "note-text", text: n.text }),
        el("span", { class: "muted", text: " \u2014 " + n.agent + ", " + n.at.slice(0, 16).replace("T", " ") })]);
    }) : [el("li", { class: "muted", text: "No notes yet." })]);
    var events = document.getElementById("events");
    events.replaceChildren.apply(events, state.events.map(function (e) {
      return el("li", {}, [document.createTextNode(e.text + " "), el("time", { class: "muted", datetime: e.at, text: hhmm(e.at) })]);
    }));
    var status = document.getElementById("chat-status");
    var h = state.handoff;
    var changed = status.dataset.status !== h.status || status.dataset.mine !== (h.mine ? "yes" : "no");
    // Who may act changed (claimed elsewhere, transferred, back in the queue): redraw the page, unless
    // this page is sending a form (a confirmed one is sent by confirm.js's form.submit(), which fires
    // no submit event): a reload would cancel it and the agent would not see its answer.
    var sending = leaving || document.querySelector("form[data-confirmed='yes']");
    if (changed && !sending) location.reload();
  }

  function refreshChat() {
    return getJson("/chats/" + handoff + "/state.json").then(renderState, function () {
      say("Could not refresh the conversation; retrying.");
    });
  }

  function showCustomerTyping(on) {
    var typing = document.getElementById("typing");
    clearTimeout(customerTypingTimer);
    typing.hidden = !on;
    if (on) customerTypingTimer = setTimeout(function () { typing.hidden = true; }, 8000);
  }

  function sendTyping(on) {
    clearTimeout(typingIdle);
    if (!socket || socket.readyState !== 1) return;
    var now = Date.now();
    if (on) {
      typingIdle = setTimeout(function () { sendTyping(false); }, 4000);
      if (now - typingSentAt < 3000) return;
      typingSentAt = now;
    } else {
      if (!typingSentAt) return;
      typingSentAt = 0;
    }
    socket.send(JSON.stringify({ type: "typing", handoff: handoff, on: on }));
  }

  function wireChat() {
    var composer = document.getElementById("composer");
    var reply = document.getElementById("reply");
    if (composer) {
      composer.addEventListener("submit", function (event) {
        event.preventDefault();
        var text = reply.value;
        if (!text.trim()) return;
        reply.disabled = true;
        sendTyping(false);
        post("/chats/" + handoff + "/messages", { text: text })
          .then(function (data) {
            reply.value = "";
            forgetDraft();
            say(data.status === "failed" ? "Not delivered: the customer could not be reached." : "Sent.");
            return refreshChat().then(toNewest);
          }, function (error) { say(error.message); })
          .then(function () { reply.disabled = false; reply.focus(); });
      });
      reply.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          composer.requestSubmit();
        }
      });
      reply.addEventListener("input", function () {
        sendTyping(!!reply.value.trim());
        keepDraft(reply.value);
      });
      if (!reply.value) reply.value = savedDraft();
      Array.prototype.forEach.call(document.querySelectorAll(".canned-reply"), function (button) {
        button.addEventListener("click", function () {
          reply.value = button.dataset.text;
          reply.focus();
        });
      });
    }
    var log = document.getElementById("log");
    toNewest();  // a chat opens at its newest message
    log.addEventListener("scroll", function () {
      if (atBottom(log)) document.getElementById("new-messages").hidden = true;
    });
    document.getElementById("new-messages").addEventListener("click", toNewest);
    quoteResolution();
    var noteForm = document.getElementById("note-form");  // only for the chat's agent and admins
    if (noteForm) {
      noteForm.addEventListener("submit", function (event) {
        event.preventDefault();
        var note = document.getElementById("note");
        post("/chats/" + handoff + "/notes", { text: note.value })
          .then(function () { note.value = ""; say("Note added."); return refreshChat(); }, function (error) { say(error.message); });
      });
    }
  }

  /* The close dialog quotes the resolution the customer will read (set as text, never as HTML). */
  function quoteResolution() {
    var form = document.getElementById("close-form");
    var resolution = document.getElementById("resolution");
    if (!form || !resolution) return;
    var plain = form.dataset.confirm;
    function quote() {
      var text = resolution.value.trim();
      form.dataset.confirm = text
        ? "Close this chat? The customer reads, exactly as written: \u201c" + text + "\u201d. Then the bot answers them again."
        : plain;
    }
    resolution.addEventListener("input", quote);
    quote();
  }

  /* The agent's unsent reply survives a redraw of the page (a reload when the chat's state changes). */
  function draftKey() { return "careloop-draft-" + handoff; }
  function keepDraft(text) {
    try { if (text) sessionStorage.setItem(draftKey(), text); else sessionStorage.removeItem(draftKey()); } catch (e) { /* storage off */ }
  }
  function forgetDraft() { keepDraft(""); }
  function savedDraft() {
    try { return sessionStorage.getItem(draftKey()) || ""; } catch (e) { return ""; }
  }

  /* ---------- live updates ---------- */

  var lastFresh = Date.now();
  var stale = document.getElementById("desk-stale");

  function fresh() {
    lastFresh = Date.now();
    if (stale) stale.hidden = true;
  }

  function markStale() {
    if (!stale) {
      stale = el("p", { class: "stale", id: "desk-stale", role: "status" });
      live.parentNode.insertBefore(stale, live.nextSibling);
    }
    stale.textContent = "Live updates stopped at " + hhmm(new Date(lastFresh).toISOString()) +
      ": this page may be out of date. Reconnecting\u2026";
    stale.hidden = false;
  }

  function connect() {
    var url = location.origin.replace(/^http/, "ws") + root + "/ws";
    var ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener("open", function () { ws.send(JSON.stringify({ type: "hello", csrf: csrf })); });
    ws.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "ready") {
        retries = 0;
        desk.classList.add("is-live");
        if (page === "chat") {
          ws.send(JSON.stringify({ type: "watch", handoff: handoff }));
          refreshChat();
        } else {
          refreshQueue();
        }
      } else if (frame.type === "queue" && page === "queue") {
        refreshQueue();
      } else if (frame.type === "conversation" && page === "chat") {
        showCustomerTyping(false);
        refreshChat();
      } else if (frame.type === "typing" && page === "chat") {
        showCustomerTyping(!!frame.on);
      } else if (frame.type === "notice" && frame.text) {
        say(frame.text);
        if (page === "chat") refreshChat();
      }
    });
    ws.addEventListener("close", function () {
      if (socket !== ws) return;
      desk.classList.remove("is-live");
      markStale();
      var delay = Math.min(15000, 1000 * Math.pow(2, retries++));
      setTimeout(connect, delay);
    });
  }

  document.addEventListener("submit", function (event) {
    if (!event.defaultPrevented) leaving = true;
  });
  if (page === "chat") wireChat();
  // Urgency grows with time even when nothing happens: redraw the queue's flags every minute.
  if (page === "queue") setInterval(refreshQueue, 60000);
  setInterval(function () {
    Array.prototype.forEach.call(document.querySelectorAll(".wait[data-since]"), function (td) {
      td.textContent = waited(td.dataset.since);
    });
  }, 15000);
  connect();
})();
