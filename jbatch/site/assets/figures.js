// Draws every figure of a page: each .jbatch-figure div holds its Plotly specification as JSON
// (jbatch/site/pages.py); Plotly itself is the local copy beside this file.
document.querySelectorAll(".jbatch-figure").forEach(function (div) {
  var spec = JSON.parse(div.querySelector("script").textContent);
  Plotly.newPlot(div, spec.data, spec.layout, { responsive: true, displaylogo: false });
});
