// Draws the page's charts from <script type="application/json"> blocks (no inline script: the CSP forbids it).
(function () {
  "use strict";
  if (typeof Chart === "undefined") { return; }
  Chart.defaults.font.family = '"Noto Sans CJK SC", "Microsoft YaHei", sans-serif';
  Chart.defaults.animation = false;
  var colours = ["#0b6e99", "#b44d12", "#3e9c35", "#8e44ad", "#c0392b", "#7f8c8d"];
  var bandColours = ["#9fb3c8", "#3e9c35", "#f0b429", "#d64545", "#8d2b0b", "#cbd2d9"];

  function config(kind, data) {
    if (kind === "bar") {
      return { type: "bar", data: { labels: data.labels, datasets: [{ label: "住院数", data: data.values, backgroundColor: bandColours }] },
               options: { plugins: { legend: { display: false } } } };
    }
    if (kind === "hbar") {
      return { type: "bar", data: { labels: data.labels, datasets: [{ label: "涉及金额（元）", data: data.values, backgroundColor: colours[1] }] },
               options: { indexAxis: "y", plugins: { legend: { display: false } } } };
    }
    if (kind === "line") {
      return { type: "line", data: { labels: data.labels, datasets: [{ label: "预计/标准（%）", data: data.values, borderColor: colours[0], spanGaps: true }] } };
    }
    if (kind === "weeks") {
      return { type: "bar", data: { labels: data.labels, datasets: [
                 { type: "bar", label: "超标准住院数", data: data.over, backgroundColor: colours[1], yAxisID: "y" },
                 { type: "line", label: "预计超支（元）", data: data.loss, borderColor: colours[0], yAxisID: "y1" }] },
               options: { scales: { y: { beginAtZero: true, position: "left" }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } } };
    }
    if (kind === "stacked") {
      return { type: "bar", data: { labels: data.labels, datasets: [
                 { label: "采纳", data: data.accepted, backgroundColor: colours[2] },
                 { label: "未采纳", data: data.overridden, backgroundColor: colours[1] }] },
               options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } };
    }
    return null;
  }

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var source = document.getElementById(canvas.id + "-data");
    if (!source) { return; }
    var cfg = config(canvas.dataset.chart, JSON.parse(source.textContent));
    if (cfg) { new Chart(canvas, cfg); }
  });
})();
