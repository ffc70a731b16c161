// Dataset upload in resumable chunks (/api/uploads/): drop a file or choose one, watch the bytes go,
// survive a dropped connection (ask the server what arrived, go on from there), then the dataset page.
(function () {
  "use strict";
  const form = document.querySelector("[data-role=upload-form]");
  if (!form) return;
  const bar = form.querySelector("[data-role=upload-progress]");
  const text = form.querySelector("[data-role=upload-text]");
  const errorBox = form.querySelector("[data-role=upload-error]");
  const drop = form.querySelector("[data-role=drop-zone]");
  const input = form.elements.file;
  const csrf = form.elements.csrfmiddlewaretoken.value;
  const MAX_RETRIES = 8;

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const mb = (n) => (n / 1e6).toFixed(1) + " MB";

  async function api(method, url, body, contentType = "application/json") {
    const response = await fetch(url, {
      method, body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Content-Type": contentType, Accept: "application/json" },
    });
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    return { status: response.status, data };
  }

  function describeError(d) {
    if (!d) return "the upload failed";
    const where = [d.file, d.line && `line ${d.line}`].filter(Boolean).join(", ");
    const what = d.error || d.detail || Object.entries(d).map(([k, v]) => `${k}: ${v}`).join("; ");
    return where ? `${where}: ${what}` : what;
  }

  function show(sent, size, started) {
    bar.hidden = false;
    bar.firstElementChild.style.width = ((100 * sent) / size).toFixed(1) + "%";
    const rate = sent / Math.max((performance.now() - started) / 1000, 0.001);
    const eta = rate > 0 ? Math.round((size - sent) / rate) : 0;
    text.textContent = `${mb(sent)} of ${mb(size)} · ${mb(rate)}/s · ${eta} s left`;
  }

  async function sendChunks(upload, file, started) {
    let offset = upload.offset, retries = 0;
    while (offset < file.size) {
      const chunk = file.slice(offset, offset + upload.chunk_bytes);
      let reply;
      try {
        reply = await api("PATCH", `/api/uploads/${upload.id}/?offset=${offset}`, chunk, "application/octet-stream");
      } catch (networkError) {
        if (++retries > MAX_RETRIES) throw new Error("the connection keeps dropping; try again later");
        text.textContent = `connection lost, retrying (${retries}/${MAX_RETRIES})…`;
        await sleep(500 * 2 ** retries);
        reply = await api("GET", `/api/uploads/${upload.id}/`).catch(() => null);
        if (reply && reply.status === 200) offset = reply.data.offset;
        continue;
      }
      if (reply.status === 409) { offset = reply.data.offset; continue; }  // the server knows best
      if (reply.status !== 200) throw new Error(describeError(reply.data));
      offset = reply.data.offset;
      retries = 0;
      show(offset, file.size, started);
    }
  }

  async function upload(file) {
    errorBox.hidden = true;
    const started = performance.now();
    const created = await api("POST", "/api/uploads/", JSON.stringify({ filename: file.name, size: file.size }));
    if (created.status !== 201) throw new Error(describeError(created.data));
    show(0, file.size, started);
    await sendChunks(created.data, file, started);
    text.textContent = form.dataset.checking || "checking every record…";
    // The form says what the file becomes: a dataset (the default) or a model (data-complete="complete-model").
    const completion = form.dataset.complete || "complete";
    const done = await api("POST", `/api/uploads/${created.data.id}/${completion}/`, JSON.stringify({
      team: Number(form.elements.team.value), name: form.elements.name.value,
      ...(form.elements.kind && form.elements.kind.value ? { kind: form.elements.kind.value } : {}),
    }));
    if (done.status !== 201 && done.status !== 200) throw new Error(describeError(done.data));  // 200: already there
    location.href = (form.dataset.next || "/datasets/{id}/").replace("{id}", done.data.id);
  }

  function start(file) {
    if (!file) return;
    form.querySelector("button.primary").disabled = true;
    upload(file).catch((e) => {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
      bar.hidden = true;
      text.textContent = "";
    }).finally(() => { form.querySelector("button.primary").disabled = false; });
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); start(input.files[0]); });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (ev) => { ev.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (ev) => start(ev.dataTransfer.files[0]));
})();
