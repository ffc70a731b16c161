// Notebook page helpers: the tokenizer "try it" box and the live cost estimate of pretrain cells.
(function () {
  "use strict";

  function debounce(fn, ms) {
    let timer;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  function si(v) {
    for (const [u, s] of [["T", 1e12], ["G", 1e9], ["M", 1e6], ["k", 1e3]]) if (Math.abs(v) >= s) return (v / s).toPrecision(3) + u;
    return String(v);
  }

  function tokenizerBox(box) {
    const input = box.querySelector(".try-text");
    const out = box.querySelector("[data-role=tokens]");
    const show = async () => {
      const resp = await fetch(`${box.dataset.encodeUrl}?text=${encodeURIComponent(input.value)}`);
      if (!resp.ok) return;
      const data = await resp.json();
      out.replaceChildren();
      data.pieces.forEach((piece, i) => {
        const span = document.createElement("span");
        span.className = `token t${i % 6}`;
        span.textContent = piece.replace(/ /g, "·").replace(/\n/g, "↵");
        span.title = `id ${data.ids[i]} · ${JSON.stringify(data.tokens[i])}`;
        out.appendChild(span);
      });
      const note = document.createElement("div");
      note.className = "muted";
      note.textContent = `${data.count} tokens · ${data.chars_per_token ?? "–"} characters per token`;
      out.appendChild(note);
    };
    input.addEventListener("input", debounce(show, 150));
    show();
  }

  function estimateBox(form) {
    const box = form.closest(".cell").querySelector("[data-role=estimate]");
    if (!box) return;
    const fields = ["preset", "context_length", "batch_size", "grad_accum", "max_steps"];
    const update = async () => {
      const params = new URLSearchParams();
      for (const name of fields) {
        const input = form.elements[name];
        if (input && input.value !== "") params.set(name, input.value);
      }
      const resp = await fetch(`${form.dataset.estimateUrl}?${params}`);
      if (!resp.ok) return;
      const est = await resp.json();
      box.querySelectorAll("[data-est]").forEach((b) => { b.textContent = si(est[b.dataset.est]); });
    };
    form.addEventListener("input", debounce(update, 200));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".tokenizer-box").forEach(tokenizerBox);
    document.querySelectorAll("form[data-estimate-url]").forEach((f) => { if (f.dataset.estimateUrl) estimateBox(f); });
  });
})();
