// Live view of one run: charts, progress, samples and log, fed by the run's websocket.
// The server replays stored events after `?after=<seq>` and then streams live batches; we drop
// duplicates by seq and reconnect on a gap, so a reload or a dropped socket loses nothing.
(function () {
  "use strict";

  const TERMINAL = ["succeeded", "failed", "cancelled", "lost"];
  const CHART_LAYOUT = {
    margin: { l: 48, r: 12, t: 28, b: 32 }, height: 220, showlegend: true,
    legend: { orientation: "h", y: 1.18, x: 0 }, font: { size: 11 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    xaxis: { title: { text: "step" }, gridcolor: "#e5e7eb" }, yaxis: { gridcolor: "#e5e7eb" },
  };
  const CHARTS = {
    loss: { title: "loss", series: [["loss", "train loss"], ["val_loss", "val loss"]] },
    lr: { title: "learning rate", series: [["lr", "lr"]] },
    speed: { title: "tokens / s", series: [["tokens_per_s", "tokens/s"]] },
    quality: { title: "validation", series: [["accuracy", "accuracy"], ["macro_f1", "macro-F1"]] },
    memory: { title: "GPU memory (GiB)", series: [["gpu_memory_gb", "peak allocated"]] },
    // Reward models: how often the chosen answer gets the higher reward, in training batches and on held-out pairs.
    pairs: { title: "pairwise accuracy", series: [["accuracy", "train"], ["val_accuracy", "held-out"]] },
    // Reinforcement learning: the weighted reward, and one series per reward function as it first appears (`prefix`).
    reward: { title: "mean reward", series: [["reward", "total (weighted)"], ["val_reward", "held-out"]], prefix: "reward/" },
    kl: { title: "KL to the reference", series: [["kl", "KL"]] },
    length: { title: "answer length (tokens)", series: [["completion_length", "mean"]] },
    // Preference tuning: the implicit rewards of chosen and rejected answers, their margin and how often chosen wins.
    rewards: { title: "rewards", series: [["rewards/chosen", "chosen"], ["rewards/rejected", "rejected"]] },
    margins: { title: "reward margin · chosen wins", series: [["rewards/margins", "margin"], ["val_rewards/margins", "val margin"],
                                                              ["rewards/accuracies", "accuracy"], ["val_rewards/accuracies", "val accuracy"]] },
  };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function formatSeconds(s) {
    if (!isFinite(s) || s < 0) return "–";
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }

  class RunView {
    constructor(root) {
      this.root = root;
      this.runId = Number(root.dataset.runId);
      this.compact = root.dataset.compact === "1";
      this.state = JSON.parse(root.dataset.state || "{}");
      this.lastSeq = 0;
      this.points = 0;
      this.firstMetric = null; // {step, t} to estimate the ETA
      this.lastMetric = null;
      this.retry = 0;
      this.build();
      this.renderState();
      // The first paint shows the stored progress as it is; only later changes slide.
      requestAnimationFrame(() => this.root.classList.add("painted"));
      this.connect();
      (window.__labRuns = window.__labRuns || {})[this.runId] = this;
    }

    build() {
      const r = this.root;
      this.statusEl = r.querySelector("[data-role=status]");
      this.whereEl = r.querySelector("[data-role=where]");
      this.progressBar = r.querySelector("[data-role=progress-bar]");
      this.progressText = r.querySelector("[data-role=progress-text]");
      this.metricsEl = r.querySelector("[data-role=metrics]");
      this.samplesEl = r.querySelector("[data-role=samples]");
      this.logEl = r.querySelector("[data-role=log]");
      this.charts = {};
      this.series = {}; // per chart: its [metric key, name] pairs, CHARTS' own plus those a prefix added
      this.chartsEl = r.querySelector("[data-role=charts]");
      // The template names the charts that fit the stage (data-charts="loss,lr,speed"); none for "".
      // A stage with charts also gets the GPU memory chart once a run reports GPU memory.
      this.wantsCharts = Boolean(this.root.dataset.charts);
      (this.root.dataset.charts || "").split(",").filter((key) => CHARTS[key]).forEach((key) => this.addChart(key));
    }

    addChart(key) {
      const div = el("div", "chart");
      div.dataset.chart = key;
      this.chartsEl.appendChild(div);
      this.series[key] = CHARTS[key].series.slice();
      const traces = CHARTS[key].series.map(([, name]) => ({ x: [], y: [], name, mode: "lines+markers", marker: { size: 4 } }));
      const layout = Object.assign({}, CHART_LAYOUT, { title: { text: CHARTS[key].title, font: { size: 13 } } },
                                   this.compact ? { height: 190 } : {});
      if (key === "lr") layout.yaxis = Object.assign({}, CHART_LAYOUT.yaxis, { exponentformat: "e" });
      Plotly.newPlot(div, traces, layout, { displayModeBar: false, responsive: true });
      // `responsive` follows the window only; a grid cell can change width on its own.
      new ResizeObserver(() => Plotly.Plots.resize(div)).observe(div);
      this.charts[key] = div;
    }

    addSeries(chart, key, name) {
      this.series[chart].push([key, name]);
      Plotly.addTraces(this.charts[chart], { x: [], y: [], name, mode: "lines+markers", marker: { size: 4 } });
    }

    addRewardRow(e) { // the rl stage's samples: one table row per answer, a column per reward
      let table = this.samplesEl.querySelector("table.reward-samples");
      if (!table) {
        table = el("table", "reward-samples");
        const head = table.createTHead().insertRow();
        // Each reward, then their weighted total (the stored event's keys come back in the database's order).
        const rewards = Object.keys(e.rewards).filter((name) => name !== "total").concat(["total"]);
        ["step", "prompt", "answer", ...rewards].forEach((name) => head.appendChild(el("th", "", name)));
        table.createTBody();
        this.samplesEl.prepend(table);
      }
      const row = el("tr");
      row.appendChild(el("td", "", String(e.step)));
      const prompt = el("td", "reward-prompt", e.prompt.length > 80 ? e.prompt.slice(0, 80) + "…" : e.prompt);
      prompt.title = e.prompt;
      row.appendChild(prompt);
      const answer = el("td");
      answer.appendChild(el("pre", "", e.text));
      row.appendChild(answer);
      Array.from(table.tHead.rows[0].cells).slice(3).forEach((th) => {
        const value = e.rewards[th.textContent];
        row.appendChild(el("td", "num", value === null || value === undefined ? "–" : Number(value).toFixed(2)));
      });
      const body = table.tBodies[0];
      body.prepend(row);
      while (body.rows.length > 100) body.deleteRow(-1);
    }

    connect() {
      const proto = location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${proto}://${location.host}/ws/runs/${this.runId}/?after=${this.lastSeq}`);
      this.ws = ws;
      ws.onopen = () => { this.retry = 0; this.root.dataset.connected = "1"; };
      ws.onmessage = (msg) => this.receive(JSON.parse(msg.data));
      ws.onclose = () => {
        this.root.dataset.connected = "0";
        if (this.closedOnPurpose) return;
        this.retry = Math.min(this.retry + 1, 6);
        setTimeout(() => this.connect(), 250 * 2 ** this.retry);
      };
    }

    reconnect() { // a gap in seq: ask the server to replay from what we have
      this.ws.onclose = null;
      this.ws.close();
      this.connect();
    }

    receive(message) {
      const fresh = [];
      for (const event of message.events) {
        if (event.seq <= this.lastSeq) continue; // already seen (replay overlapping live)
        if (event.seq !== this.lastSeq + 1) { this.reconnect(); break; }
        fresh.push(event);
        this.lastSeq = event.seq;
      }
      this.apply(fresh);
      if (message.run) { this.state = message.run; this.renderState(); }
      this.root.dataset.lastSeq = String(this.lastSeq);
    }

    apply(events) {
      let add = {};
      for (const e of events) {
        const resumedFrom = e.type === "status" && e.summary ? e.summary.resumed_from_step : null;
        if (resumedFrom !== null && resumedFrom !== undefined) {
          // A resumed attempt trains again from its checkpoint: what the lost attempt logged after it goes.
          this.extend(add);
          add = {};
          this.rewind(resumedFrom);
        }
        if (e.type === "metric") {
          const v = e.values || {};
          if (v.gpu_memory_gb !== undefined && this.wantsCharts && !this.charts.memory) this.addChart("memory");
          // Evaluation during training: each score of the checkpoints (`eval/<task>/<metric>`) its own chart.
          Object.keys(v).filter((k) => k.startsWith("eval/") && this.wantsCharts && !this.charts[k]).forEach((k) => {
            CHARTS[k] = CHARTS[k] || { title: `${k.slice(5)} · each checkpoint`, series: [[k, k.split("/")[1]]] };
            this.addChart(k);
          });
          for (const [chart, spec] of Object.entries(CHARTS)) {
            if (!this.charts[chart]) continue;
            const series = this.series[chart];
            if (spec.prefix) {
              Object.keys(v).filter((k) => k.startsWith(spec.prefix) && !series.some(([s]) => s === k))
                .forEach((k) => this.addSeries(chart, k, k.slice(spec.prefix.length)));
            }
            series.forEach(([key], i) => {
              if (v[key] === undefined) return;
              const slot = (add[chart] = add[chart] || []);
              slot[i] = slot[i] || { x: [], y: [] };
              slot[i].x.push(e.step); slot[i].y.push(v[key]);
              this.points += 1;
            });
          }
          if (v.loss !== undefined) {
            this.lastMetric = { step: e.step, t: e.t };
            if (!this.firstMetric || e.step < this.firstMetric.step) this.firstMetric = this.lastMetric;
          }
          this.latest = Object.assign(this.latest || {}, v);
        } else if (e.type === "sample" && this.samplesEl && e.rewards) {
          this.addRewardRow(e);
        } else if (e.type === "sample" && this.samplesEl) {
          const box = el("div", "sample");
          box.appendChild(el("div", "sample-step", `step ${e.step}`));
          box.appendChild(el("pre", "", (e.prompt || "") + e.text));
          this.samplesEl.prepend(box);
        } else if (this.logEl && (e.type === "log" || e.type === "status" || e.type === "error" || e.type === "checkpoint" || e.type === "artifact")) {
          const text = e.type === "checkpoint" ? `checkpoint saved at step ${e.step}`
            : e.type === "artifact" ? `artifact: ${e.kind}`
            : e.type === "status" ? `status: ${e.status}${e.message ? " — " + e.message : ""}`
            : e.message;
          const line = el("div", `log-line log-${e.type}`, `${new Date(e.t * 1000).toLocaleTimeString()}  ${text}`);
          this.logEl.appendChild(line);
          while (this.logEl.childNodes.length > 200) this.logEl.removeChild(this.logEl.firstChild);
          this.logEl.scrollTop = this.logEl.scrollHeight;
        }
      }
      this.extend(add);
    }

    extend(add) {
      for (const [chart, slots] of Object.entries(add)) {
        const idx = [], xs = [], ys = [];
        slots.forEach((s, i) => { if (s.x.length) { idx.push(i); xs.push(s.x); ys.push(s.y); } });
        if (idx.length) Plotly.extendTraces(this.charts[chart], { x: xs, y: ys }, idx);
      }
    }

    rewind(step) {
      for (const div of Object.values(this.charts)) {
        let cut = false;
        for (const trace of div.data) {
          const keep = trace.x.findIndex((x) => x > step);
          if (keep === -1) continue;
          trace.x = trace.x.slice(0, keep); trace.y = trace.y.slice(0, keep);
          cut = true;
        }
        if (cut) Plotly.redraw(div);
      }
      if (this.lastMetric && this.lastMetric.step > step) this.firstMetric = this.lastMetric = null;
    }

    renderState() {
      const s = this.state;
      if (this.statusEl) {
        this.statusEl.textContent = s.status;
        this.statusEl.className = `badge badge-${s.status}`;
      }
      if (this.whereEl && s.attempt !== undefined) {
        this.whereEl.textContent = `attempt ${s.attempt}` + (s.worker ? ` · ${s.worker}` : "");
      }
      const total = s.total_steps || 0;
      const step = s.step || 0;
      // Stages without steps (clean, tokenizer) report the share of their input done as `progress`.
      const fraction = (s.latest_metrics || {}).progress;
      const pct = total ? Math.min(100, (100 * step) / total)
        : s.status === "succeeded" ? 100 : fraction !== undefined ? 100 * fraction : 0;
      if (this.progressBar) this.progressBar.style.width = pct.toFixed(1) + "%";
      if (this.progressText) {
        let eta = "";
        if (s.status === "running" && this.firstMetric && this.lastMetric && this.lastMetric.step > this.firstMetric.step && total) {
          const rate = (this.lastMetric.t - this.firstMetric.t) / (this.lastMetric.step - this.firstMetric.step);
          eta = ` · ETA ${formatSeconds(rate * (total - step))}`;
        }
        this.progressText.textContent = total ? `step ${step} / ${total} (${pct.toFixed(0)}%)${eta}`
          : fraction !== undefined && s.status === "running" ? `${pct.toFixed(0)}% of the input` : s.status;
      }
      if (this.metricsEl) {
        const m = s.latest_metrics || {};
        const show = [["loss", 4], ["val_loss", 4], ["val_ppl", 2], ["accuracy", 3], ["macro_f1", 3], ["rewards/margins", 3], ["rewards/accuracies", 2], ["reward", 3], ["kl", 4], ["lr", 6],
                      ["tokens_per_s", 0], ["gpu_memory_gb", 2], ["mb_per_s", 1], ["docs_per_s", 0]];
        this.metricsEl.textContent = show.filter(([k]) => m[k] !== undefined)
          .map(([k, d]) => `${k} ${Number(m[k]).toFixed(d)}`).join(" · ");
      }
      this.root.querySelectorAll("[data-when]").forEach((node) => {
        const when = node.dataset.when;
        node.hidden = !((when === "cancellable" && s.can_cancel) || (when === "resumable" && s.can_resume)
          || (when === "pausable" && s.can_pause));
      });
      const error = this.root.querySelector("[data-role=error]");
      if (error) { error.hidden = !s.error; error.textContent = s.error ? `${s.error_field ? s.error_field + ": " : ""}${s.error}` : ""; }
      if (TERMINAL.includes(s.status)) this.root.dataset.finished = "1";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-run-view]").forEach((root) => new RunView(root));
  });
})();
