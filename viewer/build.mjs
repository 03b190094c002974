// Bundles the viewer of `alloctrace html`: src/main.js, the modules it
// imports from node_modules and the CSS they import, into one minified JS
// file and one minified CSS file, which viewer/gen_assets.py embeds into
// the alloctrace executable.  Run by meson (viewer/meson.build):
//
//   node build.mjs OUT.js OUT.css DEPFILE
//
// DEPFILE lists every file the bundle was made from, so that ninja
// rebuilds it when any of them changes (node_modules included).
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [outJs, outCss, depfile] = process.argv.slice(2);
if (!outJs || !outCss || !depfile) {
  console.error('usage: node build.mjs OUT.js OUT.css DEPFILE');
  process.exit(2);
}

// node_modules must be what the committed lockfile says: npm writes its
// own copy of the lockfile into node_modules when it installs.
const installed = join(here, 'node_modules', '.package-lock.json');
if (!existsSync(installed)) {
  console.error('viewer: node_modules is missing or incomplete: run `npm ci` in viewer/ ' +
                '(scripts/setup.sh does)');
  process.exit(1);
}
if (statSync(join(here, 'package-lock.json')).mtimeMs > statSync(installed).mtimeMs) {
  console.error('viewer: package-lock.json is newer than node_modules: run `npm ci` in viewer/ ' +
                '(scripts/setup.sh does)');
  process.exit(1);
}

const esbuild = await import('esbuild');
const outdir = resolve(dirname(outJs));
let result;
try {
  result = await esbuild.build({
    absWorkingDir: here,
    entryPoints: { 'viewer-bundle': join(here, 'src', 'main.js') },
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    outdir,
    write: true,
    metafile: true,
    logLevel: 'warning',
    legalComments: 'eof',
  });
} catch (e) {
  // esbuild has printed the errors already.
  process.exit(1);
}

// esbuild names the outputs after the entry point; meson wants its own names.
renameSync(join(outdir, 'viewer-bundle.js'), resolve(outJs));
renameSync(join(outdir, 'viewer-bundle.css'), resolve(outCss));

const inputs = Object.keys(result.metafile.inputs).map((p) => resolve(here, p));
inputs.push(join(here, 'build.mjs'), join(here, 'package-lock.json'), installed);
const esc = (p) => p.replace(/([ #$\\])/g, '\\$1');
writeFileSync(depfile, `${esc(outJs)}: ${inputs.map(esc).join(' \\\n  ')}\n`);
// Keep the two outputs' sizes visible in the build log.
const size = (p) => readFileSync(p).length;
console.log(`viewer: ${outJs} ${size(outJs)} B, ${outCss} ${size(outCss)} B`);
