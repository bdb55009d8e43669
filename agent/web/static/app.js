// The only script: open the rubric node (or folded output) a link points to, and poll a running run's progress.
(function () {
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    for (var e = el; e; e = e.parentElement) { if (e.tagName === "DETAILS") e.open = true; }
    if (el) el.scrollIntoView({block: "center"});
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", openTarget);

  // the same words as templates/_progress_loop.html
  function loopLine(l) {
    if (!l) return "";
    var s = "coding agent: turn " + (l.turn || 0) + ", " + (l.tool_calls || 0) + " tool calls";
    if (l.exit) s += ", loop ended: " + l.exit + (l.exit_detail ? " (" + l.exit_detail.slice(0, 120) + ")" : "");
    return s;
  }

  function poll(box) {
    var url = box.getAttribute("data-progress-url");
    fetch(url, {headers: {"Accept": "application/json"}}).then(function (r) { return r.json(); }).then(function (p) {
      var fill = box.querySelector(".fill");
      if (fill) fill.style.width = Math.round(p.fraction * 100) + "%";
      var text = box.querySelector(".progress-text");
      if (text && box.tagName !== "SECTION") text.textContent = p.done.length + "/" + p.steps.length + " steps" +
        (p.current ? " · now " + p.current : "") + (p.loop ? " · turn " + (p.loop.turn || 0) : "");
      var loopText = box.querySelector(".loop-text");
      if (loopText) loopText.textContent = loopLine(p.loop);
      if (text && box.tagName === "SECTION") text.innerHTML = p.steps.map(function (s) {
        var cls = p.done.indexOf(s) >= 0 ? "done" : (s === p.current ? "now" : "");
        return '<span class="step ' + cls + '">' + s + "</span>";
      }).join(" ");
      var tail = box.querySelector(".log-tail");
      if (tail) tail.textContent = p.log_tail.join("\n");
      // the run moved on (finished, failed, paused or resumed) since the page was built: show the new page
      var shown = box._status || box.getAttribute("data-status");
      if (shown && shown !== p.status) { location.reload(); return; }
      box._status = p.status;
      setTimeout(function () { poll(box); }, 2000);
    }).catch(function () { setTimeout(function () { poll(box); }, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-progress-url]").forEach(poll);
  });
})();
