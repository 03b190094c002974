// The leak sites and the findings, each row linked to its stack in the
// flamegraph and its frames in the detail panel.
import { el, section } from './dom.js';
import * as fmt from './format.js';
import { siteFrame } from './data.js';
import { kindBadge, reachBadge } from './kinds.js';
import { sortableTable } from './table.js';

const M_LEAKED = 0;
const M_COUNT = 3;

function siteName(st) {
  const f = siteFrame(st);
  return f ? f.name || '??' : '(no stack)';
}

function siteLoc(st) {
  const f = siteFrame(st);
  return f ? fmt.location(f.file, f.line) : '';
}

// A pool's blocks and releases (docs/pools.md) name their pool after the
// site: "pool NAME".
function poolMark(pool) {
  return pool ? el('span', { class: 'pool muted small', dataset: { pool } }, ` pool ${pool}`) : null;
}

function linkNote(ok) {
  return ok ? null : ['Flamegraph', 'this stack is not in the graph (it holds the heaviest stacks only)'];
}

// One toggle per class that has rows: pressed, its rows are shown.
function reachFilter(data, rows, table) {
  const present = data.reach.filter((c, i) => rows.some((r) => r.reachIndex === i));
  if (present.length < 1) return null;
  const on = new Set(present.map((c) => c.name));
  const status = el('span', { id: 'leak-filter-status', class: 'muted small' });
  const update = () => {
    table.setFilter(on.size === present.length ? null : (r) => on.has(r.reach.name));
    const n = rows.filter((r) => on.has(r.reach.name)).length;
    status.dataset.shown = n;
    status.textContent = n === rows.length ? '' : `${fmt.int(n)} of ${fmt.int(rows.length)} sites shown`;
  };
  const buttons = present.map((c) => {
    const count = rows.filter((r) => r.reach.name === c.name).length;
    const b = el('button', {
      type: 'button', class: 'toggle on reach-toggle', title: c.description, 'aria-pressed': 'true',
      dataset: { reach: c.name, count },
      on: {
        click: () => {
          if (on.has(c.name)) on.delete(c.name);
          else on.add(c.name);
          b.classList.toggle('on', on.has(c.name));
          b.setAttribute('aria-pressed', String(on.has(c.name)));
          update();
        },
      },
    }, reachBadge(c), ` ${fmt.int(count)}`);
    return b;
  });
  update();
  return el('div', { class: 'toolbar', id: 'leak-filter', role: 'group', 'aria-label': 'Reachability at exit' },
    el('span', { class: 'muted small' }, 'Reachability at exit:'), ...buttons, status);
}

// Under the time filter: each site's blocks and bytes allocated in the
// range (its smallest and largest are the whole trace's), sites with none
// left out.
function leakRows(data, range) {
  const all = data.leakSites.map((r, i) => ({ ...r, site: i, st: data.stack(r.stack) }));
  if (!range || !range.current || !range.available || data.slices.sites_truncated) return all;
  return all.map((r) => {
    const [blocks, bytes] = range.sum(data.slices.sites[r.site]);
    return { ...r, blocks, bytes };
  }).filter((r) => r.blocks > 0);
}

export function renderLeaks(data, detail, flame, range) {
  const s = data.summary;
  const rows = leakRows(data, range);
  const table = sortableTable({
    id: 'leak-table',
    rows,
    // The data's order: by class (definitely lost first), heaviest first
    // within a class, so that a small real leak is not lost under a large
    // block still reachable at exit.  Equal keys keep that order.
    initial: { col: 2, dir: 1 },
    empty: 'No leaks: every block the program allocated was released (or kept by the C/C++ runtime).',
    columns: [
      { label: 'Site', value: (r) => siteName(r.st), text: (r) => [siteName(r.st), poolMark(r.pool)], cls: 'mono fn' },
      { label: 'Location', value: (r) => siteLoc(r.st), text: (r) => siteLoc(r.st), cls: 'mono' },
      { label: 'Reachability', value: (r) => r.reachIndex, text: (r) => reachBadge(r.reach) },
      { label: 'Blocks', num: true, value: (r) => r.blocks, text: (r) => fmt.int(r.blocks) },
      { label: 'Bytes', num: true, value: (r) => r.bytes, text: (r) => fmt.bytes(r.bytes) },
      { label: 'Smallest', num: true, value: (r) => r.min, text: (r) => fmt.bytes(r.min) },
      { label: 'Largest', num: true, value: (r) => r.max, text: (r) => fmt.bytes(r.max) },
    ],
    onRow: (r) => {
      const ok = flame.focusStack(r.stack, M_LEAKED, true);
      detail.showStacks('leak', `Leak site: ${siteName(r.st)}`, [
        ['Reachability', `${r.reach.label}: ${r.reach.description}`],
        r.pool ? ['Pool', r.pool] : null,
        ['Leaked', `${fmt.plural(r.blocks, 'block')}, ${fmt.bytes(r.bytes)} (${r.bytes} B)`],
        ['Block sizes', `${fmt.bytes(r.min)} to ${fmt.bytes(r.max)}`],
        linkNote(ok),
      ], [['Allocated at, innermost frame first', r.st, 'detail-frames']]);
    },
  });
  const more = s.leak_sites > rows.length
    ? el('p', { class: 'muted small' }, `The first ${fmt.int(rows.length)} of ${fmt.int(s.leak_sites)} leak sites, by reachability, then heaviest.`) : null;
  return section('leaks', `Leak sites (${fmt.int(s.leak_sites)})`, more, reachFilter(data, rows, table), table);
}

// A size or alignment the release did not pass (free(), an unsized delete)
// is an en dash; a bug released with several sizes shows their range.
function layoutText(size, align, family, min = size, max = size) {
  const part = (v) => (v === null ? '–' : v);
  const sz = min !== null && max !== null && min !== max ? `${min}–${max}` : part(size);
  return `(${sz}, ${part(align)})${family ? ` ${family}` : ''}`;
}

// The listed releases, one row per bug (the trace model's finding groups:
// kind, stacks, families, alignments), in the order each first happened.
function findingRows(data, range) {
  const rows = new Map();
  for (const f of data.findings) {
    if (range && !range.inRange(f.time)) continue;
    const row = rows.get(f.group);
    if (row) {
      row.seqs.push(f.seq);
      continue;
    }
    const g = data.findingGroups[f.group];
    rows.set(f.group, {
      ...f, g, count: g.count, seqs: [f.seq], k: data.kind(f.kind), stack: f.allocStack,
      rel: data.stack(f.releaseStack), alloc: data.stack(f.allocStack),
      first: f.firstFreeStack === null ? null : data.stack(f.firstFreeStack),
    });
  }
  return [...rows.values()];
}

function occurrences(r) {
  const shown = r.seqs.slice(0, 20).join(', ');
  const more = r.seqs.length > 20 ? ', …' : '';
  const listed = r.seqs.length < r.count ? ` (${fmt.int(r.seqs.length)} listed)` : '';
  return `${fmt.plural(r.count, 'time')}, at sequence numbers ${shown}${more}${listed}`;
}

export function renderFindings(data, detail, flame, range) {
  const s = data.summary;
  const rows = findingRows(data, range);
  const releasedAs = (r) => layoutText(r.releaseSize, r.releaseAlign, r.releaseFamily, r.g.releaseMin, r.g.releaseMax);
  const allocatedAs = (r) => (r.allocSeq === null ? '–' : layoutText(r.allocSize, r.allocAlign, r.allocFamily, r.g.allocMin, r.g.allocMax));
  const table = sortableTable({
    id: 'findings-table',
    rows,
    empty: 'No findings: every release matched its allocation.',
    columns: [
      { label: 'Seq', num: true, value: (r) => r.seq, text: (r) => String(r.seq) },
      { label: 'Time', num: true, value: (r) => r.time, text: (r) => fmt.time(r.time) },
      { label: 'Kind', value: (r) => r.k.label, text: (r) => kindBadge(r.k) },
      { label: 'Times', num: true, value: (r) => r.count, text: (r) => fmt.int(r.count) },
      { label: 'Released at', value: (r) => siteName(r.rel), text: (r) => [siteName(r.rel), poolMark(r.pool)], cls: 'mono fn' },
      { label: 'Location', value: (r) => siteLoc(r.rel), text: (r) => siteLoc(r.rel), cls: 'mono' },
      { label: 'Released as', value: (r) => r.releaseSize, text: releasedAs, cls: 'mono' },
      { label: 'Allocated as', value: (r) => r.allocSize, text: allocatedAs, cls: 'mono' },
      { label: 'Detail', value: (r) => r.detail, text: (r) => r.detail },
    ],
    onRow: (r) => {
      const ok = r.allocStack === null ? true : flame.focusStack(r.allocStack, M_COUNT);
      detail.showStacks('finding', `${r.k.label} at sequence number ${r.seq}`, [
        ['Kind', r.k.known ? r.k.description : `${r.kind}: a kind this alloctrace does not know`],
        ['Detail', r.count > 1 ? `${r.detail} (the first occurrence)` : r.detail],
        r.pool ? ['Pool', r.pool] : null,
        ['Occurred', occurrences(r)],
        ['Pointer', r.ptr],
        ['Released as', releasedAs(r)],
        r.allocSeq !== null ? ['Allocated as', `${allocatedAs(r)} at sequence number ${r.allocSeq}, ${r.allocPtr}`] : null,
        r.firstFreeSeq !== null ? ['First released', `at sequence number ${r.firstFreeSeq}`] : null,
        ['Time', fmt.time(r.time)],
        r.allocStack !== null ? linkNote(ok) : null,
      ], [
        [r.firstFreeSeq !== null ? 'Released again at, innermost frame first' : 'Released at, innermost frame first', r.rel, 'detail-frames'],
        ['Allocated at, innermost frame first', r.allocSeq === null ? null : r.alloc, 'detail-frames-alloc'],
        r.firstFreeSeq !== null ? ['First released at, innermost frame first', r.first, 'detail-frames-first'] : null,
      ].filter(Boolean));
    },
  });
  const listed = data.findings.length;
  const more = s.findings > listed
    ? el('p', { class: 'muted small' }, `${fmt.int(listed)} of ${fmt.int(s.findings)} findings listed, shared between their kinds; each row is one bug with its count over the whole trace.`) : null;
  return section('findings', `Findings (${fmt.int(s.findings)})`, more, table);
}
