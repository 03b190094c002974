#!/usr/bin/env bash
# The README's first command: install, build, and trace a real example.
#
# Runs examples/word_index (an allocator-trait program with a leak and a
# layout mismatch planted in it) over the project's own sources, then asks
# the trace what went wrong with plain sqlite3.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
scripts/setup.sh build

trace=$here/build/word_index.trace.db
echo
echo "== tracing: word_index over lib/*.c (trace: $trace)"
build/examples/word_index "$trace" lib/*.c

q() { echo; echo "-- $1"; sqlite3 -header -column "$trace" "$2"; }
q "summary" "SELECT (SELECT value FROM meta WHERE key='alloc_calls') AS alloc_calls,
  (SELECT value FROM meta WHERE key='alloc_bytes') AS alloc_bytes,
  (SELECT count(*) FROM leaks) AS leaked_blocks,
  (SELECT coalesce(sum(size),0) FROM leaks) AS leaked_bytes,
  (SELECT count(*) FROM findings) AS findings"
q "leak sites, largest first (first frame outside the allocator)" \
  "SELECT ls.blocks, ls.bytes, sl.function, sl.file || ':' || sl.line AS location
     FROM leak_sites ls JOIN stack_lines sl ON sl.stack = ls.stack
    WHERE sl.level = (SELECT min(level) FROM stack_lines x WHERE x.stack = ls.stack
                        AND x.function NOT LIKE 'at\_%' ESCAPE '\')
    ORDER BY ls.bytes DESC LIMIT 5"
q "findings" "SELECT kind, count(*) AS n, detail FROM findings GROUP BY kind, detail LIMIT 5"
q "where the mismatched release happened" \
  "SELECT kind, release_stack_text FROM findings_detail LIMIT 1"
echo
echo "More questions to ask the trace: docs/queries.md"
