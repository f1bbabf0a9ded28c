/* Draws the dashboards' charts with Apache ECharts (static/vendor/echarts/).
 * Each chart is a <div class="chart" data-chart="ID" data-src="URL">; the JSON at URL
 * holds {"charts": [spec, ...]} (compute/charts.py) and one fetch serves every chart of
 * the same URL. The page already shows the same numbers as a table, so a chart that
 * cannot be drawn (no script, an error) leaves nothing missing. No inline script: the
 * Content-Security-Policy allows only files from this site. */
(function () {
  "use strict";

  var compact = new Intl.NumberFormat(document.documentElement.lang || "zh-Hans", {
    notation: "compact",
    maximumFractionDigits: 1,
  });

  function axisLabel(unit) {
    return function (value) {
      return (unit === "yuan" ? "¥" : "") + compact.format(value);
    };
  }

  function exact(unit) {
    var money = new Intl.NumberFormat(document.documentElement.lang || "zh-Hans", {
      minimumFractionDigits: 2,
      maximumFractionDigits: 2,
    });
    return function (value) {
      if (unit === "yuan") return "¥" + money.format(value);
      return String(value);
    };
  }

  function option(spec, narrow) {
    var horizontal = spec.id === "top-companies" || spec.id === "funnel" || spec.id === "bands";
    var categoryAxis = {
      type: "category",
      data: spec.categories,
      axisLabel: { hideOverlap: true, width: narrow ? 90 : 160, overflow: "truncate" },
    };
    var valueAxis = { type: "value", axisLabel: { formatter: axisLabel(spec.unit) } };
    var many = spec.categories.length > 40;
    var series = spec.series.map(function (s) {
      return {
        name: s.name,
        type: spec.kind === "line" ? "line" : "bar",
        stack: spec.stacked ? "total" : undefined,
        showSymbol: spec.categories.length < 60,
        data: s.data.map(Number),
      };
    });
    return {
      animation: false,
      tooltip: { trigger: "axis", valueFormatter: exact(spec.unit), confine: true },
      legend: spec.series.length > 1 ? { type: "scroll", top: 0 } : undefined,
      grid: {
        left: 8,
        right: 16,
        top: spec.series.length > 1 ? 36 : 12,
        bottom: many ? 56 : 8,
        containLabel: true,
      },
      xAxis: horizontal ? valueAxis : categoryAxis,
      yAxis: horizontal ? Object.assign({}, categoryAxis, { inverse: true }) : valueAxis,
      dataZoom: many && !horizontal ? [{ type: "inside" }, { type: "slider", height: 20, bottom: 8 }] : undefined,
      series: series,
    };
  }

  function draw(element, spec) {
    if (!spec || typeof echarts === "undefined") return;
    var chart = echarts.init(element, null, { renderer: "canvas" });
    chart.setOption(option(spec, element.clientWidth < 520));
    element.classList.add("drawn");
    window.addEventListener("resize", function () {
      chart.resize();
    });
  }

  function start() {
    var bySource = {};
    document.querySelectorAll(".chart[data-src]").forEach(function (element) {
      (bySource[element.dataset.src] = bySource[element.dataset.src] || []).push(element);
    });
    Object.keys(bySource).forEach(function (source) {
      fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          return response.json();
        })
        .then(function (data) {
          var specs = {};
          data.charts.forEach(function (spec) {
            specs[spec.id] = spec;
          });
          bySource[source].forEach(function (element) {
            draw(element, specs[element.dataset.chart]);
          });
        })
        .catch(function () {
          /* the table beside each chart shows the same numbers */
        });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
