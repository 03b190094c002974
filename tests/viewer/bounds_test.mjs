// The data a report embeds is bounded whatever the trace holds: a trace
// widened with SQL to tens of thousands of distinct stacks, leak sites and
// findings gives a report whose lists stop at their caps, whose totals are
// still exact ("(other stacks)" holds the rest), and that opens quickly.
//
//   node bounds_test.mjs ALLOCTRACE PRELOAD_PROG SQLITE3 WORKDIR
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  args, browser, check, checkClean, done, embeddedData, equal, htmlOf, openReport, query, sql, traceOf,
} from './lib.mjs';

const a = args('bounds_test.mjs');
const STACKS = 30000;
const FINDINGS = 5000;

function widen(db) {
  // Stack i: leaf_i <- mid_(i % 150) <- top_(i % 7) <- main, with two
  // allocations (one leaked, one released) and seq numbers past the
  // program's own.  Findings: many of one kind, few of two others.
  sql(a, db, `
    BEGIN;
    CREATE TEMP TABLE base AS SELECT
      (SELECT max(id) FROM stack_nodes) AS node, (SELECT max(id) FROM frames) AS frame,
      (SELECT max(ip) FROM frames) AS ip, (SELECT max(seq) FROM lifetimes) + 1000 AS seq,
      (SELECT module FROM frames WHERE function = 'main' LIMIT 1) AS module;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${STACKS} + 160)
    INSERT INTO frames(id, ip, module, module_offset, function, function_offset, file, line)
      SELECT b.frame + 1 + i, b.ip + 16 * (1 + i), b.module, 0,
        CASE WHEN i < ${STACKS} THEN 'leaf_' || i WHEN i < ${STACKS} + 150 THEN 'mid_' || (i - ${STACKS})
             ELSE 'top_' || (i - ${STACKS} - 150) END,
        0, 'wide.c', 1 + i FROM n, base b;
    -- The call tree (stack_nodes): main, top_k under it, one mid node for
    -- each (i % 150, i % 7) pair (i % 1050), then the leaves, which are
    -- the stacks.
    INSERT INTO stack_nodes(id, parent, frame)
      SELECT b.node + 1, NULL, (SELECT id FROM frames WHERE function = 'main' LIMIT 1) FROM base b;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 6)
    INSERT INTO stack_nodes(id, parent, frame)
      SELECT b.node + 2 + i, b.node + 1, b.frame + 1 + ${STACKS} + 150 + i FROM n, base b;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1049)
    INSERT INTO stack_nodes(id, parent, frame)
      SELECT b.node + 9 + i, b.node + 2 + i % 7, b.frame + 1 + ${STACKS} + i % 150 FROM n, base b;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${STACKS} - 1)
    INSERT INTO stack_nodes(id, parent, frame)
      SELECT b.node + 1059 + i, b.node + 9 + i % 1050, b.frame + 1 + i FROM n, base b;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${STACKS} - 1)
    INSERT INTO stacks(id, depth) SELECT b.node + 1059 + i, 4 FROM n, base b;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${STACKS} - 1)
    -- info (docs/schema.md): log2 of the alignment | family << 6 | alloc op << 8 | free op << 11;
    -- 324: 16-byte malloc, live; 8518: 64-byte malloc, released by free.
    INSERT INTO lifetimes(seq, ptr, size, info, thread, stack, t, free_dseq, free_dt)
      SELECT b.seq + 4 * i, 65536 + 64 * i, 1 + i % 300, 4 | 1 << 6 | 1 << 8, 1, b.node + 1059 + i, b.seq + 4 * i, NULL, NULL FROM n, base b
      UNION ALL
      SELECT b.seq + 4 * i + 1, 1 << 40 | 64 * i, 100 + i % 1000, 6 | 1 << 6 | 1 << 8 | 4 << 11, 1, b.node + 1059 + i, b.seq + 4 * i + 1, 2, 1
      FROM n, base b;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${FINDINGS} - 1)
    INSERT INTO findings(kind, seq, time_us, thread, ptr, release_stack, release_family, alloc_stack, detail)
      SELECT CASE WHEN i % 500 = 7 THEN 'invalid_free' WHEN i % 5 = 1 THEN 'double_free' ELSE 'layout_mismatch' END,
        b.seq + 4 * ${STACKS} + i, b.seq + 4 * ${STACKS} + i, 1, 4096 + i, b.node + 1059 + i % ${STACKS}, 'malloc',
        b.node + 1059 + (i * 7) % ${STACKS}, 'synthetic finding ' || i FROM n, base b;
    UPDATE meta SET value = (SELECT count(*) FROM lifetimes) WHERE key = 'alloc_calls';
    UPDATE meta SET value = (SELECT max(t) + 100 FROM lifetimes) WHERE key = 'duration_us';
    COMMIT;`);
}

async function main() {
  const db = join(a.work, 'wide.db');
  copyFileSync(traceOf(a, 'leak', join(a.work, 'leak.db')), db);
  widen(db);
  const [leaks] = query(a, db, 'SELECT count(*) AS n, sum(size) AS bytes FROM leaks');
  const sites = query(a, db, 'SELECT count(*) AS n FROM leak_sites')[0].n;
  const lifetimes = query(a, db, 'SELECT count(*) AS n, sum(size) AS bytes FROM lifetimes')[0];
  check(sites > STACKS, `the widened trace has ${sites} leak sites`);

  const html = htmlOf(a, db, join(a.work, 'wide.html'));
  const size = statSync(html).size;
  const data = embeddedData(readFileSync(html, 'utf8'));
  check(size < 4 * 1024 * 1024, `the report is ${size} bytes (under 4 MiB)`);
  equal(data.leak_sites.length, 500, 'leak sites: the 500 heaviest');
  check(data.leak_sites.every((s, i, v) => i === 0 || v[i - 1][2] >= s[2]), 'leak sites: heaviest first');
  equal(data.summary.leak_sites, sites, 'the summary counts every leak site');
  equal(data.summary.leaked_bytes, leaks.bytes, 'leaked bytes are exact');
  equal(data.findings.length, 1000, 'findings: 1000 listed');
  const kinds = new Set(data.findings.map((f) => data.strings[f[2]]));
  equal([...kinds].sort(), ['double_free', 'invalid_free', 'layout_mismatch'], 'findings: every kind is listed, the rare one too');
  equal(data.summary.findings, FINDINGS, 'findings: the summary counts them all');
  check(data.timeline.t.length <= 2000, `timeline: ${data.timeline.t.length} points`);
  check(data.tree.length <= 20000 + 300, `tree: ${data.tree.length} nodes`);
  equal(data.limits.tree_truncated, 1, 'the tree says it is truncated');
  const root = data.tree[0];
  equal(root[9], lifetimes.n, 'the tree root counts every allocation');
  equal(root[8], lifetimes.bytes, 'the tree root holds every byte allocated');
  equal(root[6], leaks.bytes, 'the tree root holds every leaked byte');
  check(data.tree.some((n) => data.strings[n[1]] === '(other stacks)' && n[0] === 0), '"(other stacks)" holds the rest');
  check(data.waste_sites.length <= 500, `waste sites: ${data.waste_sites.length}`);

  const small = htmlOf(a, db, join(a.work, 'wide-50.html'), ['--max-sites', '50']);
  const d50 = embeddedData(readFileSync(small, 'utf8'));
  equal(d50.leak_sites.length, 50, '--max-sites 50: 50 leak sites');
  check(statSync(small).size < size, '--max-sites 50: a smaller report');

  // Asking for every site: the node cap still holds the tree.
  const all = htmlOf(a, db, join(a.work, 'wide-all.html'), ['--max-sites', String(STACKS * 2)]);
  const dall = embeddedData(readFileSync(all, 'utf8'));
  check(dall.tree.length >= 20000 && dall.tree.length <= 20000 + 300, `--max-sites ${STACKS * 2}: the tree stops at ${dall.tree.length} nodes`);
  equal(dall.tree[0][9], lifetimes.n, `--max-sites ${STACKS * 2}: the root still counts every allocation`);
  check(statSync(all).size < 10 * 1024 * 1024, `--max-sites ${STACKS * 2}: ${statSync(all).size} bytes, under 10 MiB`);

  const b = await browser();
  try {
    const { page, events } = await openReport(b, html);
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return { load: Math.round(nav.loadEventEnd), steps: performance.getEntriesByType('measure').map((m) => `${m.name} ${Math.round(m.duration)} ms`) };
    });
    console.log(`# load event at ${timing.load} ms: ${timing.steps.join(', ')}; ready after ${events.openMs} ms`);
    // A bound against what grows with the trace (a list drawn whole, a
    // quadratic pass), not a benchmark: about 1 s on a quiet machine, and
    // a shared CI machine may be several times slower.
    check(timing.load < 10000, `the page has loaded and drawn everything in ${timing.load} ms`);
    // 30,000 stacks of equal weight: most frames are narrower than a pixel
    // and left out; the root, "(other stacks)" and main are wide.
    const drawn = await page.$$eval('#flame-chart svg g.frame', (gs) => gs.map((g) => g.getAttribute('name')));
    check(drawn.includes('all') && drawn.includes('(other stacks)') && drawn.includes('main'),
      `the flamegraph is drawn (${drawn.length} frames)`, JSON.stringify(drawn.slice(0, 20)));
    equal(await page.locator('#leak-table tbody tr').count(), 100, 'the leak table shows its first 100 rows');
    await page.click('#leak-table-all');
    equal(await page.locator('#leak-table tbody tr').count(), 500, '"Show all" shows the 500 rows');
    await page.locator('#leak-table tbody tr').nth(499).click();
    await page.waitForTimeout(400);
    check((await page.textContent('#detail-title')).startsWith('Leak site: leaf_'), 'the lightest listed site opens');
    await page.screenshot({ path: join(a.workdir, 'viewer-bounds.png') });
    checkClean(events, 'wide trace');
  } finally {
    await b.close();
  }
  done();
}

await main();
