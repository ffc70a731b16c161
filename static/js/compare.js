// Compare runs: one chart per metric, one line per run (the run's colour everywhere on the page),
// x by step, tokens seen or seconds since the run started. The data is the page's own JSON.
(function () {
  "use strict";

  const LAYOUT = {
    margin: { l: 52, r: 12, t: 30, b: 72 }, height: 270, showlegend: true,
    legend: { orientation: "h", y: -0.38, yanchor: "top", x: 0 }, font: { size: 11 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    yaxis: { gridcolor: "#e5e7eb" },
  };
  const X_TITLES = { step: "step", tokens: "tokens seen", time: "seconds since start" };

  function traces(data, key, axis) {
    const out = [];
    data.runs.forEach((run, i) => {
      const curve = data.curves[i][key];
      if (!curve) return;
      // An eval point logged before any tokens were counted has no place on the tokens axis.
      const keep = curve.y.map((_, j) => curve[axis][j] !== null);
      out.push({
        x: curve[axis].filter((_, j) => keep[j]), y: curve.y.filter((_, j) => keep[j]),
        name: run.label, mode: "lines+markers", marker: { size: 4, color: run.color }, line: { color: run.color },
      });
    });
    return out;
  }

  function draw(root, data, axis) {
    data.keys.forEach((key) => {
      let div = root.querySelector(`[data-chart="${CSS.escape(key)}"]`);
      const layout = Object.assign({}, LAYOUT, {
        title: { text: key, font: { size: 13 } },
        xaxis: { title: { text: X_TITLES[axis] }, gridcolor: "#e5e7eb" },
      });
      if (key === "lr") layout.yaxis = Object.assign({}, LAYOUT.yaxis, { exponentformat: "e" });
      if (!div) {
        div = document.createElement("div");
        div.className = "chart";
        div.dataset.chart = key;
        root.appendChild(div);
        Plotly.newPlot(div, traces(data, key, axis), layout, { displayModeBar: false, responsive: true });
        new ResizeObserver(() => Plotly.Plots.resize(div)).observe(div);
      } else {
        Plotly.react(div, traces(data, key, axis), layout);
      }
    });
    root.dataset.axis = axis;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.querySelector("[data-role=compare-charts]");
    if (!root) return;
    const data = JSON.parse(document.getElementById("compare-data").textContent);
    draw(root, data, "step");
    document.querySelectorAll("[data-role=x-axis] input").forEach((input) => {
      input.addEventListener("change", () => draw(root, data, input.value));
    });
  });
})();
