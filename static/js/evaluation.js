// Evaluate cell and report page: each table's metrics as grouped bars (one colour per checkpoint)
// with error bars to the 95% interval.
(function () {
  "use strict";

  function draw(node) {
    const data = JSON.parse(document.getElementById(node.dataset.source).textContent);
    if (!data.metrics.length || typeof Plotly === "undefined") return;
    const traces = data.models.map((m) => ({
      type: "bar", name: m.label, x: data.metrics, y: m.values,
      error_y: { type: "data", symmetric: false, array: m.plus, arrayminus: m.minus, visible: true },
      hovertemplate: `${m.label}<br>%{x}: %{y:.4g}<extra></extra>`,
    }));
    Plotly.newPlot(node, traces, {
      barmode: "group", height: 280, margin: { l: 50, r: 10, t: 10, b: 40 },
      legend: { orientation: "h", y: -0.2 }, paper_bgcolor: "rgba(0,0,0,0)",
    }, { displayModeBar: false, responsive: true });
  }

  document.querySelectorAll("[data-role=evaluation-chart]").forEach(draw);
})();
