// The header: what ran, for how long, and the totals that matter.
import { el } from './dom.js';
import * as fmt from './format.js';
import { kindBadge, reachBadge } from './kinds.js';

function card(label, field, value, shown, ...details) {
  return el('div', { class: 'card' },
    el('div', { class: 'card-label' }, label),
    el('div', { class: 'card-value', dataset: { field, value } }, shown),
    ...details.map((d) => el('div', { class: 'card-detail' }, d)));
}

function commandLine(meta) {
  try {
    const args = JSON.parse(meta.arguments);
    if (Array.isArray(args)) return args.map(String).join(' ');
  } catch (e) {
    // not JSON: show it as it is
  }
  return meta.arguments || '';
}

// The leaks by reachability at exit: a line per class that holds any.
function reachDetail(data) {
  const held = data.reach.filter((c) => c.blocks > 0);
  if (!held.length) return '';
  return el('ul', { class: 'reach-summary' }, held.map((c) =>
    el('li', { dataset: { reach: c.name, blocks: c.blocks, bytes: c.bytes } },
      reachBadge(c), ` ${fmt.bytes(c.bytes)} in ${fmt.plural(c.blocks, 'block')}`)));
}

export function renderSummary(data) {
  const s = data.summary;
  const m = data.meta;
  const program = m.executable || s.trace;
  document.title = `alloctrace: ${fmt.basename(program)}`;
  const kinds = s.findings_by_kind;
  const findingsDetail = kinds.length
    ? el('ul', { class: 'kinds' }, kinds.map(([k, n]) =>
      el('li', { dataset: { kind: k, count: n } }, kindBadge(data.kind(k)), ` ${fmt.int(n)}`)))
    : 'no bad releases';
  const died = m.program_end === 'died';
  return el('header', { id: 'summary' },
    el('h1', null, 'alloctrace report: ', el('span', { id: 'program', class: 'mono' }, fmt.basename(program))),
    el('p', { class: 'command mono', id: 'command' }, commandLine(m) || program),
    el('p', { class: 'trace-info' },
      `trace ${s.trace}`,
      m.pid ? ` · pid ${m.pid}` : '',
      m.start_time ? ` · started ${m.start_time}` : '',
      s.threads ? ` · ${fmt.int(s.threads)} thread${s.threads === 1 ? '' : 's'}` : '',
      died ? el('strong', { class: 'warn' }, ' · the program died before closing its trace') : '',
      Number(m.lost_events) > 0 ? el('strong', { class: 'warn' }, ` · ${fmt.int(m.lost_events)} events lost`) : ''),
    el('div', { class: 'cards' },
      card('Duration', 'duration_us', s.duration_us, fmt.time(s.duration_us)),
      card('Allocation calls', 'alloc_calls', s.alloc_calls, fmt.int(s.alloc_calls),
        fmt.plural(s.free_calls, 'free'), `${fmt.bytes(s.alloc_bytes)} allocated`),
      card('Peak live heap', 'peak_bytes', s.peak_bytes, fmt.bytes(s.peak_bytes),
        el('span', { dataset: { field: 'peak_blocks', value: s.peak_blocks } }, fmt.plural(s.peak_blocks, 'block')),
        `at ${fmt.time(s.peak_time_us)}`),
      card('Leaks', 'leaked_bytes', s.leaked_bytes, fmt.bytes(s.leaked_bytes),
        el('span', { dataset: { field: 'leaked_blocks', value: s.leaked_blocks } },
          `${fmt.plural(s.leaked_blocks, 'block')} in ${fmt.plural(s.leak_sites, 'site')}`),
        reachDetail(data),
        s.runtime_blocks ? `set aside: ${fmt.plural(s.runtime_blocks, 'block')}, ${fmt.bytes(s.runtime_bytes)} kept by the C/C++ runtime` : ''),
      card('Findings', 'findings', s.findings, fmt.int(s.findings), findingsDetail)));
}
