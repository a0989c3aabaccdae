// The scanscope console. Every page is a URL (path + query); the script reads it, calls the
// JSON API (docs/api.md) and builds the page with DOM calls: text from the API only ever goes
// into text nodes and attribute values, never into markup.
import { lineChart } from "./chart.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const range = { from: params.get("from") || "", to: params.get("to") || "" };

// Control characters (terminal escapes, …) and bidirectional overrides (which would make text
// read in another order than it is) are shown as visible escapes: `\u202e`.
const HIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
function visible(s) {
  return String(s).replace(HIDDEN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

// h("a", {href: "/x", class: "y"}, "text", node, …): an element; strings become text nodes
// (made visible).
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) throw new Error("no inline handlers");
    e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(visible(c)) : c);
  }
  return e;
}

const fmt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));

// A URL of this console that keeps the date range.
function url(path, extra = {}) {
  const p = new URLSearchParams();
  if (range.from) p.set("from", range.from);
  if (range.to) p.set("to", range.to);
  for (const [k, v] of Object.entries(extra)) if (v !== "" && v !== null && v !== undefined) p.set(k, v);
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

function apiUrl(call, extra = {}) {
  return url(`/api/v1/${call}`, extra);
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(call, extra = {}) {
  const r = await fetch(apiUrl(call, extra), { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

// A query term for field:value, quoted when needed.
function term(field, value) {
  const v = String(value);
  return /^[A-Za-z0-9_.:\/*-]+$/.test(v) ? `${field}:${v}` : `${field}:"${v.replace(/["\\]/g, "\\$&")}"`;
}

const ipLink = (ip) => (ip ? h("a", { href: url(`/ip/${encodeURIComponent(ip)}`) }, ip) : "—");
const orgLink = (o) => (o ? h("a", { href: url(`/org/${encodeURIComponent(o)}`) }, o) : "—");
const portLink = (proto, port) => h("a", { href: url(`/port/${proto}/${port}`) }, String(port));
const searchLink = (q, text) => h("a", { href: url("/search", { q }) }, text);

function classWord(c) {
  return h("span", { class: `class-${c}` }, c);
}

function cell(col, row, provisional) {
  const v = row[col.name];
  switch (col.kind) {
    case "ip":
      return ipLink(v);
    case "port":
      return v === null || v === undefined ? "—" : portLink(row.proto || "tcp", v);
    case "org":
      return orgLink(v);
    case "date":
      return provisional.includes(v) ? [v, " ", h("span", { class: "provisional" }, "(provisional)")] : v;
    case "number":
      return fmt(v);
    case "bool":
      return v === null || v === undefined ? "—" : v ? "yes" : "no";
    case "class":
      return v ? classWord(v) : "—";
    case "list":
      return Array.isArray(v) && v.length ? v.join(", ") : "—";
    case "port_list":
      return Array.isArray(v) && v.length
        ? v.slice(0, 50).flatMap((p, i) => [i ? ", " : "", searchLink(`port:${p}`, String(p))]).concat(v.length > 50 ? [` … (${v.length})`] : [])
        : "—";
    case "tags":
      return Array.isArray(v) && v.length ? v.map((t) => h("a", { class: "tag", href: url("/search", { q: term("tag", t) }) }, t)) : "—";
    case "bytes":
      if (!v || !v.len) return "—";
      return [
        h("pre", { class: "bytes" }, v.ascii),
        h("details", { class: "hex" }, h("summary", {}, `hex (${fmt(v.len)} bytes)`), h("pre", { class: "bytes" }, v.hex.replace(/(..)/g, "$1 ").trim())),
      ];
    default:
      return v === null || v === undefined || v === "" ? "—" : String(v);
  }
}

const numeric = (c) => c.kind === "number";

// One table of a view, with its CSV and JSON export links. `sortable`: {sort, order, call}.
function table(view, name, title, opts = {}) {
  const t = view.tables[name];
  if (!t) return null;
  const head = h(
    "tr",
    {},
    t.columns.map((c) => {
      if (opts.sortable && opts.sortable.keys.includes(c.name)) {
        const active = opts.sortable.sort === c.name;
        const next = active && opts.sortable.order === "desc" ? "asc" : "desc";
        return h(
          "th",
          { class: numeric(c) ? "num" : null, "aria-sort": active ? (opts.sortable.order === "asc" ? "ascending" : "descending") : null, scope: "col" },
          h("a", { href: url(location.pathname, { ...opts.sortable.extra, sort: c.name, order: next }) }, c.name),
        );
      }
      return h("th", { class: numeric(c) ? "num" : null, scope: "col" }, c.name);
    }),
  );
  const body = h(
    "tbody",
    {},
    t.rows.map((r) => h("tr", {}, t.columns.map((c) => h("td", { class: numeric(c) ? "num" : null, "data-col": c.name }, cell(c, r, view.provisional))))),
  );
  const exports = h(
    "span",
    { class: "exports" },
    h("a", { href: apiUrl(opts.call, { ...(opts.extra || {}), format: "csv", table: name }), download: "", "data-export": "csv" }, "CSV"),
    h("a", { href: apiUrl(opts.call, opts.extra || {}), "data-export": "json" }, "JSON"),
  );
  const count = t.total !== undefined && t.total !== t.rows.length ? h("span", { class: "muted" }, `${fmt(t.rows.length)} of ${fmt(t.total)}`) : null;
  return h(
    "section",
    { class: "block", "data-table": name },
    h("div", { class: "block-head" }, h("h2", {}, title), exports, count),
    t.rows.length ? h("div", { class: "tablewrap" }, h("table", {}, h("thead", {}, head), body)) : h("p", { class: "muted" }, "Nothing in this range."),
  );
}

// A chart of some columns of a table, by its date (or time) column.
function chartOf(view, name, xcol, cols, title) {
  const t = view.tables[name];
  if (!t || !t.rows.length) return null;
  const labels = t.rows.map((r) => (xcol === "bucket_start" ? String(r[xcol]).slice(11, 16) : r[xcol]));
  return lineChart(title, labels, cols.map((c) => ({ name: c, values: t.rows.map((r) => r[c] ?? 0) })));
}

function cards(items) {
  return h(
    "div",
    { class: "cards" },
    items.map(([label, value]) => h("div", { class: "card", "data-card": label }, h("div", { class: "muted" }, label), h("div", { class: "v" }, typeof value === "number" ? fmt(value) : value ?? "—"))),
  );
}

function setTitle(text, ...extra) {
  const t = $("title");
  t.textContent = "";
  t.append(visible(text), ...extra);
  document.title = `${visible(text)} · scanscope`;
}

function status(text) {
  $("status").textContent = visible(text);
}

function provisionalNote(view) {
  if (!view.provisional || !view.provisional.length) return null;
  return h("p", { class: "note" }, `Provisional: the figures of ${view.provisional.join(", ")} come from a rollup of the day so far (the collector refreshes it every few minutes; the final rollup follows once the day has closed).`);
}

function show(...nodes) {
  const c = $("content");
  c.textContent = "";
  for (const n of nodes.flat()) if (n) c.appendChild(n);
}

function fillRange(view) {
  if (!view || !view.range) return;
  $("from").value = view.range.from;
  $("to").value = view.range.to;
  $("q-from").value = range.from;
  $("q-to").value = range.to;
}

// ---- pages ----

async function overview() {
  setTitle("Overview");
  const v = await api("overview");
  fillRange(v);
  const orgs = v.tables.orgs_daily;
  const orgNames = [...new Set(orgs.rows.map((r) => r.org))];
  const days = [...new Set(orgs.rows.map((r) => r.date))];
  const orgChart = orgNames.length
    ? lineChart(
        "Sources per organisation per day",
        days,
        orgNames.map((o) => ({ name: o, values: days.map((d) => orgs.rows.find((r) => r.date === d && r.org === o)?.sources ?? 0) })),
      )
    : null;
  status(`${v.range.from} … ${v.range.to}: ${fmt(v.summary.days_with_data)} days with data`);
  show(
    provisionalNote(v),
    cards([
      ["sources", v.summary.sources],
      ["scanners", v.summary.scanners],
      ["source-days", v.summary.source_days],
      ["packets", v.summary.packets],
      ["days with data", v.summary.days_with_data],
    ]),
    h("h2", {}, "Sources, scanners and wide scanners per day"),
    chartOf(v, "daily", "date", ["sources", "scanners", "wide_scanners"], "Sources, scanners and wide scanners per day"),
    table(v, "daily", "Per day", { call: "overview" }),
    orgChart ? [h("h2", {}, "Sources per organisation"), orgChart] : null,
    table(v, "orgs_daily", "Sources per organisation per day", { call: "overview" }),
    h("div", { class: "grid" }, table(v, "breadth", "Scan breadth (% of sensors), per source and day", { call: "overview" }), table(v, "ports_per_source", "Ports per source, per source and day", { call: "overview" })),
    h("div", { class: "grid" }, table(v, "top_ports_by_packets", "Top ports by packets", { call: "overview" }), table(v, "top_ports_by_sources", "Top ports by distinct sources", { call: "overview" })),
    h("h2", {}, `30-minute series${v.summary.series_date ? ` of ${v.summary.series_date}` : ""}`),
    chartOf(v, "series", "bucket_start", ["packets", "sources", "ports"], "Packets, sources and ports per 30 minutes"),
    table(v, "series", "Per 30 minutes", { call: "overview" }),
    table(v, "dos", "DoS victims (backscatter)", { call: "overview" }),
  );
  // While the range has an open day, refresh its figures as the collector refreshes them.
  if (v.provisional.length) setTimeout(() => overview().catch(fail), 300_000);
}

function help(meta) {
  return h(
    "section",
    { class: "block help" },
    h("h2", {}, "Query language"),
    h(
      "p",
      {},
      "Terms ",
      h("code", {}, "field:value"),
      " side by side must all hold (AND); ",
      h("code", {}, "OR"),
      " and ",
      h("code", {}, "AND"),
      " combine, ",
      h("code", {}, "-term"),
      " negates, parentheses group, ",
      h("code", {}, '"…"'),
      " quotes, ",
      h("code", {}, "*"),
      " is a wildcard, numbers take ",
      h("code", {}, ">= > <= < a..b"),
      ", a bare word searches URLs, user agents, users and commands. A source matches when one of its days matches the whole query.",
    ),
    h(
      "div",
      { class: "tablewrap" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", {}, "field"), h("th", {}, "type"), h("th", {}, "meaning"), h("th", {}, "example"))),
        h(
          "tbody",
          {},
          meta.fields.map((f) => h("tr", {}, h("td", {}, h("code", {}, f.name)), h("td", {}, f.type), h("td", {}, f.help), h("td", {}, searchLink(f.example, f.example)))),
        ),
      ),
    ),
  );
}

function facetList(v, name, field, title, q) {
  const t = v.tables[name];
  if (!t || !t.rows.length) return null;
  const items = t.rows.map((r) => {
    const value = name === "facet_port" ? r.port : r.value;
    const tm = term(field, value);
    const label = name === "facet_port" ? `${r.proto}/${r.port}` : String(value);
    return h(
      "li",
      {},
      h("a", { href: url("/search", { q: q ? `${q} ${tm}` : tm }) }, label),
      ` ${fmt(r.sources)}`,
      h("a", { class: "facet-neg", href: url("/search", { q: q ? `${q} -${tm}` : `-${tm}` }), title: `Without ${label}`, "aria-label": `Without ${label}` }, "−"),
    );
  });
  return h("section", { class: "block", "data-facet": name }, h("h2", {}, title), h("ul", {}, items));
}

function caret(q, column) {
  return `${q}\n${" ".repeat(Math.max(0, column - 1))}^`;
}

async function search() {
  const q = params.get("q") || "";
  $("q").value = q;
  setTitle("Search");
  const sort = params.get("sort") || "packets";
  const order = params.get("order") || "desc";
  const limit = Number(params.get("limit") || 50);
  const offset = Number(params.get("offset") || 0);
  const meta = await api("meta");
  let v;
  try {
    v = await api("search", { q, sort, order, limit, offset });
  } catch (e) {
    if (e instanceof ApiError && e.body?.error?.column) {
      status("The query could not be read.");
      alertText(`${e.message}\n\n${caret(q, e.body.error.column)}`);
      show(help(meta));
      return;
    }
    throw e;
  }
  fillRange(v);
  const total = v.summary.sources;
  status(`${fmt(total)} matching sources (${fmt(v.summary.source_days)} source-days) in ${v.range.from} … ${v.range.to}`);
  const extra = { q, limit };
  const pager = h(
    "div",
    { class: "pager" },
    offset > 0 ? h("a", { href: url("/search", { q, sort, order, limit, offset: Math.max(0, offset - limit) }), rel: "prev" }, "← previous") : null,
    h("span", { class: "muted" }, total ? `${fmt(offset + 1)}–${fmt(Math.min(total, offset + limit))} of ${fmt(total)}` : ""),
    offset + limit < total ? h("a", { href: url("/search", { q, sort, order, limit, offset: offset + limit }), rel: "next" }, "next →") : null,
  );
  show(
    provisionalNote(v),
    h("details", {}, h("summary", {}, "How the query was read"), h("code", { "data-plan": "" }, v.plan)),
    h(
      "div",
      { class: "facets" },
      facetList(v, "facet_port", "port", "Ports", q),
      facetList(v, "facet_org", "org", "Organisations", q),
      facetList(v, "facet_tool", "tool", "Tools", q),
      facetList(v, "facet_country", "country", "Countries", q),
      facetList(v, "facet_tag", "tag", "Tags", q),
      facetList(v, "facet_class", "class", "Class", q),
      facetList(v, "facet_scan", "scan", "Scan type", q),
    ),
    table(v, "sources", "Matching sources", { call: "search", extra: { q, sort, order, limit, offset }, sortable: { keys: meta.sort, sort, order, extra } }),
    pager,
    q ? null : help(meta),
  );
}

async function ipPage(addr) {
  setTitle(addr);
  const v = await api(`ip/${encodeURIComponent(addr)}`);
  fillRange(v);
  const s = v.summary;
  const badges = [
    s.scanner ? "scanner" : null,
    s.wide_scanner ? "wide scanner" : null,
    s.tor_exit ? "Tor exit" : null,
    s.spoofed_suspect ? "spoofed suspect" : null,
    s.org ? "known organisation" : null,
  ].filter(Boolean);
  setTitle(addr, " ", classWord(s.class), " ", ...badges.map((b) => h("span", { class: "badge" }, b)));
  status(`seen on ${fmt(s.days)} days of ${v.range.from} … ${v.range.to}`);
  const meta = [
    ["class", classWord(s.class)],
    ["first seen", s.first_seen],
    ["last seen", s.last_seen],
    ["days seen", fmt(s.days)],
    ["packets", fmt(s.packets)],
    ["organisation", orgLink(s.org)],
    ["named by", s.org_source],
    ["rDNS", s.rdns],
    ["country", s.country],
    ["ASN", s.asn === null ? null : `AS${s.asn}`],
    ["AS name", s.as_org],
    ["OS hint", s.os_hint],
    ["tools", s.tools.join(", ")],
    ["sensors", s.sensors.join(", ")],
    ["login attempts", fmt(s.login_attempts)],
    ["tags", s.tags.length ? s.tags.map((t) => h("a", { class: "tag", href: url("/search", { q: term("tag", t) }) }, t)) : null],
  ];
  const dl = h("dl", { class: "meta" }, meta.flatMap(([k, val]) => [h("dt", {}, k), h("dd", { "data-field": k }, val === null || val === undefined || val === "" ? "—" : val)]));
  show(
    provisionalNote(v),
    dl,
    chartOf(v, "days", "date", ["packets", "port_count"], `Packets and ports of ${addr} per day`),
    table(v, "days", "Timeline (one row per day)", { call: `ip/${encodeURIComponent(addr)}` }),
    h("div", { class: "grid" }, table(v, "ports", "Ports", { call: `ip/${encodeURIComponent(addr)}` }), table(v, "payloads", "What it sent (URLs, user agents, logins, fingerprints)", { call: `ip/${encodeURIComponent(addr)}` })),
    table(v, "user_fields", "User rule fields", { call: `ip/${encodeURIComponent(addr)}` }),
    table(v, "sessions", "Responder sessions", { call: `ip/${encodeURIComponent(addr)}` }),
    table(v, "samples", "Payload samples", { call: `ip/${encodeURIComponent(addr)}` }),
  );
}

async function portPage(proto, port) {
  setTitle(`${proto}/${port}`);
  const v = await api(`port/${proto}/${port}`);
  fillRange(v);
  const call = `port/${proto}/${port}`;
  status(`${fmt(v.summary.sources)} sources probed ${proto}/${port} in ${v.range.from} … ${v.range.to}`);
  show(
    provisionalNote(v),
    cards([
      ["sources", v.summary.sources],
      ["scanners", v.summary.scanners],
    ]),
    h("p", {}, searchLink(`${proto}_port:${port}`, `Search ${proto}_port:${port}`)),
    chartOf(v, "daily", "date", ["sources", "scanners"], `Sources and scanners of ${proto}/${port} per day`),
    table(v, "daily", "Per day", { call }),
    h("div", { class: "grid" }, table(v, "orgs", "Top organisations", { call }), table(v, "tools", "Top tools", { call })),
    table(v, "related_ports", "Ports its sources also probe", { call }),
    table(v, "sources", "Example sources", { call }),
  );
}

async function orgPage(name) {
  setTitle(name);
  const call = `org/${encodeURIComponent(name)}`;
  const v = await api(call);
  fillRange(v);
  setTitle(v.summary.org || name);
  status(`${fmt(v.summary.ips)} IPs in ${v.range.from} … ${v.range.to}`);
  show(
    provisionalNote(v),
    h("p", {}, searchLink(term("org", v.summary.org || name), "Search its IPs")),
    chartOf(v, "daily", "date", ["ips", "wide_ips", "new_ips"], `IPs, wide IPs and new IPs of ${name} per day`),
    table(v, "daily", "Per day", { call }),
    h("div", { class: "grid" }, table(v, "ports", "Ports", { call }), table(v, "tools", "Tools", { call })),
    table(v, "sources", "IPs", { call }),
  );
}

async function orgsPage() {
  setTitle("Organisations");
  const v = await api("orgs");
  fillRange(v);
  status(`${fmt(v.tables.orgs.rows.length)} organisations in ${v.range.from} … ${v.range.to}`);
  show(provisionalNote(v), table(v, "orgs", "Organisations", { call: "orgs" }));
}

async function torPage() {
  setTitle("Tor exit nodes");
  const v = await api("tor");
  fillRange(v);
  status(`${fmt(v.summary.exit_nodes)} Tor exit nodes in ${v.range.from} … ${v.range.to} (rolled up with --tor-exit-list)`);
  show(provisionalNote(v), table(v, "tor", "Per exit node and day", { call: "tor" }));
}

async function sensorsPage() {
  setTitle("Sensors");
  const v = await api("sensors");
  fillRange(v);
  status(`${fmt(v.summary.sensors)} sensors, ${fmt(v.summary.up)} up (a sensor is down after ${v.summary.down_after_secs} s without a report)`);
  show(
    provisionalNote(v),
    table(v, "sensors", "Sensors", { call: "sensors" }),
    h("div", { class: "grid" }, table(v, "kinds", "Packets per kind", { call: "sensors" }), table(v, "losses", "Losses by stage", { call: "sensors" })),
    table(v, "counters", "Other counters", { call: "sensors" }),
  );
}

// ---- frame ----

function alertText(text) {
  const a = $("alert");
  a.textContent = visible(text);
  a.hidden = !text;
}

function fail(e) {
  if (e instanceof ApiError && e.status === 404) {
    status("Not found.");
    alertText(e.message);
    show();
    return;
  }
  status("Failed.");
  alertText(e instanceof ApiError ? `${e.message} (HTTP ${e.status})` : String(e));
}

function shiftRange(dir) {
  const f = new Date(`${$("from").value}T00:00:00Z`);
  const t = new Date(`${$("to").value}T00:00:00Z`);
  if (isNaN(f) || isNaN(t)) return;
  const len = Math.round((t - f) / 86_400_000) + 1;
  f.setUTCDate(f.getUTCDate() + dir * len);
  t.setUTCDate(t.getUTCDate() + dir * len);
  go(f.toISOString().slice(0, 10), t.toISOString().slice(0, 10));
}

function go(from, to) {
  const p = new URLSearchParams(location.search);
  p.set("from", from);
  p.set("to", to);
  p.delete("offset");
  location.assign(`${location.pathname}?${p}`);
}

function frame() {
  const theme = localStorage.getItem("theme");
  if (theme) document.documentElement.dataset.theme = theme;
  $("theme").setAttribute("aria-pressed", String(document.documentElement.dataset.theme === "dark"));
  $("theme").addEventListener("click", () => {
    const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    const cur = document.documentElement.dataset.theme || (dark ? "dark" : "light");
    const next = cur === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("theme", next);
    $("theme").setAttribute("aria-pressed", String(next === "dark"));
  });
  $("range").addEventListener("submit", (ev) => {
    ev.preventDefault();
    go($("from").value, $("to").value);
  });
  $("range-prev").addEventListener("click", () => shiftRange(-1));
  $("range-next").addEventListener("click", () => shiftRange(1));
  for (const b of document.querySelectorAll("[data-days]")) {
    b.addEventListener("click", () => {
      const t = new Date(`${$("to").value}T00:00:00Z`);
      if (isNaN(t)) return;
      const f = new Date(t);
      f.setUTCDate(f.getUTCDate() - (Number(b.dataset.days) - 1));
      go(f.toISOString().slice(0, 10), t.toISOString().slice(0, 10));
    });
  }
  document.addEventListener("keydown", (ev) => {
    const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName);
    if (ev.key === "/" && !typing) {
      ev.preventDefault();
      $("q").focus();
    }
    if (ev.key === "Escape" && document.activeElement === $("q")) $("q").value = "";
  });
  $("q-from").value = range.from;
  $("q-to").value = range.to;
  // Hidden range fields only when a range is set (so a search keeps the default range).
  for (const id of ["q-from", "q-to"]) if (!$(id).value) $(id).disabled = true;
}

async function freshness() {
  try {
    const m = await api("meta");
    const last = m.tables.ip_daily.last;
    $("freshness").textContent = last ? `rolled up through ${last} (UTC)` : "no rollup yet";
  } catch {
    /* the page shows its own error */
  }
}

async function route() {
  const path = location.pathname;
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page || (page === "org" && a.dataset.page === "orgs")) a.setAttribute("aria-current", "page");
  }
  switch (page) {
    case "overview":
      return overview();
    case "search":
      return search();
    case "ip":
      return ipPage(parts[1] || "");
    case "port":
      return portPage(parts[1] || "tcp", parts[2] || "0");
    case "org":
      return orgPage(parts.slice(1).join("/"));
    case "orgs":
      return orgsPage();
    case "sensors":
      return sensorsPage();
    case "tor":
      return torPage();
    default:
      throw new ApiError(404, { error: { message: `no page ${path}` } });
  }
}

frame();
freshness();
route()
  .then(() => document.body.setAttribute("data-ready", "true"))
  .catch((e) => {
    fail(e);
    document.body.setAttribute("data-ready", "error");
  });
