// The annotator's queue: the item on screen and the next one, fetched ahead so it shows at once.
// Keys: 1–4 choose, Enter submits, S skips. The vote is sent as the side pressed (left/right);
// the server stores it canonically. Requests run one after another, in order.
(() => {
  const root = document.querySelector("[data-annotate]");
  if (!root) return;
  const api = root.dataset.api;
  const $ = (role) => root.querySelector(`[data-role=${role}]`);
  const submitButton = root.querySelector("[data-action=submit]");
  const state = { queue: [], current: null, shownAt: 0, choice: null, done: 0, votes: 0, skips: 0 };
  // Items answered on this page: a reply to an earlier request may still list them.
  const answered = new Set();
  window.__labAnnotate = state;
  let chain = Promise.resolve();

  async function call(method, path, body) {
    const response = await fetch(api + path, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": root.dataset.csrf },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json().catch(() => ({}));
    return { status: response.status, data };
  }

  function show(entry) {
    state.current = entry || null;
    state.choice = null;
    root.querySelectorAll("[data-choice]").forEach((b) => b.classList.remove("chosen"));
    root.querySelectorAll("input[name=strength]").forEach((r) => { r.checked = false; });
    $("rationale").value = "";
    submitButton.disabled = true;
    $("item").hidden = !entry;
    $("empty").hidden = !!entry;
    if (entry) {
      $("prompt").textContent = entry.prompt;
      $("left").textContent = entry.left;
      $("right").textContent = entry.right;
      state.shownAt = performance.now();
      window.scrollTo({ top: 0 });
    }
    $("progress").textContent = `${state.done} judged by you`;
  }

  // The server's queue is the truth: keep what is on screen if it is still ours, else show its first.
  function accept(data) {
    if (data.done !== undefined) state.done = data.done;
    state.queue = (data.queue || []).filter((q) => !answered.has(q.item));
    const stillMine = state.current && state.queue.some((q) => q.item === state.current.item);
    if (!stillMine) show(state.queue[0]);
    else $("progress").textContent = `${state.done} judged by you`;
  }

  function following() {
    const at = state.queue.findIndex((q) => q.item === state.current.item);
    return state.queue[at + 1];
  }

  function enqueue(work) {
    chain = chain.then(work).catch((err) => { $("error").hidden = false; $("error").textContent = String(err); });
  }

  function choose(choice) {
    if (!state.current) return;
    state.choice = choice;
    root.querySelectorAll("[data-choice]").forEach((b) => b.classList.toggle("chosen", b.dataset.choice === choice));
    const decisive = choice === "left" || choice === "right";
    $("strength").classList.toggle("off", !decisive);
    submitButton.disabled = false;
  }

  function submit() {
    if (!state.current || !state.choice) return;
    const strength = root.querySelector("input[name=strength]:checked");
    const body = {
      item: state.current.item, choice: state.choice,
      strength: (state.choice === "left" || state.choice === "right") && strength ? strength.value : "",
      rationale: $("rationale").value, seconds: (performance.now() - state.shownAt) / 1000,
    };
    advance();
    enqueue(async () => {
      const { status, data } = await call("POST", "vote/", body);
      if (status === 201 || status === 200) { state.votes += status === 201 ? 1 : 0; accept(data); }
      else if (status === 409) { flash(data.error); accept(data); }
      else throw new Error(data.detail || data.error || `the vote was not stored (${status})`);
    });
  }

  function skip() {
    if (!state.current) return;
    const item = state.current.item;
    advance();
    enqueue(async () => {
      const { status, data } = await call("POST", "skip/", { item });
      if (status !== 200) throw new Error(data.detail || `could not skip (${status})`);
      state.skips += 1;
      accept(data);
    });
  }

  // Show the item fetched ahead right away; the reply brings the one after it.
  function advance() {
    answered.add(state.current.item);
    const next = following();
    state.queue = state.queue.filter((q) => q.item !== state.current.item);
    show(next);
    if (!next) $("empty").hidden = true;
  }

  function flash(message) {
    $("error").hidden = false;
    $("error").textContent = message;
    setTimeout(() => { $("error").hidden = true; }, 4000);
  }

  root.querySelectorAll("[data-choice]").forEach((b) => b.addEventListener("click", () => choose(b.dataset.choice)));
  submitButton.addEventListener("click", submit);
  root.querySelector("[data-action=skip]").addEventListener("click", skip);
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) {
      if (e.key === "Enter" && e.target === $("rationale")) { e.preventDefault(); submit(); }
      return;
    }
    if (e.target.matches("textarea, input[type=text]")) return;
    const choices = { 1: "left", 2: "right", 3: "tie", 4: "both_bad" };
    if (choices[e.key]) { e.preventDefault(); choose(choices[e.key]); }
    else if (e.key === "Enter") { e.preventDefault(); submit(); }
    else if (e.key === "s" || e.key === "S") { e.preventDefault(); skip(); }
  });

  enqueue(async () => {
    const { status, data } = await call("GET", "next/");
    if (status !== 200) throw new Error(data.detail || `could not load the queue (${status})`);
    accept(data);
  });
})();
