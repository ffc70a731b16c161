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

  // --- The tokenizer "try it" box: the text coloured by token, optionally beside a second tokenizer.

  // Newlines stay real characters (the box is pre-wrap); a CSS-drawn ↵ marks them without
  // changing the text, so what is shown is exactly what was typed.
  function appendText(el, text) {
    text.split("\n").forEach((line, i) => {
      if (i > 0) {
        const mark = document.createElement("span");
        mark.className = "nl";
        el.append(mark, "\n");
      }
      if (line) el.append(line);
    });
  }

  function tokenLine(data, i) {
    const shown = JSON.stringify(data.pieces[i]);
    const vocab = JSON.stringify(data.tokens[i]);
    if (!data.pieces[i]) return `id ${data.ids[i]} · token ${vocab}, within the characters above`;
    return `id ${data.ids[i]} · ${shown}` + (vocab === shown ? "" : ` (token ${vocab})`);
  }

  function isUnknown(data, i) {
    return data.unk_id !== null && data.ids[i] === data.unk_id;
  }

  function tokenSpan(data, i, colour) {
    const span = document.createElement("span");
    span.className = `token t${colour % 6}`;
    if (!data.pieces[i]) span.classList.add("empty");
    if (isUnknown(data, i)) span.classList.add("unk");
    span.dataset.ids = String(data.ids[i]);
    span.title = tokenLine(data, i);
    appendText(span, data.pieces[i]);
    return span;
  }

  // A token that covers no new character (a byte of a character the previous token began, or
  // Unigram's leading ▁) joins the previous token's span: one coloured span per stretch of text.
  function joinPrevious(span, data, i) {
    span.classList.add("shared");
    if (isUnknown(data, i)) span.classList.add("unk");
    span.dataset.ids += ` ${data.ids[i]}`;
    span.title += `\n${tokenLine(data, i)}`;
  }

  function gapSpan(text) {
    const span = document.createElement("span");
    span.className = "gap";
    span.title = "not in any token";
    appendText(span, text);
    return span;
  }

  function renderTokens(out, data) {
    out.replaceChildren();
    let previous = null;
    let spans = 0;
    data.ids.forEach((id, i) => {
      if (data.gaps[i]) {
        out.appendChild(gapSpan(data.gaps[i]));
        previous = null;
      }
      if (!data.pieces[i] && previous) return joinPrevious(previous, data, i);
      previous = tokenSpan(data, i, spans++);
      out.appendChild(previous);
    });
    if (data.tail) out.appendChild(gapSpan(data.tail));
  }

  function bold(value) {
    return Object.assign(document.createElement("b"), { textContent: String(value) });
  }

  function renderStats(el, data) {
    const unknown = data.unk_id === null
      ? ["no unknown token: every byte has one"]
      : [bold(data.unknown), " unknown"];
    el.replaceChildren(bold(data.count), " tokens · ", bold(data.chars_per_token ?? "–"),
      " characters per token · ", ...unknown);
    el.dataset.count = data.count;
    el.dataset.unknown = data.unknown;
  }

  function describe(artifact) {
    const vocab = artifact.vocab_size ? ` · ${artifact.vocab_size} tokens` : "";
    return `${artifact.name} · ${artifact.algorithm || "?"}${vocab}`;
  }

  function renderTokenization(panel, data) {
    panel.querySelector("[data-role=name]").textContent = describe(data.artifact);
    renderTokens(panel.querySelector("[data-role=tokens]"), data);
    renderStats(panel.querySelector("[data-role=token-stats]"), data);
  }

  async function fillCompareOptions(box, select) {
    const resp = await fetch(box.dataset.optionsUrl);
    if (!resp.ok) return;
    const { tokenizers } = await resp.json();
    for (const artifact of tokenizers) select.add(new Option(describe(artifact), artifact.id));
    select.disabled = tokenizers.length === 0;
    if (!tokenizers.length) select.options[0].textContent = "no other tokenizer in this team yet";
  }

  function tokenizerBox(box) {
    const input = box.querySelector(".try-text");
    const select = box.querySelector("[data-role=compare-with]");
    const mine = box.querySelector("[data-role=this-tokenizer]");
    const other = box.querySelector("[data-role=other-tokenizer]");
    let latest = 0;
    const show = async () => {
      const request = ++latest;
      const params = new URLSearchParams({ text: input.value });
      if (select.value) params.set("compare", select.value);
      const resp = await fetch(`${box.dataset.encodeUrl}?${params}`);
      if (request !== latest) return;  // a later keystroke's answer wins
      if (!resp.ok) {
        mine.querySelector("[data-role=token-stats]").textContent = `could not encode the text (${resp.status})`;
        return;
      }
      const data = await resp.json();
      if (request !== latest) return;
      renderTokenization(mine, data);
      other.hidden = !data.compare;
      if (data.compare) renderTokenization(other, data.compare);
    };
    input.addEventListener("input", debounce(show, 150));
    select.addEventListener("change", show);
    fillCompareOptions(box, select);
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
      const est = await resp.json().catch(() => ({}));
      // A value the estimate refuses greys the last numbers out and says which field and why.
      const problem = resp.ok ? "" : (est.error ? `${est.field}: ${est.error}` : `the estimate failed (${resp.status})`);
      box.classList.toggle("stale", !resp.ok);
      box.querySelector("[data-role=estimate-error]").textContent = problem;
      if (!resp.ok) return;
      box.querySelectorAll("[data-est]").forEach((b) => { b.textContent = si(est[b.dataset.est]); });
    };
    form.addEventListener("input", debounce(update, 200));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".tokenizer-box").forEach(tokenizerBox);
    document.querySelectorAll("form[data-estimate-url]").forEach((f) => { if (f.dataset.estimateUrl) estimateBox(f); });
  });
})();

// "changed" marks follow what is typed: a field whose value differs from its default is marked at once,
// and the Advanced summary counts them (the page renders the same marks for the saved values).
(() => {
  const current = (control) => control.type === "checkbox" ? (control.checked ? "True" : "False") : control.value.trim();
  const same = (value, fallback) => {
    if (value === fallback) return true;
    const a = Number(value), b = Number(fallback);
    return value !== "" && fallback !== "" && !Number.isNaN(a) && !Number.isNaN(b) && a === b;
  };
  function refresh(form) {
    let changed = 0;
    form.querySelectorAll("[data-role=advanced] .field[data-default]").forEach((field) => {
      const control = field.querySelector("input, select, textarea");
      if (!control) return;
      const differs = !same(current(control), field.dataset.default);
      field.classList.toggle("changed", differs);
      field.querySelector("[data-role=changed]").hidden = !differs;
      changed += differs ? 1 : 0;
    });
    const badge = form.querySelector("[data-role=changed-count]");
    if (badge) { badge.hidden = changed === 0; badge.textContent = `${changed} changed`; }
  }
  document.querySelectorAll("form.config-form").forEach((form) => {
    form.addEventListener("input", () => refresh(form));
    form.addEventListener("change", () => refresh(form));
  });
})();
