// The dashboards' page script (served as is to the browser; ECharts is loaded before it as the global `echarts`).
// It fetches /dashboards/data/<page>.json, draws every [data-chart] element with the renderer of its id, fills the
// [data-kpi] numbers, and refetches every data-refresh-ms. body[data-state] becomes 'ready' once the first data is
// drawn, or 'error' (with data-error) if the first fetch fails: the headless-browser test waits for either.
(function () {
  'use strict';
  var body = document.body;
  var slug = body.dataset.page;
  var refreshMs = Number(body.dataset.refreshMs) || 30000;
  var charts = {};
  var COLORS = ['#2f6fde', '#e4572e', '#29a36a', '#f2a541', '#8e6bd8', '#17a2b8', '#d35d8a', '#6c757d'];
  var LEVEL_COLORS = { HIGH: '#e4572e', MEDIUM: '#f2a541', LOW: '#7c93b8' };

  var count = function (n) {
    return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
  };
  var percent = function (x) {
    return x === null || x === undefined ? '–' : (100 * x).toFixed(1) + ' %';
  };
  var fixed = function (x, digits) {
    return x === null || x === undefined ? '–' : Number(x).toFixed(digits);
  };

  var KPI_FORMATS = {
    multi_platform_share: percent,
    latest_roc_auc: function (x) {
      return fixed(x, 3);
    },
    test_roc_auc: function (x) {
      return fixed(x, 3);
    },
    model_version: function (v) {
      return v ? String(v) : 'none';
    },
  };

  var base = {
    animation: false, // redraws every refresh; animations would only flicker
    color: COLORS,
    textStyle: { fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif' },
    grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
    tooltip: { trigger: 'axis', confine: true },
    legend: { top: 0, type: 'scroll' },
  };
  var merge = function (option) {
    return Object.assign({}, base, option);
  };
  var empty = function (message) {
    return {
      title: {
        text: message,
        left: 'center',
        top: 'middle',
        textStyle: { color: '#6b7280', fontSize: 13, fontWeight: 'normal' },
      },
      series: [],
    };
  };

  var RENDERERS = {
    'intent-levels': function (d) {
      return merge({
        tooltip: { trigger: 'item', formatter: '{b}: {c} customers ({d} %)' },
        series: [
          {
            type: 'pie',
            radius: ['45%', '72%'],
            center: ['50%', '56%'],
            label: { formatter: '{b}\n{c}' },
            data: d.intent_levels.map(function (l) {
              return { name: l.level, value: l.customers, itemStyle: { color: LEVEL_COLORS[l.level] } };
            }),
          },
        ],
      });
    },
    'high-intent-by-platform': function (d) {
      if (d.high_intent_by_platform.length === 0) return empty('No customer holds a HIGH score yet');
      return merge({
        xAxis: { type: 'category', data: d.high_intent_by_platform.map((r) => r.platform) },
        yAxis: { type: 'value', minInterval: 1 },
        series: [
          {
            name: 'HIGH intent',
            type: 'bar',
            color: LEVEL_COLORS.HIGH,
            data: d.high_intent_by_platform.map((r) => r.customers),
          },
        ],
      });
    },
    'top-categories': function (d) {
      if (d.top_categories.length === 0) return empty('No scores yet');
      return merge({
        xAxis: {
          type: 'category',
          data: d.top_categories.map((r) => r.category),
          axisLabel: { interval: 0, rotate: 30 },
        },
        yAxis: [
          { type: 'value', minInterval: 1 },
          { type: 'value', min: 0, max: 1, splitLine: { show: false } },
        ],
        series: [
          { name: 'Customers', type: 'bar', data: d.top_categories.map((r) => r.customers) },
          {
            name: 'HIGH intent',
            type: 'bar',
            color: LEVEL_COLORS.HIGH,
            data: d.top_categories.map((r) => r.high_intent_customers),
          },
          {
            name: 'Average score',
            type: 'line',
            yAxisIndex: 1,
            color: '#29a36a',
            data: d.top_categories.map((r) => Number(r.avg_intent_score.toFixed(3))),
          },
        ],
      });
    },
    'platforms-per-customer': function (d) {
      if (d.platforms_per_customer.length === 0) return empty('No customers yet');
      return merge({
        xAxis: { type: 'category', name: 'platforms', data: d.platforms_per_customer.map((r) => String(r.platforms)) },
        yAxis: { type: 'value', minInterval: 1 },
        series: [{ name: 'Customers', type: 'bar', data: d.platforms_per_customer.map((r) => r.customers) }],
      });
    },
    'platform-overlap': function (d) {
      if (d.overlap.cells.length === 0) return empty('No customer on two platforms yet');
      var max = Math.max.apply(
        null,
        d.overlap.cells.map((c) => c[2]),
      );
      return merge({
        tooltip: {
          trigger: 'item',
          formatter: function (p) {
            return (
              d.overlap.platforms[p.value[0]] +
              ' & ' +
              d.overlap.platforms[p.value[1]] +
              ': ' +
              count(p.value[2]) +
              ' customers'
            );
          },
        },
        legend: { show: false },
        grid: { left: 8, right: 16, top: 8, bottom: 64, containLabel: true },
        xAxis: { type: 'category', data: d.overlap.platforms, splitArea: { show: true } },
        yAxis: { type: 'category', data: d.overlap.platforms, splitArea: { show: true } },
        visualMap: {
          min: 0,
          max: max,
          calculable: true,
          orient: 'horizontal',
          left: 'center',
          bottom: 0,
          itemHeight: 120,
        },
        series: [{ name: 'Customers on both', type: 'heatmap', data: d.overlap.cells, label: { show: true } }],
      });
    },
    'category-consistency': function (d) {
      if (d.category_consistency.length === 0) return empty('No multi-platform customer with an interest yet');
      var rows = d.category_consistency.slice().reverse(); // largest at the top
      return merge({
        tooltip: {
          trigger: 'axis',
          confine: true,
          axisPointer: { type: 'shadow' },
          formatter: function (ps) {
            var r = rows[ps[0].dataIndex];
            return (
              r.category +
              '<br>on two or more platforms: ' +
              count(r.on_two_or_more_platforms) +
              '<br>on one platform: ' +
              count(r.on_one_platform) +
              '<br>consistency: ' +
              percent(r.consistency)
            );
          },
        },
        xAxis: { type: 'value', name: 'customers', minInterval: 1 },
        yAxis: { type: 'category', data: rows.map((r) => r.category) },
        series: [
          {
            name: 'On two or more of their platforms',
            type: 'bar',
            stack: 'c',
            data: rows.map((r) => r.on_two_or_more_platforms),
          },
          {
            name: 'On one platform only',
            type: 'bar',
            stack: 'c',
            color: '#c7d2e3',
            data: rows.map((r) => r.on_one_platform),
          },
        ],
      });
    },
    journeys: function (d) {
      if (d.journeys.links.length === 0) return empty('No customer on two platforms yet');
      return merge({
        tooltip: { trigger: 'item', confine: true },
        series: [
          {
            type: 'sankey',
            left: 8,
            right: 96,
            top: 8,
            bottom: 8,
            nodeGap: 10,
            emphasis: { focus: 'adjacency' },
            lineStyle: { color: 'gradient', opacity: 0.45 },
            data: d.journeys.nodes,
            links: d.journeys.links,
          },
        ],
      });
    },
    'auc-over-time': function (d) {
      if (d.auc_by_day.days.length === 0) return empty('No monitored day yet: run npm run monitor (or start:monitor)');
      var series = [];
      d.auc_by_day.series.forEach(function (s, i) {
        series.push({
          name: 'ROC-AUC ' + s.model_version,
          type: 'line',
          connectNulls: false,
          color: COLORS[i % COLORS.length],
          data: s.roc_auc,
        });
        series.push({
          name: 'PR-AUC ' + s.model_version,
          type: 'line',
          lineStyle: { type: 'dotted' },
          color: COLORS[i % COLORS.length],
          data: s.pr_auc,
        });
      });
      series[0].markLine = {
        symbol: 'none',
        silent: true,
        lineStyle: { type: 'dashed', color: '#e4572e' },
        label: { formatter: 'alert {c}', position: 'insideEndTop' },
        data: [{ yAxis: d.alert_threshold }],
      };
      return merge({
        xAxis: { type: 'category', data: d.auc_by_day.days },
        yAxis: { type: 'value', min: 0, max: 1 },
        series: series,
      });
    },
    'precision-recall': function (d) {
      var rows = d.thresholds.rows;
      var has = function (key) {
        return rows.some((r) => r[key] !== null);
      };
      var series = [];
      if (has('online_precision'))
        series.push({
          name: 'Precision online',
          type: 'bar',
          color: '#2f6fde',
          data: rows.map((r) => r.online_precision),
        });
      if (has('online_recall'))
        series.push({ name: 'Recall online', type: 'bar', color: '#29a36a', data: rows.map((r) => r.online_recall) });
      if (has('test_precision'))
        series.push({ name: 'Precision test', type: 'bar', color: '#9bb8ee', data: rows.map((r) => r.test_precision) });
      if (has('test_recall'))
        series.push({ name: 'Recall test', type: 'bar', color: '#a3d9bd', data: rows.map((r) => r.test_recall) });
      if (series.length === 0) return empty('No monitored day and no model card yet');
      return merge({
        tooltip: { trigger: 'axis', confine: true, valueFormatter: (v) => fixed(v, 3) },
        xAxis: {
          type: 'category',
          data: rows.map((r) => 'score ≥ ' + r.threshold + (r.threshold >= 0.7 ? ' (HIGH)' : ' (MEDIUM)')),
        },
        yAxis: { type: 'value', min: 0, max: 1 },
        series: series,
      });
    },
    calibration: function (d) {
      var series = [];
      if (d.calibration.online.length > 0) {
        series.push({
          name: 'Online ' + d.calibration.online_day,
          type: 'line',
          symbolSize: 7,
          data: d.calibration.online.map((p) => [p[0], p[1], p[2]]),
        });
      }
      if (d.calibration.test.length > 0) {
        series.push({
          name: 'Test split (model card)',
          type: 'line',
          symbolSize: 7,
          color: '#8e6bd8',
          data: d.calibration.test.map((p) => [p[0], p[1], p[2]]),
        });
      }
      if (series.length === 0) return empty('No monitored day and no model card yet');
      series.push({
        name: 'Perfect',
        type: 'line',
        symbol: 'none',
        silent: true,
        color: '#9ca3af',
        lineStyle: { type: 'dashed' },
        data: [
          [0, 0],
          [1, 1],
        ],
      });
      return merge({
        tooltip: {
          trigger: 'item',
          confine: true,
          formatter: function (p) {
            return (
              p.seriesName +
              '<br>predicted ' +
              fixed(p.value[0], 3) +
              ', observed ' +
              fixed(p.value[1], 3) +
              (p.value[2] !== undefined ? '<br>' + count(p.value[2]) + ' customers' : '')
            );
          },
        },
        xAxis: { type: 'value', name: 'predicted', min: 0, max: 1 },
        yAxis: { type: 'value', name: 'observed', min: 0, max: 1 },
        series: series,
      });
    },
    'feature-importance': function (d) {
      if (d.feature_importance.length === 0) return empty('No model card (no model promoted yet)');
      var rows = d.feature_importance.slice().reverse();
      return merge({
        tooltip: { trigger: 'axis', confine: true, axisPointer: { type: 'shadow' }, valueFormatter: (v) => percent(v) },
        legend: { show: false },
        grid: { left: 8, right: 24, top: 8, bottom: 8, containLabel: true },
        xAxis: { type: 'value', axisLabel: { formatter: (v) => Math.round(v * 100) + ' %' } },
        yAxis: { type: 'category', data: rows.map((r) => r.feature) },
        series: [{ name: 'Gain share', type: 'bar', data: rows.map((r) => r.gain_share) }],
      });
    },
  };

  function draw(data) {
    document.querySelectorAll('[data-kpi]').forEach(function (el) {
      var key = el.dataset.kpi;
      var format = KPI_FORMATS[key] || count;
      el.textContent = format(data.kpis[key]);
    });
    document.querySelectorAll('[data-chart]').forEach(function (el) {
      var id = el.dataset.chart;
      var render = RENDERERS[id];
      if (!render) throw new Error('no renderer for chart ' + id);
      var chart = charts[id] || (charts[id] = echarts.init(el, null, { renderer: 'canvas' }));
      chart.setOption(render(data), { notMerge: true });
    });
  }

  var status = document.getElementById('status');
  function refresh() {
    return fetch('/dashboards/data/' + slug + '.json', { cache: 'no-store' })
      .then(function (res) {
        return res.json().then(function (body) {
          if (!res.ok) throw new Error(body.message || 'HTTP ' + res.status);
          return body;
        });
      })
      .then(function (data) {
        draw(data);
        status.textContent =
          'Data as of ' +
          new Date(data.generated_at).toLocaleTimeString() +
          ' · refreshes every ' +
          Math.round(refreshMs / 1000) +
          ' s';
        status.classList.remove('failed');
        body.dataset.state = 'ready';
      })
      .catch(function (err) {
        status.textContent =
          'Data unavailable: ' + err.message + ' (retrying every ' + Math.round(refreshMs / 1000) + ' s)';
        status.classList.add('failed');
        if (body.dataset.state !== 'ready') {
          body.dataset.error = String(err.message);
          body.dataset.state = 'error';
        }
      });
  }

  window.addEventListener('resize', function () {
    Object.keys(charts).forEach(function (id) {
      charts[id].resize();
    });
  });
  refresh().finally(function () {
    setInterval(refresh, refreshMs);
  });
})();
