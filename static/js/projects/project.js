// Project page: the Monaco compose editor (validated as you type through the server), and live
// release progress / service status (events from live.js, plus a polling fallback while in flight).
(function () {
  const root = document.getElementById("live-root");
  if (!root) return;
  const project = root.dataset.project;
  const org = root.dataset.liveOrg;
  const apiBase = `/api/v1/organizations/${org}/projects/${project}/`;
  const csrf = () => (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value || "";
  const TERMINAL = ["live", "failed", "superseded"];
  const STATUS_LABELS = { pending: "Queued", deploying: "Deploying", live: "Live", failed: "Failed",
                          superseded: "Superseded" };

  // --- live release progress ------------------------------------------------------------------
  const progress = document.getElementById("progress");
  const LABELS = { render: "Validate and render", data: "Database and bucket", apply: "Send to the cluster",
                   rollout: "Roll out" };

  function badgeClass(status) {
    return status === "live" || status === "running" ? "badge ok"
      : status === "failed" || status === "failing" ? "badge bad" : "badge warn";
  }

  function showRelease(r) {
    if (!progress || r.project !== project) return;
    progress.hidden = false;
    progress.querySelector("[data-field=revision]").textContent = r.revision;
    const status = progress.querySelector("[data-field=status]");
    status.textContent = r.status;
    status.className = badgeClass(r.status);
    const steps = document.getElementById("steps");
    steps.innerHTML = "";
    for (const name of Object.keys(LABELS)) {
      const s = (r.steps || {})[name] || { status: "pending" };
      const li = document.createElement("li");
      li.dataset.step = name;
      li.textContent = `${LABELS[name]}: ${s.status}` + (s.seconds != null ? ` (${s.seconds} s)` : "") +
        (s.message ? ` ${s.message}` : "");
      steps.appendChild(li);
    }
    const err = document.getElementById("release-error");
    err.hidden = !r.error;
    err.textContent = r.error || "";
    const row = document.querySelector(`tr[data-revision="${r.revision}"] .badge`);
    if (row) { row.textContent = STATUS_LABELS[r.status] || r.status; row.className = badgeClass(r.status); }
    if (TERMINAL.includes(r.status)) refreshServices();
  }

  // Rows are rendered by the server (the same template as the page): htmx re-fetches them on this
  // event, so live updates keep the exposure controls and never build HTML from data.
  function refreshServices() {
    document.dispatchEvent(new CustomEvent("paas:services-changed"));
  }


  document.addEventListener("live:release.progress", (e) => showRelease(e.detail));
  document.addEventListener("live:project.services", (e) => {
    if (e.detail.project === project) refreshServices();
  });

  // Fallback: events sent before the socket connected are not replayed, so poll while in flight.
  function poll() {
    const rev = progress && progress.querySelector("[data-field=revision]").textContent.trim();
    const status = progress && progress.querySelector("[data-field=status]").textContent.trim();
    if (!rev || TERMINAL.includes(status)) return;
    fetch(`${apiBase}releases/${rev}/`, { credentials: "same-origin" }).then((r) => r.json()).then((r) => {
      showRelease(r);
      if (!TERMINAL.includes(r.status)) setTimeout(poll, 1000);
    });
  }
  setTimeout(poll, 1000);

  // --- the editor -------------------------------------------------------------------------------
  const textarea = document.getElementById("compose");
  const container = document.getElementById("editor");
  if (!textarea || !container || typeof require === "undefined") {
    if (textarea) { textarea.style.display = ""; if (container) container.hidden = true; }
    return;
  }
  require.config({ paths: { vs: "/static/vendor/monaco/vs" } });
  require(["vs/editor/editor.main"], function () {
    const editor = monaco.editor.create(container, {
      value: textarea.value, language: "yaml", automaticLayout: true, minimap: { enabled: false },
      tabSize: 2, insertSpaces: true,
    });
    window.composeEditor = editor;  // tests and power users
    const problemsEl = document.getElementById("problems");
    let timer = null;
    let seq = 0;

    function validate() {
      const mine = ++seq;
      const body = JSON.stringify({ compose: editor.getValue() });
      fetch(root.dataset.validateUrl, {
        method: "POST", credentials: "same-origin", body,
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      }).then((r) => r.json()).then((result) => {
        if (mine !== seq) return;  // a newer keystroke's answer wins
        const model = editor.getModel();
        const marker = (p, severity) => ({
          severity, message: (p.service ? `${p.service}: ` : "") + p.message,
          startLineNumber: p.line || 1, startColumn: p.column || 1,
          endLineNumber: p.line || 1, endColumn: model.getLineMaxColumn(Math.min(p.line || 1, model.getLineCount())),
        });
        const markers = result.problems.map((p) => marker(p, monaco.MarkerSeverity.Error))
          .concat(result.warnings.map((p) => marker(p, monaco.MarkerSeverity.Warning)));
        monaco.editor.setModelMarkers(model, "compose", markers);
        problemsEl.textContent = result.ok
          ? `Valid: ${result.services.length} service(s)` + (result.warnings.length ? `, ${result.warnings.length} warning(s)` : "")
          : result.problems.map((p) => (p.line ? `line ${p.line}: ` : "") + p.message).join("\n");
        problemsEl.dataset.ok = result.ok ? "true" : "false";
      });
    }
    editor.onDidChangeModelContent(() => {
      textarea.value = editor.getValue();
      clearTimeout(timer);
      timer = setTimeout(validate, 300);
    });
    document.getElementById("deploy-form").addEventListener("submit", () => { textarea.value = editor.getValue(); });
    container.dataset.ready = "true";
    validate();
  });
})();

// Data services: credentials are fetched from the cluster only when a member asks, shown, never cached.
(function () {
  const csrf = () => (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value || "";
  const revealed = {};
  document.querySelectorAll("[data-reveal]").forEach((button) => {
    button.addEventListener("click", async () => {
      const error = document.getElementById("data-error");
      const response = await fetch(button.dataset.reveal, { method: "POST", headers: { "X-CSRFToken": csrf() } });
      const body = await response.json();
      if (!response.ok) {
        error.textContent = body.error;
        error.hidden = false;
        return;
      }
      error.hidden = true;
      const kind = button.dataset.reveal.includes("/database/") ? "database" : "bucket";
      revealed[kind] = body.values;
      const row = document.querySelector(`[data-revealed=${kind}]`);
      row.querySelector("pre").textContent = Object.entries(body.values).map(([k, v]) => `${k}=${v}`).join("\n");
      row.hidden = false;
    });
  });
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", () => navigator.clipboard.writeText(revealed[button.dataset.copy].DATABASE_URL));
  });
})();
