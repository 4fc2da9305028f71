// The header's count of unread notices (bot/console/notices.py): read on load and every 20 s, so a
// notice the scheduler writes shows on whatever console page is open. The count is a number from
// the server; nothing it sends is put into the page as markup.
(function () {
  "use strict";
  var badge = document.getElementById("notice-badge");
  if (!badge) { return; }
  var url = badge.getAttribute("data-count");
  function show(unread) {
    badge.textContent = unread === 1 ? "1 notice" : unread + " notices";
    badge.hidden = unread === 0;
  }
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (body) { if (typeof body.unread === "number") { show(body.unread); } })
      .catch(function () { /* keep the last count; the next beat tries again */ });
  }
  refresh();
  window.setInterval(refresh, 20000);
})();
