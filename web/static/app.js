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
  // n things: "1 event", "2 events".
  const count = (n, one, many) => n + " " + (n === 1 ? one : (many || one + "s"));
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
  const isProblem = (ev) => ev.kind === "dlq" || levelClass(ev) === "lvl-error"; // errors and rejections, not warnings
  function messageOf(ev) {
    if (ev.kind === "dlq" && ev.dlq) return "rejected by " + (ev.dlq.stage || "?") + ": " + (ev.dlq.reason || "");
    return ev.message || ev.name || "";
  }
  // Each service gets a stable colour from its name; an event with no
  // service (a metric, a metric's dead letter) a neutral grey, so that it
  // is never taken for a problem's red.
  // Within a trace, no two services share a hue: a name's hue is taken
  // from its hash unless it lies within 30 degrees of a service already
  // given one (in name order), then it moves on by the golden angle, so
  // "gateway" (148) and "inventory" (156) no longer look alike.
  const NO_SERVICE = "#6b7785";
  const hues = new Map();
  function hashHue(name) {
    let h = 0;
    for (const c of String(name)) h = (h * 31 + c.codePointAt(0)) >>> 0;
    return h % 360;
  }
  function assignHues(names) {
    for (const name of [...names].filter((n) => n && !hues.has(n)).sort()) {
      let h = hashHue(name);
      const taken = [...hues.values()];
      const near = (x) => taken.some((t) => Math.min(Math.abs(t - x), 360 - Math.abs(t - x)) < 30);
      for (let i = 0; i < 12 && near(h); i++) h = (h + 137.5) % 360;
      hues.set(name, h);
    }
  }
  function colour(name) {
    if (!name) return NO_SERVICE;
    return "hsl(" + (hues.has(name) ? hues.get(name) : hashHue(name)) + ", 55%, 42%)";
  }
  const traceLink = (id) => el("a", { href: "#/trace/" + encodeURIComponent(id), class: "cid" }, id);

  // ---------------------------------------------------------------- API
  // Every route gets a fresh sequence number and AbortController: a
  // response that arrives after the user moved on is dropped, never drawn.
  class NeedToken extends Error {}
  class Stale extends Error {}
  let seq = 0, ctrl = null;
  function begin() {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const mine = ++seq, signal = ctrl.signal;
    return {
      signal,
      check() { if (mine !== seq) throw new Stale(); },
      async api(path) {
        const r = await api(path, signal);
        if (mine !== seq) throw new Stale();
        return r;
      },
    };
  }
  async function api(path, signal) {
    const headers = {};
    const tok = sessionStorage.getItem(TOKEN_KEY);
    if (tok) headers.Authorization = "Bearer " + tok;
    const resp = await fetch("../" + path, { headers, signal });
    if (resp.status === 401) throw new NeedToken();
    let body = null;
    try { body = await resp.json(); } catch (e) { if (signal && signal.aborted) throw new Stale(); body = null; }
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
    const req = begin();
    try {
      await fn(req);
    } catch (e) {
      if (e instanceof Stale || (e && e.name === "AbortError")) return;
      if (e instanceof NeedToken) return askToken();
      status("Error: " + (e && e.message ? e.message : e), true);
    }
  }

  // ---------------------------------------------------------------- recent traces
  // GET /v1/traces groups in the index, one row per correlation ID with its
  // real counts; the form above it searches traces by service, attribute
  // and duration.
  const traceKeys = ["service", "attr", "min_duration", "max_duration", "from", "refresh"];
  $("traces-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const k of traceKeys) {
      const v = $("traces-form").elements[k].value.trim();
      if (v || k === "from") p.set(k, v);
    }
    go("#/?" + p.toString());
  });
  async function recent(req, params, refresh) {
    showView("recent-view");
    const f = $("traces-form");
    const from = params.has("from") ? params.get("from") : "1h";
    if (!refresh) {
      $("recent").replaceChildren();
      $("hint").hidden = true;
      for (const k of traceKeys) f.elements[k].value = params.has(k) ? params.get(k) : (k === "from" ? "1h" : "");
      $("recent-range").textContent = from ? "(since " + from + ")" : "(all time)";
      status("Loading traces…");
    }
    const q = new URLSearchParams();
    q.set("from", from);
    q.set("limit", "50");
    for (const k of ["service", "min_duration", "max_duration"]) if (params.get(k)) q.set(k, params.get(k));
    for (const a of (params.get("attr") || "").split(",")) if (a.trim()) q.append("attr", a.trim());
    const r = await req.api("v1/traces?" + q.toString());
    // The user started reading while it loaded: keep what is drawn.
    if (refresh && pauseReason("recent-view")) return armRefresh("recent-view", params);
    $("recent").replaceChildren();
    $("hint").hidden = true;
    if (!r.ok) { status("Error: " + ((r.body && r.body.error) || r.status), true); return; }
    const list = r.body.traces || [];
    if (list.length === 0) {
      if ([...params.keys()].length === 0) $("hint").hidden = false;
      status([...params.keys()].length ? "No trace matches." : "");
      document.body.dataset.loaded = "recent";
      return;
    }
    const head = el("tr");
    for (const h of ["correlation ID", "started", "", "services", "events", "errors", "warnings", "rejected", "span"]) head.append(el("th", {}, h));
    $("recent").append(head);
    for (const g of list) {
      const tr = el("tr", { class: "trace-row" + (g.errors || g.rejected ? " problem" : ""), "data-id": g.correlation_id });
      tr.append(el("td"), el("td", { class: "time" }, fmtTime(g.start)), el("td", { class: "muted" }, ago(g.start)),
        el("td", {}, (g.services || []).join(", ")), el("td", { class: "num" }, g.events),
        el("td", { class: "num errors" }, g.errors || ""), el("td", { class: "num warnings" }, g.warnings || ""),
        el("td", { class: "num rejected" }, g.rejected || ""), el("td", { class: "num span" }, fmtMs(g.duration_ms)));
      tr.firstChild.append(traceLink(g.correlation_id));
      $("recent").append(tr);
    }
    status(count(r.body.total, "correlation ID") + (from ? " since " + from : "") + (r.body.total > list.length ? ", the " + list.length + " with the newest events shown" : ""));
    document.body.dataset.loaded = "recent";
    armRefresh("recent-view", params);
  }

  // ---------------------------------------------------------------- search
  // The query (words, field:value, AND / OR / NOT, parentheses) is parsed
  // by the API; a syntax error comes back as a 400 naming its position.
  const searchKeys = ["q", "service", "kind", "level", "correlation_id", "from", "to", "refresh"];
  let searchState = null; // {base, next, total, capped, histogram, shown, pages}
  function fillSearchForm(params) {
    const f = $("search-form");
    for (const k of searchKeys) {
      if (params.has(k)) f.elements[k].value = params.get(k);
      else f.elements[k].value = k === "from" ? "1h" : "";
    }
  }
  function searchParams() {
    const p = new URLSearchParams();
    const f = $("search-form");
    for (const k of searchKeys) {
      const v = f.elements[k].value.trim();
      if (v || k === "from") p.set(k, v);
    }
    return p;
  }
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    go("#/search?" + searchParams().toString());
  });
  // Changing an interval applies it at once (it is part of the address).
  for (const [sel, form, params, prefix] of [["s-refresh", "search-form", searchParams, "#/search?"], ["t-refresh", "traces-form", null, "#/?"]]) {
    $(sel).addEventListener("change", () => {
      if (params) return go(prefix + params().toString());
      $(form).requestSubmit();
    });
  }
  function resultRow(ev) {
    const tr = el("tr", { class: "hit " + levelClass(ev), "data-id": ev.id, tabindex: "0", title: "click to show the event" });
    const cid = el("td");
    if (ev.correlationid) cid.append(traceLink(ev.correlationid));
    tr.append(el("td", { class: "time" }, fmtTime(ev.time)), el("td", {}, ev.service || ""), el("td", {}, ev.kind),
      el("td", {}, ev.kind === "dlq" ? "rejected" : (ev.level || "")), el("td", {}, ev.type), el("td", { class: "msg" }, messageOf(ev)), cid);
    const toggle = (e) => {
      if (e.target.closest("a")) return;
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("expanded")) { next.remove(); return; }
      const x = el("tr", { class: "expanded" });
      const td = el("td", { colspan: "7" });
      td.append(el("pre", {}, JSON.stringify(ev, null, 2)));
      x.append(td);
      tr.after(x);
    };
    tr.addEventListener("click", toggle);
    tr.addEventListener("keydown", (k) => { if (k.key === "Enter") toggle(k); });
    return tr;
  }
  async function searchPage(req, st) {
    const q = new URLSearchParams(st.base);
    if (st.next) q.set("after", st.next);
    else q.set("histogram", "40");
    const r = await req.api("v1/search?" + q.toString());
    if (!r.ok) throw new Error("search failed: " + ((r.body && r.body.error) || r.status));
    if (r.body.histogram) st.histogram = r.body.histogram;
    st.total = r.body.total;
    st.capped = r.body.total_capped;
    st.next = r.body.next ? r.body.next.time + "|" + r.body.next.id : null;
    st.pages = (st.pages || 0) + 1;
    // The API returns the newest page oldest first: draw the newest first.
    return (r.body.events || []).slice().reverse();
  }
  async function search(req, params, refresh) {
    showView("search-view");
    if (!refresh) {
      fillSearchForm(params);
      $("results").replaceChildren();
      $("search-summary").textContent = "";
      $("s-more").hidden = true;
      $("histogram").hidden = true;
    }
    if ([...params.keys()].filter((k) => k !== "refresh").length === 0) {
      status("Search events: words, field:value (host, site, service, level, kind, type, data.…), AND, OR, NOT, parentheses.");
      document.body.dataset.loaded = "search";
      return;
    }
    const base = new URLSearchParams();
    for (const k of searchKeys) if (k !== "refresh" && params.get(k)) base.set(k, params.get(k));
    base.set("newest", "true");
    base.set("limit", "200");
    const st = { base, shown: 0 };
    if (!refresh) status("Searching…");
    const evs = await searchPage(req, st);
    // The user started reading while it loaded: keep what is drawn.
    if (refresh && pauseReason("search-view")) return armRefresh("search-view", params);
    searchState = st;
    $("results").replaceChildren();
    const head = el("tr");
    for (const h of ["time", "service", "kind", "level", "type", "message", "correlation ID"]) head.append(el("th", {}, h));
    if (evs.length) $("results").append(head);
    for (const ev of evs) $("results").append(resultRow(ev));
    st.shown = evs.length;
    summarize(st);
    drawHistogram(st);
    status(evs.length ? "" : "No event matches.");
    performance.mark("sightline:search-drawn"); // the page's timing test
    document.body.dataset.loaded = "search";
    armRefresh("search-view", params);
  }
  // drawHistogram draws the counts over time; a click on a bar searches
  // that bar's time range.
  function drawHistogram(st) {
    const c = $("histogram");
    const buckets = st.histogram || [];
    if (!buckets.length) { c.hidden = true; return; }
    c.hidden = false;
    const w = Math.max(200, c.clientWidth);
    c.width = w;
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, c.height);
    const max = Math.max(1, ...buckets.map((b) => b.count));
    const bw = w / buckets.length;
    buckets.forEach((b, i) => {
      if (!b.count) return;
      const h = Math.max(2, Math.round((b.count / max) * (c.height - 14)));
      g.fillStyle = b.capped ? "#7a93ad" : "#2b5078";
      g.fillRect(Math.floor(i * bw) + 1, c.height - 12 - h, Math.max(1, Math.floor(bw) - 2), h);
    });
    g.fillStyle = "#555";
    g.font = "11px system-ui, sans-serif";
    g.fillText(fmtTime(buckets[0].from), 2, c.height - 1);
    const end = st.base.get("to") || "now";
    g.textAlign = "right";
    g.fillText(end === "now" ? "now" : end, w - 2, c.height - 1);
    c.dataset.counts = buckets.map((b) => b.count).join(",");
    c.onclick = (e) => {
      const r = c.getBoundingClientRect();
      const i = Math.min(buckets.length - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * buckets.length)));
      const p = searchParams();
      p.set("from", buckets[i].from);
      p.set("to", i + 1 < buckets.length ? buckets[i + 1].from : new Date().toISOString());
      go("#/search?" + p.toString());
    };
  }
  function summarize(st) {
    $("search-summary").textContent = (st.capped ? "at least " : "") + count(st.total || 0, "matching event") + ", newest " + st.shown + " shown";
    $("s-more").hidden = !st.next;
  }
  $("s-more").addEventListener("click", () => guarded(async (req) => {
    const st = searchState;
    if (!st) return;
    status("Loading older results…");
    const evs = await searchPage(req, st);
    if (st !== searchState) return;
    for (const ev of evs) $("results").append(resultRow(ev));
    st.shown += evs.length;
    summarize(st);
    status("");
    document.body.dataset.loaded = "search-more";
  }));

  // ---------------------------------------------------------------- auto-refresh
  // Off by default; the interval is part of the address (refresh=10s). A
  // refresh re-runs the view's request like any route (a newer request
  // aborts it, its answer is dropped if the user moved on), and is held
  // back while the user reads: the tab hidden, the page scrolled (or
  // scrolled in the last 2 s), a result row open, older results loaded.
  const INTERVALS = { "2s": 2000, "5s": 5000, "10s": 10000, "30s": 30000, "1m": 60000 };
  let refreshTimer = null, lastScroll = 0;
  window.addEventListener("scroll", () => { lastScroll = Date.now(); }, { passive: true });
  function pauseReason(view) {
    if (document.hidden) return "the tab is hidden";
    if (window.scrollY > 0 || Date.now() - lastScroll < 2000) return "the page is scrolled";
    if (view === "search-view" && document.querySelector("#results tr.expanded")) return "a row is open";
    if (view === "search-view" && searchState && searchState.pages > 1) return "older results are loaded";
    return "";
  }
  function armRefresh(view, params) {
    clearInterval(refreshTimer);
    refreshTimer = null;
    const label = $(view === "search-view" ? "s-refresh-state" : "t-refresh-state");
    label.textContent = "";
    const ms = INTERVALS[params.get("refresh") || ""];
    if (!ms) return;
    const hash = location.hash;
    const due = Date.now() + ms;
    label.textContent = "refreshing every " + params.get("refresh");
    refreshTimer = setInterval(() => {
      if (location.hash !== hash || $(view).hidden) { clearInterval(refreshTimer); refreshTimer = null; return; }
      const why = pauseReason(view);
      label.textContent = why ? "auto-refresh paused: " + why : "refreshing every " + params.get("refresh");
      if (why || Date.now() < due) return;
      clearInterval(refreshTimer);
      refreshTimer = null;
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
      route(hash, true);
    }, 250);
  }

  // ---------------------------------------------------------------- trace
  // The trace view draws only the rows in the scrolled window (a trace of
  // 100,000 events has 100,000 rows of 26 px, ~40 in the DOM at a time),
  // under a sticky time axis. The minimap above shows where the events are
  // over the whole trace; dragging on it zooms the axis to a range.
  const T = { tl: null, evs: [], rows: [], off: new Set(), only: false, grouped: false, collapsed: new Set(), zoom: null, selected: null };
  function clearTrace() {
    $("summary").replaceChildren();
    $("trace-filters").replaceChildren();
    $("axis").replaceChildren();
    $("wf-body").replaceChildren();
    $("wf-body").style.height = "0px";
    $("zoombar").hidden = true;
    $("locations").replaceChildren();
    $("detail").hidden = true;
    $("json").textContent = "";
    Object.assign(T, { tl: null, evs: [], rows: [], off: new Set(), only: false, grouped: false, collapsed: new Set(), zoom: null, selected: null, loading: false });
    delete document.body.dataset.loaded;
    delete document.body.dataset.complete;
  }
  function show(ev) {
    T.selected = ev.id;
    draw();
    $("detail").hidden = false;
    $("detail-title").textContent = ev.type + " · " + (ev.service || "?") + " · " + fmtTime(ev.time) + " (+" + fmtMs(ev.offset_ms) + ")";
    $("json").textContent = JSON.stringify(ev, null, 2);
  }
  // layout lists what the waterfall holds: events that pass the filters,
  // in time order or under a header per service.
  function layout() {
    const keep = (ev) => !T.off.has("service:" + ev.service) && !T.off.has("kind:" + ev.kind) && (!T.only || ev.problem);
    const rows = [];
    if (!T.grouped) {
      for (const ev of T.evs) if (keep(ev)) rows.push(ev);
    } else {
      const by = new Map();
      for (const s of T.tl.services) by.set(s || "", []);
      for (const ev of T.evs) {
        if (!keep(ev)) continue;
        // An event with no service (a metric's dead letter) groups under "(none)".
        const k = ev.service || "";
        if (!by.has(k)) by.set(k, []);
        by.get(k).push(ev);
      }
      for (const [svc, list] of by) {
        if (!list.length) continue;
        rows.push({ group: svc, n: list.length, problems: list.filter((e) => e.problem).length });
        if (!T.collapsed.has(svc)) for (const ev of list) rows.push(ev);
      }
    }
    T.rows = rows;
    $("trace-filters").dataset.shown = String(rows.filter((r) => r.group === undefined).length);
    $("wf-body").style.height = rows.length * ROW + "px";
    draw();
  }
  const ROW = 26;
  // The axis: [a, b] ms of the trace (all of it, or the zoomed range).
  function range() {
    const span = Math.max(T.tl.duration_ms, 0.001);
    return T.zoom || [0, span];
  }
  const pctOf = (ms, r) => ((ms - r[0]) / Math.max(r[1] - r[0], 0.000001)) * 100;
  function drawAxis() {
    const r = range();
    const axis = $("axis");
    axis.replaceChildren();
    axis.append(el("div", { class: "label" }, "service · type"));
    const track = el("div", { class: "track" });
    const lane = el("div", { class: "lane ticks" });
    for (let i = 0; i <= 4; i++) {
      const ms = r[0] + ((r[1] - r[0]) * i) / 4;
      const t = el("div", { class: "tick" + (i === 4 ? " last" : ""), "data-ms": String(ms) });
      t.style.left = (i * 25) + "%";
      t.append(el("span", {}, "+" + fmtMs(ms)));
      lane.append(t);
    }
    track.append(lane);
    axis.append(track);
  }
  function rowEl(item, top) {
    if (item.group !== undefined) {
      const g = el("div", { class: "row group", "data-group": item.group, role: "button", tabindex: "0", "aria-expanded": String(!T.collapsed.has(item.group)) });
      g.style.top = top + "px";
      const label = el("div", { class: "label" });
      const dot = el("span", { class: "dot" });
      dot.style.background = colour(item.group);
      label.append(el("span", { class: "caret" }, T.collapsed.has(item.group) ? "▸" : "▾"), dot, el("span", { class: "svc" }, item.group || "(none)"),
        el("span", { class: "muted" }, count(item.n, "event") + (item.problems ? ", " + count(item.problems, "problem") : "")));
      g.append(label, el("div", { class: "track" }));
      const toggle = () => { if (T.collapsed.has(item.group)) T.collapsed.delete(item.group); else T.collapsed.add(item.group); layout(); };
      g.addEventListener("click", toggle);
      g.addEventListener("keydown", (k) => { if (k.key === "Enter" || k.key === " ") { k.preventDefault(); toggle(); } });
      return g;
    }
    const ev = item;
    const r = range();
    const row = el("div", {
      class: "row " + ev.cls + " kind-" + (ev.kind || "other") + (ev.problem ? " problem" : "") + (T.selected === ev.id ? " selected" : ""),
      "data-id": ev.id, "data-index": String(ev.i), "data-offset": String(ev.offset_ms), "data-service": ev.service, "data-kind": ev.kind || "", role: "button", tabindex: "0",
    });
    row.style.top = top + "px";
    const label = el("div", { class: "label", title: ev.service + " · " + ev.type });
    const dot = el("span", { class: "dot" });
    dot.style.background = colour(ev.service);
    label.append(dot, el("span", { class: "svc" }, ev.service || "(none)"), el("span", { class: "type" }, ev.type));
    if (ev.kind === "dlq") label.append(el("span", { class: "badge rejected" }, "rejected"));
    else if (/lvl-(error|warn)/.test(ev.cls)) label.append(el("span", { class: "badge " + ev.cls }, ev.level));
    const track = el("div", { class: "track" });
    const lane = el("div", { class: "lane" });
    const pct = pctOf(ev.offset_ms, r);
    const text = el("span", { class: "offset" }, "+" + fmtMs(ev.offset_ms) + "  " + messageOf(ev));
    if (pct >= -0.01 && pct <= 100.01) {
      const mark = el("span", { class: "mark" });
      mark.style.left = pct.toFixed(4) + "%";
      mark.style.background = ev.kind === "dlq" ? "" : colour(ev.service);
      lane.append(mark);
    }
    const at = Math.min(100, Math.max(0, pct));
    if (at > 60) { text.classList.add("left"); text.style.right = "calc(" + (100 - at).toFixed(4) + "% + 10px)"; } else text.style.left = "calc(" + at.toFixed(4) + "% + 10px)";
    lane.append(text);
    track.append(lane);
    row.append(label, track);
    row.addEventListener("click", () => show(ev));
    row.addEventListener("keydown", (k) => { if (k.key === "Enter" || k.key === " ") { k.preventDefault(); show(ev); } });
    return row;
  }
  // draw puts the rows of the scrolled window (and a margin) in the DOM.
  function draw() {
    if (!T.tl) return;
    const wf = $("waterfall");
    const first = Math.max(0, Math.floor(wf.scrollTop / ROW) - 10);
    const last = Math.min(T.rows.length, Math.ceil((wf.scrollTop + wf.clientHeight) / ROW) + 10);
    const out = [];
    for (let i = first; i < last; i++) out.push(rowEl(T.rows[i], i * ROW));
    $("wf-body").replaceChildren(...out);
  }
  let drawQueued = false;
  $("waterfall").addEventListener("scroll", () => {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => { drawQueued = false; draw(); });
  });
  window.addEventListener("resize", () => { if (T.tl) { drawMinimap(); draw(); } });
  function drawMinimap() {
    const c = $("minimap");
    const w = Math.max(100, c.clientWidth);
    c.width = w;
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, c.height);
    const span = Math.max(T.tl.duration_ms, 0.001);
    const counts = new Uint32Array(w), probs = new Uint32Array(w);
    for (const ev of T.evs) {
      const x = Math.min(w - 1, Math.floor((ev.offset_ms / span) * (w - 1)));
      counts[x]++;
      if (ev.problem) probs[x]++;
    }
    let max = 1;
    for (const n of counts) max = Math.max(max, n);
    for (let x = 0; x < w; x++) {
      if (!counts[x]) continue;
      const h = Math.max(3, Math.round((Math.log1p(counts[x]) / Math.log1p(max)) * (c.height - 4)));
      g.fillStyle = probs[x] ? "#c0392b" : "#2b5078";
      g.fillRect(x, c.height - h, 1, h);
    }
    const z = $("zoomwin");
    if (T.zoom) {
      const l = c.offsetLeft + (T.zoom[0] / span) * c.clientWidth, r = c.offsetLeft + (T.zoom[1] / span) * c.clientWidth;
      z.style.left = l + "px";
      z.style.width = Math.max(2, r - l) + "px";
      z.hidden = false;
      $("zoomtext").textContent = "showing +" + fmtMs(T.zoom[0]) + " to +" + fmtMs(T.zoom[1]) + " of " + fmtMs(span);
      $("zoomreset").hidden = false;
    } else {
      z.hidden = true;
      $("zoomtext").textContent = "drag on the strip above or on the axis to zoom the time axis";
      $("zoomreset").hidden = true;
    }
  }
  function setZoom(z) {
    T.zoom = z;
    drawMinimap();
    drawAxis();
    draw();
  }
  (function minimapDrag() {
    const c = $("minimap");
    let from = null;
    const ms = (e) => {
      const b = c.getBoundingClientRect();
      return Math.min(1, Math.max(0, (e.clientX - b.left) / b.width)) * Math.max(T.tl.duration_ms, 0.001);
    };
    c.addEventListener("mousedown", (e) => { if (T.tl) { from = ms(e); e.preventDefault(); } });
    window.addEventListener("mouseup", (e) => {
      if (from === null || !T.tl) return;
      const to = ms(e);
      const a = Math.min(from, to), b = Math.max(from, to);
      from = null;
      if (b - a > T.tl.duration_ms / 1000) setZoom([a, b]);
    });
    c.addEventListener("dblclick", () => { if (T.tl) setZoom(null); });
    // Dragging on the axis zooms further into the range it shows.
    let axFrom = null;
    const axMs = (e) => {
      const lane = $("axis").querySelector(".lane").getBoundingClientRect(), r = range();
      return r[0] + Math.min(1, Math.max(0, (e.clientX - lane.left) / lane.width)) * (r[1] - r[0]);
    };
    $("axis").addEventListener("mousedown", (e) => { if (T.tl && e.target.closest(".track")) { axFrom = axMs(e); e.preventDefault(); } });
    window.addEventListener("mouseup", (e) => {
      if (axFrom === null || !T.tl) return;
      const to = axMs(e), r = range();
      const a = Math.min(axFrom, to), b = Math.max(axFrom, to);
      axFrom = null;
      if (b - a > (r[1] - r[0]) / 1000) setZoom([a, b]);
    });
    $("zoomreset").addEventListener("click", () => setZoom(null));
  })();
  function filterBox(key, label, checked, dotColour, onChange) {
    const l = el("label", { class: "chip" });
    const i = el("input", { type: "checkbox", "data-key": key });
    i.checked = checked;
    i.addEventListener("change", () => onChange(i.checked));
    l.append(i);
    if (dotColour) { const d = el("span", { class: "dot" }); d.style.background = dotColour; l.append(d); }
    l.append(document.createTextNode(label));
    return l;
  }
  // prepare marks each event of a page with what drawing needs.
  function prepare(evs, from) {
    evs.forEach((ev, i) => {
      ev.i = from + i;
      ev.service = ev.service || "";
      ev.cls = levelClass(ev);
      ev.problem = isProblem(ev);
    });
  }
  function summarizeTrace() {
    const tl = T.tl, evs = T.evs;
    let errors = 0, warnings = 0, rejected = 0;
    for (const ev of evs) {
      if (ev.kind === "dlq") rejected++;
      else if (ev.cls === "lvl-error") errors++;
      else if (ev.cls === "lvl-warn") warnings++;
    }
    const sum = $("summary");
    sum.replaceChildren(el("h2", {}, "Trace " + tl.correlation_id));
    const loading = T.loading ? " (loading: " + evs.length + " of " + (tl.total_capped ? "over " : "") + tl.total + ")" : "";
    sum.append(el("p", {}, count(evs.length, "event") + loading + " · " + count(tl.services.length, "service") + " · span " + fmtMs(tl.duration_ms) +
      " · started " + fmtTime(tl.start) + " (" + ago(tl.start) + ", " + (parseTime(tl.start) || { toISOString: () => tl.start }).toISOString() + ")" +
      (errors || warnings || rejected ? " · " + count(errors, "error") + ", " + count(warnings, "warning") + ", " + rejected + " rejected" : "") + (tl.truncated ? " · truncated" : "")));
  }
  function filterBar() {
    const tl = T.tl;
    const f = $("trace-filters");
    f.replaceChildren();
    const toggleKey = (key) => (on) => { if (on) T.off.delete(key); else T.off.add(key); layout(); };
    f.append(el("span", { class: "muted" }, "services:"));
    // Events with no service get a box of their own ("(none)"), so they can be hidden too.
    const names = tl.services.map((x) => x || "");
    if (!names.includes("") && T.evs.some((ev) => !ev.service)) names.push("");
    for (const s of names) f.append(filterBox("service:" + s, s || "(none)", !T.off.has("service:" + s), colour(s), toggleKey("service:" + s)));
    f.append(el("span", { class: "muted" }, "kinds:"));
    for (const k of tl.kinds) f.append(filterBox("kind:" + k, k, !T.off.has("kind:" + k), null, toggleKey("kind:" + k)));
    f.append(filterBox("only:problems", "errors and rejections only", T.only, null, (on) => { T.only = on; layout(); }));
    f.append(filterBox("group:service", "group by service", T.grouped, null, (on) => { T.grouped = on; layout(); }));
  }
  function render(tl) {
    T.tl = tl;
    T.evs = tl.events || [];
    hues.clear();
    assignHues(tl.services || []);
    prepare(T.evs, 0);
    summarizeTrace();
    filterBar();
    $("zoombar").hidden = false;
    drawMinimap();
    drawAxis();
    $("waterfall").scrollTop = 0;
    layout();
    addLocations(tl);
  }
  function addLocations(tl) {
    const locs = tl.locations || [];
    if (!locs.length && !(tl.locate_errors || []).length) return;
    let ul = $("locations").querySelector("ul");
    if (!ul) { ul = el("ul"); $("locations").append(el("h2", {}, "Also found in"), ul); }
    const room = Math.max(0, 200 - ul.querySelectorAll("li.loc").length);
    for (const l of locs.slice(0, room)) ul.append(el("li", { class: "loc" }, l.where + " " + l.ref + " — " + l.detail));
    for (const e of tl.locate_errors || []) ul.append(el("li", { class: "error" }, e));
  }
  // more adds a later page of the trace behind the rows already drawn.
  function more(page) {
    const from = T.evs.length;
    const evs = page.events || [];
    prepare(evs, from);
    for (const ev of evs) T.evs.push(ev);
    let grew = false;
    for (const s of page.services || []) if (!T.tl.services.includes(s)) { T.tl.services.push(s); grew = true; }
    if (!$("trace-filters").querySelector('input[data-key="service:"]') && evs.some((ev) => !ev.service)) grew = true;
    assignHues(T.tl.services); // the services of this page that are new get hues of their own; the others keep theirs
    for (const k of page.kinds || []) if (!T.tl.kinds.includes(k)) { T.tl.kinds.push(k); grew = true; }
    if (grew) filterBar();
    summarizeTrace();
    drawMinimap();
    layout();
    addLocations(page);
  }
  // A trace is read in pages: the first few thousand events are drawn at
  // once, the rest are added behind them as they arrive.
  const FIRST_PAGE = 2000, PAGE = 10000;
  async function trace(req, id) {
    showView("trace-view");
    clearTrace();
    $("cid").value = id;
    if (!id) { status("Paste a correlation ID.", true); return; }
    status("Loading " + id + "…");
    const path = "v1/trace/" + encodeURIComponent(id);
    let r = await req.api(path + "?limit=" + FIRST_PAGE);
    if (r.status === 404) {
      status("No event carries the correlation ID " + JSON.stringify(id) + ".", true);
      document.body.dataset.loaded = "missing";
      return;
    }
    if (!r.ok) { status("Error: " + ((r.body && r.body.error) || r.status), true); return; }
    T.loading = !!r.body.next;
    render(r.body);
    status("");
    performance.mark("sightline:trace-drawn"); // when the first rows are drawn (the page's timing test)
    document.body.dataset.loaded = id;
    let next = r.body.next;
    while (next) {
      r = await req.api(path + "?limit=" + PAGE + "&after=" + encodeURIComponent(next.time + "|" + next.id));
      if (!r.ok) { status("Error loading the rest of the trace: " + ((r.body && r.body.error) || r.status), true); return; }
      next = r.body.next;
      if (T.evs.length + (r.body.events || []).length >= MAX_EVENTS) next = null;
      T.loading = !!next;
      more(r.body);
    }
    document.body.dataset.complete = id;
  }
  const MAX_EVENTS = 200000;

  // ---------------------------------------------------------------- routing
  function go(hash) {
    if (location.hash === hash) route(hash);
    else location.hash = hash; // hashchange routes
  }
  function route(hash, refresh) {
    hash = hash === undefined ? location.hash : hash;
    if (!refresh) { clearInterval(refreshTimer); refreshTimer = null; }
    const h = hash.replace(/^#/, "");
    const dec = (s) => { try { return decodeURIComponent(s); } catch (e) { return s; } };
    if (h === "" || h === "/" || h.startsWith("/?")) return guarded((req) => recent(req, new URLSearchParams(h.replace(/^\/\??/, "")), refresh));
    if (h === "/search" || h.startsWith("/search?")) return guarded((req) => search(req, new URLSearchParams(h.slice("/search".length).replace(/^\?/, "")), refresh));
    if (h.startsWith("/trace/")) return guarded((req) => trace(req, dec(h.slice("/trace/".length)).trim()));
    if (!h.startsWith("/")) return guarded((req) => trace(req, dec(h).trim())); // the older #ID links
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
