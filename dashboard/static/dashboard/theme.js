// jobsite's colour theme, applied before the first paint: loaded in <head> without defer
// (the CSP allows no inline script, so this is a file of its own).
//
// The stylesheet follows the system's light or dark by itself (light-dark()); a class on
// <html> names the theme in force, and a choice made with the header's toggle
// (dashboard.js) is kept in localStorage and wins over the system until it is undone.
(function () {
  "use strict";
  var KEY = "jobsite:theme";
  var root = document.documentElement;
  var system = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function chosen() {
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }  // private mode
  }

  function apply() {
    var choice = chosen();
    var dark = choice ? choice === "dark" : !!(system && system.matches);
    root.classList.toggle("theme-dark", dark);
    root.classList.toggle("theme-light", !dark);
    root.setAttribute("data-theme-choice", choice || "system");
    pressed(dark);
  }

  function pressed(dark) {
    var button = document.getElementById("theme-toggle");  // none yet while <head> loads
    if (button) button.setAttribute("aria-pressed", dark ? "true" : "false");
  }

  root.classList.add("js");
  apply();
  if (system && system.addEventListener) system.addEventListener("change", apply);
  window.jobsiteTheme = {
    apply: apply,
    // Flip the theme in force; a choice that matches the system is no choice at all, so
    // the page follows the system again from then on.
    toggle: function () {
      var dark = !root.classList.contains("theme-dark");
      try {
        if (system && dark === system.matches) window.localStorage.removeItem(KEY);
        else window.localStorage.setItem(KEY, dark ? "dark" : "light");
      } catch (e) { /* not remembered: still switched for this page */ }
      root.classList.toggle("theme-dark", dark);
      root.classList.toggle("theme-light", !dark);
      root.setAttribute("data-theme-choice", chosen() || "system");
      pressed(dark);
      return dark;
    },
  };
})();
