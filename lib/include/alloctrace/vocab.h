/* alloctrace's vocabularies, each defined once, here: the kinds of
 * problems a trace can show, the allocation families, the operations, and
 * the library's error codes.
 *
 * Each is an X-macro list: a caller defines X to pick the fields it needs
 * and expands the list, so the C enums (tracer.h, error.h), the names the
 * trace stores (rows.c), the SQL views (schema.c), the reports' labels and
 * SARIF rules (tools/), the check command's categories and the HTML page's
 * legend (written into the page's data by tools/html.c) all come from the
 * same lines.  A new entry is one line here.
 */
#ifndef ALLOCTRACE_VOCAB_H
#define ALLOCTRACE_VOCAB_H

/* Problems: X(ID, CODE, NAME, LABEL, CATEGORY, RULE, LEVEL, COLOR, DESCRIPTION)
 *   ID        the C name: AT_FINDING_<ID> (tracer.h), TM_<ID> (tools)
 *   CODE      at_finding_kind's value, as recorded by the tracer (leaks: 0,
 *             they are no finding)
 *   NAME      as the trace spells it (findings.kind) and JSON reports do
 *   LABEL     as the text reports print it
 *   CATEGORY  the check command's category (AT_CATEGORIES below)
 *   RULE      the SARIF rule id; LEVEL its SARIF level
 *   COLOR     its colour in the HTML report
 *   DESCRIPTION one sentence, for SARIF's rule text and the HTML legend
 * The order of the list is the order reports show kinds in. */
#define AT_KINDS(X)                                                                                \
    X(LEAK, 0, "leak", "leak", LEAKS, "MemoryLeak", "warning", "#c0392b",                         \
      "Memory allocated here was never released (blocks the C and C++ runtimes keep on purpose "  \
      "are not counted)")                                                                         \
    X(LAYOUT_MISMATCH, 1, "layout_mismatch", "layout mismatch", MISMATCH, "LayoutMismatch",       \
      "error", "#d95f02",                                                                         \
      "A block was released with another size or alignment than it was allocated with")         \
    X(FAMILY_MISMATCH, 5, "family_mismatch", "family mismatch", MISMATCH, "FamilyMismatch",       \
      "error", "#1b9e77",                                                                         \
      "A block was released by another allocator family than the one that allocated it "         \
      "(malloc/free, new/delete, new[]/delete[])")                                                \
    X(MISALIGNED_FREE, 2, "misaligned_free", "misaligned free", MISALIGNED, "MisalignedFree",     \
      "error", "#7570b3",                                                                         \
      "A block was released with an alignment its address is not a multiple of")                 \
    X(INTERIOR_FREE, 6, "interior_free", "interior free", MISALIGNED, "InteriorFree", "error",    \
      "#5e3c99", "A pointer released points inside a live block, not at its start")              \
    X(DOUBLE_FREE, 3, "double_free", "double free", DOUBLE_FREE, "DoubleFree", "error",          \
      "#e7298a", "A block was released twice")                                                   \
    X(INVALID_FREE, 4, "invalid_free", "invalid free", INVALID_FREE, "InvalidFree", "error",     \
      "#a6761d", "A pointer released was never allocated by the program")                       \
    X(INVALID_ALIGNMENT, 7, "invalid_alignment", "invalid alignment", INVALID_REQUEST,            \
      "InvalidAlignment", "error", "#e6ab02",                                                     \
      "An allocation asked for an alignment that is not a power of two (or, for posix_memalign, " \
      "not a multiple of sizeof(void *))")                                                        \
    X(INVALID_SIZE, 8, "invalid_size", "invalid size", INVALID_REQUEST, "InvalidSize", "error",   \
      "#b15928",                                                                                  \
      "An allocation asked for a size its function does not accept (aligned_alloc: not a "        \
      "multiple of the alignment; aligned operator new: one that overflows once rounded up)")     \
    X(ZERO_SIZE, 9, "zero_size", "zero-size request", ZERO_SIZE, "ZeroSizeRequest", "note",       \
      "#999999",                                                                                  \
      "An allocation or reallocation asked for 0 bytes, whose result the C standard leaves to "   \
      "the implementation")

/* What a trace from another version may hold that this one does not know:
 * shown, never judged.  Fields as in AT_KINDS. */
#define AT_KIND_OTHER(X)                                                                           \
    X(OTHER, -1, "other", "unknown finding", OTHER, "UnknownFinding", "warning", "#666666",       \
      "A kind of bad release this version of alloctrace does not know")

/* The check command's categories: X(ID, NAME, ALIAS, GATED), in the order
 * it reports them; ALIAS is a second spelling it accepts (LeakSanitizer's
 * "leak:" in suppression files); GATED 1: in --fail-on's default (0: only
 * when named, or by "all"). */
#define AT_CATEGORIES(X)                                                                           \
    X(LEAKS, "leaks", "leak", 1)                                                                  \
    X(MISMATCH, "mismatch", "mismatch", 1)                                                        \
    X(MISALIGNED, "misaligned", "misaligned", 1)                                                  \
    X(DOUBLE_FREE, "double-free", "double-free", 1)                                               \
    X(INVALID_FREE, "invalid-free", "invalid-free", 1)                                            \
    X(INVALID_REQUEST, "invalid-request", "invalid-request", 1)                                   \
    X(ZERO_SIZE, "zero-size", "zero-size", 0)

/* Reachability of a block still live at exit, in valgrind's terms:
 * X(ID, CODE, NAME, KIND, LABEL, GATED, COLOR, DESCRIPTION)
 *   CODE   as stored in the trace (reachability.class); UNKNOWN is the
 *          absence of a row: the block was never classified
 *   NAME   as the leaks view spells it and JSON reports do
 *   KIND   the word --leak-kinds takes (valgrind's --errors-for-leak-kinds)
 *   LABEL  as the text reports print it
 *   GATED  1: counted as a leak by check and run --check by default
 * The order is the order reports show classes in. */
#define AT_REACH(X)                                                                                \
    X(DEFINITE, 1, "definitely_lost", "definite", "definitely lost", 1, "#c0392b",                \
      "No pointer to the block is left anywhere in the program's memory")                         \
    X(INDIRECT, 2, "indirectly_lost", "indirect", "indirectly lost", 1, "#e67e22",                \
      "The block is pointed to only from blocks that are lost themselves")                        \
    X(POSSIBLE, 3, "possibly_lost", "possible", "possibly lost", 0, "#b7950b",                    \
      "Only pointers into the middle of the block are left")                                      \
    X(REACHABLE, 4, "still_reachable", "reachable", "still reachable", 0, "#7f8c8d",              \
      "The program still points to the block; it simply never released it")                     \
    X(UNKNOWN, 0, "unknown", "unknown", "reachability unknown", 1, "#666666",                     \
      "The program's memory was not scanned (it was killed, or the scan was impossible)")

/* Allocation families: X(ID, CODE, NAME, DESCRIPTION).  Who allocated a
 * block decides who may release it. */
#define AT_FAMILIES(X)                                                                             \
    X(ALLOCATOR, 0, "allocator", "the allocator trait (at_alloc and friends)")                   \
    X(MALLOC, 1, "malloc", "malloc, calloc, realloc, posix_memalign ...")                         \
    X(NEW, 2, "new", "C++ operator new")                                                          \
    X(NEW_ARRAY, 3, "new[]", "C++ operator new[]")                                                \
    X(POOL, 4, "pool", "a block of the program's own pool allocator, described by the macros "   \
                       "of alloctrace/annotate.h (docs/pools.md)")

/* Operations that start or end a lifetime: X(ID, CODE, NAME, DESCRIPTION)
 * (code 0, none, is a lifetime that has not ended). */
#define AT_OPS(X)                                                                                  \
    X(ALLOC, 1, "alloc", "an allocation")                                                         \
    X(ALLOC_ZEROED, 2, "alloc_zeroed", "a zeroed allocation")                                     \
    X(REALLOC, 3, "realloc", "a reallocation")                                                    \
    X(DEALLOC, 4, "dealloc", "a release")                                                         \
    X(VANISHED, 5, "vanished", "released without a release the tracer recorded: the address was " \
                               "handed out again, or the exit scan found it gone")                \
    X(INHERITED, 6, "inherited", "live in the parent when this process was forked")              \
    X(EXEC, 7, "exec", "live when the process image was replaced by a successful exec (never a "  \
                       "leak)")

/* Error codes: X(ID, CODE, MESSAGE).  AT_E_<ID>; at_strerror's sentences. */
#define AT_ERRORS(X)                                                                               \
    X(ALIGN_ZERO, -1, "alignment is zero")                                                        \
    X(ALIGN_NOT_POW2, -2, "alignment is not a power of two")                                      \
    X(SIZE_OVERFLOW, -3, "size rounded up to the alignment overflows")                            \
    X(NOMEM, -4, "out of memory")                                                                 \
    X(INVALID, -5, "invalid argument")                                                            \
    X(EXISTS, -6, "the trace file already exists")                                                \
    X(SYMLINK, -7, "the trace path is a symbolic link")                                           \
    X(ACCESS, -8, "the trace file cannot be created or written")                                  \
    X(IO, -9, "I/O error while writing the trace")                                                \
    X(DB, -10, "SQLite refused an operation on the trace")                                        \
    X(THREAD, -11, "the background writer thread could not be started")                           \
    X(LATE_CORRUPT, -12, "the lifetimes set aside beside the trace (TRACE-late) are corrupt")

#endif
