// The time filter: zooming the timeline to a range filters the flamegraph
// and the tables to what happened in it, as memray's flamegraphs do.  The
// page's data counts allocations and leaks per time slice (tools/html.c,
// `slices`: the span cut in n slices), so a range is widened to whole
// slices: [first slice's start, last slice's end).  Findings have their
// own times and are kept when they happened in that range too.
import { el } from './dom.js';
import * as fmt from './format.js';

export function createRange(data) {
  const sl = data.slices;
  const width = sl && sl.n > 0 && sl.span_us > 0 ? sl.span_us / sl.n : 0;
  const listeners = [];
  let current = null; // {k0, k1, t0, t1}: slices k0..k1, times [t0, t1)
  let resetFn = null;
  const text = el('span', { id: 'range-text' });
  const reset = el('button', { type: 'button', id: 'range-reset', on: { click: () => (resetFn ? resetFn() : set(null)) } }, 'Reset');
  const bar = el('div', { id: 'range-filter', class: 'range-filter', hidden: true, role: 'status' }, text, ' ', reset);

  const sliceOf = (t) => {
    if (t <= 0) return 0;
    const k = Math.floor((t / sl.span_us) * sl.n);
    return Math.min(sl.n - 1, Math.max(0, k));
  };

  function set(r) {
    current = r;
    bar.hidden = !r;
    bar.dataset.t0 = r ? r.t0 : '';
    bar.dataset.t1 = r ? r.t1 : '';
    if (r) {
      text.textContent = `Filtered to ${fmt.time(r.t0)} – ${fmt.time(r.t1)}: the flamegraph and the tables count only allocations made (and findings that happened) then.`;
    }
    for (const f of listeners) f(current);
  }

  // From the timeline's zoom: the whole span (or no slices in the data) clears the filter.
  function fromZoom(min, max, full) {
    if (!width || sl.unavailable || (min <= full[0] && max >= full[1])) {
      if (current) set(null);
      return;
    }
    const k0 = sliceOf(Math.max(0, min));
    const k1 = sliceOf(Math.max(0, max));
    if (current && current.k0 === k0 && current.k1 === k1) return;
    set({ k0, k1, t0: Math.round(k0 * width), t1: Math.round((k1 + 1) * width) });
  }

  // Sums of [slice, a, b] rows over the range: [a, b].
  function sum(rows) {
    let a = 0;
    let b = 0;
    if (!rows || !current) return [a, b];
    for (const r of rows) {
      if (r[0] >= current.k0 && r[0] <= current.k1) {
        a += r[1];
        b += r[2];
      }
    }
    return [a, b];
  }

  return {
    bar,
    get current() { return current; },
    available: !!width && !(sl && sl.unavailable),
    onChange(f) { listeners.push(f); },
    fromZoom,
    setReset(f) { resetFn = f; },
    sum,
    inRange: (t) => !current || (t >= current.t0 && t < current.t1),
  };
}
