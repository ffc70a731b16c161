// Dataset page: the length histogram and the counts by label / role / answer, from describe()'s stats.
(function () {
  "use strict";
  const stats = JSON.parse(document.getElementById("dataset-stats").textContent);
  const holder = document.querySelector("[data-role=dataset-charts]");
  const layout = (title, xTitle) => ({
    title: { text: title, font: { size: 13 } }, height: 260, margin: { l: 48, r: 12, t: 32, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", bargap: 0.05,
    xaxis: { title: { text: xTitle }, gridcolor: "#e5e7eb" }, yaxis: { title: { text: "records" }, gridcolor: "#e5e7eb" },
  });
  function chart(traces, lay) {
    const div = document.createElement("div");
    div.className = "chart";
    holder.appendChild(div);
    Plotly.newPlot(div, traces, lay, { displayModeBar: false, responsive: true });
    new ResizeObserver(() => Plotly.Plots.resize(div)).observe(div);
  }
  function histogram(h, title, unit) {
    if (!h || !h.bins || !h.bins.length) return;
    // Log-spaced bins: draw each as a bar from its low to its high edge on a log axis.
    const x = h.bins.map(([lo, hi]) => Math.sqrt(lo * (hi || lo * 1.19)) || 0.5);
    const width = h.bins.map(([lo, hi]) => (hi || lo * 1.19) - lo || 1);
    const text = h.bins.map(([lo, hi, n]) => `${lo}–${hi ?? "∞"} ${unit}: ${n}`);
    const lay = layout(title, unit);
    lay.xaxis.type = "log";
    chart([{ type: "bar", x, y: h.bins.map((b) => b[2]), width, hovertext: text, hoverinfo: "text", marker: { color: "#6366f1" } }], lay);
  }
  function counts(c, title, xTitle) {
    if (!c) return;
    const keys = Object.keys(c);
    if (keys.length < 1) return;
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
})();
