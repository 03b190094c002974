#!/usr/bin/env python3
"""No function in lib/ or tools/ longer than 100 lines, unless the comment
right above it says why ("longer than 100 lines because ...").  The
project's code style puts every function body between a `{` and a `}` at
the start of a line, which is what is measured here: the lines between.

    function_length_test.py SOURCE_ROOT
"""
import glob
import os
import re
import sys

from tap import check, finish

LIMIT = 100
root = sys.argv[1]
files = sorted(glob.glob(os.path.join(root, "lib", "**", "*.c"), recursive=True)
               + glob.glob(os.path.join(root, "tools", "**", "*.c"), recursive=True))
check(len(files) > 20, "found the sources (%d files)" % len(files))
measured, too_long = 0, []
for path in files:
    lines = open(path, errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] != "{":
            i += 1
            continue
        # The signature: the lines above, back to one that starts a declaration.
        j = i - 1
        while j > 0 and not re.match(r"^[A-Za-z_]", lines[j]):
            j -= 1
        end = i + 1
        while end < len(lines) and lines[end] != "}":
            end += 1
        body = end - i - 1
        name = (re.search(r"(\w+)\s*\(", lines[j]) or re.search(r"(\w+)", lines[j]))
        name = name.group(1) if name else lines[j]
        # The comment right above the signature.
        k, comment = j - 1, []
        while k >= 0 and (lines[k].startswith(("/*", " *", "//")) or lines[k].endswith("*/")):
            comment.insert(0, lines[k])
            k -= 1
        excused = "longer than %d lines because" % LIMIT in " ".join(" ".join(comment).split())
        measured += 1
        if body > LIMIT and not excused:
            too_long.append("%s:%d: %s is %d lines" % (os.path.relpath(path, root), j + 1,
                                                       name, body))
        i = end + 1
check(measured > 300, "measured every function (%d)" % measured)
check(not too_long, "no function is longer than %d lines without a reason above it" % LIMIT,
      "split them, or say why: " + "; ".join(too_long))
finish()
