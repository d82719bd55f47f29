// The service terminal: xterm.js (with the fit addon) over the TerminalConsumer socket (projects/consumers.py).
// Keystrokes go out as binary frames; resizes as {"type": "resize", cols, rows}; the server sends output as
// binary frames and JSON events: waking (a sleeping service is started first), ready, exit, idle, error.
(function () {
  const el = document.getElementById("terminal");
  if (!el) return;
  const form = document.getElementById("terminal-target");
  const status = document.getElementById("terminal-status");
  const podSelect = form.elements.pod;
  const containerSelect = form.elements.container;
  const encoder = new TextEncoder();
  const term = new Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000,
                              fontFamily: "ui-monospace, SFMono-Regular, Menlo, monospace" });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(el);
  fit.fit();
  let socket = null;

  function say(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }

  function fillContainers() {
    const option = podSelect.selectedOptions[0];
    containerSelect.replaceChildren(...(option ? option.dataset.containers.split(",").filter(Boolean) : []).map((name) => {
      const o = document.createElement("option");
      o.value = o.textContent = name;
      return o;
    }));
  }

  function connect() {
    if (socket) { socket.onclose = null; socket.close(); }
    term.reset();
    fit.fit();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ pod: podSelect.value, container: containerSelect.value,
                                        cols: term.cols, rows: term.rows });
    const ws = new WebSocket(`${scheme}://${location.host}${el.dataset.wsPath}?${query}`);
    ws.binaryType = "arraybuffer";
    let ended = false;
    say("Connecting…", "connecting");
    ws.onmessage = (msg) => {
      if (typeof msg.data !== "string") { term.write(new Uint8Array(msg.data)); return; }
      const event = JSON.parse(msg.data);
      if (event.type === "waking") {
        say(`${event.message[0].toUpperCase()}${event.message.slice(1)} The shell opens when a pod is ready.`,
            "waking");
        term.write(`\x1b[2m[${event.message}]\x1b[0m\r\n`);
      } else if (event.type === "ready") {
        say(`Connected to ${event.pod} (${event.container}).`, "connected");
        term.focus();
      } else if (event.type === "exit") {
        ended = true;
        const how = event.exit_code === null ? event.message : `exit status ${event.exit_code}`;
        term.write(`\r\n\x1b[2m[session ended: ${how}]\x1b[0m\r\n`);
        say(`Session ended with ${how}. Press Connect to start a new one.`, "ended");
      } else if (event.type === "idle" || event.type === "error") {
        ended = true;
        term.write(`\r\n\x1b[2m[${event.message}]\x1b[0m\r\n`);
        say(event.message + " Press Connect to start a new one.", event.type);
      }
    };
    ws.onclose = (e) => {
      if (e.code === 4403) {  // lib.realtime.CLOSE_NO_ACCESS: the user's role or membership changed
        term.write("\r\n\x1b[2m[your access to this project changed: session closed]\x1b[0m\r\n");
        say("Your access to this project changed; the session was closed.", "no-access");
      } else if (!ended) {
        say("The connection was lost or refused. Press Connect to try again.", "closed");
      }
    };
    socket = ws;
  }

  const send = (data) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(data); };
  term.onData((data) => send(encoder.encode(data)));
  term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  term.onResize(({ cols, rows }) => send(JSON.stringify({ type: "resize", cols, rows })));
  window.addEventListener("resize", () => fit.fit());

  // Copy: a selection goes to the clipboard (where the browser allows it), Ctrl+Shift+C copies it too.
  // Paste: Ctrl+Shift+V / Cmd+V reach the browser, whose paste event xterm.js turns into input.
  const copy = () => term.hasSelection() && navigator.clipboard && navigator.clipboard.writeText(term.getSelection())
    .catch(() => {});
  term.onSelectionChange(copy);
  term.attachCustomKeyEventHandler((e) => {
    if (e.type === "keydown" && e.ctrlKey && e.shiftKey && (e.code === "KeyC" || e.code === "KeyV")) {
      if (e.code === "KeyC") copy();
      return false;
    }
    return true;
  });

  podSelect.addEventListener("change", fillContainers);
  form.addEventListener("submit", (e) => { e.preventDefault(); connect(); });
  fillContainers();
  connect();
})();
