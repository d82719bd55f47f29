// Project page, "Database dump and restore": live progress of dumps and restores (the "database.transfer"
// events from live.js: bytes so far, then done or failed with pg_*'s messages), and the restore form sent with
// XMLHttpRequest so the upload shows its own progress and the result appears without a reload.
(function () {
  const root = document.getElementById("live-root");
  const card = document.getElementById("database");
  if (!root || !card) return;
  const project = root.dataset.project;
  const line = document.getElementById("database-progress");
  const result = document.getElementById("database-result");
  const form = document.getElementById("restore-form");

  function size(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  }

  function showResult(text, failed) {
    result.hidden = !text;
    result.textContent = text || "";
    result.className = failed ? "secret msg-error" : "secret";
  }

  document.addEventListener("live:database.transfer", (e) => {
    const t = e.detail;
    if (t.project !== project) return;
    const what = t.kind === "dump" ? "Dump" : "Restore";
    const of = t.total ? ` of ${size(t.total)}` : "";
    const words = { starting: "starting the database job…", running: `${size(t.bytes)}${of}`,
                    done: `done, ${size(t.bytes)}`,
                    failed: t.kind === "restore" ? "failed; the database is unchanged" : "failed" };
    line.textContent = `${what}: ${words[t.state] || t.state}`;
    line.dataset.state = t.state;
    if (t.state === "failed") showResult(t.error || "", true);
    else if (t.state === "starting") showResult("", false);
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (p) => {
      if (p.lengthComputable) line.textContent = `Uploading: ${size(p.loaded)} of ${size(p.total)}`;
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = { error: xhr.statusText }; }
      if (xhr.status === 200 && body.ok) {
        line.textContent = `Restore: done, ${size(body.bytes)}`;
        line.dataset.state = "done";
        showResult(body.messages || "", false);
      } else {
        line.textContent = "Restore: failed; the database is unchanged";
        line.dataset.state = "failed";
        showResult(body.error || body.messages || `HTTP ${xhr.status}`, true);
      }
    };
    xhr.onerror = () => { line.textContent = "Restore: the upload failed"; line.dataset.state = "failed"; };
    xhr.send(new FormData(form));
  });
})();
