/* breakpilot-store web view: the chart, the JSON tree and the live updates.
 *
 * Every value shown comes from the database and is hostile: nodes are built with
 * createElement and textContent only, never innerHTML. Pages work without this script
 * (the server renders them); it adds what a static page cannot.
 */
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const POLL_MS = 1000;
  const STRING_CUT = 4000;    // characters of a string shown before "show all"
  const CHILDREN_CUT = 200;   // children of an object or array shown per step

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clip(text, width) {
    text = String(text);
    return text.length <= width ? text : text.slice(0, width - 1) + "\u2026";
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function utc(iso) {
    if (!iso) return "-";
    const d = new Date(iso);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function ago(iso) {
    if (!iso) return "-";
    const s = Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 1000));
    if (s >= 86400) return Math.floor(s / 86400) + "d ago";
    if (s >= 3600) return Math.floor(s / 3600) + "h ago";
    if (s >= 60) return Math.floor(s / 60) + "m ago";
    return s + "s ago";
  }

  function humanBytes(n) {
    if (n < 1024) return n + " B";
    const units = ["KiB", "MiB", "GiB"];
    let v = n / 1024, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return v.toFixed(1) + " " + units[i];
  }

  function link(href, text, cls) {
    const a = el("a", cls, text);
    a.href = href;
    return a;
  }

  function q(params) { return new URLSearchParams(params).toString(); }

  const live = document.getElementById("live");
  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  function poll(step) {
    if (live) live.hidden = false;
    async function tick() {
      try {
        await step();
        if (live) {
          live.classList.remove("stale");
          live.textContent = "live";
          live.dataset.polls = String((Number(live.dataset.polls) || 0) + 1);  // for tests
        }
      } catch (err) {
        if (live) { live.classList.add("stale"); live.textContent = "reconnecting"; }
      }
      setTimeout(tick, POLL_MS);
    }
    setTimeout(tick, POLL_MS);
  }

  // -- copy buttons --------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.copy");
    if (!button) return;
    const text = button.dataset.copy;
    const done = () => { const was = button.textContent; button.textContent = "copied"; setTimeout(() => { button.textContent = was; }, 1200); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => {});
    } else {
      const area = el("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } finally { area.remove(); }
    }
  });

  // -- sessions: live counts -----------------------------------------------------------

  function sessionRow(row, extra) {
    const tr = el("tr");
    tr.dataset.id = row.session_id;
    const idCell = el("td", "id");
    const a = link("/session?" + q({ id: row.session_id }), clip(row.session_id, 80));
    a.title = clip(row.session_id, 2000);
    idCell.appendChild(a);
    tr.appendChild(idCell);
    tr.appendChild(el("td", "num held", row.checkpoints));
    tr.appendChild(el("td", "num seq", row.last_seq));
    tr.appendChild(el("td", "time", utc(row.first_checkpoint_at)));
    const last = el("td", "time last", ago(row.updated_at));
    last.title = utc(row.updated_at);
    tr.appendChild(last);
    tr.appendChild(el("td", "name", clip(row.last_name || "-", 40)));
    for (const column of extra) {
      const value = row[column];
      tr.appendChild(el("td", "extra", value === null || value === undefined ? "-" : String(value)));
    }
    return tr;
  }

  if (page === "sessions") {
    const table = document.getElementById("sessions");
    const total = document.getElementById("total");
    const base = ["session_id", "checkpoints", "last_seq", "first_checkpoint_at",
      "last_checkpoint_at", "last_name", "created_at", "updated_at"];
    poll(async function () {
      const data = await getJSON("/api/sessions" + window.location.search);
      const extra = data.columns.filter((c) => !base.includes(c));
      const old = new Map();
      for (const tr of table.tBodies[0].rows) if (tr.dataset.id !== undefined) old.set(tr.dataset.id, tr.querySelector(".held") && tr.querySelector(".held").textContent);
      const tbody = el("tbody");
      for (const row of data.rows) {
        const tr = sessionRow(row, extra);
        if (old.size && old.get(row.session_id) !== String(row.checkpoints)) tr.classList.add("fresh");
        tbody.appendChild(tr);
      }
      if (!data.rows.length) {
        const tr = el("tr", "empty");
        const td = el("td", null, "no sessions match");
        td.colSpan = 6 + extra.length;
        tr.appendChild(td);
        tbody.appendChild(tr);
      }
      table.replaceChild(tbody, table.tBodies[0]);
      total.textContent = data.total;
    });
  }

  // -- a session: chart and live rows --------------------------------------------------

  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function buildChart(target, points, state) {
    points.sort((p, r) => p[0] - r[0] || p[1] - r[1]);
    const names = [];
    const index = new Map();
    for (const p of points) if (!index.has(p[2])) { index.set(p[2], names.length); names.push(p[2]); }
    const xs = points.map((p) => p[0]);
    const columns = names.map(() => new Array(points.length).fill(null));
    points.forEach((p, i) => { columns[index.get(p[2])][i] = p[1]; });
    const series = [{}].concat(names.map((name, i) => {
      const colour = PALETTE[i % PALETTE.length];
      return {
        label: clip(name, 40),
        stroke: colour,
        paths: () => null,
        points: { show: true, size: 7, width: 1, stroke: colour, fill: colour },
        value: (u, v) => (v === null ? "-" : "seq " + v),
      };
    }));
    const opts = {
      width: Math.max(320, target.clientWidth - 2),
      height: 300,
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => [0, Math.max(max || 0, state.lastSeq) + 1] },
      },
      axes: [{}, { label: "seq" }],
      // Times in UTC, as every other time on these pages.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: series,
      cursor: { drag: { x: true, y: false } },
      hooks: {
        drawClear: [function (u) {
          // Retention gaps: the seqs no longer held, as shaded horizontal bands.
          const ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = "rgba(214, 39, 40, 0.13)";
          for (const [a, b] of state.gaps) {
            const top = u.valToPos(b + 0.5, "y", true);
            const bottom = u.valToPos(a - 0.5, "y", true);
            const y0 = Math.max(u.bbox.top, Math.min(top, bottom));
            const y1 = Math.min(u.bbox.top + u.bbox.height, Math.max(top, bottom));
            if (y1 > y0) ctx.fillRect(u.bbox.left, y0, u.bbox.width, Math.max(1, y1 - y0));
          }
          ctx.restore();
        }],
      },
    };
    target.textContent = "";
    const chart = new uPlot(opts, [xs].concat(columns), target);
    window.addEventListener("resize", () => chart.setSize({ width: Math.max(320, target.clientWidth - 2), height: 300 }));
    return { chart, points };
  }

  function entryRow(sessionId, e) {
    const cid = sessionId + ":" + e.seq;
    const tr = el("tr", "fresh");
    tr.dataset.seq = e.seq;
    for (const part of ["a", "b"]) {
      const td = el("td");
      const radio = el("input");
      radio.type = "radio";
      radio.name = part;
      radio.value = cid;
      radio.setAttribute("aria-label", part.toUpperCase());
      td.appendChild(radio);
      tr.appendChild(td);
    }
    const seq = el("td", "num");
    seq.appendChild(link("/checkpoint?" + q({ id: cid }), e.seq));
    tr.appendChild(seq);
    tr.appendChild(el("td", "name", clip(e.name, 40)));
    tr.appendChild(el("td", "time", e.time));
    tr.appendChild(el("td", "num", humanBytes(e.size)));
    tr.appendChild(el("td", "preview", clip(e.preview, 100)));
    tr.appendChild(el("td"));
    return tr;
  }

  function renderGaps(gaps, lastSeq) {
    const old = document.getElementById("gaps");
    let node;
    if (!gaps.length) {
      node = el("p", "muted", "none: every seq up to " + lastSeq + " is held");
    } else {
      node = el("ul", "gaps");
      for (const [a, b] of gaps.slice(0, 50)) {
        const li = el("li", null, "seq " + a + (b !== a ? "\u2013" + b : "") + " ");
        li.appendChild(el("span", "muted", "(" + (b - a + 1) + " removed)"));
        node.appendChild(li);
      }
      if (gaps.length > 50) node.appendChild(el("li", "muted", "\u2026 " + (gaps.length - 50) + " more ranges"));
    }
    node.id = "gaps";
    old.replaceWith(node);
  }

  if (page === "session") {
    const sessionId = body.dataset.session;
    const firstPage = body.dataset.firstPage === "yes";
    const state = { lastSeq: Number(body.dataset.lastSeq), held: null, gaps: [] };
    const target = document.getElementById("chart");
    let plot = null;
    let fresh = 0;
    getJSON("/api/entries?" + q({ id: sessionId, after: state.lastSeq })).then((d) => {
      if (d.exists) state.gaps = d.gaps;
      return getJSON("/api/timeline?" + q({ id: sessionId }));
    }).then((d) => { plot = buildChart(target, d.points, state); })
      .catch((err) => { target.textContent = "chart unavailable: " + err.message; });

    poll(async function () {
      const d = await getJSON("/api/entries?" + q({ id: sessionId, after: state.lastSeq, held: state.held }));
      if (!d.exists) { document.getElementById("held").textContent = "0 (session deleted)"; return; }
      if (d.last_seq < state.lastSeq) { window.location.reload(); return; }  // deleted and begun again
      if (d.unchanged) return;
      state.held = d.held;
      state.gaps = d.gaps;
      document.getElementById("held").textContent = d.held;
      document.getElementById("last-seq").textContent = d.last_seq;
      document.getElementById("removed").textContent = d.gaps.reduce((n, g) => n + g[1] - g[0] + 1, 0);
      renderGaps(d.gaps, d.last_seq);
      const tbody = document.getElementById("entries").tBodies[0];
      if (d.entries.length && firstPage) {
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        // Newest first, as the table is: the API sends newest first too.
        for (const e of d.entries.slice().reverse()) tbody.insertBefore(entryRow(sessionId, e), tbody.firstChild);
        fresh += d.entries.length;
        const badge = document.getElementById("new-count");
        badge.hidden = false;
        badge.textContent = "+" + fresh + " new";
      }
      if (plot && d.entries.length) {
        for (const e of d.entries) plot.points.push([new Date(e.created_at).getTime() / 1000, e.seq, e.name]);
        plot.chart.destroy();
        plot = buildChart(target, plot.points.slice(-Number(body.dataset.chartPoints)), state);
      } else if (plot) {
        plot.chart.redraw(false);
      }
      state.lastSeq = Math.max(state.lastSeq, d.last_seq);
    });
  }

  // -- a checkpoint: the JSON tree -----------------------------------------------------

  function leaf(value) {
    if (value === null) return el("span", "lit", "null");
    switch (typeof value) {
      case "string": {
        const span = el("span", "str");
        if (value.length <= STRING_CUT) {
          span.textContent = JSON.stringify(value);
          return span;
        }
        span.textContent = JSON.stringify(value.slice(0, STRING_CUT)).slice(0, -1) + "\u2026";
        const wrap = el("span");
        wrap.appendChild(span);
        const more = el("button", null, "show all " + value.length.toLocaleString() + " characters");
        more.type = "button";
        more.addEventListener("click", () => { span.textContent = JSON.stringify(value); more.remove(); });
        wrap.appendChild(more);
        return wrap;
      }
      case "number": return el("span", "num", String(value));
      case "boolean": return el("span", "lit", String(value));
      default: return el("span", null, String(value));
    }
  }

  function keyLabel(key) {
    return el("span", "key", typeof key === "number" ? "[" + key + "]" : JSON.stringify(key));
  }

  function treeNode(key, value, depth) {
    const container = value !== null && typeof value === "object";
    if (!container) {
      const line = el("div", "leaf");
      if (key !== undefined) { line.appendChild(keyLabel(key)); line.appendChild(document.createTextNode(": ")); }
      line.appendChild(leaf(value));
      return line;
    }
    const isArray = Array.isArray(value);
    const keys = isArray ? null : Object.keys(value);
    const size = isArray ? value.length : keys.length;
    const details = el("details");
    const summary = el("summary");
    if (key !== undefined) { summary.appendChild(keyLabel(key)); summary.appendChild(document.createTextNode(": ")); }
    summary.appendChild(el("span", "meta", (isArray ? "[" : "{") + " " + size + (isArray ? (size === 1 ? " item ]" : " items ]") : (size === 1 ? " key }" : " keys }"))));
    details.appendChild(summary);
    let shown = 0;
    function more() {
      const end = Math.min(size, shown + CHILDREN_CUT);
      const old = details.querySelector(":scope > button.more");
      if (old) old.remove();
      for (; shown < end; shown++) {
        details.appendChild(isArray ? treeNode(shown, value[shown], depth + 1) : treeNode(keys[shown], value[keys[shown]], depth + 1));
      }
      if (shown < size) {
        const button = el("button", "more", "show " + Math.min(CHILDREN_CUT, size - shown) + " more of " + size);
        button.type = "button";
        button.addEventListener("click", more);
        details.appendChild(button);
      }
    }
    // Children are built when first opened: a 1 MB value costs nothing until then.
    details.addEventListener("toggle", () => { if (details.open && shown === 0) more(); });
    if (depth < 2 && size <= 50) details.open = true;
    return details;
  }

  if (page === "checkpoint") {
    const id = body.dataset.checkpoint;
    getJSON("/api/checkpoint?" + q({ id: id })).then((cp) => {
      for (const part of ["data", "metadata"]) {
        const target = document.getElementById(part + "-tree");
        target.textContent = "";
        const root = treeNode(undefined, cp[part], 0);
        root.open = true;
        target.appendChild(root);
      }
    }).catch((err) => { document.getElementById("data-tree").textContent = "could not load: " + err.message; });
  }
})();
