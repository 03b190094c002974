// A table sortable by clicking its headers (again to reverse), whose rows
// call `onRow` when clicked or activated with Enter.  The first `page`
// rows of the current order are in the page; "Show all" adds the rest, so
// a report with hundreds of sites opens as fast as a small one.  The
// element returned has setFilter(row => bool) (null: every row), which
// keeps the order and shows only the rows it accepts.
import { el, clear } from './dom.js';

const PAGE = 100;

// columns: [{label, value: row => number|string (sort key), text: row => string|Node, num, cls}]
export function sortableTable({ id, columns, rows, onRow, empty, initial, page = PAGE }) {
  const tbody = el('tbody');
  let order = initial || null; // {col, dir}
  let shown = Math.min(page, rows.length);
  const ths = columns.map((c, i) => el('th', {
    scope: 'col',
    class: c.num ? 'num sortable' : 'sortable',
    tabindex: 0,
    dataset: { col: i },
    on: {
      click: () => sortBy(i),
      keydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(i); } },
    },
  }, c.label));
  const table = el('table', { id, class: 'data', dataset: { rows: rows.length } },
    el('thead', null, el('tr', null, ths)), tbody);
  const more = el('button', { type: 'button', class: 'show-all', id: `${id}-all`, on: { click: () => showAll() } });
  const footer = el('div', { class: 'table-footer' }, more);

  const keys = rows.map((r) => columns.map((c) => c.value(r)));
  const trs = new Array(rows.length); // made when first shown
  let accept = null; // the filter, null for none
  let idx = rows.map((_, i) => i);
  const visible = () => rows.map((_, i) => i).filter((i) => !accept || accept(rows[i]));

  function rowElement(i) {
    if (trs[i]) return trs[i];
    const r = rows[i];
    const tr = el('tr', {
      tabindex: 0,
      dataset: { index: i, ...(r.stack !== undefined && r.stack !== null ? { stack: r.stack } : {}) },
      on: {
        click: () => select(tr, r),
        keydown: (e) => { if (e.key === 'Enter') select(tr, r); },
      },
    }, columns.map((c) => el('td', { class: c.num ? 'num' : c.cls || null }, c.text(r))));
    trs[i] = tr;
    return tr;
  }

  function render() {
    clear(tbody);
    for (let k = 0; k < shown && k < idx.length; k++) tbody.appendChild(rowElement(idx[k]));
    if (rows.length && !idx.length) {
      tbody.appendChild(el('tr', { class: 'filtered-out' },
        el('td', { colspan: columns.length, class: 'muted' }, 'No row matches the filter.')));
    }
    table.dataset.shown = Math.min(shown, idx.length);
    more.textContent = `Show all ${idx.length.toLocaleString('en-US')} rows`;
    footer.hidden = shown >= idx.length;
  }

  function showAll() {
    shown = rows.length;
    render();
  }

  function select(tr, r) {
    for (const t of table.querySelectorAll('tr.selected')) t.classList.remove('selected');
    tr.classList.add('selected');
    if (onRow) onRow(r);
  }

  function cmp(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    return String(a).localeCompare(String(b));
  }

  function sortBy(col, dir) {
    const d = dir || (order && order.col === col ? -order.dir : (columns[col].num ? -1 : 1));
    order = { col, dir: d };
    idx = visible();
    idx.sort((a, b) => d * cmp(keys[a][col], keys[b][col]) || a - b);
    ths.forEach((th, i) => {
      th.setAttribute('aria-sort', i === col ? (d > 0 ? 'ascending' : 'descending') : 'none');
    });
    render();
  }

  if (!rows.length) {
    tbody.appendChild(el('tr', null, el('td', { colspan: columns.length, class: 'muted' }, empty || 'Nothing.')));
    footer.hidden = true;
  } else if (order) {
    sortBy(order.col, order.dir);
  } else {
    render();
  }
  const wrap = el('div', null, el('div', { class: 'table-wrap' }, table), footer);
  wrap.setFilter = (fn) => {
    accept = fn;
    if (!rows.length) return;
    if (order) sortBy(order.col, order.dir);
    else {
      idx = visible();
      render();
    }
  };
  return wrap;
}
