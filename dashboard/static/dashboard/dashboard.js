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

  // The header's Menu button: on a phone the nav and the tools fold behind it.
  function toggleMenu(button) {
    var bar = button.closest(".topbar");
    var open = !bar.classList.contains("menu-open");
    bar.classList.toggle("menu-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  // A copy button next to an id: the clipboard API where the page is a secure context
  // (HTTPS, localhost), else the old select-and-copy.
  function copy(button) {
    var text = button.getAttribute("data-copy");
    function done() {
      button.classList.add("copied");
      button.title = "Copied";
      window.setTimeout(function () { button.classList.remove("copied"); button.title = "Copy the job id"; }, 1500);
    }
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      try { if (document.execCommand("copy")) done(); } catch (e) { /* nothing copied */ }
      area.remove();
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }

  document.addEventListener("click", function (event) {
    var target = event.target && event.target.closest ? event.target.closest("button") : null;
    if (!target) return;
    if (target.id === "live-toggle") {
      paused = !paused;
      try { window.localStorage.setItem(KEY, paused ? "1" : "0"); } catch (e) { /* ignore */ }
      renderToggle();
      if (!paused) tick(true);
    } else if (target.id === "theme-toggle" && window.jobsiteTheme) {
      window.jobsiteTheme.toggle();
    } else if (target.id === "menu-toggle") {
      toggleMenu(target);
    } else if (target.classList.contains("copy") && target.hasAttribute("data-copy")) {
      copy(target);
    }
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box && box.matches && box.matches("input[data-select-all]")) {
      var form = box.closest("form");
      form.querySelectorAll("input[name=job_id]").forEach(function (each) { each.checked = box.checked; });
    }
  });

  // Destructive and bulk actions ask first, saying how many jobs they touch. htmx reads
  // hx-confirm on the element that issues the request (the form), never on the button that
  // submitted it, so a form with several buttons asks here: the clicked button's
  // data-confirm, or for a bulk form (data-confirm-bulk) a question counted from the
  // checked rows, or from data-match-count when "all matching" is ticked.
  function plural(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }

  function bulkQuestion(form, button) {
    var verb = button.getAttribute("data-verb") || button.textContent.trim();
    var noun = form.getAttribute("data-noun") || "job";
    var consequence = button.getAttribute("data-consequence");
    var all = form.querySelector("input[name=all]");
    var text;
    if (all && all.checked) {
      var count = parseInt(form.getAttribute("data-match-count"), 10) || 0;
      var limit = parseInt(form.getAttribute("data-limit"), 10) || 1000;
      text = count > limit
        ? verb + " all of the more than " + plural(limit, noun) + " matching this filter? It runs in the background, with a progress bar."
        : verb + " all " + plural(count, noun) + " matching this filter?";
    } else {
      var checked = form.querySelectorAll("input[name=job_id]:checked").length;
      if (!checked) return null;  // nothing selected: the server says so, nothing to confirm
      text = verb + " " + plural(checked, "selected " + noun) + "?";
    }
    return consequence ? text + " " + consequence : text;
  }

  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    var trigger = event.detail.triggeringEvent;
    var button = trigger && trigger.submitter;
    if (!form || !button || form.tagName !== "FORM") return;
    var question = button.getAttribute("data-confirm");
    if (!question && form.hasAttribute("data-confirm-bulk")) question = bulkQuestion(form, button);
    if (!question) return;
    event.preventDefault();
    if (!window.confirm(question)) return;
    // The dialog can take focus from the button, and with it htmx's note of which button
    // submitted the form: name it again for htmx:configRequest.
    form._jobsiteSubmitter = button;
    event.detail.issueRequest(true);
  });

  document.addEventListener("htmx:configRequest", function (event) {
    var button = event.detail.elt && event.detail.elt._jobsiteSubmitter;
    if (!button) return;
    event.detail.elt._jobsiteSubmitter = null;
    if (button.name) event.detail.parameters[button.name] = button.value;
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

  document.addEventListener("DOMContentLoaded", function () {
    renderToggle();
    if (window.jobsiteTheme) window.jobsiteTheme.apply();  // the toggle shows the theme in force
  });
  window.setInterval(tick, 500);
})();
