// Kinds of problems: their names, labels, colours and descriptions come
// from the page's data (`kinds`, written by tools/html.c from
// lib/include/alloctrace/vocab.h); nothing about a kind is written here.
import { el } from './dom.js';

// The kinds of the data, by name; a name the data does not list (a kind
// this build of alloctrace does not know) gets the last entry, the one for
// unknown kinds, and is shown as it is spelled.
export function kindTable(list) {
  const byName = new Map(list.map((k) => [k.name, { ...k, known: true }]));
  const other = list.length ? list[list.length - 1] : { name: 'other', label: 'unknown finding', color: '#666666', description: '' };
  return (name) => byName.get(name) || { ...other, name, label: name, known: false };
}

// The badge of a kind: its label in its colour (set through the CSSOM:
// the page's policy allows no style attributes), its description as the
// tooltip.
export function kindBadge(kind) {
  const b = el('span', { class: 'kind', title: kind.description, dataset: { kind: kind.name } }, kind.label);
  b.style.backgroundColor = kind.color;
  return b;
}

// Reachability classes at exit (`reach`, from vocab.h's AT_REACH), by
// index as the leak sites refer to them; an index the data does not have
// is the last class, unknown.
export function reachTable(list) {
  const fallback = { name: '', kind: '', label: '?', gated: true, color: '#666666', description: '' };
  return (i) => list[i] || list[list.length - 1] || fallback;
}

// The badge of a class: as a kind's, its colour from the data.
export function reachBadge(cls) {
  const b = el('span', { class: 'reach', title: cls.description, dataset: { reach: cls.name } }, cls.label);
  b.style.backgroundColor = cls.color;
  return b;
}
