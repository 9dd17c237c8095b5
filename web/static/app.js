"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  function status(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }
  function fmtMs(ms) {
    if (ms < 1000) return ms.toFixed(1) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }
  function show(ev, button) {
    document.querySelectorAll(".ev.selected").forEach((b) => b.classList.remove("selected"));
    if (button) button.classList.add("selected");
    $("detail").hidden = false;
    $("detail-title").textContent = ev.type + " · " + (ev.service || "?") + " · +" + fmtMs(ev.offset_ms);
    $("json").textContent = JSON.stringify(ev, null, 2);
  }
  function render(tl) {
    const wf = $("waterfall");
    wf.replaceChildren();
    $("locations").replaceChildren();
    $("detail").hidden = true;
    const n = tl.events.length;
    $("summary").textContent = n + " events · " + tl.services.length + " services (" + tl.services.join(", ") +
      ") · kinds: " + tl.kinds.join(", ") + " · span " + fmtMs(tl.duration_ms) + " · start " + tl.start +
      (tl.truncated ? " · truncated" : "");
    const span = Math.max(tl.duration_ms, 1);
    const lanes = new Map();
    for (const s of tl.services) {
      const lane = el("div", { class: "lane", "data-service": s });
      lane.append(el("div", { class: "svc", title: s }, s || "(unknown)"));
      const track = el("div", { class: "track" });
      lane.append(track);
      wf.append(lane);
      lanes.set(s, track);
    }
    tl.events.forEach((ev, i) => {
      const b = el("button", { class: "ev " + (ev.kind || "other"), type: "button", "data-id": ev.id, "data-index": String(i),
        title: ev.type + " +" + fmtMs(ev.offset_ms) + "\n" + (ev.message || "") });
      b.textContent = ev.type;
      b.style.left = "calc(" + ((ev.offset_ms / span) * 85).toFixed(3) + "%)";
      b.addEventListener("click", () => show(ev, b));
      lanes.get(ev.service).append(b);
    });
    const axis = el("div", { class: "axis" });
    axis.append(el("div", {}, ""));
    const ticks = el("div", { class: "ticks" });
    for (let i = 0; i <= 4; i++) ticks.append(el("span", {}, "+" + fmtMs((span * i) / 4 / 0.85)));
    axis.append(ticks);
    wf.append(axis);
    const table = el("table", { class: "events" });
    const head = el("tr");
    for (const h of ["offset", "service", "type", "message"]) head.append(el("th", {}, h));
    table.append(head);
    tl.events.forEach((ev) => {
      const tr = el("tr", { "data-id": ev.id });
      tr.append(el("td", {}, "+" + fmtMs(ev.offset_ms)), el("td", {}, ev.service || ""), el("td", {}, ev.type), el("td", {}, ev.message || ""));
      tr.addEventListener("click", () => show(ev, null));
      table.append(tr);
    });
    wf.append(table);
    if (tl.locations && tl.locations.length) {
      const ul = el("ul");
      for (const l of tl.locations) ul.append(el("li", {}, l.where + " " + l.ref + " — " + l.detail));
      $("locations").append(el("h2", {}, "Also found in"), ul);
    }
  }
  async function trace(id) {
    id = id.trim();
    if (!id) return;
    status("Loading " + id + "…");
    try {
      const resp = await fetch("../v1/trace/" + encodeURIComponent(id));
      const body = await resp.json();
      if (resp.status === 404) {
        $("waterfall").replaceChildren(); $("summary").textContent = "";
        status("No event carries " + id + ".", true);
        return;
      }
      if (!resp.ok) { status("Error: " + (body.error || resp.status), true); return; }
      render(body);
      status("Trace " + id);
      document.body.dataset.loaded = id;
    } catch (e) {
      status("Error: " + e, true);
    }
  }
  $("form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("cid").value.trim();
    if (location.hash !== "#" + id) history.replaceState(null, "", "#" + encodeURIComponent(id));
    trace(id);
  });
  const initial = decodeURIComponent(location.hash.slice(1));
  if (initial) { $("cid").value = initial; trace(initial); }
})();
