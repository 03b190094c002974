// Numbers as people read them.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

// "12.7 KiB", "512 B"; exact bytes are in the title or the data attributes.
export function bytes(b) {
  if (b === null || b === undefined) return '–';
  let v = Number(b);
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

export function int(n) {
  if (n === null || n === undefined) return '–';
  return Number(n).toLocaleString('en-US');
}

// Microseconds: "850 µs", "12.3 ms", "4.56 s", "3 min 5 s".
export function time(us) {
  if (us === null || us === undefined) return '–';
  const v = Number(us);
  const a = Math.abs(v);
  if (a < 1000) return `${Math.round(v)} µs`;
  if (a < 1e6) return `${(v / 1000).toFixed(a < 1e4 ? 2 : 1)} ms`;
  if (a < 60e6) return `${(v / 1e6).toFixed(a < 1e7 ? 3 : 2)} s`;
  const s = Math.round(v / 1e6);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

export function percent(part, whole) {
  if (!whole) return '–';
  const p = (100 * part) / whole;
  return `${p < 10 ? p.toFixed(1) : p.toFixed(0)}%`;
}

// "file.c:42", "file.c", or "" (no source)
export function location(file, line, vary) {
  if (!file) return '';
  return line > 0 ? `${file}:${line}${vary ? ' (and other lines)' : ''}` : file;
}

export function basename(path) {
  if (!path) return '';
  const i = path.lastIndexOf('/');
  return i >= 0 ? path.slice(i + 1) : path;
}

// "1 block", "3 blocks"
export function plural(n, word) {
  return `${int(n)} ${word}${Number(n) === 1 ? '' : 's'}`;
}

// As time(), without trailing zeros: axis labels "2 s", "2.5 s".
export function timeShort(us) {
  return time(us).replace(/(\.\d*?)0+ /, '$1 ').replace(/\. /, ' ');
}
