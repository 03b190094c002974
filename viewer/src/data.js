// The report's data: the JSON that `alloctrace html` embeds (tools/html.c
// documents each array), unpacked into objects.
import { kindTable, reachTable } from './kinds.js';

export const METRICS = [
  { key: 'leaked', label: 'Leaked bytes', unit: 'bytes' },
  { key: 'peak', label: 'Live bytes at peak', unit: 'bytes' },
  { key: 'total', label: 'Total bytes allocated', unit: 'bytes' },
  { key: 'count', label: 'Allocation count', unit: 'calls' },
];

export function loadData(doc) {
  const raw = JSON.parse(doc.getElementById('data').textContent);
  if (raw.format !== 'alloctrace-html' || raw.version !== 1) {
    throw new Error('this page holds no alloctrace report data it can read');
  }
  const S = raw.strings;
  const str = (i) => (i > 0 && i < S.length ? S[i] : '');

  const nodes = raw.tree.map((n, id) => ({
    id,
    parent: n[0],
    name: str(n[1]),
    file: str(n[2]),
    module: str(n[3]),
    line: n[4],
    linesVary: !!n[5],
    m: [n[6], n[7], n[8], n[9]],
    children: [],
  }));
  for (const n of nodes) if (n.parent >= 0) nodes[n.parent].children.push(n);

  const frames = raw.frames.map((f) => ({
    name: str(f[0]),
    file: str(f[1]),
    line: f[2],
    module: str(f[3]),
    inlined: f[4] === 1,
  }));
  const stacks = new Map();
  const skips = raw.stack_skip || {};
  for (const [id, v] of Object.entries(raw.stacks)) {
    stacks.set(Number(id), {
      id: Number(id), leaf: v[0], skip: skips[id] || 0, frames: v.slice(1).map((i) => frames[i]),
    });
  }
  const stack = (id) => (id === null || id === undefined ? null : stacks.get(id) || null);

  const reachList = raw.reach || [];
  const reachOf = reachTable(reachList);
  const leakSites = raw.leak_sites.map((s) => ({
    stack: s[0], blocks: s[1], bytes: s[2], min: s[3], max: s[4], reach: reachOf(s[5]), reachIndex: s[5],
    pool: str(s[6]),
  }));
  const wasteSites = raw.waste_sites.map((s) => ({
    stack: s[0], count: s[1], bytes: s[2], waste: s[3],
  }));
  const findings = raw.findings.map((f, i) => ({
    index: i,
    seq: f[0],
    time: f[1],
    kind: str(f[2]),
    thread: f[3],
    ptr: f[4],
    releaseStack: f[5],
    releaseSize: f[6],
    releaseAlign: f[7],
    releaseFamily: str(f[8]),
    allocSeq: f[9],
    allocPtr: f[10],
    allocStack: f[11],
    allocSize: f[12],
    allocAlign: f[13],
    allocFamily: str(f[14]),
    firstFreeSeq: f[15],
    detail: str(f[16]),
    firstFreeStack: f[17],
    group: f[18],
    pool: str(f[19]),
  }));
  // One per bug over the whole trace: exact counts, sizes as ranges.
  const findingGroups = raw.finding_groups.map((g) => ({
    count: g[0], releaseMin: g[1], releaseMax: g[2], allocMin: g[3], allocMax: g[4],
  }));
  const kind = kindTable(raw.kinds);
  const hist = raw.hist.map((c) => ({ size: c[0], align: c[1], count: c[2], bytes: c[3], waste: c[4] }));
  const t = raw.timeline;
  return {
    meta: raw.meta,
    summary: raw.summary,
    limits: raw.limits,
    timeline: { t: t.t, bytes: t.bytes, blocks: t.blocks },
    root: nodes[0],
    nodes,
    stack,
    leakSites,
    wasteSites,
    wasteTotal: raw.waste_total,
    findings,
    findingGroups,
    hist,
    kind,
    reach: reachList,
    slices: raw.slices || null,
  };
}

// The frame that names a stack's site in a row: the first that is not the
// allocator's (tools/html.c says how many those are, lib/sites.h decides);
// the whole list is in the detail panel.
export function siteFrame(st) {
  if (!st || !st.frames.length) return null;
  return st.frames[st.skip] || st.frames[0];
}
