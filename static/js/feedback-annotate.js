// The annotator's queue: the item on screen and the next one, fetched ahead so it shows at once.
// Keys: 1–4 choose, Enter submits, S skips. The vote is sent as the side pressed (left/right);
// the server stores it canonically. The page talks over its websocket (ws/campaigns/<id>/annotate/):
// the server sends the queue on connect, answers every message once and in order, and sends the
// queue again unasked when new items arrive while there is nothing to judge. Messages not yet
// answered when the line drops are sent again on reconnection (a vote sent twice is stored once).
(() => {
  const root = document.querySelector("[data-annotate]");
  if (!root) return;
  const $ = (role) => root.querySelector(`[data-role=${role}]`);
  const submitButton = root.querySelector("[data-action=submit]");
  const state = { queue: [], current: null, shownAt: 0, choice: null, done: 0, votes: 0, skips: 0, connected: false };
  // Items answered on this page: a reply to an earlier message may still list them.
  const answered = new Set();
  const pending = []; // { message, resent }: sent, not yet answered, oldest first
  window.__labAnnotate = state;
  let socket = null;
  let delay = 500;
  let lastRef = 0;

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${proto}://${location.host}${root.dataset.socket}`);
    socket.onopen = () => {
      delay = 500;
      state.connected = true;
      $("connection").hidden = true;
      for (const entry of pending) { entry.resent = true; socket.send(JSON.stringify(entry.message)); }
    };
    socket.onmessage = (event) => receive(JSON.parse(event.data));
    socket.onclose = (event) => {
      state.connected = false;
      if (event.code === 4404) { fail("You are not an annotator of this campaign (any more)."); return; }
      $("connection").hidden = false;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  function send(message) {
    message.ref = ++lastRef;
    pending.push({ message, resent: false });
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function receive(data) {
    const at = data.ref == null ? -1 : pending.findIndex((p) => p.message.ref === data.ref);
    const entry = at < 0 ? null : pending.splice(at, 1)[0];
    const ok = data.status === 200 || data.status === 201;
    if (data.reply === "vote" && data.status === 201) state.votes += 1;
    if (data.reply === "skip" && ok) state.skips += 1;
    if (ok || data.status === 409) {
      if (data.status === 409) flash(data.error);
      accept(data);
    } else if (!(entry && entry.resent && data.status === 404)) { // a resent skip may have been done already
      fail(data.detail || data.error || Object.values(data).flat().find((v) => typeof v === "string")
           || `the server refused (${data.status})`);
    }
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
    const vote = {
      action: "vote", item: state.current.item, choice: state.choice,
      strength: (state.choice === "left" || state.choice === "right") && strength ? strength.value : "",
      rationale: $("rationale").value, seconds: (performance.now() - state.shownAt) / 1000,
    };
    advance();
    send(vote);
  }

  function skip() {
    if (!state.current) return;
    const item = state.current.item;
    advance();
    send({ action: "skip", item });
  }

  // Show the item fetched ahead right away; the reply brings the one after it.
  function advance() {
    answered.add(state.current.item);
    const next = following();
    state.queue = state.queue.filter((q) => q.item !== state.current.item);
    show(next);
    if (!next) $("empty").hidden = true;
  }

  function fail(message) {
    $("error").hidden = false;
    $("error").textContent = message;
  }

  function flash(message) {
    fail(message);
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

  connect();
})();
