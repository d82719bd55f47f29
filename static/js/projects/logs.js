// The live log view: one socket to the log consumer, lines coloured per pod, follow on/off, pause without
// losing lines, a filter, and a resume after a dropped connection or a daphne restart that asks the server
// only for lines after the last one shown for each pod/container (no duplicates).
(function () {
  const MAX_SHOWN = 5000; // lines kept on screen; older ones leave the top
  const MAX_HELD = 20000; // lines held while paused; beyond that they are counted and shown as skipped
  const TAIL = 200; // lines per container when the view opens

  document.addEventListener("DOMContentLoaded", () => {
    const view = document.getElementById("log-view");
    if (!view) return;
    const box = document.getElementById("log-lines");
    const status = document.getElementById("log-status");
    const follow = document.getElementById("log-follow");
    const pause = document.getElementById("log-pause");
    const filter = document.getElementById("log-filter");
    const download = document.getElementById("log-download");
    const downloadTail = document.getElementById("log-download-tail");

    // Services asleep when the page was rendered: their kept last lines are introduced as a sleeping service's.
    const sleeping = JSON.parse(document.getElementById("log-sleeping").textContent);
    const marks = {}; // "pod/container" -> [ts, lines shown with exactly that ts]
    const colours = {};
    let held = [];
    let heldSkipped = 0;
    let paused = false;
    let socket = null;
    let retry = 0;

    function setState(state, text) {
      view.dataset.state = state;
      status.textContent = text;
    }

    function colour(pod) {
      if (!colours[pod]) {
        let hash = 0;
        for (const ch of pod) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
        colours[pod] = `hsl(${hash % 360}, 70%, 65%)`;
      }
      return colours[pod];
    }

    function matches(el) {
      const needle = filter.value.trim().toLowerCase();
      return !needle || el.textContent.toLowerCase().includes(needle);
    }

    function remember(frame) {
      if (!frame.ts) return;
      const key = `${frame.pod}/${frame.container}`;
      const mark = marks[key];
      marks[key] = mark && mark[0] === frame.ts ? [frame.ts, mark[1] + 1] : [frame.ts, 1];
    }

    function lineElement(frame) {
      const el = document.createElement("div");
      el.className = "log-line";
      if ("line" in frame) {
        const pod = document.createElement("span");
        pod.className = "pod";
        pod.style.color = colour(frame.pod);
        pod.textContent = frame.pod + (frame.container && !frame.pod.startsWith(frame.container) ? `/${frame.container}` : "");
        el.append(pod);
        el.dataset.pod = frame.pod;
        el.append(document.createTextNode(frame.line));
        if (frame.last_run) el.classList.add("last-run");  // a stopped pod's kept line
      } else if ("skipped" in frame) {
        el.classList.add("marker");
        el.textContent = `… ${frame.skipped} lines skipped …`;
      } else if (frame.last_run) {  // words as projects.logs.last_run_notice
        const run = frame.last_run;
        const state = sleeping.includes(run.service) ? "is sleeping" : "has no running pod";
        el.classList.add("notice", "last-run-notice");
        el.textContent = `service ${run.service} ${state} — last lines from pod ${run.pod}, stopped at ` +
          new Date(run.stopped_at).toLocaleString();
        el.title = run.stopped_at;
      } else {
        el.classList.add("notice");
        el.textContent = `${frame.pod ? frame.pod + ": " : ""}${frame.notice || frame.message || ""}`;
      }
      el.hidden = !matches(el);
      return el;
    }

    function show(frames) {
      const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      const fragment = document.createDocumentFragment();
      for (const frame of frames) fragment.append(lineElement(frame));
      box.append(fragment);
      while (box.childElementCount > MAX_SHOWN) box.firstElementChild.remove();
      if (atBottom) box.scrollTop = box.scrollHeight;
    }

    function receive(frames) {
      frames.forEach(remember); // received counts as shown: a resume never sends these again
      if (!paused) return show(frames);
      for (const frame of frames) {
        if (held.length < MAX_HELD) held.push(frame);
        else heldSkipped += 1;
      }
      setState("paused", `paused · ${held.length + heldSkipped} new lines held`);
    }

    function start() {
      socket.send(JSON.stringify({ type: "start", follow: follow.checked, tail: TAIL, resume: marks }));
      setState(follow.checked ? "live" : "stopped", follow.checked ? "live" : "not following");
    }

    function connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}${view.dataset.wsPath}`);
      socket.onopen = () => { retry = 0; start(); };
      socket.onmessage = (event) => {
        // "lines" messages: a JSON header line, then one JSON frame per line (the agent's NDJSON, passed through).
        const newline = event.data.indexOf("\n");
        const message = JSON.parse(newline < 0 ? event.data : event.data.slice(0, newline));
        if (message.type === "lines") {
          receive(event.data.slice(newline + 1).split("\n").filter(Boolean).map((line) => JSON.parse(line)));
          socket.send(JSON.stringify({ type: "ack", seq: message.seq })); // the server's window to us
        } else if (message.type === "end") {
          setState("ended", follow.checked ? "the logs ended (no running pod)" : "not following");
        } else if (message.type === "error") {
          show([{ notice: message.message }]);
          setState("error", message.message);
          // The agent was away (reconnecting, restarted): ask again, from where the view stands.
          if (message.retry && follow.checked) setTimeout(() => socket.readyState === WebSocket.OPEN && start(), 2000);
        }
      };
      socket.onclose = (event) => {
        if (event.code === 4403) return setState("refused", "you no longer have access to these logs");
        retry += 1;
        setState("reconnecting", "connection lost; reconnecting…");
        setTimeout(connect, Math.min(10000, 500 * 2 ** Math.min(retry, 5)));
      };
    }

    follow.addEventListener("change", () => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        if (follow.checked) start();
        else {
          socket.send(JSON.stringify({ type: "stop" }));
          setState("stopped", "not following");
        }
      }
    });

    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        const frames = held;
        if (heldSkipped) frames.push({ skipped: heldSkipped });
        held = [];
        heldSkipped = 0;
        show(frames);
        setState(follow.checked ? "live" : "stopped", follow.checked ? "live" : "not following");
      } else {
        setState("paused", "paused");
      }
    });

    filter.addEventListener("input", () => {
      for (const el of box.children) el.hidden = !matches(el);
    });

    downloadTail.addEventListener("input", () => {
      download.href = `${download.dataset.base}?tail=${encodeURIComponent(downloadTail.value || "1000")}`;
    });

    connect();
  });
})();
