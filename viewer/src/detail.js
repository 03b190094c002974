// The detail panel: the full frame list of what was clicked, with source
// locations (file:line) and modules, innermost frame first as in a
// backtrace.
import { el, clear } from './dom.js';
import * as fmt from './format.js';
import { METRICS } from './data.js';

function frameList(frames, id) {
  if (!frames.length) return el('p', { class: 'muted' }, 'No frames recorded (allocated before tracing started).');
  return el('ol', { class: 'frames', id },
    frames.map((f) => el('li', { class: 'frame-item' },
      el('span', { class: 'fn mono' }, f.name || '??'),
      f.inlined ? el('span', { class: 'inlined muted small', title: 'inlined by the compiler into the frame below' }, 'inlined') : null,
      f.file ? el('span', { class: 'loc mono' }, fmt.location(f.file, f.line, f.linesVary)) : el('span', { class: 'loc muted' }, 'no source'),
      f.module ? el('span', { class: 'module mono', title: f.module }, fmt.basename(f.module)) : null)));
}

function fields(rows) {
  return el('dl', { class: 'fields' }, rows.filter(Boolean).map(([k, v]) => [el('dt', null, k), el('dd', null, v)]));
}

export function createDetail(data) {
  const body = el('div', { class: 'detail-body' },
    el('p', { class: 'muted' }, 'Click a frame of the graph, or a row of a table, to see its call path here.'));
  const panel = el('aside', { id: 'detail', class: 'detail', 'aria-live': 'polite' },
    el('h3', null, 'Details'), body);

  function show(kind, title, ...content) {
    clear(body);
    panel.dataset.kind = kind;
    body.appendChild(el('h4', { id: 'detail-title', class: 'mono' }, title));
    for (const c of content) if (c) body.appendChild(c);
  }

  return {
    panel,
    // A node of the stack tree: the path from the root to it.
    showNode(node, metric) {
      const path = [];
      for (let n = node; n && n.parent >= 0; n = data.nodes[n.parent]) path.push(n);
      const root = data.root;
      show('node', node.name || '??',
        fields(METRICS.map((m, i) => [m.label + (i === metric ? ' (shown)' : ''),
          `${m.unit === 'bytes' ? fmt.bytes(node.m[i]) : fmt.int(node.m[i])} (${fmt.percent(node.m[i], root.m[i])})`])),
        el('h5', null, 'Call path, innermost frame first'),
        frameList(path, 'detail-frames'));
    },
    // A row of a table: its stack(s), titled, with fields above.
    showStacks(kind, title, rows, stacks) {
      const parts = [fields(rows)];
      for (const [label, st, id] of stacks) {
        parts.push(el('h5', null, label));
        parts.push(st ? frameList(st.frames, id) : el('p', { class: 'muted' }, 'No stack.'));
      }
      show(kind, title, ...parts);
      panel.scrollIntoView({ block: 'nearest' });
    },
  };
}
