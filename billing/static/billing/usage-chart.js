// Cost per project per day as a stacked bar chart. Data are integer millicredits;
// dividing by 1000 happens only to label the axis and tooltips.
(function () {
  const source = document.getElementById("usage-chart-data");
  const canvas = document.getElementById("usage-chart");
  if (!source || !canvas || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const credits = (millis) => (millis / 1000).toFixed(3);
  new window.Chart(canvas, {
    type: "bar",
    data: data,
    options: {
      animation: false,
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, ticks: { callback: (value) => credits(value) } },
      },
      plugins: {
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${credits(ctx.parsed.y)} credits` } },
      },
    },
  });
})();
