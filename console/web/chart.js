// Line charts as SVG, built with DOM calls only (no markup strings). Each chart has a text
// summary for screen readers; the page shows the same figures in a table beside it.
const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmt(n) {
  return Number(n).toLocaleString("en-US");
}

// labels: x-axis labels (dates or times); series: [{name, values: [number]}].
export function lineChart(title, labels, series) {
  const fig = document.createElement("figure");
  fig.className = "chart";
  const W = 720, H = 220, L = 56, R = 12, T = 10, B = 34;
  const max = Math.max(1, ...series.flatMap((s) => s.values.map(Number)));
  const n = labels.length;
  const x = (i) => (n <= 1 ? L + (W - L - R) / 2 : L + (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - Number(v) / max);
  const summary = series
    .map((s) => {
      const peak = s.values.reduce((a, v, i) => (Number(v) > Number(s.values[a]) ? i : a), 0);
      return `${s.name}: ${n} points, highest ${fmt(s.values[peak] ?? 0)} on ${labels[peak] ?? "-"}`;
    })
    .join("; ");
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": `${title}. ${summary}` });
  svg.appendChild(el("title", {}, title));
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(max * f);
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" }));
    svg.appendChild(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  const step = Math.max(1, Math.ceil(n / 8));
  labels.forEach((lab, i) => {
    if (i % step === 0 || i === n - 1) {
      svg.appendChild(el("text", { x: x(i), y: H - 12, "text-anchor": "middle" }, lab));
    }
  });
  series.forEach((s, k) => {
    const cls = k % 6;
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    if (n > 1) svg.appendChild(el("polyline", { points: pts, class: `series-${cls}` }));
    s.values.forEach((v, i) => {
      const c = el("circle", { cx: x(i), cy: y(v), r: 3, class: `pt dot-${cls}` });
      c.appendChild(el("title", {}, `${s.name} ${labels[i]}: ${fmt(v)}`));
      svg.appendChild(c);
    });
  });
  fig.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, k) => {
    const item = document.createElement("span");
    const sw = document.createElement("span");
    sw.className = `sw sw-${k % 6}`;
    item.appendChild(sw);
    item.appendChild(document.createTextNode(s.name));
    legend.appendChild(item);
  });
  fig.appendChild(legend);
  const cap = document.createElement("figcaption");
  cap.className = "sr-only";
  cap.textContent = summary;
  fig.appendChild(cap);
  return fig;
}
