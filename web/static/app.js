"use strict";
// The Sightline page: recent traces, a search view over /v1/search and a trace
// view over /v1/trace/{id}. Routes live in the address bar:
//   #/                    recent traces (or a hint when nothing was indexed)
//   #/search?q=&kind=...  search
//   #/trace/ID            one correlation ID (#ID, the older form, still works)
// Every string from the API is inserted with textContent, never as HTML.
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const views = ["recent-view", "search-view", "trace-view", "auth"];
  const TOKEN_KEY = "sightline.token";
  let pending = null; // the route a token prompt interrupted

  function status(text, isError) {
    $("status").textContent = text || "";
    $("status").className = isError ? "error" : "";
  }
  function showView(id) {
    for (const v of views) $(v).hidden = v !== id;
    for (const [nav, view] of [["nav-search", "search-view"], ["nav-recent", "recent-view"]]) {
      $(nav).classList.toggle("active", view === id);
    }
  }

  // ---------------------------------------------------------------- formatting
  function fmtMs(ms) {
    if (!isFinite(ms)) return "?";
    if (ms === 0) return "0 ms";
    if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
    if (ms < 1000) return ms.toFixed(1) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    if (ms < 3600000) return (ms / 60000).toFixed(1) + " min";
    return (ms / 3600000).toFixed(1) + " h";
  }
  // parseTime reads Go's RFC 3339 with nanoseconds (browsers take milliseconds).
  function parseTime(s) {
    if (!s) return null;
    const d = new Date(String(s).replace(/(\.\d{3})\d+/, "$1"));
    return isNaN(d.getTime()) ? null : d;
  }
  const pad = (n, w) => String(n).padStart(w || 2, "0");
  function fmtTime(s) {
    const d = parseTime(s);
    if (!d) return s || "";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }
  function ago(s) {
    const d = parseTime(s);
    if (!d) return "";
    const ms = Date.now() - d.getTime();
    if (ms < 0) return "in the future";
    if (ms < 60000) return Math.round(ms / 1000) + " s ago";
    if (ms < 3600000) return Math.round(ms / 60000) + " min ago";
    if (ms < 86400000) return Math.round(ms / 3600000) + " h ago";
    return Math.round(ms / 86400000) + " d ago";
  }
  function levelClass(ev) {
    const l = String(ev.level || "").toLowerCase();
    if (ev.kind === "dlq") return "lvl-rejected";
    if (/^(error|err|fatal|crit|critical|alert|emerg|panic)$/.test(l)) return "lvl-error";
    if (/^(warn|warning)$/.test(l)) return "lvl-warn";
    return "lvl-" + (l.replace(/[^a-z]/g, "") || "none");
  }
  const isProblem = (ev) => ev.kind === "dlq" || /lvl-(error|warn)/.test(levelClass(ev));
  function messageOf(ev) {
    if (ev.kind === "dlq" && ev.dlq) return "rejected by " + (ev.dlq.stage || "?") + ": " + (ev.dlq.reason || "");
    return ev.message || ev.name || "";
  }
  // Each service gets a stable colour from its name.
  function colour(name) {
    let h = 0;
    for (const c of String(name)) h = (h * 31 + c.codePointAt(0)) >>> 0;
    return "hsl(" + (h % 360) + ", 55%, 42%)";
  }
  const traceLink = (id) => el("a", { href: "#/trace/" + encodeURIComponent(id), class: "cid" }, id);

  // ---------------------------------------------------------------- API
  class NeedToken extends Error {}
  async function api(path) {
    const headers = {};
    const tok = sessionStorage.getItem(TOKEN_KEY);
    if (tok) headers.Authorization = "Bearer " + tok;
    const resp = await fetch("../" + path, { headers });
    if (resp.status === 401) throw new NeedToken();
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.status === 403) throw new Error("this token may not read traces (403)");
    return { status: resp.status, ok: resp.ok, body };
  }
  function askToken() {
    pending = location.hash;
    showView("auth");
    status("Authentication required.", true);
    $("token").focus();
  }
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    route(pending || location.hash);
  });
  async function guarded(fn) {
    try {
      await fn();
    } catch (e) {
      if (e instanceof NeedToken) return askToken();
      status("Error: " + (e && e.message ? e.message : e), true);
    }
  }

  // ---------------------------------------------------------------- recent traces
  async function recent() {
    showView("recent-view");
    $("recent").replaceChildren();
    $("hint").hidden = true;
    $("recent-range").textContent = "(last hour)";
    status("Loading recent traces…");
    const r = await api("v1/search?newest=true&limit=1000&from=1h");
    if (!r.ok) { status("Error: " + ((r.body && r.body.error) || r.status), true); return; }
    const groups = new Map();
    for (const ev of (r.body.events || []).slice().reverse()) { // newest first
      const id = ev.correlationid;
      if (!id) continue;
      let g = groups.get(id);
      if (!g) { g = { id, events: 0, services: new Set(), problems: 0, first: ev.time, last: ev.time }; groups.set(id, g); }
      g.events++;
      if (ev.service) g.services.add(ev.service);
      if (isProblem(ev)) g.problems++;
      if (ev.time < g.first) g.first = ev.time;
      if (ev.time > g.last) g.last = ev.time;
    }
    if (groups.size === 0) {
      $("hint").hidden = false;
      status("");
      document.body.dataset.loaded = "recent";
      return;
    }
    const head = el("tr");
    for (const h of ["correlation ID", "started", "", "services", "events", "errors / rejected", "span"]) head.append(el("th", {}, h));
    $("recent").append(head);
    let n = 0;
    for (const g of groups.values()) {
      if (++n > 50) break;
      const tr = el("tr", { class: g.problems ? "problem" : "" });
      const span = (parseTime(g.last) - parseTime(g.first)) || 0;
      tr.append(el("td"), el("td", {}, fmtTime(g.first)), el("td", { class: "muted" }, ago(g.first)),
        el("td", {}, [...g.services].join(", ")), el("td", { class: "num" }, g.events),
        el("td", { class: "num" }, g.problems || ""), el("td", { class: "num" }, fmtMs(span)));
      tr.firstChild.append(traceLink(g.id));
      $("recent").append(tr);
    }
    status(groups.size + " correlation IDs seen in the last hour" + (r.body.total > 1000 ? " (newest 1000 events)" : ""));
    document.body.dataset.loaded = "recent";
  }

  // ---------------------------------------------------------------- search
  const searchKeys = ["q", "service", "kind", "level", "correlation_id", "from", "to"];
  function fillSearchForm(params) {
    const f = $("search-form");
    for (const k of searchKeys) {
      if (params.has(k)) f.elements[k].value = params.get(k);
      else if (k !== "from") f.elements[k].value = "";
    }
  }
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    const f = $("search-form");
    for (const k of searchKeys) {
      const v = f.elements[k].value.trim();
      if (v || k === "from") p.set(k, v);
    }
    go("#/search?" + p.toString());
  });
  async function search(params) {
    showView("search-view");
    fillSearchForm(params);
    $("results").replaceChildren();
    $("search-summary").textContent = "";
    if ([...params.keys()].length === 0) { status("Search events by text, service, kind, level and time."); document.body.dataset.loaded = "search"; return; }
    const q = new URLSearchParams();
    for (const k of searchKeys) if (params.get(k)) q.set(k, params.get(k));
    q.set("newest", "true");
    q.set("limit", "200");
    status("Searching…");
    const r = await api("v1/search?" + q.toString());
    if (!r.ok) { status("Search failed: " + ((r.body && r.body.error) || r.status), true); return; }
    const evs = (r.body.events || []).slice().reverse();
    $("search-summary").textContent = r.body.total + " matching events" + (r.body.total > evs.length ? ", newest " + evs.length + " shown" : "");
    if (evs.length) {
      const head = el("tr");
      for (const h of ["time", "service", "kind", "level", "type", "message", "correlation ID"]) head.append(el("th", {}, h));
      $("results").append(head);
    }
    for (const ev of evs) {
      const tr = el("tr", { class: "hit " + levelClass(ev), "data-id": ev.id });
      const cid = el("td");
      if (ev.correlationid) cid.append(traceLink(ev.correlationid));
      tr.append(el("td", { class: "time" }, fmtTime(ev.time)), el("td", {}, ev.service || ""), el("td", {}, ev.kind),
        el("td", {}, ev.kind === "dlq" ? "rejected" : (ev.level || "")), el("td", {}, ev.type), el("td", { class: "msg" }, messageOf(ev)), cid);
      $("results").append(tr);
    }
    status(evs.length ? "" : "No event matches.");
    document.body.dataset.loaded = "search";
  }

  // ---------------------------------------------------------------- trace
  function clearTrace() {
    $("summary").replaceChildren();
    $("trace-filters").replaceChildren();
    $("waterfall").replaceChildren();
    $("locations").replaceChildren();
    $("detail").hidden = true;
    $("json").textContent = "";
    delete document.body.dataset.loaded;
  }
  function show(ev, row) {
    document.querySelectorAll(".row.selected").forEach((b) => b.classList.remove("selected"));
    if (row) row.classList.add("selected");
    $("detail").hidden = false;
    $("detail-title").textContent = ev.type + " · " + (ev.service || "?") + " · " + fmtTime(ev.time) + " (+" + fmtMs(ev.offset_ms) + ")";
    $("json").textContent = JSON.stringify(ev, null, 2);
  }
  function applyFilters() {
    const off = new Set([...document.querySelectorAll("#trace-filters input:not(:checked)")].map((i) => i.dataset.key));
    const onlyProblems = !off.has("only:problems");
    let shown = 0;
    document.querySelectorAll("#waterfall .row").forEach((r) => {
      const hide = off.has("service:" + r.dataset.service) || off.has("kind:" + r.dataset.kind) || (onlyProblems && !r.classList.contains("problem"));
      r.hidden = !!hide;
      if (!hide) shown++;
    });
    $("trace-filters").dataset.shown = String(shown);
  }
  function filterBox(key, label, checked, dotColour) {
    const l = el("label", { class: "chip" });
    const i = el("input", { type: "checkbox", "data-key": key });
    i.checked = checked;
    i.addEventListener("change", applyFilters);
    l.append(i);
    if (dotColour) { const d = el("span", { class: "dot" }); d.style.background = dotColour; l.append(d); }
    l.append(document.createTextNode(label));
    return l;
  }
  function render(tl) {
    const evs = tl.events || [];
    const problems = evs.filter(isProblem).length;
    const rejected = evs.filter((e) => e.kind === "dlq").length;
    const sum = $("summary");
    sum.append(el("h2", {}, "Trace " + tl.correlation_id));
    sum.append(el("p", {}, evs.length + " events · " + tl.services.length + " services · span " + fmtMs(tl.duration_ms) +
      " · started " + fmtTime(tl.start) + " (" + ago(tl.start) + ", " + (parseTime(tl.start) || { toISOString: () => tl.start }).toISOString() + ")" +
      (problems ? " · " + (problems - rejected) + " errors/warnings, " + rejected + " rejected" : "") + (tl.truncated ? " · truncated" : "")));

    const f = $("trace-filters");
    const services = tl.services.map((s) => s || "");
    f.append(el("span", { class: "muted" }, "services:"));
    for (const s of services) f.append(filterBox("service:" + s, s || "(none)", true, colour(s)));
    f.append(el("span", { class: "muted" }, "kinds:"));
    for (const k of tl.kinds) f.append(filterBox("kind:" + k, k, true));
    f.append(filterBox("only:problems", "errors and rejections only", false));

    const wf = $("waterfall");
    const span = Math.max(tl.duration_ms, 0.001);
    const axis = el("div", { class: "row axis" });
    axis.append(el("div", { class: "label" }, "service · type"));
    const ticks = el("div", { class: "track ticks" });
    for (let i = 0; i <= 4; i++) {
      const t = el("span", {}, "+" + fmtMs((span * i) / 4));
      t.style.left = (i * 25) + "%";
      ticks.append(t);
    }
    axis.append(ticks);
    wf.append(axis);
    evs.forEach((ev, i) => {
      const svc = ev.service || "";
      const row = el("div", {
        class: "row " + levelClass(ev) + " kind-" + (ev.kind || "other") + (isProblem(ev) ? " problem" : ""),
        "data-id": ev.id, "data-index": String(i), "data-service": svc, "data-kind": ev.kind || "", role: "button", tabindex: "0",
      });
      const label = el("div", { class: "label", title: svc + " · " + ev.type });
      const dot = el("span", { class: "dot" });
      dot.style.background = colour(svc);
      label.append(dot, el("span", { class: "svc" }, svc || "(none)"), el("span", { class: "type" }, ev.type));
      if (ev.kind === "dlq") label.append(el("span", { class: "badge rejected" }, "rejected"));
      else if (/lvl-(error|warn)/.test(levelClass(ev))) label.append(el("span", { class: "badge " + levelClass(ev) }, ev.level));
      const track = el("div", { class: "track" });
      const pct = Math.min(100, Math.max(0, (ev.offset_ms / span) * 100));
      const mark = el("span", { class: "mark" });
      mark.style.left = "calc(" + pct.toFixed(4) + "% - " + (pct * 0.08).toFixed(2) + "px)";
      mark.style.background = ev.kind === "dlq" ? "" : colour(svc);
      const text = el("span", { class: "offset" }, "+" + fmtMs(ev.offset_ms) + "  " + messageOf(ev));
      if (pct > 60) { text.classList.add("left"); text.style.right = "calc(" + (100 - pct).toFixed(4) + "% + 14px)"; } else text.style.left = "calc(" + pct.toFixed(4) + "% + 14px)";
      track.append(mark, text);
      row.append(label, track);
      row.addEventListener("click", () => show(ev, row));
      row.addEventListener("keydown", (k) => { if (k.key === "Enter" || k.key === " ") { k.preventDefault(); show(ev, row); } });
      wf.append(row);
    });
    const locs = tl.locations || [];
    if (locs.length || (tl.locate_errors || []).length) {
      const ul = el("ul");
      for (const l of locs) ul.append(el("li", {}, l.where + " " + l.ref + " — " + l.detail));
      for (const e of tl.locate_errors || []) ul.append(el("li", { class: "error" }, e));
      $("locations").append(el("h2", {}, "Also found in"), ul);
    }
    applyFilters();
  }
  async function trace(id) {
    showView("trace-view");
    clearTrace();
    $("cid").value = id;
    if (!id) { status("Paste a correlation ID.", true); return; }
    status("Loading " + id + "…");
    const r = await api("v1/trace/" + encodeURIComponent(id));
    if (r.status === 404) {
      status("No event carries the correlation ID " + JSON.stringify(id) + ".", true);
      document.body.dataset.loaded = "missing";
      return;
    }
    if (!r.ok) { status("Error: " + ((r.body && r.body.error) || r.status), true); return; }
    render(r.body);
    status("");
    document.body.dataset.loaded = id;
  }

  // ---------------------------------------------------------------- routing
  function go(hash) {
    if (location.hash === hash) route(hash);
    else location.hash = hash; // hashchange routes
  }
  function route(hash) {
    hash = hash === undefined ? location.hash : hash;
    const h = hash.replace(/^#/, "");
    const dec = (s) => { try { return decodeURIComponent(s); } catch (e) { return s; } };
    if (h === "" || h === "/") return guarded(recent);
    if (h === "/search" || h.startsWith("/search?")) return guarded(() => search(new URLSearchParams(h.slice("/search".length).replace(/^\?/, ""))));
    if (h.startsWith("/trace/")) return guarded(() => trace(dec(h.slice("/trace/".length)).trim()));
    if (!h.startsWith("/")) return guarded(() => trace(dec(h).trim())); // the older #ID links
    status("Unknown page " + JSON.stringify(hash) + ".", true);
  }
  $("form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("cid").value.trim();
    if (id) go("#/trace/" + encodeURIComponent(id));
  });
  window.addEventListener("hashchange", () => route());
  route();
})();
