// The Cases page refreshes its list every 20 s (the same page, parsed; its text is escaped by the
// server and never run), and says so when it cannot.
(function () {
  "use strict";
  var list = document.getElementById("case-rows");
  var stale = document.getElementById("cases-stale");
  var notices = document.getElementById("case-notices");  // the scheduler's notices for this person
  if (!list) { return; }
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("case-rows");
        if (fresh) { list.replaceChildren.apply(list, Array.from(fresh.childNodes)); }
        var freshNotices = page.getElementById("case-notices");
        if (notices && freshNotices) { notices.replaceChildren.apply(notices, Array.from(freshNotices.childNodes)); }
        if (stale) { stale.hidden = true; }
      })
      .catch(function () { if (stale) { stale.hidden = false; } });
  }
  window.setInterval(refresh, 20000);
})();
