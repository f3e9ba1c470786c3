// orderhooks inspector: live refresh without reloading the page.
// A page that wants it sets data-poll="<ms>" on <body>; every element marked
// data-live (with an id) is swapped for its counterpart in a fresh copy of the
// same URL. Polling stops when the fresh page no longer asks for it, pauses
// while the tab is hidden, and follows an optional on/off checkbox
// (data-poll-toggle="<checkbox id>", remembered in localStorage).
(function () {
  "use strict";
  var body = document.body;
  var every = parseInt(body.getAttribute("data-poll") || "0", 10);
  if (!every) return;
  var toggleId = body.getAttribute("data-poll-toggle");
  var toggle = toggleId ? document.getElementById(toggleId) : null;
  var key = "orderhooks.live";
  if (toggle) {
    try { toggle.checked = window.localStorage.getItem(key) !== "off"; } catch (e) { /* storage off */ }
    toggle.addEventListener("change", function () {
      try { window.localStorage.setItem(key, toggle.checked ? "on" : "off"); } catch (e) { /* storage off */ }
      if (toggle.checked) refresh();
    });
  }
  var busy = false;
  var timer = null;

  function ids(el) {
    var seen = {};
    el.querySelectorAll("[data-id]").forEach(function (row) { seen[row.getAttribute("data-id")] = true; });
    return seen;
  }

  function swap(doc) {
    document.querySelectorAll("[data-live][id]").forEach(function (el) {
      var fresh = doc.getElementById(el.id);
      if (!fresh || fresh.innerHTML === el.innerHTML) return;
      var before = ids(el);
      var hadRows = Object.keys(before).length > 0;
      var open = {};
      el.querySelectorAll("details[open] > summary").forEach(function (s) { open[s.textContent] = true; });
      el.innerHTML = fresh.innerHTML;
      el.querySelectorAll("details > summary").forEach(function (s) {
        if (open[s.textContent]) s.parentNode.setAttribute("open", "");
      });
      if (hadRows) {
        el.querySelectorAll("[data-id]").forEach(function (row) {
          if (!before[row.getAttribute("data-id")]) row.classList.add("fresh");
        });
      }
    });
  }

  function refresh() {
    if (busy || document.hidden || (toggle && !toggle.checked)) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", redirect: "manual",
                                  headers: { "X-Requested-With": "orderhooks-live" } })
      .then(function (r) {
        if (r.type === "opaqueredirect" || r.status === 401 || r.status === 403) {
          window.location.reload();  // signed out: the server sends the sign-in form
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        swap(doc);
        body.setAttribute("data-refreshed", String(Date.now()));
        if (!doc.body.getAttribute("data-poll")) window.clearInterval(timer);
      })
      .catch(function () { /* the receiver is restarting: try again next round */ })
      .then(function () { busy = false; });
  }

  timer = window.setInterval(refresh, every);
})();
