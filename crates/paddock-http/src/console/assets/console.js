// paddock's console: keeps the pending list live over /console/events and
// sends verdicts on it. Hand-written, embedded in the binary, no build step.
// Everything shown is set as text (never as HTML): an agent's reason or a
// destination name cannot become markup.

const body = document.body;

// --- the console link's landing page -----------------------------------
// The link's secret is in the fragment (never sent to a server). Take it
// out of the address bar and history first, then post it.
function openLink() {
  const secret = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);
  const field = document.getElementById("link");
  const form = document.getElementById("link-form");
  if (!secret) {
    document.getElementById("result").textContent =
      "This link carries no sign-in; run `paddock console` again.";
    return;
  }
  field.value = secret;
  form.submit();
}

if (document.getElementById("link-form")) {
  openLink();
}

// --- the pending list ---------------------------------------------------
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};

// One formatter for every card: toLocaleTimeString builds a new one per
// call, which for a long list costs more than the cards themselves.
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

const attempts = (n) => (n === 1 ? "1 attempt" : `${n} attempts`);

const PROTOCOLS = { 6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6" };
const SCOPES = ["once", "box", "project"];

class Console {
  constructor() {
    this.list = document.getElementById("pending");
    this.status = document.getElementById("status");
    this.count = document.getElementById("count");
    this.empty = document.getElementById("empty");
    this.decided = document.getElementById("decided");
    this.viewer = document.getElementById("viewer");
    this.requests = new Map(); // request_id → {view, node}
    this.mayDecide = false;
    this.selected = null;
    this.unseen = 0;
    this.baseTitle = document.title;
    this.retryMs = 250;
    this.socket = null;
    setInterval(() => this.tick(), 1000);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) {
        this.unseen = 0;
        document.title = this.baseTitle;
      }
    });
    document.addEventListener("keydown", (e) => this.key(e));
    this.offerNotifications();
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/console/events`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "hello", csrf: body.dataset.csrf }));
    });
    socket.addEventListener("message", (m) => this.receive(JSON.parse(m.data)));
    socket.addEventListener("close", (e) => {
      this.setLive(false);
      if (e.code === 4401) {
        this.showStatus("signed out: the session ended — reload to sign in again", "bad");
        return;
      }
      this.showStatus(`disconnected; reconnecting…`, "warn");
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    });
  }

  showStatus(text, kind) {
    this.status.textContent = text;
    this.status.className = `status ${kind}`;
  }

  setLive(live) {
    this.live = live;
    for (const button of this.list.querySelectorAll("button")) {
      button.disabled = !live || !this.mayDecide;
    }
  }

  receive(frame) {
    switch (frame.type) {
      case "snapshot":
        this.retryMs = 250;
        this.mayDecide = frame.may_decide;
        this.viewer.hidden = frame.may_decide;
        this.replaceAll(frame.requests);
        this.showStatus("live", "ok");
        this.setLive(true);
        // For profiling (and scripts/bench): when the list was first usable.
        performance.clearMarks("paddock:snapshot-rendered");
        performance.mark("paddock:snapshot-rendered");
        break;
      case "held":
        this.upsert(frame.request, true);
        break;
      case "ended":
        this.end(frame);
        break;
      case "verdict_result":
        break;
      case "error":
        this.showError(frame);
        break;
      default:
        break;
    }
  }

  replaceAll(requests) {
    const keep = new Set(requests.map((r) => r.request_id));
    for (const id of [...this.requests.keys()]) {
      if (!keep.has(id)) this.remove(id);
    }
    // New cards go in as one fragment: one insertion, one layout.
    const fresh = document.createDocumentFragment();
    for (const view of requests) {
      const known = this.requests.get(view.request_id);
      if (known) {
        this.upsert(view, false);
        continue;
      }
      const node = this.card(view);
      fresh.append(node);
      this.requests.set(view.request_id, { view, node });
    }
    this.list.append(fresh);
    if (this.selected === null && this.requests.size > 0) {
      this.select(this.requests.keys().next().value);
    }
    this.refreshCount();
  }

  upsert(view, fresh) {
    const known = this.requests.get(view.request_id);
    if (known) {
      // Another attempt: update the card in place, so what the person has
      // chosen on it (scope, TTL, focus) stays.
      known.view = view;
      known.node.querySelector(".attempts").textContent = attempts(view.times_blocked);
      return;
    }
    const node = this.card(view);
    this.list.append(node);
    if (fresh) this.announce(view);
    this.requests.set(view.request_id, { view, node });
    if (this.selected === null) this.select(view.request_id);
    this.refreshCount();
  }

  remove(id) {
    const known = this.requests.get(id);
    if (!known) return;
    known.node.remove();
    this.requests.delete(id);
    if (this.selected === id) {
      this.selected = null;
      const first = this.requests.keys().next();
      if (!first.done) this.select(first.value);
    }
    this.refreshCount();
  }

  end(frame) {
    const known = this.requests.get(frame.request_id);
    if (!known) return;
    this.remove(frame.request_id);
    const what = known.view.domain || known.view.dest;
    const line = el("li", { id: `decided-${frame.request_id}` });
    line.append(
      el("strong", { text: `${what}:${known.view.port}` }),
      ` on ${known.view.container}: `,
      el("span", {
        class: frame.action === "allow" && frame.ok ? "ok" : "bad",
        text: frame.reason || frame.action,
      }),
    );
    this.decided.prepend(line);
    while (this.decided.children.length > 20) this.decided.lastChild.remove();
  }

  refreshCount() {
    const n = this.requests.size;
    this.count.textContent = n === 1 ? "1 waiting" : `${n} waiting`;
    this.empty.hidden = n !== 0;
  }

  card(view) {
    const dest = view.domain || view.dest;
    const proto = PROTOCOLS[view.proto] || `proto ${view.proto}`;
    const card = el("article", {
      class: "card",
      id: `req-${view.request_id}`,
      tabindex: "0",
      "data-request": view.request_id,
    });
    card.append(
      el("h2", { class: "dest", text: `${dest}:${view.port}` }),
      el(
        "p",
        { class: "meta" },
        el("span", { text: `box ${view.container}` }),
        el("span", { text: `project ${view.project}` }),
        el("span", { text: `${view.dest} · ${proto}` }),
        el("span", {
          class: "attempts",
          text: attempts(view.times_blocked),
        }),
        el("span", { text: `since ${clock.format(view.first_seen_ms)}` }),
        el("span", { class: "countdown", "data-deadline": String(view.deadline_ms) }),
      ),
    );
    if (view.agent_reason) {
      card.append(
        el("p", { class: "reason" }, el("em", { text: "agent says: " }), view.agent_reason),
      );
    }
    const scope = el("select", { class: "scope", "aria-label": "scope" });
    for (const s of SCOPES) scope.append(el("option", { value: s, text: s }));
    scope.value = "once";
    const ttl = el("input", {
      class: "ttl short",
      type: "number",
      min: "1",
      placeholder: "TTL s",
      "aria-label": "lasts (seconds)",
    });
    const allow = el("button", { type: "button", class: "allow", text: "Allow" });
    const deny = el("button", { type: "button", class: "deny danger", text: "Deny" });
    allow.addEventListener("click", () => this.decide(view.request_id, "allow"));
    deny.addEventListener("click", () => this.decide(view.request_id, "deny"));
    for (const b of [allow, deny]) b.disabled = !this.live || !this.mayDecide;
    card.append(el("div", { class: "decide" }, scope, ttl, allow, deny));
    card.append(el("p", { class: "problem bad", role: "alert" }));
    card.addEventListener("focus", () => this.select(view.request_id));
    this.paintCountdown(card.querySelector(".countdown"));
    return card;
  }

  decide(id, action) {
    const known = this.requests.get(id);
    if (!known || !this.live || !this.mayDecide) return;
    const card = known.node;
    const scope = card.querySelector(".scope").value;
    const ttlText = card.querySelector(".ttl").value.trim();
    const verdict = {
      type: "verdict",
      container: known.view.container,
      request_id: id,
      dest: known.view.dest,
      action,
      scope,
    };
    if (ttlText) verdict.ttl_secs = Number(ttlText);
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    this.socket.send(JSON.stringify(verdict));
  }

  showError(frame) {
    const known = frame.request_id && this.requests.get(frame.request_id);
    if (!known) {
      this.showStatus(frame.message, "bad");
      return;
    }
    known.node.querySelector(".problem").textContent = frame.message;
    for (const b of known.node.querySelectorAll("button")) b.disabled = !this.live || !this.mayDecide;
  }

  select(id) {
    if (this.selected) {
      const old = this.requests.get(this.selected);
      if (old) old.node.classList.remove("selected");
    }
    this.selected = id;
    const now = this.requests.get(id);
    if (now) now.node.classList.add("selected");
  }

  key(e) {
    if (e.target.matches("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const ids = [...this.requests.keys()];
    if (ids.length === 0) return;
    const at = Math.max(0, ids.indexOf(this.selected));
    const known = this.requests.get(this.selected);
    switch (e.key) {
      case "j":
      case "ArrowDown":
        this.select(ids[Math.min(at + 1, ids.length - 1)]);
        this.requests.get(this.selected).node.focus();
        break;
      case "k":
      case "ArrowUp":
        this.select(ids[Math.max(at - 1, 0)]);
        this.requests.get(this.selected).node.focus();
        break;
      case "a":
        this.decide(this.selected, "allow");
        break;
      case "d":
        this.decide(this.selected, "deny");
        break;
      case "o":
      case "b":
      case "p":
        if (known) known.node.querySelector(".scope").value = { o: "once", b: "box", p: "project" }[e.key];
        break;
      default:
        return;
    }
    e.preventDefault();
  }

  paintCountdown(node) {
    const left = Math.round((Number(node.dataset.deadline) - Date.now()) / 1000);
    node.textContent = left > 0 ? `deadline in ${left} s` : "deadline passed";
    node.classList.toggle("warn", left <= 10);
  }

  tick() {
    for (const node of this.list.querySelectorAll(".countdown")) this.paintCountdown(node);
  }

  offerNotifications() {
    const button = document.getElementById("notify");
    if (!("Notification" in window) || Notification.permission !== "default") return;
    button.hidden = false;
    button.addEventListener("click", async () => {
      await Notification.requestPermission();
      button.hidden = true;
    });
  }

  // A hold that arrives while the tab is in the background: a count in
  // the title, and a desktop notification when the person allowed them.
  announce(view) {
    if (!document.hidden) return;
    this.unseen += 1;
    document.title = `(${this.unseen}) ${this.baseTitle}`;
    if ("Notification" in window && Notification.permission === "granted") {
      const n = new Notification(`paddock: ${view.domain || view.dest}:${view.port}`, {
        body: `box ${view.container} (${view.project}) waits for a decision`,
        tag: view.request_id,
      });
      n.addEventListener("click", () => {
        window.focus();
        this.select(view.request_id);
      });
    }
  }
}

if (body.dataset.section === "pending") {
  window.paddockConsole = new Console();
}

// --- a box's terminal: a module of its own, loaded only on its page -------
if (document.getElementById("terminal")) {
  import("/console/assets/terminal.js");
}
