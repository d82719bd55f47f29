// Live updates: any element with data-live-org="<slug>" opens the organization's event socket
// and re-dispatches each event as a DOM event ("live:<event>") that pages listen to.
(function () {
  function connect(slug, target) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/o/${slug}/events/`);
    socket.onopen = () => target.dataset.liveState = "connected";
    let lost = false;
    socket.onmessage = (msg) => {
      const payload = JSON.parse(msg.data);
      if (payload.event === "access.lost") {  // said before the server closes with 4403
        lost = true;
        target.dataset.liveState = "access-lost";
        return;
      }
      document.dispatchEvent(new CustomEvent("live:" + payload.event, { detail: payload.data }));
    };
    socket.onclose = (event) => {
      if (lost || event.code === 4403) {  // the user lost access to this organization: stop, and say so
        target.dataset.liveState = "access-lost";
        return;
      }
      target.dataset.liveState = "disconnected";
      setTimeout(() => connect(slug, target), 2000);  // reconnect: deploys keep running server-side
    };
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-org]").forEach((el) => connect(el.dataset.liveOrg, el));
  });
})();
