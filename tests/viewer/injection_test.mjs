// Names from a trace are data, never markup: a trace whose function, file
// and module names, program and findings hold HTML, a `</script>` that
// would end the page's script, quotes, control characters and invalid
// UTF-8 gives a report whose JSON is valid, where every such name shows
// literally as text, no dialog opens, no <img> appears and nothing loads.
//
//   node injection_test.mjs ALLOCTRACE PRELOAD_PROG SQLITE3 WORKDIR
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  args, browser, check, checkClean, done, embeddedData, equal, htmlOf, openReport, query, rgb, sql, traceOf,
  vocabKinds,
} from './lib.mjs';

const a = args('injection_test.mjs');

const IMG = '<img src=x onerror=alert(1)>';
const CXX = 'std::vector<int, std::allocator<int> >::push_back';
const MODULE = '/tmp/</script><script>alert(1)</script>/libevil.so';
const FILE = `"quoted" & 'single' </script><!-- <script>alert(4)</script>.c`;
const PROGRAM = '</script><img src=x onerror=alert(2)>';
const KIND = '<b onmouseover=alert(3)>bold</b>';

async function main() {
  const db = join(a.work, 'evil.db');
  copyFileSync(traceOf(a, 'leak', join(a.work, 'leak.db')), db);
  // The hostile names.  x'fffe41' is not UTF-8; char(8232) is U+2028, a
  // line terminator in old JavaScript; x'410042' holds a NUL, which the
  // trace model (tools/trace_model.h) turns into U+FFFD for every view.
  const q = (s) => `'${s.replace(/'/g, "''")}'`;
  sql(a, db, `
    UPDATE frames SET function = ${q(IMG)} WHERE function = 'leaky_site';
    UPDATE frames SET function = ${q(CXX)}, file = ${q(FILE)} WHERE function = 'main';
    UPDATE frames SET function = CAST(x'fffe41' AS TEXT) WHERE function = '__libc_start_call_main';
    UPDATE frames SET function = 'line' || char(8232) || 'sep' || char(10) || 'nl' || char(27) || CAST(x'410042' AS TEXT)
      WHERE function = '__libc_start_main';
    UPDATE modules SET path = ${q(MODULE)} WHERE path LIKE '%preload_prog';
    UPDATE meta SET value = ${q(PROGRAM)} WHERE key = 'executable';
    UPDATE meta SET value = '["a\\u003c/script>", "<img src=x onerror=alert(5)>"]' WHERE key = 'arguments';
    INSERT INTO findings(kind, seq, time_us, thread, ptr, release_stack, release_family, detail)
      VALUES (${q(KIND)}, 1, 1, 1, 4096, (SELECT min(stack) FROM leak_sites), 'malloc', ${q(`${IMG} </script>`)});
  `);
  const html = htmlOf(a, db, join(a.work, 'evil.html'));
  const text = readFileSync(html, 'utf8');

  // ---- the file itself ----
  let data = null;
  try {
    data = embeddedData(text);
  } catch (e) {
    check(false, 'the embedded JSON parses', e.message);
  }
  check(data !== null, 'the embedded JSON parses');
  const jsonPart = /<script type="application\/json" id="data">([\s\S]*?)<\/script>/.exec(text)[1];
  check(!/[<>&\u2028\u2029]/.test(jsonPart), 'the JSON holds no raw < > & U+2028 U+2029');
  equal((text.match(/<\/script>/g) || []).length, 2, 'exactly two </script> in the page: the data and the code');
  check(!/<img/i.test(text.replace(/<script>[\s\S]*<\/script>/, '')), 'no <img> anywhere in the markup or the data');
  const strings = data ? data.strings : [];
  check(strings.includes(IMG), 'the function name is kept, as data');
  check(strings.includes(MODULE), 'the module path is kept, as data');
  check(strings.includes('\uFFFD\uFFFDA'), 'invalid UTF-8 became U+FFFD', JSON.stringify(strings.filter((s) => s.includes('A'))));
  check(strings.includes('line\u2028sep\nnl\u001bA\uFFFDB'), 'U+2028 and control characters survive as text, a NUL as U+FFFD',
    JSON.stringify(strings.filter((s) => s.startsWith('line'))));

  // ---- the page ----
  const b = await browser();
  try {
    const { page, events } = await openReport(b, html);
    await page.waitForTimeout(600);
    equal(await page.locator('img').count(), 0, 'the page has no <img>');
    equal(await page.locator('script').count(), 2, 'the page has only its own two scripts');
    equal(await page.locator('b').count(), 0, 'the page has no <b> from a finding kind');
    equal(await page.textContent('#program'), PROGRAM.slice(PROGRAM.lastIndexOf('/') + 1), 'the program name shows literally');
    equal(await page.textContent('#command'), 'a</script> <img src=x onerror=alert(5)>', 'the command line shows literally');

    // The leak site row and the flamegraph frame carry the name as text.
    const site = await page.textContent('#leak-table tbody tr:first-child td:first-child');
    equal(site, IMG, 'the leak site shows the function name literally');
    equal(await page.locator('#flame-chart g.frame').filter({ has: page.locator('title') }).count() > 0, true, 'the flamegraph is drawn');
    const names = await page.$$eval('#flame-chart g.frame', (gs) => gs.map((g) => g.getAttribute('name')));
    check(names.includes(IMG), 'a flamegraph frame is named with the literal text', JSON.stringify(names));
    check(names.includes(CXX), 'a C++ name with angle brackets is a frame', JSON.stringify(names));
    const labels = await page.$$eval('#flame-chart g.frame div', (ds) => ds.map((d) => d.textContent));
    check(labels.includes(IMG), 'the frame label shows the literal text');

    // The detail panel: every frame as text.
    await page.click('#leak-table tbody tr:first-child');
    await page.waitForTimeout(600);
    const frames = await page.$$eval('#detail-frames li', (lis) => lis.map((li) => ({
      fn: li.querySelector('.fn').textContent,
      loc: li.querySelector('.loc').textContent,
      module: li.querySelector('.module') ? li.querySelector('.module').getAttribute('title') : null,
    })));
    equal(frames[0] && frames[0].fn, IMG, 'the detail shows the function name literally');
    equal(frames[0] && frames[0].module, MODULE, 'the module path is the title, literally');
    check(frames.some((f) => f.fn === CXX && f.loc.startsWith(FILE)), 'the hostile file name shows literally', JSON.stringify(frames));
    check(frames.some((f) => f.fn === '\uFFFD\uFFFDA'), 'invalid UTF-8 shows as U+FFFD');
    check(frames.some((f) => f.fn === 'line\u2028sep\nnl\u001bA\uFFFDB'), 'control characters stay in the text');

    // The finding with a hostile kind and detail.
    const row = await page.$$eval('#findings-table tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    check(row.some((r) => r[2] === KIND && r[8] === `${IMG} </script>`), 'the finding shows kind and detail literally', JSON.stringify(row));
    // A kind this build does not know: shown as spelled, in the colour of
    // vocab.h's unknown kind; the summary counts it as that kind.
    const other = vocabKinds().at(-1);
    const badge = await page.$$eval('#findings-table tbody .kind', (bs) => bs.map((x) => [x.textContent, getComputedStyle(x).backgroundColor]));
    check(badge.some(([t, c]) => t === KIND && c === rgb(other.color)), 'the unknown kind has the unknown kind\'s colour', JSON.stringify(badge));
    const listed = await page.$$eval('ul.kinds li', (lis) => lis.map((li) => [li.dataset.kind, li.textContent]));
    equal(listed, [[other.name, `${other.label} 1`]], 'the summary counts it as an unknown finding');
    await page.click('#findings-table tbody tr:first-child');
    await page.waitForTimeout(300);
    await page.hover('#flame-chart g.frame >> nth=1');
    equal(await page.locator('img').count(), 0, 'still no <img> after clicks and hovers');
    equal(await page.evaluate(() => document.querySelectorAll('[onerror],[onmouseover],[onload]').length), 0,
      'no element has an inline event handler');
    await page.screenshot({ path: join(a.workdir, 'viewer-injection.png'), fullPage: true });
    checkClean(events, 'hostile names');
  } finally {
    await b.close();
  }
  done();
}

await main();
