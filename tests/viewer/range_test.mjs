// The timeline's axes, the leak table's default order and the layout view,
// in headless Chromium, on tests/phases_prog.c (a heap above 150 MiB,
// small definite leaks next to 150 MiB still reachable) and on a copy of a
// trace rewritten so that every allocation has the default alignment.
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  args, browser, check, checkClean, done, equal, htmlOf, openReport, query, sql, traceOf,
} from './lib.mjs';

const a = args('range_test.mjs');
const db = traceOf(a, 'phases', join(a.work, 'phases.db')); // PROG is phases_prog (its argument is ignored)
const html = htmlOf(a, db, join(a.work, 'phases.html'));
const b = await browser();

try {
  const { page, events } = await openReport(b, html, { width: 900, height: 900 });

  // ---- axes: every label whole, inside its axis ----
  const [peak] = query(a, db, "SELECT value AS v FROM meta WHERE key = 'peak_bytes'");
  check(Number(peak.v) > 100 * 1048576, `phases: the peak is above 100 MiB (${peak.v} B)`);
  const axes = await page.evaluate(() => {
    const list = JSON.parse(document.querySelector('#timeline-chart').dataset.axes);
    const c = document.createElement('canvas').getContext('2d');
    return list.map((ax) => {
      c.font = ax.font;
      const widths = (ax.values || []).map((v) => c.measureText(String(v)).width / ax.ratio);
      return { ...ax, widest: Math.max(0, ...widths) };
    });
  });
  const left = axes.find((x) => x.side === 3);
  const right = axes.find((x) => x.side === 1);
  check(left && left.values.some((v) => /^1\d\d(\.\d)? MiB$/.test(v)),
    'axes: the bytes axis has a whole label of three digits in MiB', JSON.stringify(left && left.values));
  for (const [name, ax] of [['bytes', left], ['blocks', right]]) {
    check(ax && ax.values.length > 1, `axes: the ${name} axis has labels`);
    // The label ends gap + tick from the plot: it starts at size - (that + width) >= 0.
    check(ax && ax.size - ax.ticks - ax.gap - ax.widest >= 0,
      `axes: the ${name} axis (${ax && ax.size} px) holds its widest label (${ax && ax.widest.toFixed(1)} px + ${ax && ax.ticks + ax.gap})`);
  }
  const widths = await page.evaluate(() => [...document.querySelectorAll('#timeline-chart .u-axis')]
    .map((e) => e.getBoundingClientRect().width));
  check(widths.includes(left.size) && widths.includes(right.size), `axes: the axes' boxes are that wide (${widths})`);

  // ---- leak sites: by class, then bytes ----
  const reach = await page.evaluate(() => JSON.parse(document.getElementById('data').textContent).reach.map((r) => r.name));
  // A site is stack_sites' (lib/trace/sites.h): the loop's calls are one.
  const expected = query(a, db, 'SELECT reachability AS r, count(*) AS blocks, sum(size) AS bytes FROM leaks' +
    ' WHERE alloc_seq NOT IN (SELECT seq FROM runtime_owned)' +
    ' GROUP BY (SELECT site FROM stack_sites s WHERE s.stack = leaks.stack), reachability')
    .map((r) => ({ reach: reach.indexOf(r.r), bytes: r.bytes, blocks: r.blocks }))
    .sort((x, y) => x.reach - y.reach || y.bytes - x.bytes);
  const shown = await page.evaluate(() => {
    const data = JSON.parse(document.getElementById('data').textContent);
    return [...document.querySelectorAll('#leak-table tbody tr')].map((tr) => {
      const s = data.leak_sites[Number(tr.dataset.index)];
      return { reach: s[5], bytes: s[2], blocks: s[1] };
    });
  });
  equal(shown, expected, 'leaks: the rows by class (definitely lost first), then bytes, as the trace says');
  check(shown.length > 1 && shown[0].bytes < Math.max(...shown.map((r) => r.bytes)),
    'leaks: a small definite leak is the first row, above the large still reachable blocks');

  // ---- the time filter: drag from the gap between the bursts to the end ----
  const [gap] = query(a, db, 'SELECT t, p FROM (SELECT alloc_time_us AS t, lag(alloc_time_us) OVER (ORDER BY alloc_seq) AS p' +
    ' FROM allocations) ORDER BY t - p DESC LIMIT 1');
  check(gap.t - gap.p > 200000, `filter: the bursts are ${gap.t - gap.p} us apart`);
  const box = await page.locator('#timeline-chart .u-over').boundingBox();
  const [t0full, t1full] = await page.evaluate(() => {
    const t = JSON.parse(document.getElementById('data').textContent).timeline.t;
    return [t[0], t[t.length - 1]];
  });
  const xOf = (t) => box.x + ((t - t0full) / (t1full - t0full)) * box.width;
  await page.mouse.move(xOf((gap.t + gap.p) / 2), box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width - 1, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForTimeout(300);
  const bar = await page.evaluate(() => {
    const e = document.getElementById('range-filter');
    return { hidden: e.hidden, t0: Number(e.dataset.t0), t1: Number(e.dataset.t1), text: e.textContent };
  });
  check(!bar.hidden && /Filtered to/.test(bar.text) && /Reset/.test(bar.text), `filter: the page says it is filtered: "${bar.text}"`);
  check(bar.t0 > gap.p && bar.t0 <= gap.t, `filter: the range starts in the gap (${bar.t0} in (${gap.p}, ${gap.t}])`);
  const inRange = `alloc_time_us >= ${bar.t0} AND alloc_time_us < ${bar.t1}`;
  const [want] = query(a, db, `SELECT count(*) AS n, sum(size) AS bytes FROM allocations WHERE ${inRange}`);
  const [all] = query(a, db, 'SELECT count(*) AS n, sum(size) AS bytes FROM allocations');
  const [lost] = query(a, db, `SELECT coalesce(sum(size), 0) AS bytes FROM leaks WHERE ${inRange}`);
  check(want.n > 0 && want.n < all.n, `filter: the range holds ${want.n} of ${all.n} allocations`);
  const flameTotal = async (metric) => {
    await page.selectOption('#flame-metric', metric);
    await page.waitForTimeout(300);
    return Number(await page.getAttribute('#flame-chart', 'data-total'));
  };
  equal(await flameTotal('count'), want.n, 'filter: the flamegraph counts the allocations made in the range');
  equal(await flameTotal('total'), want.bytes, 'filter: and their bytes');
  equal(await flameTotal('leaked'), lost.bytes, 'filter: and the bytes leaked by them');
  check(await page.evaluate(() => document.querySelector('#flame-metric option[value="peak"]').disabled),
    'filter: live bytes at peak (not a matter of allocation time) is disabled');
  const siteRows = async () => page.evaluate(() => {
    return [...document.querySelectorAll('#leak-table tbody tr')].filter((tr) => tr.dataset.index !== undefined).map((tr) => {
      const cells = tr.querySelectorAll('td');
      return { reach: tr.querySelector('.reach').dataset.reach, blocks: Number(cells[3].textContent.replace(/,/g, '')) };
    }).sort((x, y) => x.reach.localeCompare(y.reach) || x.blocks - y.blocks);
  });
  const wantSites = query(a, db, `SELECT reachability AS reach, count(*) AS blocks FROM leaks WHERE ${inRange}` +
    ' GROUP BY (SELECT site FROM stack_sites s WHERE s.stack = leaks.stack), reachability ORDER BY reach, blocks');
  equal(await siteRows(), wantSites, 'filter: the leak sites are those of the range, with its blocks');
  const findingRows = async () => page.evaluate(() => [...document.querySelectorAll('#findings-table tbody tr')]
    .filter((tr) => tr.dataset.index !== undefined).map((tr) => tr.querySelectorAll('td')[4].textContent));
  const wantFindings = query(a, db, `SELECT count(*) AS n FROM findings WHERE time_us >= ${bar.t0} AND time_us < ${bar.t1}`);
  const [allFindings] = query(a, db, 'SELECT count(*) AS n FROM findings');
  const inRangeFindings = await findingRows();
  check(allFindings.n === 2 && wantFindings[0].n === 1 && inRangeFindings.length === 1 &&
    /phase_two_double/.test(inRangeFindings[0]),
  `filter: the findings are those of the range: ${JSON.stringify(inRangeFindings)} of ${allFindings.n}`);
  await page.screenshot({ path: join(a.workdir, 'viewer-range.png'), fullPage: true });
  await page.click('#range-reset');
  await page.waitForTimeout(300);
  check(await page.evaluate(() => document.getElementById('range-filter').hidden), 'filter: reset hides the indicator');
  equal(await flameTotal('count'), all.n, 'filter: reset, the flamegraph counts every allocation');
  equal((await siteRows()).length, expected.length, 'filter: reset, every leak site is back');
  equal((await findingRows()).length, 2, 'filter: reset, both findings are back');

  // ---- layout: explained, shown when an allocation is over-aligned ----
  const lay = await page.evaluate(() => ({
    hidden: document.getElementById('layout').hidden,
    what: document.getElementById('layout-what').textContent,
    link: !!document.querySelector('nav.jump a[href="#layout"]'),
  }));
  const [over] = query(a, db, 'SELECT count(*) AS n FROM allocations WHERE align > 16');
  check(over.n > 0 && !lay.hidden && lay.link, `layout: shown with ${over.n} over-aligned allocations`);
  check(/measures/.test(lay.what) && /alignment/.test(lay.what), `layout: says what it measures: "${lay.what}"`);
  await page.screenshot({ path: join(a.workdir, 'viewer-phases.png'), fullPage: true });
  checkClean(events, 'phases');
  await page.close();

  // Every allocation at the default alignment: no layout view.
  const flat = join(a.work, 'flat.db');
  copyFileSync(db, flat);
  sql(a, flat, 'UPDATE lifetimes SET info = (info & ~63) | 4;');
  const [left16] = query(a, flat, 'SELECT count(*) AS n FROM allocations WHERE align <> 16');
  equal(left16.n, 0, 'flat: every allocation has alignment 16');
  const flatHtml = htmlOf(a, flat, join(a.work, 'flat.html'));
  const f = await openReport(b, flatHtml);
  const hid = await f.page.evaluate(() => ({
    hidden: document.getElementById('layout').hidden,
    visible: document.getElementById('layout').getBoundingClientRect().height > 0,
    link: !!document.querySelector('nav.jump a[href="#layout"]'),
  }));
  equal(hid, { hidden: true, visible: false, link: false }, 'flat: the layout view and its link are hidden');
  checkClean(f.events, 'flat');
} finally {
  await b.close();
}
done();
