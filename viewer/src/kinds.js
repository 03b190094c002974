// One colour per kind of finding, shared by the timeline's markers and
// the tables (style.css has the same colours as .kind-* classes).
const COLORS = {
  layout_mismatch: '#d95f02',
  misaligned_free: '#7570b3',
  double_free: '#e7298a',
  invalid_free: '#a6761d',
  family_mismatch: '#1b9e77',
};

export function kindColor(kind) {
  return COLORS[kind] || '#666666';
}
