// Classification cell: the confusion matrix as a heatmap, per-class precision/recall/F1, and a box
// that classifies typed text on an inference worker and shows the class probabilities.
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function drawConfusion(node, data) {
    const labels = data.labels || [];
    const matrix = data.confusion_matrix || [];
    if (!labels.length || !matrix.length || typeof Plotly === "undefined") return;
    // Rows are true labels, columns predictions; the first row is drawn at the top.
    Plotly.newPlot(node, [{
      type: "heatmap", z: matrix, x: labels, y: labels, colorscale: "Blues", showscale: false,
      text: matrix.map((row) => row.map(String)), texttemplate: "%{text}",
      hovertemplate: "true %{y}, predicted %{x}: %{z}<extra></extra>",
    }], {
      title: { text: "confusion matrix (validation)", font: { size: 13 } },
      margin: { l: 70, r: 10, t: 36, b: 50 }, height: 260,
      xaxis: { title: { text: "predicted" } }, yaxis: { title: { text: "true" }, autorange: "reversed" },
      paper_bgcolor: "rgba(0,0,0,0)",
    }, { displayModeBar: false, responsive: true });
  }

  function fillPerClass(table, data) {
    const perClass = (data.metrics || {}).per_class || {};
    const labels = Object.keys(perClass);
    if (!labels.length) return;
    const head = el("tr");
    ["class", "precision", "recall", "F1", "support"].forEach((h) => head.appendChild(el("th", null, h)));
    table.appendChild(head);
    labels.forEach((label) => {
      const m = perClass[label];
      const row = el("tr");
      row.appendChild(el("td", null, label));
      ["precision", "recall", "f1"].forEach((k) => row.appendChild(el("td", null, Number(m[k]).toFixed(3))));
      row.appendChild(el("td", null, String(m.support)));
      table.appendChild(row);
    });
  }

  function showResult(box, answer) {
    box.textContent = "";
    const probabilities = answer.probabilities || {};
    box.appendChild(el("p", "classify-label", `→ ${answer.label}`));
    Object.entries(probabilities).sort((a, b) => b[1] - a[1]).forEach(([label, p]) => {
      const row = el("div", "prob-row");
      row.appendChild(el("span", "prob-label", label));
      const bar = el("span", "prob-bar");
      const fill = el("span", "prob-fill");
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      bar.appendChild(fill);
      row.appendChild(bar);
      row.appendChild(el("span", "prob-value", `${(100 * p).toFixed(1)}%`));
      box.appendChild(row);
    });
  }

  function setUp(root) {
    const source = root.querySelector("[data-role=confusion]");
    const data = JSON.parse(document.getElementById(source.dataset.source).textContent);
    drawConfusion(source, data);
    fillPerClass(root.querySelector("[data-role=per-class]"), data);
    const form = root.querySelector("[data-role=classify-form]");
    const result = root.querySelector("[data-role=classify-result]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = form.elements.text.value;
      const button = form.querySelector("button");
      button.disabled = true;
      result.textContent = "asking the model…";
      try {
        const response = await fetch(root.dataset.classifyUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          body: JSON.stringify({ text }),
        });
        const body = await response.json();
        if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
        showResult(result, body.results[0]);
      } catch (e) {
        result.textContent = "";
        result.appendChild(el("p", "error", e.message));
      } finally {
        button.disabled = false;
      }
    });
  }

  document.querySelectorAll("[data-role=classifier]").forEach(setUp);
})();
