// The layout view: allocations by size class and alignment (a heat map),
// and the sites that lose most bytes to rounding sizes up to their
// alignment: ((size + align - 1) & ~(align - 1)) - size per allocation.
import { scaleSequentialLog } from 'd3-scale';
import { interpolateYlOrRd } from 'd3-scale-chromatic';
import { el, clear, section } from './dom.js';
import * as fmt from './format.js';
import { siteFrame } from './data.js';
import { sortableTable } from './table.js';

const M_TOTAL = 2;
// log2 of malloc's and new's alignment (max_align_t, lib/preload/preload.c).
const DEFAULT_ALIGN_CLASS = 4;

// Size class k holds sizes (2^(k-1), 2^k]; class 0 holds 0 and 1.
function sizeLabel(k) {
  if (k === 0) return '0–1 B';
  const hi = 2 ** k;
  const lo = 2 ** (k - 1) + 1;
  return lo === hi ? fmt.bytes(hi) : `${fmt.bytes(lo)}–${fmt.bytes(hi)}`;
}

const MEASURES = [
  { key: 'count', label: 'Allocations', text: fmt.int },
  { key: 'bytes', label: 'Bytes requested', text: fmt.bytes },
  { key: 'waste', label: 'Bytes lost to rounding', text: fmt.bytes },
];

function heatMap(data, box, measure) {
  const m = MEASURES[measure];
  const sizes = [...new Set(data.hist.map((c) => c.size))].sort((a, b) => a - b);
  const aligns = [...new Set(data.hist.map((c) => c.align))].sort((a, b) => a - b);
  const cells = new Map(data.hist.map((c) => [`${c.size}/${c.align}`, c]));
  const max = Math.max(1, ...data.hist.map((c) => c[m.key]));
  const color = scaleSequentialLog(interpolateYlOrRd).domain([1, max + 1]);
  const table = el('table', { id: 'heatmap', class: 'heatmap', dataset: { measure: m.key } },
    el('thead', null, el('tr', null, el('th', { scope: 'col' }, 'size \\ align'),
      aligns.map((a) => el('th', { scope: 'col', class: 'num' }, fmt.bytes(2 ** a))))),
    el('tbody', null, sizes.map((s) => el('tr', null,
      el('th', { scope: 'row', class: 'num' }, sizeLabel(s)),
      aligns.map((a) => {
        const c = cells.get(`${s}/${a}`);
        const v = c ? c[m.key] : 0;
        const td = el('td', {
          class: 'num cell',
          dataset: { count: c ? c.count : 0 },
          title: c ? `sizes ${sizeLabel(s)}, alignment ${2 ** a}: ${fmt.int(c.count)} allocations, ${fmt.bytes(c.bytes)} requested, ${fmt.bytes(c.waste)} lost to rounding` : null,
        }, c ? m.text(v) : '');
        if (v > 0) {
          td.style.background = color(v + 1);
          const rgb = color(v + 1).match(/\d+/g).map(Number);
          if (rgb[0] * 0.299 + rgb[1] * 0.587 + rgb[2] * 0.114 < 140) td.style.color = '#fff';
        }
        return td;
      })))));
  clear(box).appendChild(table);
}

export function renderLayout(data, detail, flame) {
  const box = el('div', { class: 'heatmap-wrap' });
  let measure = 0;
  const buttons = MEASURES.map((m, i) => el('button', {
    type: 'button',
    class: i === measure ? 'toggle on' : 'toggle',
    dataset: { measure: m.key },
    on: {
      click: () => {
        measure = i;
        buttons.forEach((b, j) => b.classList.toggle('on', j === i));
        heatMap(data, box, measure);
      },
    },
  }, m.label));
  if (data.hist.length) heatMap(data, box, measure);
  else box.appendChild(el('p', { class: 'muted' }, 'No allocations.'));

  const s = data.summary;
  const rows = data.wasteSites.map((r) => ({ ...r, st: data.stack(r.stack) }));
  const name = (r) => { const f = siteFrame(r.st); return f ? f.name || '??' : '(no stack)'; };
  const loc = (r) => { const f = siteFrame(r.st); return f ? fmt.location(f.file, f.line) : ''; };
  const table = sortableTable({
    id: 'waste-table',
    rows,
    initial: { col: 4, dir: -1 },
    empty: 'No bytes lost: every size is a multiple of its alignment.',
    columns: [
      { label: 'Site', value: name, text: name, cls: 'mono fn' },
      { label: 'Location', value: loc, text: loc, cls: 'mono' },
      { label: 'Allocations', num: true, value: (r) => r.count, text: (r) => fmt.int(r.count) },
      { label: 'Bytes requested', num: true, value: (r) => r.bytes, text: (r) => fmt.bytes(r.bytes) },
      { label: 'Lost to rounding', num: true, value: (r) => r.waste, text: (r) => fmt.bytes(r.waste) },
      { label: 'Lost / requested', num: true, value: (r) => (r.bytes ? r.waste / r.bytes : 0), text: (r) => fmt.percent(r.waste, r.bytes) },
    ],
    onRow: (r) => {
      const ok = flame.focusStack(r.stack, M_TOTAL);
      detail.showStacks('waste', `Rounding loss at ${name(r)}`, [
        ['Allocations', fmt.int(r.count)],
        ['Bytes requested', `${fmt.bytes(r.bytes)} (${r.bytes} B)`],
        ['Lost to rounding', `${fmt.bytes(r.waste)} (${r.waste} B), ${fmt.percent(r.waste, r.bytes)} of requested`],
        ok ? null : ['Flamegraph', 'this stack is not in the graph (it holds the heaviest stacks only)'],
      ], [['Allocated at, innermost frame first', r.st, 'detail-frames']]);
    },
  });
  const panel = section('layout', 'Layout: sizes and alignments',
    el('p', { id: 'layout-what' }, 'What this measures: how the sizes the program asks for fit the alignments it asks for. ',
      'An allocator hands out a block whose size is a multiple of its alignment, so a size that is not one loses the difference ',
      '(aligned_alloc(64, 65) takes 128 bytes); over-aligned allocations of odd sizes are where that adds up.'),
    el('p', null, `Every allocation counted by its size class (rows) and alignment (columns). Rounding each size up to its alignment loses `,
      el('strong', { id: 'waste-total', dataset: { value: data.wasteTotal } }, fmt.bytes(data.wasteTotal)),
      ` over the run, ${fmt.percent(data.wasteTotal, s.alloc_bytes)} of the ${fmt.bytes(s.alloc_bytes)} requested.`),
    el('div', { class: 'toolbar' }, buttons),
    box,
    el('h3', null, 'Sites that lose most to rounding'),
    table);
  // Nothing to tell when every allocation has the allocator's default
  // alignment (malloc's and new's, 16 bytes) or less: the view hides.
  panel.hidden = !data.hist.some((c) => c.align > DEFAULT_ALIGN_CLASS);
  panel.dataset.hidden = panel.hidden ? '1' : '0';
  return panel;
}
