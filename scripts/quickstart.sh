#!/usr/bin/env bash
# The README's first command: install, build, and trace real programs.
#
# 1. Debian's sqlite3 shell, unmodified, under `alloctrace run`: it builds
#    and indexes a table of 100,000 rows; the summary shows every
#    allocation call and that it leaks nothing.
# 2. examples/word_index (an allocator-trait program with a leak and a
#    layout mismatch planted in it) over the project's own sources, then
#    plain sqlite3 asks its trace what went wrong.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
scripts/setup.sh build

echo
echo "== alloctrace run -- sqlite3 (trace: build/quickstart-sqlite3.db)"
sql=$(mktemp)
db=$(mktemp -u)
trap 'rm -f "$sql" "$db"' EXIT
cat >"$sql" <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO t SELECT x, printf('name-%d', x * 7919 % 100003), x * 0.5 FROM c;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v) FROM t;
SQL
build/tools/alloctrace run -o build/quickstart-sqlite3.db --force -- sqlite3 "$db" <"$sql"

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
