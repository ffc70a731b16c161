// Dataset page: the length histogram and the counts by label / role / answer, from describe()'s stats.
(function () {
  "use strict";
  const stats = JSON.parse(document.getElementById("dataset-stats").textContent);
  const holder = document.querySelector("[data-role=dataset-charts]");
  const layout = (title, xTitle) => ({
    title: { text: title, font: { size: 13 } }, height: 280, margin: { l: 48, r: 12, t: 32, b: 80 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", bargap: 0.05,
    xaxis: { title: { text: xTitle }, gridcolor: "#e5e7eb" }, yaxis: { title: { text: "records" }, gridcolor: "#e5e7eb" },
  });
  const pending = [];
  function chart(traces, lay) {
    const div = document.createElement("div");
    div.className = "chart";
    holder.appendChild(div);
    pending.push([div, traces, lay]);
  }
  function histogram(h, title, unit) {
    if (!h || !h.bins || !h.bins.length) return;
    // The bins are log-spaced: one bar each, labelled with its range, reads better than a log axis.
    const round = (v) => (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10);
    const labels = h.bins.map(([lo, hi]) => (hi == null ? `≥${round(lo)}` : `${round(lo)}–${round(hi)}`));
    const lay = layout(title, unit);
    lay.xaxis.type = "category";
    chart([{ type: "bar", x: labels, y: h.bins.map((b) => b[2]), marker: { color: "#6366f1" } }], lay);
  }
  function counts(c, title, xTitle) {
    if (!c) return;
    const keys = Object.keys(c);
    if (keys.length < 2) return; // one bar says nothing the facts above do not
    chart([{ type: "bar", x: keys, y: keys.map((k) => c[k]), marker: { color: "#8b5cf6" } }], layout(title, xTitle));
  }
  histogram(stats.chars, "characters a record", "characters");
  histogram(stats.tokens, "tokens a record", "tokens");
  const b = stats.breakdown || {};
  counts(b.labels, "label balance", "label");
  counts(b.turns, "messages a conversation", "messages");
  counts(b.roles, "messages by role", "role");
  counts(b.answers, "answers", "answer");
  counts(b.shapes, "record shapes", "shape");
  // Plotted once every chart has its grid cell, so none is drawn at a width it then loses.
  for (const [div, traces, lay] of pending) {
    Plotly.newPlot(div, traces, lay, { displayModeBar: false, responsive: true });
    new ResizeObserver(() => Plotly.Plots.resize(div)).observe(div);
  }
})();
