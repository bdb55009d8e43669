// The only script: open the rubric node a link points to, and poll a running run's progress.
(function () {
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id && document.getElementById(id);
    for (var e = el; e; e = e.parentElement) { if (e.tagName === "DETAILS") e.open = true; }
    if (el) el.scrollIntoView({block: "center"});
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", openTarget);

  function poll(box) {
    var url = box.getAttribute("data-progress-url");
    fetch(url, {headers: {"Accept": "application/json"}}).then(function (r) { return r.json(); }).then(function (p) {
      var fill = box.querySelector(".fill");
      if (fill) fill.style.width = Math.round(p.fraction * 100) + "%";
      var text = box.querySelector(".progress-text");
      if (text && box.tagName !== "SECTION") text.textContent = p.done.length + "/" + p.steps.length + " steps" + (p.current ? " · now " + p.current : "");
      if (text && box.tagName === "SECTION") text.innerHTML = p.steps.map(function (s) {
        var cls = p.done.indexOf(s) >= 0 ? "done" : (s === p.current ? "now" : "");
        return '<span class="step ' + cls + '">' + s + "</span>";
      }).join(" ");
      var tail = box.querySelector(".log-tail");
      if (tail) tail.textContent = p.log_tail.join("\n");
      // the run moved on (finished, failed, paused or resumed): show the new page
      if (box._status && box._status !== p.status) { location.reload(); return; }
      box._status = p.status;
      setTimeout(function () { poll(box); }, 2000);
    }).catch(function () { setTimeout(function () { poll(box); }, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-progress-url]").forEach(poll);
  });
})();
