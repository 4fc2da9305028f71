/*
 * A campaign's page keeps its sending figures current: it asks progress.json every few seconds and
 * sets the numbers with textContent. When it cannot (the console or the network is down), it says
 * the page is out of date and since when, instead of showing old figures as if they were new.
 */
(function () {
  "use strict";

  var section = document.getElementById("progress-section");
  if (!section) return;
  var EVERY = 4000;
  var lastOk = Date.now();
  var stale = document.getElementById("progress-stale");
  var updated = document.querySelector("#progress-updated time");
  var status = document.querySelector('[data-testid="campaign-status"]');

  function clock(at) {
    return new Date(at).toISOString().slice(11, 19);
  }

  function show(data) {
    var p = data.progress;
    Object.keys(p).forEach(function (name) {
      var cell = section.querySelector('[data-figure="' + name + '"]');
      if (cell) cell.textContent = String(p[name]);
    });
    var bar = document.getElementById("progress-bar");
    var text = document.getElementById("progress-text");
    if (p.total) {
      bar.hidden = false;
      bar.value = p.percent;
      bar.textContent = p.percent + "%";
      text.textContent = (p.total - p.waiting) + " of " + p.total + " handled (" + p.percent + "%)";
    }
    if (status && status.textContent !== data.status_label) {
      status.textContent = data.status_label;
      status.className = "status status-" + data.status;
    }
    lastOk = Date.now();
    updated.textContent = clock(lastOk);
    stale.hidden = true;
  }

  function outOfDate() {
    stale.textContent = "This page is out of date: the figures could not be refreshed since " +
      clock(lastOk) + " UTC. Retrying\u2026";
    stale.hidden = false;
  }

  function refresh() {
    fetch(section.dataset.progress, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("http " + response.status);
        return response.json();
      })
      .then(show, outOfDate)
      .then(function () { setTimeout(refresh, EVERY); });
  }

  setTimeout(refresh, EVERY);
})();
