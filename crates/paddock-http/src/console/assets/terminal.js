// paddock's box terminal: a shell in the box over the page's socket.
// Hand-written, embedded in the binary, no build step. The shell runs
// with TERM=dumb, so this draws lines: it follows carriage returns,
// newlines, backspaces, tabs and the few escape sequences line editors
// use (erase line, erase screen, cursor left/right), and ignores the
// rest. Everything is set as text, never as markup.

const screen = document.getElementById("terminal");
const statusLine = document.getElementById("term-status");
const lineForm = document.getElementById("term-line");
const lineInput = document.getElementById("term-keys");
const MAX_LINES = 5000;
const KEYS = { "ctrl-c": "\x03", "ctrl-d": "\x04", tab: "\t", up: "\x1b[A" };

const term = { lines: [""], row: 0, col: 0, pending: "", ended: false, socket: null };
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function setStatus(text) {
  statusLine.textContent = text;
}

// --- drawing --------------------------------------------------------------
function put(ch) {
  let line = term.lines[term.row];
  if (line.length < term.col) line = line.padEnd(term.col);
  term.lines[term.row] = line.slice(0, term.col) + ch + line.slice(term.col + 1);
  term.col += 1;
}

function newline() {
  term.row += 1;
  if (term.row >= term.lines.length) term.lines.push("");
  const over = term.lines.length - MAX_LINES;
  if (over > 0) {
    term.lines.splice(0, over);
    term.row -= over;
  }
}

function control(params, final) {
  const n = Math.max(1, parseInt(params, 10) || 1);
  const line = term.lines[term.row];
  switch (final) {
    case "K":
      if (params === "" || params === "0") term.lines[term.row] = line.slice(0, term.col);
      else if (params === "1") term.lines[term.row] = " ".repeat(term.col) + line.slice(term.col);
      else term.lines[term.row] = "";
      break;
    case "J":
      if (params === "2" || params === "3") {
        term.lines = [""];
        term.row = 0;
        term.col = 0;
      } else {
        term.lines.splice(term.row + 1);
        term.lines[term.row] = line.slice(0, term.col);
      }
      break;
    case "C": term.col += n; break;
    case "D": term.col = Math.max(0, term.col - n); break;
    case "G": term.col = n - 1; break;
    default: break; // colours and the rest: not drawn
  }
}

// One character through the escape-sequence state machine; `pending`
// holds a sequence split across frames.
function step(ch) {
  if (term.pending) {
    term.pending += ch;
    const kind = term.pending[1];
    if (term.pending.length === 2) {
      if (kind !== "[" && kind !== "]") term.pending = "";
    } else if (kind === "[" && ch >= "@" && ch <= "~") {
      control(term.pending.slice(2, -1).replace(/^[?>]/, ""), ch);
      term.pending = "";
    } else if (kind === "]" && (ch === "\x07" || term.pending.endsWith("\x1b\\"))) {
      term.pending = "";
    } else if (term.pending.length > 256) {
      term.pending = "";
    }
    return;
  }
  switch (ch) {
    case "\x1b": term.pending = ch; break;
    case "\r": term.col = 0; break;
    case "\n": newline(); break;
    case "\b": term.col = Math.max(0, term.col - 1); break;
    case "\t": term.col = (Math.floor(term.col / 8) + 1) * 8; break;
    default: if (ch >= " ") put(ch);
  }
}

function render() {
  const before = term.lines.slice(0, term.row).join("\n");
  const line = term.lines[term.row].padEnd(term.col + 1);
  const after = term.lines.slice(term.row + 1).join("\n");
  const cursor = document.createElement("span");
  cursor.className = "cursor";
  cursor.textContent = line[term.col];
  screen.replaceChildren(
    (before ? before + "\n" : "") + line.slice(0, term.col),
    cursor,
    line.slice(term.col + 1).trimEnd() + (after ? "\n" + after : ""),
  );
  screen.scrollTop = screen.scrollHeight;
}

function show(bytes) {
  for (const ch of decoder.decode(bytes, { stream: true })) step(ch);
  render();
}

// --- the socket -------------------------------------------------------------
function size() {
  const probe = document.createElement("span");
  probe.textContent = "M";
  screen.append(probe);
  const { width, height } = probe.getBoundingClientRect();
  probe.remove();
  return {
    cols: Math.max(20, Math.floor(screen.clientWidth / (width || 8)) - 1),
    rows: Math.max(5, Math.floor(screen.clientHeight / (height || 16))),
  };
}

function send(text) {
  if (term.socket && term.socket.readyState === WebSocket.OPEN && !term.ended) {
    term.socket.send(encoder.encode(text));
  }
}

function ended(text) {
  term.ended = true;
  setStatus(text);
  lineInput.disabled = true;
  for (const b of document.querySelectorAll("[data-key], #term-line button")) b.disabled = true;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + screen.dataset.socket);
  socket.binaryType = "arraybuffer";
  term.socket = socket;
  socket.addEventListener("open", () => {
    const { cols, rows } = size();
    socket.send(JSON.stringify({ type: "hello", csrf: document.body.dataset.csrf, cols, rows }));
    setStatus("connected");
    screen.focus();
  });
  socket.addEventListener("message", (e) => {
    if (typeof e.data !== "string") return show(new Uint8Array(e.data));
    let frame;
    try { frame = JSON.parse(e.data); } catch { return; }
    if (frame.error) setStatus(frame.error.message || "error");
    if ("exit_code" in frame) {
      ended(frame.exit_code === null ? "the shell ended" : `the shell ended (exit code ${frame.exit_code})`);
    }
  });
  socket.addEventListener("close", () => {
    if (!term.ended) ended(statusLine.textContent === "connected" ? "disconnected" : statusLine.textContent);
  });
}

// --- keys -------------------------------------------------------------------
const NAMED = {
  Enter: "\r", Backspace: "\x7f", Tab: "\t", Escape: "\x1b",
  ArrowUp: "\x1b[A", ArrowDown: "\x1b[B", ArrowRight: "\x1b[C", ArrowLeft: "\x1b[D",
  Home: "\x1b[H", End: "\x1b[F", Delete: "\x1b[3~",
};

screen.addEventListener("keydown", (e) => {
  if (e.metaKey || e.altKey) return;
  let text = null;
  if (e.ctrlKey && e.key.length === 1 && /[a-z@\[\\\]^_]/i.test(e.key)) {
    text = String.fromCharCode(e.key.toUpperCase().charCodeAt(0) & 0x1f);
  } else if (!e.ctrlKey && e.key in NAMED) {
    text = NAMED[e.key];
  } else if (!e.ctrlKey && e.key.length === 1) {
    text = e.key;
  }
  if (text !== null) {
    e.preventDefault();
    send(text);
  }
});

screen.addEventListener("paste", (e) => {
  e.preventDefault();
  send(e.clipboardData.getData("text"));
});

lineForm.addEventListener("submit", (e) => {
  e.preventDefault();
  send(lineInput.value + "\r");
  lineInput.value = "";
});

for (const button of document.querySelectorAll("[data-key]")) {
  button.addEventListener("click", () => send(KEYS[button.dataset.key] || ""));
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (term.socket && term.socket.readyState === WebSocket.OPEN && !term.ended) {
      const { cols, rows } = size();
      term.socket.send(JSON.stringify({ resize: [cols, rows] }));
    }
  }, 200);
});

window.paddockTerminal = term;
render();
connect();
