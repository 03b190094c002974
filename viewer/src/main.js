// The page of `alloctrace html`: reads the data the report embeds and
// builds every view from it.  No network, no markup from data.
import '../node_modules/uplot/dist/uPlot.min.css';
import '../node_modules/d3-flame-graph/dist/d3-flamegraph.css';
import './style.css';
import { el } from './dom.js';
import { loadData } from './data.js';
import { renderSummary } from './summary.js';
import { renderTimeline } from './timeline.js';
import { renderFlame } from './flame.js';
import { createDetail } from './detail.js';
import { renderLeaks, renderFindings } from './tables.js';
import { renderLayout } from './layout.js';
import { createRange } from './range.js';

// Timings of each step, visible to the tests and in the browser's
// performance panel as alloctrace:* measures.
function step(name, since) {
  performance.measure(`alloctrace:${name}`, { start: since, end: performance.now() });
  return performance.now();
}

function start() {
  let t = performance.now();
  const app = el('div', { id: 'app' });
  document.body.appendChild(app);
  let data;
  try {
    data = loadData(document);
  } catch (e) {
    app.appendChild(el('p', { class: 'error' }, `This report cannot be shown: ${e.message}`));
    throw e;
  }
  t = step('data', t);
  const detail = createDetail(data);
  const range = createRange(data);
  const timeline = renderTimeline(data, range);
  const flame = renderFlame(data, detail, range);
  flame.panel.appendChild(detail.panel);
  const layout = renderLayout(data, detail, flame);
  let leaks = renderLeaks(data, detail, flame, range);
  let findings = renderFindings(data, detail, flame, range);
  // The tables are made again for each range: their rows, counts and order.
  range.onChange(() => {
    const l = renderLeaks(data, detail, flame, range);
    const f = renderFindings(data, detail, flame, range);
    leaks.replaceWith(l);
    findings.replaceWith(f);
    leaks = l;
    findings = f;
  });
  app.append(
    renderSummary(data),
    el('nav', { class: 'jump' }, ['timeline', 'flamegraph', 'leaks', 'findings', 'layout']
      .filter((id) => id !== 'layout' || !layout.hidden).map((id) => el('a', { href: `#${id}` }, id))),
    range.bar,
    timeline.panel,
    flame.panel,
    leaks,
    findings,
    layout,
    el('footer', { class: 'muted small' }, `alloctrace ${data.meta.library_version || ''} · charts by uPlot and d3-flame-graph`));
  t = step('views', t);
  // Charts measure their containers: draw them once the page is laid out.
  timeline.mount();
  t = step('timeline', t);
  flame.mount();
  step('flamegraph', t);
  document.body.dataset.ready = '1';
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
