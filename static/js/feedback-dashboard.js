// The campaign dashboard: drawn from the statistics embedded in the page, then redrawn from each
// message of the campaign's websocket (which sends fresh statistics after votes and new items).
(() => {
  const root = document.querySelector("[data-dashboard]");
  if (!root) return;
  const $ = (role) => root.querySelector(`[data-role=${role}]`);
  const live = document.querySelector("[data-role=live]");
  const state = { updates: 0, votes: 0 };
  window.__labCampaign = state;

  const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(0)}%`);
  const num = (x, digits = 2) => (x === null || x === undefined ? "–" : x.toFixed(digits));
  const share = (s) => (s.n ? `${pct(s.rate)} <span class="muted">of ${s.n}</span>` : "–");
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const rows = (el, html, empty, cols) => { el.innerHTML = html.length ? html.join("") : `<tr><td colspan="${cols}" class="muted">${empty}</td></tr>`; };

  function draw(stats) {
    const p = stats.progress;
    state.votes = p.votes;
    $("progress-bar").style.width = `${Math.min(100, 100 * p.share)}%`;
    $("votes").textContent = p.votes;
    $("target").textContent = p.target_votes;
    $("complete").textContent = p.complete_items;
    $("items").textContent = p.items;
    $("alpha").textContent = stats.alpha.value === null ? "–" : `${num(stats.alpha.value, 3)} (${stats.alpha.units} items)`;
    $("position-bias").innerHTML = share(stats.position_bias);
    $("labels").textContent = Object.entries(stats.labels).map(([k, n]) => `${k.replace("_", " ")} ${n}`).join(" · ");
    rows($("leaderboard"), stats.leaderboard.map((r) => `<tr><td>${r.rank}</td><td>${esc(r.model)}${flag(r)}</td>` +
      `<td><b>${r.elo.toFixed(0)}</b></td>` +
      `<td>${bound(r.lower, "−∞")} – ${bound(r.upper, "+∞")}</td><td>${r.battles}</td></tr>`), "No votes between two different models yet.", 5);
    $("rating-note").textContent = stats.rating_note || "";
    $("rating-note").hidden = !stats.rating_note;
    rows($("annotators"), stats.annotators.map((a) => `<tr${a.flagged_fast ? ' class="flagged"' : a.judge ? ' class="judge"' : ""} data-annotator="${esc(a.annotator)}">` +
      `<td>${esc(a.annotator)}${a.flagged_fast ? ' <span class="badge badge-failed" title="half or more of their votes were faster than reading the responses">too fast</span>' : ""}` +
      `${a.judge ? ` <span class="badge badge-${esc(a.judge.status)}" title="a model on a worker, run ${a.judge.run}: ${esc(a.judge.status)}">${a.judge.method === "reward" ? "reward model" : "judge"}</span>` : ""}</td>` +
      `<td>${a.votes}${a.open ? ` <span class="muted">+${a.open} open</span>` : ""}</td><td>${num(a.median_seconds, 1)}</td>` +
      `<td>${share(a.majority)}</td><td>${num(a.majority_kappa, 2)}</td><td>${share(a.gold)}</td>` +
      `<td>${a.judge ? (a.first_wins && a.first_wins.n ? `${share(a.first_wins)} <span class="muted">first</span>` : "–") : share(a.left_wins)}</td></tr>`),
      "No annotators chosen.", 7);
    rows($("kappa"), stats.kappa.map((k) => `<tr><td>${esc(k.first)} · ${esc(k.second)}</td><td>${k.items}</td><td>${num(k.kappa, 3)}</td></tr>`),
      "Needs two annotators.", 3);
    drawHeatmap(stats.win_rates);
    state.updates += 1;
  }

  // An interval's unbounded side comes as null.
  const bound = (x, open) => (x === null ? `<span class="open" title="the votes set no bound on this side">${open}</span>`
    : x.toFixed(0));
  const votes = (n) => `${n} vote${n === 1 ? "" : "s"}`;
  function flag(r) {
    if (r.unbeaten) return ` <span class="badge badge-unbounded">unbeaten in ${votes(r.battles)}: rating unbounded above</span>`;
    if (r.never_won) return ` <span class="badge badge-unbounded">never won in ${votes(r.battles)}: rating unbounded below</span>`;
    return "";
  }

  function drawHeatmap(w) {
    const el = $("heatmap");
    if (!window.Plotly || w.models.length < 2) { el.hidden = true; return; }
    el.hidden = false;
    const text = w.rate.map((row, r) => row.map((x, c) => (x === null ? "" : `${(100 * x).toFixed(0)}% of ${w.n[r][c]}`)));
    Plotly.react(el, [{
      type: "heatmap", x: w.models, y: w.models, z: w.rate, text, texttemplate: "%{text}", zmin: 0, zmax: 1,
      colorscale: "RdBu", reversescale: false, hovertemplate: "%{y} beat %{x}: %{text}<extra></extra>",
      colorbar: { title: { text: "win rate" }, thickness: 12 },
    }], {
      title: { text: "Win rate of the row model against the column model", font: { size: 13 } },
      margin: { l: 110, r: 10, t: 36, b: 80 }, height: 320, yaxis: { autorange: "reversed" },
    }, { displayModeBar: false, responsive: true });
  }

  draw(JSON.parse(document.getElementById("campaign-stats").textContent));

  let delay = 500;
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/ws/campaigns/${root.dataset.campaign}/`);
    ws.onopen = () => { delay = 500; live.classList.add("on"); };
    ws.onmessage = (msg) => { const data = JSON.parse(msg.data); if (data.stats) draw(data.stats); };
    ws.onclose = () => { live.classList.remove("on"); setTimeout(connect, delay); delay = Math.min(delay * 2, 10000); };
  }
  connect();
})();
