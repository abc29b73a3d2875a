// jobsite dashboard behaviour. No inline scripts and no eval: works under a strict CSP.
//
// Live panels carry data-poll="<ms>" and hx-trigger="jobsite:poll"; this file fires that
// event while the tab is visible and live updates are not paused. A panel whose job has
// ended is answered with HTTP 286 and rendered without data-poll, so polling stops.
(function () {
  "use strict";
  var KEY = "jobsite:live-paused";
  var paused = false;
  try { paused = window.localStorage.getItem(KEY) === "1"; } catch (e) { /* private mode */ }

  function visible() { return document.visibilityState === "visible"; }

  function tick(force) {
    if (paused || !visible() || !window.htmx) return;
    var now = Date.now();
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      var every = parseInt(el.getAttribute("data-poll"), 10) || 3000;
      if (!el._jobsiteSeen) { el._jobsiteSeen = now; if (!force) return; }
      if (el.classList.contains("htmx-request")) return;
      if (!force && now - el._jobsiteSeen < every) return;
      el._jobsiteSeen = now;
      window.htmx.trigger(el, "jobsite:poll");
    });
  }

  function renderToggle() {
    var button = document.getElementById("live-toggle");
    if (!button) return;
    button.setAttribute("aria-pressed", paused ? "true" : "false");
    button.textContent = paused ? "Resume live updates" : "Pause live updates";
    document.body.classList.toggle("live-paused", paused);
    var state = document.getElementById("live-state");
    if (state) state.textContent = paused ? "paused" : (visible() ? "live" : "waiting for this tab");
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.id === "live-toggle") {
      paused = !paused;
      try { window.localStorage.setItem(KEY, paused ? "1" : "0"); } catch (e) { /* ignore */ }
      renderToggle();
      if (!paused) tick(true);
    }
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box && box.matches && box.matches("input[data-select-all]")) {
      var form = box.closest("form");
      form.querySelectorAll("input[name=job_id]").forEach(function (each) { each.checked = box.checked; });
    }
  });

  document.addEventListener("visibilitychange", function () {
    renderToggle();
    if (visible()) tick(true);
  });

  // Keep open tracebacks open across a live refresh.
  var openDetails = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    openDetails = [];
    event.detail.target.querySelectorAll("details[open][id]").forEach(function (d) { openDetails.push(d.id); });
  });
  document.addEventListener("htmx:afterSettle", function () {
    openDetails.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) d.open = true;
    });
    var stamp = document.getElementById("live-stamp");
    if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.status === 286 && event.detail.elt) event.detail.elt.removeAttribute("data-poll");
  });

  document.addEventListener("DOMContentLoaded", renderToggle);
  window.setInterval(tick, 500);
})();
