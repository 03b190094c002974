// The flamegraph of allocation stacks (d3-flame-graph), drawn as an icicle:
// the root on top, each stack's outermost frame below it, the frame that
// allocated at the bottom of its path.  Frames are merged by function and
// file along each path (tools/html.c).  One of four metrics sizes the
// frames; clicking a frame zooms to it and shows its call path in the
// detail panel; the search box highlights frames by function name.
import { select } from 'd3-selection';
import flamegraph from 'd3-flame-graph';
import { el, section } from './dom.js';
import * as fmt from './format.js';
import { METRICS } from './data.js';

const SPECIAL = new Set(['all', '(other stacks)', '(no stack)']);

// The d3 tree of one metric: nodes whose value is 0 are left out.
function treeFor(node, mi, m) {
  const value = m(node)[mi];
  if (!(value > 0)) return null;
  const children = [];
  for (const c of node.children) {
    const t = treeFor(c, mi, m);
    if (t) children.push(t);
  }
  return { name: node.name, value, id: node.id, node, children };
}

const M_PEAK = 1;

// Each node's metrics counting only the allocations made in the range:
// its own stacks' slices, plus its children's (parents come before
// children in the data).  Live bytes at the peak is not a matter of
// allocation time: it is not filtered (its option is disabled).
function filteredMetrics(data, range) {
  const sl = data.slices;
  const out = data.nodes.map(() => [0, 0, 0, 0]);
  data.nodes.forEach((n, i) => {
    const [count, bytes] = range.sum(sl.alloc[i]);
    const [, leaked] = range.sum(sl.leaked[i]);
    out[i][0] = leaked;
    out[i][2] = bytes;
    out[i][3] = count;
  });
  for (let i = data.nodes.length - 1; i > 0; i--) {
    const p = data.nodes[i].parent;
    if (p >= 0) for (let k = 0; k < 4; k++) out[p][k] += out[i][k];
  }
  return out;
}

function countNodes(t) {
  let n = 1;
  for (const c of t.children) n += countNodes(c);
  return n;
}

export function renderFlame(data, detail, range) {
  const metricSelect = el('select', { id: 'flame-metric', 'aria-label': 'Metric' },
    METRICS.map((m, i) => el('option', { value: m.key, dataset: { index: i } }, m.label)));
  const search = el('input', { type: 'search', id: 'flame-search', placeholder: 'Search function…', 'aria-label': 'Search function' });
  const reset = el('button', { type: 'button', id: 'flame-reset' }, 'Reset zoom');
  const status = el('span', { id: 'flame-status', class: 'muted' });
  const hover = el('div', { id: 'flame-hover', class: 'hover-line mono' });
  const chartBox = el('div', { id: 'flame-chart', class: 'chart' });
  const lim = data.limits;
  const note = el('p', { class: 'muted small' },
    `Frames are merged by function and source file along each call path. The graph holds the ${fmt.int(lim.max_sites)} heaviest stacks by each metric`,
    lim.tree_truncated ? ' (the rest are under "(other stacks)")' : '', '.');
  const panel = section('flamegraph', 'Allocation stacks',
    el('div', { class: 'toolbar' }, el('label', null, 'Metric ', metricSelect), search, reset, status),
    hover, chartBox, note);

  const s = data.summary;
  let metric = s.leaked_bytes > 0 ? 0 : s.peak_bytes > 0 ? 1 : 3;
  metricSelect.value = METRICS[metric].key;
  let chart = null;
  let current = null;
  let filtered = null; // per node, under the time filter
  const metricsOf = (n) => (filtered ? filtered[n.id] : n.m);
  const peakOption = metricSelect.options[M_PEAK];
  if (range && range.available && !data.slices.nodes_truncated) {
    range.onChange((r) => {
      filtered = r ? filteredMetrics(data, range) : null;
      peakOption.disabled = !!r;
      chartBox.dataset.filtered = r ? '1' : '0';
      if (r && metric === M_PEAK) {
        metric = 2;
        metricSelect.value = METRICS[metric].key;
      }
      render();
    });
  }

  const valueText = (v, mi = metric) => (METRICS[mi].unit === 'bytes' ? fmt.bytes(v) : `${fmt.int(v)} calls`);

  function make() {
    const c = flamegraph()
      .width(Math.max(300, chartBox.clientWidth))
      .cellHeight(18)
      .minFrameSize(2)
      .transitionDuration(200)
      .inverted(true)
      .sort(true)
      .title('')
      .setDetailsElement(hover)
      .setLabelHandler((d) => `${d.data.name} — ${valueText(d.value)} (${fmt.percent(d.value, current ? current.value : d.value)})`)
      .setSearchMatch((d, term) => !!term && d.data.name.toLowerCase().includes(term.toLowerCase()))
      .setSearchHandler((results, sum, total) => {
        status.textContent = search.value
          ? `${fmt.int(results.length)} frame${results.length === 1 ? '' : 's'} match, ${fmt.percent(sum, total)} of ${METRICS[metric].label.toLowerCase()}`
          : '';
        status.dataset.matches = String(results.length);
      })
      .setColorMapper((d, original) => {
        if (d.highlight) return '#e600e6';
        const n = d.data.node;
        if (n.parent <= 0 && !n.file && SPECIAL.has(n.name)) return '#bbbbbb';
        return original;
      })
      .onClick((d) => detail.showNode(d.data.node, metric));
    return c;
  }

  function render() {
    current = treeFor(data.root, metric, metricsOf);
    chartBox.dataset.total = String(current ? current.value : 0);
    chartBox.dataset.metric = METRICS[metric].key;
    chartBox.dataset.nodes = String(current ? countNodes(current) : 0);
    if (!current) {
      if (chart) chart.destroy();
      chart = null;
      select(chartBox).selectAll('*').remove();
      chartBox.appendChild(el('p', { class: 'muted empty' }, `Nothing to show: ${METRICS[metric].label.toLowerCase()} is 0 for every stack.`));
      return;
    }
    select(chartBox).selectAll('p.empty').remove();
    if (!chart) {
      chart = make();
      select(chartBox).datum(current).call(chart);
    } else {
      chart.update(current);
    }
    if (search.value) chart.search(search.value);
  }

  metricSelect.addEventListener('change', () => {
    metric = Number(metricSelect.selectedOptions[0].dataset.index);
    status.textContent = '';
    render();
  });
  search.addEventListener('input', () => {
    if (!chart) return;
    if (search.value) chart.search(search.value);
    else {
      chart.clear();
      status.textContent = '';
    }
  });
  reset.addEventListener('click', () => chart && chart.resetZoom());
  let pending = false;
  window.addEventListener('resize', () => {
    if (pending || !chart) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      chart.width(Math.max(300, chartBox.clientWidth));
      chart.update();
    });
  });

  function setMetric(mi) {
    if (mi === metric) return;
    metric = mi;
    metricSelect.value = METRICS[mi].key;
    render();
  }

  // Shows a stack's innermost frame in the graph: zoomed to and
  // highlighted, under the `preferred` metric when `force` is set or when
  // the current one leaves the stack out.
  function focusStack(stackId, preferred, force) {
    const st = data.stack(stackId);
    if (!st || st.leaf < 0) return false;
    const leaf = data.nodes[st.leaf];
    const lm = metricsOf(leaf);
    if (force && lm[preferred] > 0) setMetric(preferred);
    if (!(lm[metric] > 0)) {
      const mi = lm[preferred] > 0 ? preferred : METRICS.findIndex((m, i) => lm[i] > 0);
      if (mi < 0) return false;
      setMetric(mi);
    }
    if (!chart) return false;
    const root = select(chartBox).datum();
    let target = null;
    root.each((d) => {
      d.highlight = false;
      if (d.data.id === leaf.id) target = d;
    });
    if (!target) return false;
    target.highlight = true;
    chart.zoomTo(target);
    panel.scrollIntoView({ block: 'start' });
    return true;
  }

  return {
    panel,
    mount: render,
    focusStack,
    metric: () => metric,
  };
}
