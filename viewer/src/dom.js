// Building the page's DOM.  Every string from the trace is data: it
// reaches the page through text nodes (createTextNode, textContent) and
// attributes set one by one, never through innerHTML or any other parser
// of markup, so a function named `<img src=x onerror=...>` is only text.

// el('td', {class: 'num', dataset: {stack: 3}}, 'text', node, ...)
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
      } else if (k === 'on') {
        for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      } else if (k === 'class') {
        e.className = v;
      } else if (/^on/i.test(k)) {
        throw new Error('event handlers go through `on`');
      } else {
        e.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(e, children);
  return e;
}

export function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

export function clear(e) {
  while (e.firstChild) e.removeChild(e.firstChild);
  return e;
}

export function section(id, title, ...children) {
  return el('section', { id, class: 'panel' }, el('h2', null, title), ...children);
}
