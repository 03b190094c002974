// Shared by the viewer tests: making traces and reports, querying traces
// with the sqlite3 shell, and a headless Chromium (Debian's) driven by
// playwright-core from viewer/node_modules.  Nothing here skips: a missing
// browser or module is a failure that says what to install.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const viewerDir = resolve(here, '..', '..', 'viewer');
export const CHROMIUM = process.env.ALLOCTRACE_CHROMIUM || '/usr/bin/chromium';

let failures = 0;
export function check(cond, what, extra) {
  console.log(`${cond ? 'ok' : 'FAIL'} - ${what}${!cond && extra !== undefined ? `\n    ${extra}` : ''}`);
  if (!cond) failures++;
  return cond;
}
export function equal(actual, expected, what) {
  return check(JSON.stringify(actual) === JSON.stringify(expected), `${what}: ${JSON.stringify(actual)}`,
    `expected ${JSON.stringify(expected)}`);
}
export function done() {
  console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
  process.exit(failures ? 1 : 0);
}
export function fatal(msg) {
  console.log(`FAIL - ${msg}`);
  process.exit(1);
}

// `node TEST.mjs ALLOCTRACE PRELOAD_PROG SQLITE3 WORKDIR`
export function args(name) {
  const [alloctrace, prog, sqlite3, workdir] = process.argv.slice(2).map((a) => resolve(a));
  if (!workdir) fatal(`usage: node ${name} ALLOCTRACE PRELOAD_PROG SQLITE3 WORKDIR`);
  const work = join(workdir, `${name.replace(/\.mjs$/, '')}-${process.pid}`);
  mkdirSync(work, { recursive: true });
  return { alloctrace, prog, sqlite3, workdir, work };
}

// A trace of PROG MODE made by `alloctrace run`.
export function traceOf(a, mode, db) {
  const r = spawnSync(a.alloctrace, ['run', '-q', '-o', db, '--force', '--', a.prog, mode],
    { cwd: a.work, encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0 || !existsSync(db)) fatal(`alloctrace run ${mode}: exit ${r.status}\n${r.stderr}`);
  return db;
}

export function htmlOf(a, db, html, extra = []) {
  const r = spawnSync(a.alloctrace, ['html', db, '-o', html, ...extra], { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0 || !existsSync(html)) fatal(`alloctrace html ${db}: exit ${r.status}\n${r.stderr}`);
  return html;
}

// Rows of a query as objects (the sqlite3 shell's JSON mode).
export function query(a, db, sql) {
  const out = execFileSync(a.sqlite3, ['-json', '-readonly', db, sql], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}
export function sql(a, db, statements) {
  execFileSync(a.sqlite3, [db], { input: statements, encoding: 'utf8' });
}

// The embedded data of a report, parsed as the page parses it.
export function embeddedData(text) {
  const m = /<script type="application\/json" id="data">([\s\S]*?)<\/script>/.exec(text);
  if (!m) return null;
  return JSON.parse(m[1]);
}

function playwright() {
  const req = createRequire(join(viewerDir, 'package.json'));
  try {
    return req('playwright-core');
  } catch (e) {
    fatal(`playwright-core is not installed in ${viewerDir}/node_modules: run \`npm ci\` there ` +
          `(scripts/setup.sh does): ${e.message}`);
  }
  return null;
}

// A headless Chromium, and a page that records what must not happen:
// console errors, uncaught exceptions, dialogs, requests that leave the file.
export async function browser() {
  if (!existsSync(CHROMIUM)) {
    fatal(`${CHROMIUM} not found: the viewer tests need Debian's chromium (scripts/setup.sh installs it)`);
  }
  const { chromium } = playwright();
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

export async function openReport(b, html, { width = 1400, height = 1000 } = {}) {
  const page = await b.newPage({ viewport: { width, height } });
  const events = { errors: [], dialogs: [], requests: [] };
  page.on('console', (m) => { if (m.type() === 'error') events.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => events.errors.push(`exception: ${e.message}`));
  page.on('dialog', async (d) => { events.dialogs.push(`${d.type()}: ${d.message()}`); await d.dismiss(); });
  page.on('request', (r) => events.requests.push(r.url()));
  const t0 = Date.now();
  await page.goto(pathToFileURL(html).href, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
  events.openMs = Date.now() - t0;
  return { page, events };
}

// What the page did that it must never do.
export function checkClean(events, what) {
  equal(events.errors, [], `${what}: no console errors or exceptions`);
  equal(events.dialogs, [], `${what}: no dialog opened`);
  const foreign = events.requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:'));
  equal(foreign, [], `${what}: no request leaves the file (${events.requests.length} file:/data: requests)`);
}

// The merged stack tree the page should draw for one metric, computed
// from the trace independently of tools/html.c: every stack with a value,
// frames merged by (function, file) from the outermost, plus the root.
export function expectedNodes(a, db, valueSql) {
  const rows = query(a, db,
    `WITH v AS (${valueSql}) SELECT v.stack AS stack, sl.level AS level, sl.function AS function,` +
    ' sl.file AS file, sl.ip AS ip FROM v LEFT JOIN stack_lines sl ON sl.stack = v.stack' +
    ' WHERE v.value > 0 ORDER BY v.stack, sl.level DESC');
  const stacks = new Map();
  for (const r of rows) {
    if (!stacks.has(r.stack)) stacks.set(r.stack, []);
    if (r.level !== null) stacks.get(r.stack).push(`${r.function ?? `ip ${r.ip}`}\u0000${r.file ?? ''}`);
  }
  const seen = new Set();
  for (const frames of stacks.values()) {
    let path = frames.length ? '' : '(no stack)';
    if (!frames.length) seen.add(path);
    for (const f of frames) {
      path += `\u0001${f}`;
      seen.add(path);
    }
  }
  return seen.size + 1;
}

// The kinds of problems as lib/include/alloctrace/vocab.h defines them
// (AT_KINDS, then AT_KIND_OTHER), read from the source, not from the page:
// [{name, label, color, description}] in the list's order.
export function vocabKinds() {
  const text = readFileSync(resolve(here, '..', '..', 'lib', 'include', 'alloctrace', 'vocab.h'), 'utf8')
    .replace(/\\\n/g, ' ');
  const lists = ['AT_KINDS', 'AT_KIND_OTHER'].map((name) => {
    const m = new RegExp(`#define ${name}\\(X\\)(.*)`).exec(text);
    if (!m) fatal(`vocab.h has no ${name}`);
    return m[1];
  });
  const entry = /X\(\s*\w+,\s*-?\d+,\s*"([^"]*)",\s*"([^"]*)",\s*\w+,\s*"[^"]*",\s*"[^"]*",\s*"([^"]*)",((?:\s*"[^"]*")+)\s*\)/g;
  const kinds = [];
  for (const list of lists) {
    for (const m of list.matchAll(entry)) {
      const description = [...m[4].matchAll(/"([^"]*)"/g)].map((d) => d[1]).join('');
      kinds.push({ name: m[1], label: m[2], color: m[3], description });
    }
  }
  return kinds;
}

// A CSS colour as the browser computes it, from #rrggbb.
export function rgb(hex) {
  const v = parseInt(hex.slice(1), 16);
  return `rgb(${v >> 16}, ${(v >> 8) & 255}, ${v & 255})`;
}

// The peak by its definition, independently of the replay in C: for each
// allocation, the blocks live right after it (allocated at or before it,
// not released at or before it); the first largest.
export function peakOf(a, db) {
  const [r] = query(a, db,
    'SELECT (SELECT coalesce(sum(b.size), 0) FROM allocations b WHERE b.alloc_seq <= x.alloc_seq' +
    ' AND (b.free_seq IS NULL OR b.free_seq > x.alloc_seq)) AS bytes,' +
    ' (SELECT count(*) FROM allocations b WHERE b.alloc_seq <= x.alloc_seq' +
    ' AND (b.free_seq IS NULL OR b.free_seq > x.alloc_seq)) AS blocks, x.alloc_seq AS seq' +
    ' FROM allocations x ORDER BY bytes DESC, x.alloc_seq LIMIT 1');
  return r ? { bytes: r.bytes, blocks: r.blocks, seq: r.seq } : { bytes: 0, blocks: 0, seq: 0 };
}

// The classes of reachability as vocab.h defines them (AT_REACH), read from
// the source: [{name, code, kind, label, gated, color, description}] in order.
export function vocabReach() {
  const text = readFileSync(resolve(here, '..', '..', 'lib', 'include', 'alloctrace', 'vocab.h'), 'utf8')
    .replace(/\\\n/g, ' ');
  const m = /#define AT_REACH\(X\)(.*)/.exec(text);
  if (!m) fatal('vocab.h has no AT_REACH');
  const entry = /X\(\s*\w+,\s*(\d+),\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",\s*([01]),\s*"([^"]*)",((?:\s*"[^"]*")+)\s*\)/g;
  return [...m[1].matchAll(entry)].map((e) => ({
    name: e[2], code: Number(e[1]), kind: e[3], label: e[4], gated: e[5] === '1', color: e[6],
    description: [...e[7].matchAll(/"([^"]*)"/g)].map((d) => d[1]).join(''),
  }));
}
