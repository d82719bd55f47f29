// The project list stays live: the rows are re-rendered by the server (htmx) whenever a service's
// state or a release changes in this organization.
(function () {
  function refresh() { document.dispatchEvent(new CustomEvent("paas:projects-changed")); }
  document.addEventListener("live:project.services", refresh);
  document.addEventListener("live:release.progress", (e) => {
    if (["live", "failed", "superseded"].includes(e.detail.status)) refresh();
  });
  document.addEventListener("live:project.deleted", refresh);
  document.addEventListener("live:project.restored", refresh);
})();
