// Reward models: the held-out pairs' rewards as two histograms (chosen vs rejected), and a box that
// scores a typed prompt + response on an inference worker (the classify box's request, for a reward).
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

  function drawHistogram(node) {
    const data = JSON.parse(document.getElementById(node.dataset.source).textContent);
    if (typeof Plotly === "undefined" || !(data.chosen || []).length) return;
    const trace = (values, name, color) => ({
      // One bin group: both histograms share their bins, so their bars compare reward for reward.
      type: "histogram", x: values, name, opacity: 0.6, marker: { color }, nbinsx: 30, bingroup: "rewards",
      hovertemplate: `${name}: %{y} pairs at reward %{x}<extra></extra>`,
    });
    Plotly.newPlot(node, [trace(data.chosen, "chosen", "#16a34a"), trace(data.rejected, "rejected", "#dc2626")], {
      barmode: "overlay", title: { text: `rewards of ${data.chosen.length} held-out pairs`, font: { size: 13 } },
      margin: { l: 48, r: 12, t: 36, b: 40 }, height: 260, legend: { orientation: "h", y: 1.12, x: 0 },
      xaxis: { title: { text: "reward" } }, yaxis: { title: { text: "pairs" } },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    }, { displayModeBar: false, responsive: true });
  }

  function setUpScorer(root) {
    const form = root.querySelector("[data-role=score-form]");
    const result = root.querySelector("[data-role=score-result]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      result.textContent = "asking the model…";
      try {
        const response = await fetch(root.dataset.scoreUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          body: JSON.stringify({ prompt: form.elements.prompt.value, response: form.elements.response.value }),
        });
        const body = await response.json();
        if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
        result.textContent = "";
        result.appendChild(el("p", "score-value", `reward ${body.results[0].reward.toFixed(3)}`));
      } catch (e) {
        result.textContent = "";
        result.appendChild(el("p", "error", e.message));
      } finally {
        button.disabled = false;
      }
    });
  }

  document.querySelectorAll("[data-role=reward-histogram]").forEach(drawHistogram);
  document.querySelectorAll("[data-role=reward-scorer]").forEach(setUpScorer);
})();
