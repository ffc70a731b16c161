// The workers page: draws the fleet snapshot, then redraws it from ws/fleet/ as workers heartbeat.
(() => {
  const root = document.getElementById("fleet");
  const body = root.querySelector("[data-role=workers] tbody");
  const csrf = document.querySelector("#drain-form [name=csrfmiddlewaretoken]").value;
  const gib = (bytes) => bytes == null ? "?" : (bytes / 2 ** 30).toFixed(1);
  const text = (tag, value, cls) => { const el = document.createElement(tag); el.textContent = value; if (cls) el.className = cls; return el; };

  function devices(w) {
    if (!w.devices.length) return text("span", `CPU only (${w.cpu_count} cores)${w.nvml_error ? ": " + w.nvml_error : ""}`, "muted");
    const list = document.createElement("div");
    for (const d of w.devices) {
      const used = d.memory_total ? d.memory_used / d.memory_total : 0;
      const line = text("div", `#${d.index} ${d.name ?? "GPU"} · ${gib(d.memory_used)}/${gib(d.memory_total)} GiB · ` +
        `${d.utilisation ?? "?"}% · ${d.temperature ?? "?"}°C · ${d.power_w == null ? "?" : d.power_w.toFixed(0)} W`);
      line.dataset.role = "device";
      const bar = document.createElement("progress"); bar.max = 1; bar.value = used; bar.title = "memory used";
      bar.style.marginRight = "6px";
      line.prepend(bar);
      list.append(line);
    }
    return list;
  }

  function drainButton(w) {
    const form = document.createElement("form");
    form.method = "post"; form.action = `/fleet/workers/${w.id}/drain/`;
    form.innerHTML = `<input type="hidden" name="csrfmiddlewaretoken"><input type="hidden" name="draining">`;
    form.querySelector("[name=csrfmiddlewaretoken]").value = csrf;
    form.querySelector("[name=draining]").value = w.draining ? "0" : "1";
    const button = text("button", w.draining ? "Undrain" : "Drain", "link");
    form.append(button);
    return form;
  }

  function draw(snapshot) {
    body.replaceChildren();
    root.querySelector("[data-role=empty]").hidden = snapshot.workers.length > 0;
    for (const w of snapshot.workers) {
      const row = document.createElement("tr");
      row.dataset.worker = w.hostname;
      row.append(text("td", w.hostname), text("td", w.state, `state-${w.state}`), text("td", `${w.heartbeat_age_s.toFixed(0)} s ago`),
        text("td", w.queues.join(", ")));
      const dev = document.createElement("td"); dev.append(devices(w)); row.append(dev);
      const runs = document.createElement("td");
      for (const r of w.runs) {
        const a = text("a", `run ${r.id} · ${r.team} · ${r.stage} · step ${r.step}${r.total_steps ? "/" + r.total_steps : ""}`);
        a.href = `/admin/runs/run/${r.id}/change/`; runs.append(a, document.createElement("br"));
      }
      if (!w.runs.length) runs.append(text("span", "idle", "muted"));
      const act = document.createElement("td"); if (w.state !== "offline") act.append(drainButton(w));
      row.append(runs, act);
      body.append(row);
    }
    root.querySelector("[data-role=updated]").textContent = new Date().toLocaleTimeString();
  }

  draw(JSON.parse(document.getElementById("fleet-snapshot").textContent));
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${proto}://${location.host}${root.dataset.socket}`);
    socket.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === "fleet") draw(m); };
    socket.onclose = () => setTimeout(connect, 3000);
  }
  connect();
})();
