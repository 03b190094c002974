// `alloctrace html` in a real browser: reports of traces of preload_prog
// (tests/preload_prog.c) made by `alloctrace run`, opened from file: in
// headless Chromium.  The summary must say what the trace says, the
// timeline and the flamegraph must be drawn, and the page must answer
// clicks: a frame shows its detail, headers sort, the metric switches the
// graph, a row leads to its stack.  Screenshots go to the build directory.
//
//   node report_test.mjs ALLOCTRACE PRELOAD_PROG SQLITE3 WORKDIR
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  args, browser, check, checkClean, done, embeddedData, equal, expectedNodes, htmlOf, openReport,
  peakOf, query, rgb, sql, traceOf, vocabKinds, vocabReach,
} from './lib.mjs';
import { copyFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const a = args('report_test.mjs');
let b;

async function cardValue(page, field) {
  const v = await page.getAttribute(`[data-field="${field}"]`, 'data-value');
  return v === null ? null : Number(v);
}

// Pixels of the timeline's canvas that are not background: the series
// were drawn.  Counts the reddish ones (the live heap's stroke) apart.
async function canvasInk(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#timeline-chart canvas');
    if (!c) return null;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    let red = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0) ink++;
      if (d[i + 3] > 128 && d[i] > 140 && d[i + 1] < 90 && d[i + 2] < 100) red++;
    }
    return { ink, red, width: c.width, height: c.height };
  });
}

const frameCount = (page) => page.locator('#flame-chart svg g.frame').count();

async function settle(page) {
  // d3-flame-graph animates for 200 ms: wait for the transitions to end.
  await page.waitForTimeout(500);
}

async function columnValues(page, table, col) {
  return page.$$eval(`#${table} tbody tr`, (trs, c) => trs.map((tr) => tr.children[c].textContent), col);
}

async function leakReport() {
  const db = traceOf(a, 'leak', join(a.work, 'leak.db'));
  const html = htmlOf(a, db, join(a.work, 'leak.html'));
  const text = readFileSync(html, 'utf8');
  const data = embeddedData(text);
  check(data !== null, 'leak: the report embeds its data as JSON');
  check(!/<(script|link|img|iframe)[^>]+(src|href)=/i.test(text), 'leak: the report references no external resource');

  const { page, events } = await openReport(b, html);

  // ---- summary: what the trace says ----
  const meta = Object.fromEntries(query(a, db, 'SELECT key, value FROM meta').map((r) => [r.key, r.value]));
  const [leaks] = query(a, db, 'SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM leaks');
  const peak = peakOf(a, db);
  equal(await cardValue(page, 'alloc_calls'), Number(meta.alloc_calls), 'leak: allocation calls as meta.alloc_calls');
  equal(await cardValue(page, 'alloc_calls'), query(a, db, 'SELECT count(*) AS n FROM allocations')[0].n,
    'leak: allocation calls as the allocations');
  equal(await cardValue(page, 'duration_us'), Number(meta.duration_us), 'leak: duration as meta.duration_us');
  equal(await cardValue(page, 'peak_bytes'), peak.bytes, 'leak: peak live heap as computed from the allocations');
  equal(await cardValue(page, 'peak_blocks'), peak.blocks, 'leak: blocks live at the peak');
  equal(await cardValue(page, 'leaked_bytes'), leaks.bytes, 'leak: leaked bytes as the leaks view');
  equal(await cardValue(page, 'leaked_blocks'), leaks.n, 'leak: leaked blocks as the leaks view');
  equal(leaks.bytes, 3003, 'leak: the three planted blocks leak');
  equal(await cardValue(page, 'findings'), 0, 'leak: no findings');
  const program = await page.textContent('#program');
  equal(program, 'preload_prog', 'leak: the program is named');
  check((await page.textContent('#command')).endsWith('preload_prog leak'), 'leak: the command line is shown');

  // ---- timeline ----
  const ink = await canvasInk(page);
  check(ink && ink.ink > 2000, 'leak: the timeline canvas is drawn', JSON.stringify(ink));
  check(ink && ink.red > 50, 'leak: the live heap series and the peak are drawn in red', JSON.stringify(ink));
  check(data.timeline.t.length > 2 && data.timeline.t.length <= 2000, `leak: ${data.timeline.t.length} timeline points`);
  equal(Math.max(...data.timeline.bytes), peak.bytes, 'leak: the timeline reaches the peak');
  equal(await page.getAttribute('#peak-note', 'data-peak-bytes'), String(peak.bytes), 'leak: the peak is marked');

  // ---- flamegraph: leaked bytes by default ----
  await settle(page);
  equal(await page.getAttribute('#flame-chart', 'data-metric'), 'leaked', 'leak: the graph shows leaked bytes first');
  const leakedNodes = expectedNodes(a, db, 'SELECT stack, sum(size) AS value FROM leaks GROUP BY stack');
  equal(await frameCount(page), leakedNodes, 'leak: one frame per merged call path of the leaks');
  check(await page.locator('#flame-chart g.frame[name="leaky_site"]').count() >= 1, 'leak: leaky_site is a frame');

  // Clicking a frame shows its call path.
  await page.locator('#flame-chart g.frame[name="leaky_site"] rect').first().click();
  await settle(page);
  equal(await page.textContent('#detail-title'), 'leaky_site', 'leak: clicking a frame shows its detail');
  const frames = await page.$$eval('#detail-frames li', (lis) => lis.map((li) => li.textContent));
  check(frames.length >= 2 && frames[0].startsWith('leaky_site') && /preload_prog\.c:\d+/.test(frames[0]),
    'leak: the detail lists the frames, innermost first, with file:line', JSON.stringify(frames));
  check(frames.some((f) => f.startsWith('main')), 'leak: the call path goes up to main', JSON.stringify(frames));
  check(frames[0].includes('preload_prog'), 'leak: frames name their module', frames[0]);
  await page.click('#flame-reset');
  await settle(page);

  // Search highlights by function name.
  await page.fill('#flame-search', 'leaky');
  await settle(page);
  check(Number(await page.getAttribute('#flame-status', 'data-matches')) >= 1, 'leak: search finds leaky_site');
  const magenta = await page.$$eval('#flame-chart g.frame rect', (rs) => rs.filter((r) => r.getAttribute('fill') === '#e600e6').length);
  check(magenta >= 1, `leak: search highlights ${magenta} frame(s)`);
  await page.fill('#flame-search', '');

  // Switching the metric redraws the graph from other stacks.
  await page.selectOption('#flame-metric', 'count');
  await settle(page);
  const countNodes = expectedNodes(a, db, 'SELECT alloc_stack AS stack, count(*) AS value FROM allocations GROUP BY alloc_stack');
  equal(await page.getAttribute('#flame-chart', 'data-metric'), 'count', 'leak: the metric switches to allocation count');
  equal(await frameCount(page), countNodes, 'leak: allocation count draws one frame per merged call path of every allocation');
  check(countNodes !== leakedNodes, `leak: the graph changed (${leakedNodes} -> ${countNodes} frames)`);
  const widths = await page.$$eval('#flame-chart g.frame[name="leaky_site"] rect', (rs) => rs.map((r) => Number(r.getAttribute('width'))));
  await page.selectOption('#flame-metric', 'total');
  await settle(page);
  const widths2 = await page.$$eval('#flame-chart g.frame[name="leaky_site"] rect', (rs) => rs.map((r) => Number(r.getAttribute('width'))));
  check(JSON.stringify(widths) !== JSON.stringify(widths2), 'leak: total bytes sizes frames differently from count', `${widths} / ${widths2}`);
  await page.selectOption('#flame-metric', 'peak');
  await settle(page);
  equal(await frameCount(page),
    expectedNodes(a, db, `SELECT alloc_stack AS stack, sum(size) AS value FROM allocations WHERE alloc_seq <= ${await peakSeq()}` +
      ` AND (free_seq IS NULL OR free_seq > ${await peakSeq()}) GROUP BY alloc_stack`),
    'leak: live at peak draws the stacks live at the peak');

  async function peakSeq() {
    return data.summary.peak_seq;
  }

  // ---- leak sites: rows lead to their stacks ----
  const sites = query(a, db, 'SELECT stack, bytes FROM leak_sites ORDER BY bytes DESC');
  const rows = await page.$$eval('#leak-table tbody tr', (trs) => trs.map((tr) => Number(tr.dataset.stack)));
  equal(rows, sites.map((s) => s.stack), 'leak: leak sites, heaviest first');
  await page.click('#leak-table tbody tr:first-child');
  await settle(page);
  equal(await page.getAttribute('#flame-chart', 'data-metric'), 'leaked', 'leak: a leak row shows leaked bytes');
  check((await page.textContent('#detail-title')).startsWith('Leak site: leaky_site'), 'leak: a leak row shows its site');
  const hl = await page.$$eval('#flame-chart g.frame', (gs) => gs.filter((g) => g.querySelector('rect').getAttribute('fill') === '#e600e6').map((g) => g.getAttribute('name')));
  equal(hl, ['leaky_site'], 'leak: a leak row highlights its frame in the graph');
  // The exit scan found nothing pointing to leaky_site's blocks: definitely
  // lost, as the trace says, in the class's label and colour.
  const definite = vocabReach().find((c) => c.name === 'definitely_lost');
  const stored = query(a, db, 'SELECT DISTINCT reachability AS r FROM leaks').map((x) => x.r);
  equal(stored, ['definitely_lost'], 'leak: the trace says definitely lost');
  const classes = await page.$$eval('#leak-table tbody .reach', (bs) => bs.map((x) => [x.dataset.reach, x.textContent, getComputedStyle(x).backgroundColor]));
  equal(classes, sites.map(() => [definite.name, definite.label, rgb(definite.color)]), 'leak: every site is shown definitely lost');
  check((await page.textContent('#detail')).includes(`${definite.label}: ${definite.description}`), 'leak: the detail says the class and what it means');

  // ---- sorting: the rounding-loss table by any column ----
  const lost = async () => page.$$eval('#waste-table tbody tr', (trs) => trs.map((tr) => Number(tr.dataset.index)));
  const before = await lost();
  const wasteCol = 4;
  const header = page.locator('#waste-table thead th').nth(wasteCol);
  await header.click();
  const asc = await lost();
  const vals = asc.map((i) => data.waste_sites[i][3]);
  check(JSON.stringify(asc) !== JSON.stringify(before), 'leak: clicking a header reorders the rows');
  check(vals.every((v, i) => i === 0 || vals[i - 1] <= v), 'leak: ascending by bytes lost', JSON.stringify(vals));
  await header.click();
  const desc = (await lost()).map((i) => data.waste_sites[i][3]);
  check(desc.every((v, i) => i === 0 || desc[i - 1] >= v), 'leak: again: descending', JSON.stringify(desc));
  await page.locator('#waste-table thead th').nth(0).click();
  const names = await columnValues(page, 'waste-table', 0);
  check(names.every((v, i) => i === 0 || names[i - 1].localeCompare(v) <= 0), 'leak: sorted by site name', JSON.stringify(names));

  // ---- layout: sizes by alignment ----
  const cells = await page.$$eval('#heatmap td.cell', (tds) => tds.reduce((n, td) => n + Number(td.dataset.count), 0));
  equal(cells, Number(meta.alloc_calls), 'leak: the heat map counts every allocation');
  const [waste] = query(a, db, 'SELECT sum(((size + align - 1) & ~(align - 1)) - size) AS w FROM allocations');
  equal(Number(await page.getAttribute('#waste-total', 'data-value')), waste.w, 'leak: bytes lost to rounding as computed in SQL');

  await page.screenshot({ path: join(a.workdir, 'viewer-leak.png'), fullPage: true });
  checkClean(events, 'leak');
  check(events.openMs < 3000, `leak: opened in ${events.openMs} ms`);
  console.log(`# screenshot ${join(a.workdir, 'viewer-leak.png')}, report ${statSync(html).size} B`);
  await page.close();
}

async function findingsReport() {
  const db = traceOf(a, 'findings', join(a.work, 'findings.db'));
  const html = htmlOf(a, db, join(a.work, 'findings.html'));
  const data = embeddedData(readFileSync(html, 'utf8'));
  const { page, events } = await openReport(b, html);

  // ---- kinds: as vocab.h defines them, and the page shows them so ----
  const vocab = vocabKinds();
  equal(vocab.length, 11, 'findings: vocab.h lists ten kinds and the unknown one');
  equal(data.kinds, vocab, 'findings: the page carries the kinds of vocab.h, in its order');
  const byName = new Map(vocab.map((k) => [k.name, k]));
  const badges = await page.$$eval('ul.kinds li .kind, #findings-table tbody .kind',
    (bs) => bs.map((x) => [x.dataset.kind, x.textContent, getComputedStyle(x).backgroundColor, x.title]));
  check(badges.length > 0 && badges.every(([k, text, color, title]) => byName.has(k) && text === byName.get(k).label
    && color === rgb(byName.get(k).color) && title === byName.get(k).description),
  'findings: every kind badge shows its label, colour and description from vocab.h', JSON.stringify(badges));
  const swatches = await page.$$eval('.marker-swatch', (ss) => ss.map((x) => [x.dataset.kind, getComputedStyle(x).backgroundColor]));
  check(swatches.length > 0 && swatches.every(([k, color]) => byName.has(k) && color === rgb(byName.get(k).color)),
    'findings: the timeline legend has the kinds\' colours', JSON.stringify(swatches));

  const total = query(a, db, 'SELECT count(*) AS n FROM findings')[0].n;
  const byKind = query(a, db, 'SELECT kind, count(*) AS n FROM findings GROUP BY kind ORDER BY kind');
  equal(await cardValue(page, 'findings'), total, 'findings: the total as the findings table');
  const shown = await page.$$eval('ul.kinds li', (lis) => lis.map((li) => [li.dataset.kind, Number(li.dataset.count)]));
  equal(shown.sort(), byKind.map((k) => [k.kind, k.n]).sort(), 'findings: counts by kind');
  // One row per bug: the report's JSON groups (kind, stacks, families, alignments).
  const groups = JSON.parse(execFileSync(a.alloctrace, ['report', db, '--format', 'json'], { encoding: 'utf8' })).findings;
  equal(await page.locator('#findings-table tbody tr').count(), groups.length, 'findings: one row per bug');
  const times = (await columnValues(page, 'findings-table', 3)).map((v) => Number(v.replace(/,/g, '')));
  equal(times.sort((x, y) => x - y), groups.map((g) => g.count).sort((x, y) => x - y), 'findings: each row counts its occurrences as the report does');
  check(times.includes(10), 'findings: the loop\'s ten wrong-size releases are one row of 10', JSON.stringify(times));
  const allocatedAs = await columnValues(page, 'findings-table', 7);
  check(allocatedAs.includes('(64\u2013208, 16) malloc'), 'findings: the group of ten shows its allocation sizes as a range', JSON.stringify(allocatedAs));
  const locs = await columnValues(page, 'findings-table', 5);
  check(locs.length > 0 && locs.every((l) => /preload_prog\.c:\d+$/.test(l)), 'findings: each row shows the release\'s file:line', JSON.stringify(locs));

  const kinds = () => columnValues(page, 'findings-table', 2);
  const seqs = await columnValues(page, 'findings-table', 0);
  // Released as: the layout the release passed, an en dash for what it did not (free()).
  const dash = (v) => (v === null ? '\u2013' : String(v));
  const passed = new Map(query(a, db, 'SELECT seq, release_size, release_align, release_family FROM findings')
    .map((f) => [String(f.seq), `(${dash(f.release_size)}, ${dash(f.release_align)}) ${f.release_family}`]));
  const releasedAs = await columnValues(page, 'findings-table', 6);
  equal(releasedAs, seqs.map((q) => passed.get(q)), 'findings: Released as is the layout passed, an en dash where none was');
  check(releasedAs.includes('(\u2013, \u2013) malloc') && releasedAs.includes('(48, 16) malloc'),
    'findings: free() shows (\u2013, \u2013), free_sized(p, 48) its size', JSON.stringify(releasedAs));
  check(seqs.map(Number).every((v, i, s) => i === 0 || s[i - 1] < v), 'findings: rows in sequence order', JSON.stringify(seqs));
  await page.locator('#findings-table thead th').nth(2).click();
  const k1 = await kinds();
  check(k1.every((v, i) => i === 0 || k1[i - 1].localeCompare(v) <= 0) && JSON.stringify(k1) !== JSON.stringify([...k1].reverse()),
    'findings: sorted by kind', JSON.stringify(k1));
  await page.locator('#findings-table thead th').nth(2).click();
  const k2 = await kinds();
  equal(k2, [...k1].reverse(), 'findings: again: by kind, reversed');

  // A double free's row: both stacks in the detail panel.
  await page.locator('#findings-table tbody tr', { hasText: byName.get('double_free').label }).first().click();
  await settle(page);
  check((await page.textContent('#detail-title')).startsWith(`${byName.get('double_free').label} at sequence number`),
    'findings: a row shows its finding, by its label');
  const rel = await page.$$eval('#detail-frames li', (lis) => lis.map((li) => li.textContent));
  const alloc = await page.$$eval('#detail-frames-alloc li', (lis) => lis.map((li) => li.textContent));
  check(rel.length > 0 && rel[0].startsWith('bad_release'), 'findings: the release stack starts at bad_release', JSON.stringify(rel));
  // findings() is static and called once: inlined into main, it is a frame of its own.
  const inMain = (frames) => frames.length > 0 && (frames[0].startsWith('main') ||
    (frames[0].startsWith('findings') && frames.length > 1 && frames[1].startsWith('main')));
  check(inMain(alloc), 'findings: the allocation stack is listed too', JSON.stringify(alloc));
  // ... and a third: where the block was released first (free(d) in main, before bad_release).
  const first = await page.$$eval('#detail-frames-first li', (lis) => lis.map((li) => li.textContent));
  check(inMain(first), 'findings: a double free lists its first release\'s stack', JSON.stringify(first));
  const heads = await page.$$eval('#detail h5', (hs) => hs.map((h) => h.textContent));
  equal(heads, ['Released again at, innermost frame first', 'Allocated at, innermost frame first',
    'First released at, innermost frame first'], 'findings: the double free\'s three stacks, by their headings');
  const hl = await page.$$eval('#flame-chart g.frame', (gs) => gs.filter((g) => g.querySelector('rect').getAttribute('fill') === '#e600e6').length);
  equal(hl, 1, 'findings: the allocation stack is highlighted in the graph');

  // Nothing leaked: that metric says so, and the graph comes back after.
  await page.selectOption('#flame-metric', 'leaked');
  await settle(page);
  equal(await frameCount(page), 0, 'findings: leaked bytes draw no frame');
  check((await page.textContent('#flame-chart')).includes('Nothing to show'), 'findings: leaked bytes say why');
  await page.selectOption('#flame-metric', 'count');
  await settle(page);
  equal(await frameCount(page),
    expectedNodes(a, db, 'SELECT alloc_stack AS stack, count(*) AS value FROM allocations GROUP BY alloc_stack'),
    'findings: allocation count draws the graph again');

  const ink = await canvasInk(page);
  check(ink && ink.ink > 2000, 'findings: the timeline canvas is drawn', JSON.stringify(ink));
  await page.screenshot({ path: join(a.workdir, 'viewer-findings.png'), fullPage: true });
  checkClean(events, 'findings');
  await page.close();
}

// p = malloc(1000); __libc_free(p); q = malloc(1000); r = malloc(3000);
// free(r); free(q) (tests/views_prog.c): the card says 4000 B, as every view.
async function peakReport() {
  const prog = join(dirname(a.prog), 'views_prog');
  const db = join(a.work, 'peak.db');
  const r = spawnSync(a.alloctrace, ['run', '-q', '-o', db, '--force', '--', prog, 'peak'],
    { cwd: a.work, encoding: 'utf8', timeout: 120000 });
  check(r.status === 0, `peak: alloctrace run views_prog peak: exit ${r.status}`, r.stderr);
  const html = htmlOf(a, db, join(a.work, 'peak.html'));
  const data = embeddedData(readFileSync(html, 'utf8'));
  const { page, events } = await openReport(b, html);
  equal(peakOf(a, db), { bytes: 4000, blocks: 2, seq: 3 }, 'peak: 4000 B by definition');
  equal(await cardValue(page, 'peak_bytes'), 4000, 'peak: the card says 4000 B');
  equal(await cardValue(page, 'peak_blocks'), 2, 'peak: in 2 blocks');
  equal(Math.max(...data.timeline.bytes), 4000, 'peak: the timeline reaches 4000 B');
  checkClean(events, 'peak');
  await page.close();
}

// leaky_site's three blocks given classes as the exit scan stores them
// (the reachability table): each site shows its class in vocab.h's colour,
// the summary counts each class, and the filter shows only the classes
// pressed.
async function reachReport() {
  const vocab = vocabReach();
  const byKind = new Map(vocab.map((c) => [c.kind, c]));
  const leakDb = traceOf(a, 'leak', join(a.work, 'reach-src.db'));
  const db = join(a.work, 'reach.db');
  copyFileSync(leakDb, db);
  const sizes = { 1000: 'definite', 1001: 'reachable', 1002: 'possible' };
  sql(a, db, 'DELETE FROM reachability;\n' + Object.entries(sizes).map(([size, kind]) =>
    `INSERT INTO reachability SELECT alloc_seq, ${byKind.get(kind).code} FROM leaks WHERE size = ${size};`).join('\n'));
  const bytesFirst = query(a, db, 'SELECT stack, reachability, bytes FROM leak_sites ORDER BY bytes DESC');
  equal(bytesFirst.map((r) => r.reachability), ['possibly_lost', 'still_reachable', 'definitely_lost'], 'reach: three classes in the trace');
  // The table opens by class in vocab.h's order, then heaviest first.
  const classOrder = vocab.map((c) => c.name);
  const expected = [...bytesFirst].sort((x, y) => classOrder.indexOf(x.reachability) - classOrder.indexOf(y.reachability) || y.bytes - x.bytes);
  const html = htmlOf(a, db, join(a.work, 'reach.html'));
  const data = embeddedData(readFileSync(html, 'utf8'));
  equal(data.reach.map(({ name, kind, label, gated, color, description }) => ({ name, kind, label, gated, color, description })),
    vocab.map(({ name, kind, label, gated, color, description }) => ({ name, kind, label, gated, color, description })),
    'reach: the page carries the classes of vocab.h, in its order');
  const { page, events } = await openReport(b, html);

  const byName = new Map(vocab.map((c) => [c.name, c]));
  const rowClasses = async () => page.$$eval('#leak-table tbody tr', (trs) => trs.map((tr) => {
    const x = tr.querySelector('.reach');
    return x ? [Number(tr.dataset.stack), x.dataset.reach, x.textContent, getComputedStyle(x).backgroundColor] : null;
  }).filter(Boolean));
  const shown = await rowClasses();
  equal(shown, expected.map((r) => [r.stack, r.reachability, byName.get(r.reachability).label, rgb(byName.get(r.reachability).color)]),
    'reach: each leak row shows its class, labelled and coloured as vocab.h says, by class then heaviest');
  const summary = await page.$$eval('ul.reach-summary li', (lis) => lis.map((li) => [li.dataset.reach, Number(li.dataset.blocks), Number(li.dataset.bytes)]));
  const perClass = query(a, db, 'SELECT reachability, count(*) AS n, sum(size) AS bytes FROM leaks GROUP BY reachability');
  const order = (n) => vocab.findIndex((c) => c.name === n);
  equal(summary, perClass.sort((x, y) => order(x.reachability) - order(y.reachability)).map((r) => [r.reachability, r.n, r.bytes]),
    'reach: the leaks card counts blocks and bytes per class, in vocab.h\'s order');

  // The filter: a toggle per class present; unpressed, its rows go.
  const toggles = await page.$$eval('#leak-filter button[data-reach]', (bs) => bs.map((x) => [x.dataset.reach, x.getAttribute('aria-pressed')]));
  equal(toggles, vocab.filter((c) => expected.some((r) => r.reachability === c.name)).map((c) => [c.name, 'true']),
    'reach: one pressed toggle per class present, in vocab.h\'s order');
  await page.click('#leak-filter button[data-reach="still_reachable"]');
  let rows = await rowClasses();
  equal(rows.map((r) => r[1]), ['definitely_lost', 'possibly_lost'], 'reach: unpressing still reachable hides its row');
  equal(await page.getAttribute('#leak-filter button[data-reach="still_reachable"]', 'aria-pressed'), 'false', 'reach: the toggle says it is off');
  equal(await page.textContent('#leak-filter-status'), '2 of 3 sites shown', 'reach: the filter says what it hides');
  await page.click('#leak-filter button[data-reach="possibly_lost"]');
  rows = await rowClasses();
  equal(rows.map((r) => r[1]), ['definitely_lost'], 'reach: and possibly lost: only definitely lost is left');
  await page.click('#leak-filter button[data-reach="definitely_lost"]');
  equal(await rowClasses(), [], 'reach: nothing pressed, no site row');
  check((await page.textContent('#leak-table tbody')).includes('No row matches the filter'), 'reach: the empty table says why');
  for (const n of ['definitely_lost', 'possibly_lost', 'still_reachable']) await page.click(`#leak-filter button[data-reach="${n}"]`);
  equal((await rowClasses()).map((r) => [r[0], r[1]]), expected.map((r) => [r.stack, r.reachability]), 'reach: all pressed again, every row is back, by class then heaviest');

  // Sorting by the class orders rows as vocab.h orders the classes (the
  // table opens so sorted: the first click reverses it).
  await page.locator('#leak-table thead th', { hasText: 'Reachability' }).click();
  equal((await rowClasses()).map((r) => r[1]), ['still_reachable', 'possibly_lost', 'definitely_lost'], 'reach: sorted by class, reversed');
  await page.locator('#leak-table thead th', { hasText: 'Reachability' }).click();
  equal((await rowClasses()).map((r) => r[1]), ['definitely_lost', 'possibly_lost', 'still_reachable'], 'reach: sorted by class, in vocab.h\'s order');
  // Sorting keeps the filter.
  await page.click('#leak-filter button[data-reach="possibly_lost"]');
  await page.locator('#leak-table thead th', { hasText: 'Bytes' }).click();
  equal((await rowClasses()).map((r) => r[1]).sort(), ['definitely_lost', 'still_reachable'], 'reach: sorting keeps the filter');

  await page.locator('#leak-table tbody tr', { hasText: byName.get('definitely_lost').label }).click();
  await settle(page);
  const def = byName.get('definitely_lost');
  check((await page.textContent('#detail')).includes(`${def.label}: ${def.description}`), 'reach: a row\'s detail names its class');
  await page.screenshot({ path: join(a.workdir, 'viewer-reach.png'), fullPage: true });
  checkClean(events, 'reach');
  await page.close();
}

// A program's own pool (docs/pools.md, alloctrace/annotate.h), built here:
// its leak site and its finding name the pool, in the data and on the page.
const POOL_PROGRAM = `#include <alloctrace/annotate.h>
#include <stdio.h>
#include <stdlib.h>
static int arena;
static char *chunk; /* the pool's chunk, kept: reachable */
static __attribute__((noinline)) void pool_work(void) {
  chunk = malloc(256);
  AT_POOL_CREATE(&arena, "arena-one");
  AT_POOL_ALLOC(&arena, chunk + 16, 32, 8); /* leaked: nothing points to it */
  AT_POOL_ALLOC(&arena, chunk + 64, 16, 8);
  AT_POOL_FREE(&arena, chunk + 64, 16, 8);
  AT_POOL_FREE(&arena, chunk + 64, 16, 8); /* a double free */
}
int main(void) { pool_work(); puts("pooled"); return 0; }
`;

function poolTrace() {
  const include = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'include');
  const src = join(a.work, 'viewer_pool.c');
  const exe = join(a.work, 'viewer_pool');
  writeFileSync(src, POOL_PROGRAM);
  const cc = spawnSync('gcc', ['-O1', '-g', '-fPIE', '-pie', '-I', include, src, '-o', exe], { encoding: 'utf8' });
  check(cc.status === 0, 'pool: the annotated program builds', cc.stderr);
  const db = join(a.work, 'pool.db');
  const r = spawnSync(a.alloctrace, ['run', '-q', '-o', db, '--force', '--', exe], { cwd: a.work, encoding: 'utf8', timeout: 120000 });
  check(r.status === 0 && r.stdout === 'pooled\n', 'pool: traced, it runs to its end', r.stderr);
  return db;
}

async function poolReport() {
  const db = poolTrace();
  const html = htmlOf(a, db, join(a.work, 'pool.html'));
  const data = embeddedData(readFileSync(html, 'utf8'));
  const name = (i) => data.strings[i];
  equal(data.leak_sites.map((s) => name(s[6])).sort(), ['', 'arena-one'],
    'pool: the data names the pool of its leak site, none for the chunk\'s');
  equal(data.findings.map((f) => [name(f[2]), name(f[19])]), [['double_free', 'arena-one']],
    'pool: the data names the pool of its finding');
  const [leak] = query(a, db, "SELECT reachability FROM leaks WHERE family = 'pool'");
  equal(leak && leak.reachability, 'definitely_lost', 'pool: the pool block is definitely lost, its chunk kept');

  const { page, events } = await openReport(b, html);
  const marks = await page.$$eval('#leak-table tbody tr', (trs) => trs.map((tr) => {
    const m = tr.querySelector('.pool');
    return [tr.querySelector('.reach').dataset.reach, m ? m.textContent : null, m ? m.dataset.pool : null];
  }));
  equal(marks.sort(), [['definitely_lost', ' pool arena-one', 'arena-one'], ['still_reachable', null, null]],
    'pool: the leak table marks the pool\'s site "pool arena-one", not the chunk\'s');
  const fmarks = await page.$$eval('#findings-table tbody tr', (trs) => trs.map((tr) => tr.children[4].textContent));
  check(fmarks.length === 1 && fmarks[0].endsWith(' pool arena-one'), 'pool: the finding\'s "Released at" names the pool',
    JSON.stringify(fmarks));
  await page.locator('#leak-table tbody tr', { has: page.locator('.pool') }).click();
  await settle(page);
  const detail = await page.$$eval('#detail dl.fields dt', (dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent]));
  check(detail.some(([k, v]) => k === 'Pool' && v === 'arena-one'), 'pool: the leak\'s detail has its pool', JSON.stringify(detail));
  await page.click('#findings-table tbody tr:first-child');
  await settle(page);
  const fdetail = await page.$$eval('#detail dl.fields dt', (dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent]));
  check(fdetail.some(([k, v]) => k === 'Pool' && v === 'arena-one'), 'pool: the finding\'s detail has its pool', JSON.stringify(fdetail));
  await page.screenshot({ path: join(a.workdir, 'viewer-pool.png'), fullPage: true });
  checkClean(events, 'pool');
  await page.close();
}

b = await browser();
try {
  await poolReport();
  await reachReport();
  await peakReport();
  await leakReport();
  await findingsReport();
} finally {
  await b.close();
}
done();
