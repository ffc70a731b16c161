// The playground: prompts go over the playground's websocket (lab/hub/consumers.py), answers stream
// back token by token. Each token is a span coloured by the probability the model gave it; clicking
// (or hovering) one opens the inspector with the alternatives the model weighed there, and picking
// one continues the answer from it (a branch: the tokens before it, then the pick, as prefix_token_ids).
// Side by side, two models answer the same prompt with the same settings and seed, and the pair can
// be sent to a feedback campaign.
(function () {
  "use strict";
  const root = document.getElementById("playground");
  if (!root) return;

  const $ = (sel, node) => (node || root).querySelector(sel);
  const settingsBox = $(".settings");
  const field = (name) => settingsBox.querySelector(`[name="${name}"]`);
  const errorLine = $('[data-role="error"]');
  const inspector = $('[data-role="inspector"]');
  const stopButton = $('[data-role="stop"]');
  const pairBox = $('[data-role="pair"]');

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Confidence colour: red (unsure) through amber to green (sure), light enough to read text on.
  function confidenceColour(p) {
    return `hsl(${Math.round(120 * Math.max(0, Math.min(1, p)))}, 75%, 85%)`;
  }

  function percent(p) {
    return p >= 0.1 ? `${(100 * p).toFixed(1)}%` : `${(100 * p).toPrecision(2)}%`;
  }

  // ---- the socket: one for the page, reopened when it drops; answers are matched by ref ----
  let socket = null;
  let queued = [];
  let nextRef = 1;
  const answers = new Map(); // ref -> Answer

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${proto}://${location.host}${root.dataset.socket}`);
    socket.onopen = () => { root.dataset.connected = "1"; queued.forEach((m) => socket.send(m)); queued = []; };
    socket.onmessage = (msg) => receive(JSON.parse(msg.data));
    socket.onclose = () => {
      root.dataset.connected = "0";
      answers.forEach((answer) => answer.fail("the connection closed"));
      setTimeout(connect, 1000);
    };
  }

  function send(message) {
    const text = JSON.stringify(message);
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(text);
    else queued.push(text);
  }

  function receive(message) {
    const answer = answers.get(message.ref);
    if (message.status) {
      const where = message.field ? `${message.field}: ` : "";
      errorLine.textContent = `${where}${message.detail}`;
      if (answer) answer.fail(`${where}${message.detail}`);
      return;
    }
    if (!answer) return;
    if (message.started) answer.started();
    else if (message.item) answer.receive(message.item);
  }

  // ---- settings ----
  function stopStrings() {
    return field("stop").value.split(/\n|\|/).map((s) => s).filter((s) => s.length);
  }

  function numberOf(name, fallback) {
    const value = field(name).value.trim();
    return value === "" ? fallback : Number(value);
  }

  function settings() {
    return {
      temperature: numberOf("temperature", 1), top_p: numberOf("top_p", 1), top_k: numberOf("top_k", 0),
      max_new_tokens: numberOf("max_new_tokens", 128), seed: numberOf("seed", null),
      alternatives: numberOf("alternatives", 5), stop: stopStrings(),
    };
  }

  const chatMode = () => root.querySelector('[name="mode"]:checked').value === "chat";

  // ---- panes: each holds its model's conversation ----
  class Pane {
    constructor(node) {
      this.node = node;
      this.conversation = $('[data-role="conversation"]', node);
      this.history = []; // chat messages so far
      this.last = null;
    }

    modelId() { return Number(field(this.node.dataset.pane === "a" ? "model_a" : "model_b").value); }

    modelName() {
      const select = field(this.node.dataset.pane === "a" ? "model_a" : "model_b");
      return select.options[select.selectedIndex].text;
    }

    clear() { this.history = []; this.last = null; this.conversation.textContent = ""; }

    ask(prompt) {
      let request;
      if (chatMode()) {
        this.history.push({ role: "user", content: prompt });
        request = { messages: this.history.slice(), system: field("system").value.trim() || null };
      } else {
        request = { prompt };
      }
      const bubble = el("div", "turn user", prompt);
      this.conversation.appendChild(bubble);
      this.last = new Answer(this, { ...request, ...settings() }, prompt);
      this.last.start();
    }
  }

  // ---- an answer: its tokens (spans), its request, what it cost ----
  class Answer {
    constructor(pane, request, prompt) {
      this.pane = pane;
      this.request = request;
      this.prompt = prompt;
      this.model = pane.modelId();
      this.tokens = []; // {token_id, text, prob, alternatives}
      this.node = el("div", "turn answer");
      this.node.dataset.role = "answer";
      this.body = el("div", "tokens-out");
      this.stats = el("div", "answer-stats muted");
      this.node.append(this.body, this.stats);
      pane.conversation.appendChild(this.node);
    }

    text() { return this.tokens.map((t) => t.text).join(""); }

    // Only the last answer of a conversation is rewritten: later turns were said after it.
    canBranch() { return this.done && this.pane.last === this && answers.size === 0; }

    start(prefix) {
      this.ref = `a${nextRef++}`;
      this.done = false;
      this.sentAt = performance.now();
      this.firstAt = null;
      answers.set(this.ref, this);
      const request = { ...this.request, prefix_token_ids: (prefix || []).map((t) => t.token_id) };
      this.node.dataset.streaming = "1";
      this.stats.textContent = "waiting for the first token…";
      delete this.stats.dataset.role; // "answer-stats" once it is done
      send({ action: "generate", ref: this.ref, model: this.model, request });
      updateButtons();
    }

    started() { this.stats.textContent = "generating…"; }

    receive(item) {
      if (item.type === "token") {
        if (this.firstAt === null) this.firstAt = performance.now();
        this.add(item);
      } else if (item.type === "done") {
        this.finish(item);
      } else if (item.type === "error") {
        this.fail(item.message || "the worker failed");
      }
    }

    add(token) {
      const index = this.tokens.length;
      this.tokens.push(token);
      const span = el("span", "tok-out", token.text);
      span.dataset.index = String(index);
      span.dataset.prob = String(token.prob);
      span.dataset.tokenId = String(token.token_id);
      span.style.background = confidenceColour(token.prob);
      span.title = `${percent(token.prob)}`;
      if (token.text === "") span.classList.add("empty");
      if (token.text.includes("\n")) span.classList.add("nl"); // a mark to point at, then the line break
      span.addEventListener("click", () => openInspector(this, index, span)); // the page's click handler pins it
      span.addEventListener("mouseenter", () => { if (!inspector.dataset.pinned) openInspector(this, index, span); });
      this.body.appendChild(span);
    }

    finish(done) {
      this.done = true;
      answers.delete(this.ref);
      delete this.node.dataset.streaming;
      const seen = this.firstAt === null ? null : Math.round(this.firstAt - this.sentAt);
      const parts = [];
      if (seen !== null) parts.push(`first token ${seen} ms`);
      if (done.ttft_ms !== null && done.ttft_ms !== undefined) parts.push(`(model ${Math.round(done.ttft_ms)} ms)`);
      if (done.tokens_per_s) parts.push(`${done.tokens_per_s.toFixed(1)} tokens/s`);
      parts.push(`${(done.usage || {}).completion_tokens || 0} tokens`, done.finish_reason);
      if (done.seed !== undefined) parts.push(`seed ${done.seed}`);
      this.stats.textContent = parts.join(" · ");
      this.stats.dataset.role = "answer-stats";
      if (this.request.messages) {
        this.pane.history.push({ role: "assistant", content: this.text() });
      }
      updateButtons();
    }

    fail(why) {
      if (this.done) return;
      this.done = true;
      answers.delete(this.ref);
      delete this.node.dataset.streaming;
      this.stats.textContent = `stopped: ${why}`;
      updateButtons();
    }

    // Continue from position `index` with `choice` in place of the token sampled there.
    branch(index, choice) {
      if (!this.canBranch()) return;
      // The answer is rewritten: it goes back into the conversation when the branch is done.
      if (this.request.messages) this.pane.history.pop();
      const kept = this.tokens.slice(0, index);
      const alternatives = this.tokens[index].alternatives;
      this.tokens = [];
      this.body.textContent = "";
      kept.forEach((t) => this.add(t));
      this.add({ ...choice, alternatives, picked: true });
      this.body.lastChild.classList.add("picked");
      this.start(this.tokens.slice());
    }
  }

  // ---- the inspector ----
  function openInspector(answer, index, span) {
    const token = answer.tokens[index];
    inspector.textContent = "";
    inspector.appendChild(el("div", "inspector-head", `position ${index}: ${JSON.stringify(token.text)} had ${percent(token.prob)}`));
    const list = el("ol", "alternatives");
    list.dataset.role = "alternatives";
    (token.alternatives || []).forEach((alt) => {
      const row = el("li", alt.token_id === token.token_id ? "alt chosen" : "alt");
      const bar = el("span", "alt-bar");
      bar.style.width = `${Math.max(1, Math.round(100 * alt.prob))}%`;
      bar.style.background = confidenceColour(alt.prob);
      const label = el("span", "alt-text", JSON.stringify(alt.text));
      const prob = el("span", "alt-prob", percent(alt.prob));
      row.append(bar, label, prob);
      row.dataset.tokenId = String(alt.token_id);
      if (alt.token_id !== token.token_id && answer.canBranch()) {
        row.title = "continue the answer from this token";
        row.addEventListener("click", () => { closeInspector(); answer.branch(index, alt); });
      }
      list.appendChild(row);
    });
    if (!list.children.length) inspector.appendChild(el("p", "muted", "No alternatives asked for: set alternatives above 0."));
    inspector.appendChild(list);
    inspector.appendChild(el("p", "muted small", answer.canBranch() ? "Click an alternative to continue from it."
      : "Alternatives can be picked on the last answer, once nothing streams."));
    const box = span.getBoundingClientRect();
    inspector.style.left = `${Math.max(8, box.left + window.scrollX)}px`;
    inspector.style.top = `${box.bottom + window.scrollY + 6}px`;
    inspector.hidden = false;
    inspector.dataset.index = String(index);
  }

  function closeInspector() { inspector.hidden = true; delete inspector.dataset.pinned; }

  root.addEventListener("click", (event) => {
    const span = event.target.closest(".tok-out");
    if (span) inspector.dataset.pinned = "1";
    else if (!inspector.contains(event.target)) closeInspector();
  });

  // ---- the page's controls ----
  const panes = Array.from(root.querySelectorAll(".pane")).map((node) => new Pane(node));
  const sideBySide = field("side_by_side");

  function activePanes() { return sideBySide.checked ? panes : [panes[0]]; }

  function titlePanes() { panes.forEach((p) => { $('[data-role="pane-title"]', p.node).textContent = p.modelName(); }); }

  function updateButtons() {
    const streaming = answers.size > 0;
    stopButton.disabled = !streaming;
    const [a, b] = panes;
    const pairReady = sideBySide.checked && a.last && b.last && a.last.done && b.last.done && a.last.tokens.length && b.last.tokens.length;
    pairBox.hidden = !pairReady;
  }

  sideBySide.addEventListener("change", () => {
    field("model_b").disabled = !sideBySide.checked;
    panes[1].node.hidden = !sideBySide.checked;
    root.classList.toggle("two", sideBySide.checked);
    updateButtons();
  });
  ["model_a", "model_b"].forEach((name) => field(name).addEventListener("change", () => { panes.forEach((p) => p.clear()); titlePanes(); }));
  root.querySelectorAll('[name="mode"]').forEach((r) => r.addEventListener("change", () => panes.forEach((p) => p.clear())));

  const form = $('[data-role="prompt-form"]');
  const promptBox = form.elements.prompt;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = promptBox.value;
    if (!prompt.trim() || answers.size) return;
    errorLine.textContent = "";
    $('[data-role="pair-result"]').textContent = "";
    activePanes().forEach((pane) => pane.ask(prompt));
    promptBox.value = "";
  });
  promptBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  stopButton.addEventListener("click", () => answers.forEach((answer) => send({ action: "stop", ref: answer.ref })));
  $('[data-role="clear"]').addEventListener("click", () => panes.forEach((p) => p.clear()));

  $('[data-role="send-pair"]').addEventListener("click", async () => {
    const [a, b] = panes;
    const result = $('[data-role="pair-result"]');
    const body = {
      campaign: Number(pairBox.querySelector('[name="campaign"]').value), prompt: a.last.prompt,
      response_a: a.last.text(), response_b: b.last.text(), artifact_a: a.last.model, artifact_b: b.last.model,
    };
    const response = await fetch(root.dataset.pairUrl, {
      method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    });
    const data = await response.json().catch(() => ({}));
    if (response.ok) result.textContent = `Sent to ${data.name} (${data.items} items).`;
    else result.textContent = data.error || (data.errors || []).map((e) => `${e.field}: ${e.error}`).join("; ") || `failed (${response.status})`;
  });

  titlePanes();
  connect();
})();
