#!/usr/bin/env bash
# The README's first command: install, build, and trace real programs.
#
# 1. Debian's sqlite3 shell, unmodified, under `alloctrace run`: it builds
#    and indexes a table of 100,000 rows; the summary shows every
#    allocation call and that it leaks nothing.
#    It writes the HTML report of that trace too.
# 2. examples/word_index (an allocator-trait program with a leak and a
#    layout mismatch planted in it) over the project's own sources, then
#    `alloctrace report` says what went wrong and `alloctrace html` draws it.
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
build/tools/alloctrace run -o build/quickstart-sqlite3.db --force \
  --html build/quickstart-sqlite3.html -- sqlite3 "$db" <"$sql"

trace=$here/build/word_index.trace.db
echo
echo "== tracing: word_index over lib/*/*.c (trace: $trace)"
build/examples/word_index "$trace" lib/*/*.c
echo
echo "== alloctrace report $trace"
build/tools/alloctrace report --top 5 "$trace"
build/tools/alloctrace html "$trace" -o build/word_index.html
echo
echo "HTML reports: build/quickstart-sqlite3.html, build/word_index.html"
echo "Ask the traces anything in SQL: docs/queries.md, or build/tools/alloctrace query TRACE 'SQL'"
