// The timeline: live heap bytes and live blocks over time (uPlot), the
// peak marked, findings marked where they happened; drag across the chart
// to zoom into a range, double-click or "Reset zoom" to see it all.
import uPlot from 'uplot';
import { el, section } from './dom.js';
import * as fmt from './format.js';

// Block counts are whole numbers: axis steps of 1, 2, 5, 10, 20, 50...
const INTEGER_STEPS = [];
for (let p = 1; p < 1e16; p *= 10) INTEGER_STEPS.push(p, 2 * p, 5 * p);

// An axis as wide as its widest tick label (in the axis's own font), its
// ticks and the gap between them, so that no label is ever clipped:
// uPlot calls it again whenever the labels change (zoom, resize).
export function axisSize(u, values, axisIdx) {
  const axis = u.axes[axisIdx];
  const ticks = axis.ticks && axis.ticks.show !== false ? axis.ticks.size : 0;
  let widest = 0;
  if (values && values.length) {
    u.ctx.save();
    u.ctx.font = axis.font[0];
    for (const v of values) widest = Math.max(widest, u.ctx.measureText(String(v)).width);
    u.ctx.restore();
  }
  // Measured in canvas pixels, the size is in CSS pixels; 4 px to spare.
  return Math.ceil(widest / devicePixelRatio + ticks + axis.gap + 4);
}

export function renderTimeline(data, filter) {
  const tl = data.timeline;
  const s = data.summary;
  const chartBox = el('div', { id: 'timeline-chart', class: 'chart' });
  const range = el('span', { id: 'timeline-range', class: 'muted' });
  const reset = el('button', { type: 'button', id: 'timeline-reset' }, 'Reset zoom');
  const kinds = [...new Set(data.findings.map((f) => f.kind))].map(data.kind);
  const legend = el('div', { class: 'timeline-legend' },
    el('span', { id: 'peak-note', dataset: { peakBytes: s.peak_bytes, peakTime: s.peak_time_us } },
      el('span', { class: 'peak-mark' }, '▲'),
      ` peak ${fmt.bytes(s.peak_bytes)} (${fmt.plural(s.peak_blocks, 'block')}) at ${fmt.time(s.peak_time_us)}`),
    kinds.map((k) => el('span', { class: 'marker-key', title: k.description },
      el('span', { class: 'marker-swatch', dataset: { kind: k.name } }), ` ${k.label}`)));
  const panel = section('timeline', 'Live heap over time',
    el('div', { class: 'toolbar' }, reset, range,
      el('span', { class: 'muted' }, 'Drag across the chart to zoom into a range.')),
    chartBox, legend);
  if (!tl.t.length) {
    chartBox.appendChild(el('p', { class: 'muted' }, 'No allocations in this trace.'));
    return { panel, mount() {} };
  }

  const markers = data.findings.map((f) => ({ t: f.time, color: data.kind(f.kind).color }));
  function draw(u) {
    const { ctx } = u;
    const top = u.bbox.top;
    const bottom = u.bbox.top + u.bbox.height;
    ctx.save();
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
    let lastX = -1;
    for (const m of markers) {
      const x = Math.round(u.valToPos(m.t, 'x', true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width || x === lastX) continue;
      lastX = x;
      ctx.strokeStyle = m.color;
      ctx.beginPath();
      ctx.moveTo(x + 0.5, top);
      ctx.lineTo(x + 0.5, bottom);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    const px = u.valToPos(s.peak_time_us, 'x', true);
    const py = u.valToPos(s.peak_bytes, 'bytes', true);
    if (px >= u.bbox.left && px <= u.bbox.left + u.bbox.width) {
      const r = 6 * devicePixelRatio;
      ctx.fillStyle = '#b2182b';
      ctx.beginPath();
      ctx.moveTo(px, py - r);
      ctx.lineTo(px - r, py + r * 0.7);
      ctx.lineTo(px + r, py + r * 0.7);
      ctx.closePath();
      ctx.fill();
      ctx.font = `${12 * devicePixelRatio}px sans-serif`;
      ctx.textBaseline = 'bottom';
      const label = `peak ${fmt.bytes(s.peak_bytes)}`;
      const w = ctx.measureText(label).width;
      const lx = Math.min(px + r, u.bbox.left + u.bbox.width - w);
      ctx.fillText(label, lx, Math.max(top + 14 * devicePixelRatio, py - r));
    }
    ctx.restore();
  }

  // Each axis's labels and width as drawn, for the tests (axes are canvas).
  function exposeAxes(u) {
    chartBox.dataset.axes = JSON.stringify(u.axes.map((a) => ({
      side: a.side, size: a._size, values: a._values, gap: a.gap,
      ticks: a.ticks && a.ticks.show !== false ? a.ticks.size : 0, font: a.font[0], ratio: devicePixelRatio,
    })));
  }

  const full = [tl.t[0], tl.t[tl.t.length - 1]];
  function showRange(u) {
    const { min, max } = u.scales.x;
    range.textContent = `showing ${fmt.time(min)} – ${fmt.time(max)}`;
  }

  // The heap keeps its value until the next event: steps, not slopes.
  const stepped = uPlot.paths.stepped({ align: 1 });
  let plot = null;
  function size() {
    return { width: Math.max(300, chartBox.clientWidth), height: 280 };
  }
  function mount() {
    const opts = {
      ...size(),
      scales: { x: { time: false }, bytes: { auto: true, range: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1] }, blocks: { auto: true, range: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1] } },
      series: [
        { label: 'time', value: (u, v) => (v === null ? '–' : fmt.time(v)) },
        { label: 'live heap', scale: 'bytes', stroke: '#b2182b', fill: 'rgba(178,24,43,0.12)', width: 1.5, paths: stepped, points: { show: false }, value: (u, v) => (v === null ? '–' : fmt.bytes(v)) },
        { label: 'live blocks', scale: 'blocks', stroke: '#2166ac', width: 1, paths: stepped, points: { show: false }, value: (u, v) => (v === null ? '–' : fmt.int(v)) },
      ],
      axes: [
        { values: (u, vals) => vals.map((v) => fmt.timeShort(v)) },
        { scale: 'bytes', values: (u, vals) => vals.map((v) => fmt.bytes(v)), size: axisSize },
        { scale: 'blocks', side: 1, grid: { show: false }, incrs: INTEGER_STEPS, values: (u, vals) => vals.map((v) => fmt.int(v)), size: axisSize },
      ],
      cursor: { drag: { x: true, y: false, setScale: true } },
      hooks: { draw: [draw, exposeAxes], setScale: [(u, key) => { if (key === 'x') { showRange(u); if (filter) filter.fromZoom(u.scales.x.min, u.scales.x.max, full); } }] },
    };
    plot = new uPlot(opts, [tl.t, tl.bytes, tl.blocks], chartBox);
    showRange(plot);
    const resetZoom = () => plot.setScale('x', { min: full[0], max: full[1] });
    reset.addEventListener('click', resetZoom);
    if (filter) filter.setReset(resetZoom);
    let pending = false;
    window.addEventListener('resize', () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        plot.setSize(size());
      });
    });
  }
  // Swatches take their colour from the data, through the CSSOM.
  for (const sw of legend.querySelectorAll('.marker-swatch')) sw.style.background = data.kind(sw.dataset.kind).color;
  return { panel, mount, get plot() { return plot; } };
}
