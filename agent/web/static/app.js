// The only script: open the rubric node (or folded output) a link points to, poll the runs list's
// progress, and follow a run's page live (server-sent events).
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
  function dur(s) {
    if (s === null || s === undefined) return "—";
    s = Math.round(s);
    return s < 60 ? s + " s" : (s < 3600 ? Math.floor(s / 60) + " min " + ("0" + s % 60).slice(-2) + " s"
      : Math.floor(s / 3600) + " h " + ("0" + Math.floor(s % 3600 / 60)).slice(-2) + " min");
  }

  function budgetLine(b) {
    if (!b) return "";
    var parts = [];
    if (b.elapsed_s !== null && b.elapsed_s !== undefined) parts.push("time " + dur(b.elapsed_s) + (b.max_wall_s ? " of " + dur(b.max_wall_s) : ""));
    parts.push("agent turns " + (b.turns || 0) + (b.max_turns ? " of " + b.max_turns : ""));
    parts.push("tokens " + (b.tokens || 0).toLocaleString("en") + (b.max_tokens ? " of " + b.max_tokens.toLocaleString("en") : ""));
    return parts.join(" · ");
  }

  var LIVE = ["queued", "running", "cancelling"];

  function follow(box) {
    var shown = box.getAttribute("data-status");
    var src = new EventSource(box.getAttribute("data-events-url"));
    src.onmessage = function (ev) {
      var p = JSON.parse(ev.data);
      // queued -> running -> cancelling: the same live view, updated in place
      if (p.status !== shown && LIVE.indexOf(p.status) >= 0 && LIVE.indexOf(shown) >= 0) {
        var badge = document.getElementById("run-status");
        if (badge) { badge.textContent = p.status; badge.className = "status status-" + p.status; }
        shown = p.status;
      }
      // finished, failed, paused...: show the new page (without a flash message that is stale now)
      if (p.status !== shown) { src.close(); location.replace(location.pathname); return; }
      var fill = box.querySelector(".fill");
      if (fill) fill.style.width = Math.round(p.fraction * 100) + "%";
      box.querySelector(".progress-text").innerHTML = p.steps.map(function (s) {
        var cls = p.done.indexOf(s) >= 0 ? "done" : (s === p.current ? "now" : "");
        return '<span class="step ' + cls + '">' + s + "</span>";
      }).join(" ");
      box.querySelector("#activity").textContent = p.activity || p.note || "";
      var training = box.querySelector("#training");
      if (training) training.textContent = p.training || "";  // text: the script's own words
      box.querySelector("#loop-progress").textContent = loopLine(p.loop);
      box.querySelector("#budget").textContent = budgetLine(p.budget);
      var call = box.querySelector("#last-call");
      call.textContent = "";
      if (p.last_call) {
        var head = document.createElement("div");
        head.textContent = "last tool call (turn " + p.last_call.turn + "): " + p.last_call.tool + " " + p.last_call.args +
          (p.last_call.ok === false ? " — failed" : "");
        var pre = document.createElement("pre");
        pre.className = "log-tail";
        pre.textContent = p.last_call.tail;  // text, never HTML: tool output is the agent's
        call.appendChild(head);
        call.appendChild(pre);
      }
      var list = box.querySelector("#events");
      list.textContent = "";
      (p.events || []).forEach(function (e) { var li = document.createElement("li"); li.textContent = e; list.appendChild(li); });
      var tails = box.querySelectorAll(":scope > pre.log-tail");
      if (tails.length) tails[tails.length - 1].textContent = (p.log_tail || []).join("\n");
      box.setAttribute("data-updated", String(Date.now()));
    };
    src.addEventListener("end", function () { src.close(); location.replace(location.pathname); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-progress-url]").forEach(poll);
    document.querySelectorAll("[data-events-url]").forEach(follow);
  });
})();
