// The loyalty dashboard's charts (Chart.js, vendored in static/vendor/chartjs). The figures come from
// the page's JSON block (#loyalty-data): no inline script, as the console's CSP demands.
// Colours: the Okabe–Ito palette, safe for colour-blind readers; each series also has its own dash
// pattern, point shape and (for bars) hatching, so a greyscale print still tells them apart.
(function () {
  "use strict";
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];
  var DASHES = [[], [8, 4], [2, 3], [12, 4, 2, 4], [4, 4], [1, 2], [16, 4], [6, 2, 2, 2]];
  var POINTS = ["circle", "rect", "triangle", "rectRot", "star", "crossRot", "cross", "rectRounded"];
  var TARGET = "#555555";

  // A fill with hatching of its own (none, stripes one way or the other, crosses, dots, …).
  function hatch(colour, index) {
    var size = 10;
    var tile = document.createElement("canvas");
    tile.width = size;
    tile.height = size;
    var c = tile.getContext("2d");
    c.fillStyle = colour;
    c.fillRect(0, 0, size, size);
    c.strokeStyle = "rgba(255,255,255,0.75)";
    c.fillStyle = "rgba(255,255,255,0.75)";
    c.lineWidth = 2;
    var kind = index % 6;
    c.beginPath();
    if (kind === 1 || kind === 3) { c.moveTo(0, size); c.lineTo(size, 0); }
    if (kind === 2 || kind === 3) { c.moveTo(0, 0); c.lineTo(size, size); }
    if (kind === 4) { c.moveTo(0, size / 2); c.lineTo(size, size / 2); }
    c.stroke();
    if (kind === 5) { c.beginPath(); c.arc(size / 2, size / 2, 1.8, 0, 2 * Math.PI); c.fill(); }
    return c.createPattern(tile, "repeat");
  }

  function dataset(series, index, kind) {
    var colour = series.target ? TARGET : PALETTE[index % PALETTE.length];
    var asBar = !series.target && (kind !== "line" || series.secondary);
    var set = {
      label: series.name,
      data: series.values,
      borderColor: colour,
      pointStyle: POINTS[index % POINTS.length],
      yAxisID: series.secondary ? "y2" : "y",
      order: series.secondary ? 2 : 1
    };
    if (asBar) {
      set.type = "bar";
      set.backgroundColor = hatch(colour, index);
      set.borderWidth = 1;
      if (kind === "line") { set.backgroundColor = hatch(colour + "66", index); }
    } else {
      set.type = "line";
      set.backgroundColor = colour;
      set.borderDash = series.target ? [6, 6] : DASHES[index % DASHES.length];
      set.borderWidth = series.target ? 2 : 2.5;
      set.pointRadius = series.target ? 0 : 3.5;
      set.spanGaps = true;
      set.fill = false;
    }
    return set;
  }

  function draw(canvas, chart) {
    var stacked = chart.kind === "stacked";
    var secondary = chart.series.some(function (s) { return s.secondary; });
    var scales = {
      x: { stacked: stacked },
      y: { stacked: stacked, beginAtZero: true, title: { display: true, text: chart.unit } }
    };
    if (secondary) {
      var names = chart.series.filter(function (s) { return s.secondary; }).map(function (s) { return s.name; });
      scales.y2 = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                    title: { display: true, text: names.join(", ") } };
      scales.y.title.text = chart.series.filter(function (s) { return !s.secondary; })
        .map(function (s) { return s.name; }).join(", ");
    }
    return new window.Chart(canvas, {
      type: chart.kind === "line" ? "line" : "bar",
      data: { labels: chart.labels, datasets: chart.series.map(function (s, i) { return dataset(s, i, chart.kind); }) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom", labels: { usePointStyle: true } } },
        scales: scales
      }
    });
  }

  function start() {
    var block = document.getElementById("loyalty-data");
    if (!block || !window.Chart) { return; }
    var charts = JSON.parse(block.textContent);
    window.Chart.defaults.font.size = 13;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var chart = charts[canvas.getAttribute("data-chart")];
      if (chart) { draw(canvas, chart); }
    });
    document.body.setAttribute("data-charts-drawn", "yes");
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
