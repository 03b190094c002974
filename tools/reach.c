/* Reachability classes as the readers see them (trace_model.h): vocab.h's
 * AT_REACH made into a table, the words of --leak-kinds, and why blocks of
 * a trace were never classified.  Nothing about a class is written here
 * but in vocab.h. */
#include <stdio.h>
#include <string.h>

#include "trace_model.h"

typedef struct reach_info {
    const char *name, *kind, *label, *color, *description;
    int gated;
} reach_info;

#define REACH_INFO(id, code, name, kind, label, gated, color, description)                         \
    [TM_REACH_##id] = {name, kind, label, color, description, gated},
static const reach_info reach[TM_REACHES] = {AT_REACH(REACH_INFO)};
#undef REACH_INFO

#define REACH_WORD(id, code, name, kind, label, gated, color, description) ", " kind
static const char kind_words[] = AT_REACH(REACH_WORD);
#undef REACH_WORD

static const reach_info *info(enum tm_reach r)
{
    return &reach[(unsigned)r < TM_REACHES ? r : TM_REACH_UNKNOWN];
}

const char *tm_reach_name(enum tm_reach r)
{
    return info(r)->name;
}

const char *tm_reach_kind(enum tm_reach r)
{
    return info(r)->kind;
}

const char *tm_reach_label(enum tm_reach r)
{
    return info(r)->label;
}

const char *tm_reach_color(enum tm_reach r)
{
    return info(r)->color;
}

const char *tm_reach_description(enum tm_reach r)
{
    return info(r)->description;
}

int tm_reach_is_gated(enum tm_reach r)
{
    return info(r)->gated;
}

tm_reach_set tm_reach_gated(void)
{
    tm_reach_set s = 0;
    for (int r = 0; r < TM_REACHES; r++)
        if (reach[r].gated)
            s |= 1u << r;
    return s;
}

enum tm_reach tm_reach_named(const char *name)
{
    for (int r = 0; r < TM_REACHES; r++)
        if (name && strcmp(name, reach[r].name) == 0)
            return (enum tm_reach)r;
    return TM_REACH_UNKNOWN;
}

int tm_reach_of_kind(const char *s, size_t len)
{
    for (int r = 0; r < TM_REACHES; r++)
        if (strlen(reach[r].kind) == len && strncmp(s, reach[r].kind, len) == 0)
            return r;
    return -1;
}

int tm_parse_leak_kinds(const char *list, tm_reach_set *out)
{
    tm_reach_set set = 0;
    if (!list || !*list)
        return -1;
    if (strcmp(list, "all") == 0) {
        *out = (1u << TM_REACHES) - 1;
        return 0;
    }
    if (strcmp(list, "none") == 0) {
        *out = 0;
        return 0;
    }
    for (const char *s = list;;) {
        size_t len = strcspn(s, ",");
        int r = tm_reach_of_kind(s, len);
        if (r < 0)
            return -1;
        set |= 1u << r;
        if (!s[len])
            break;
        s += len + 1;
    }
    *out = set;
    return 0;
}

const char *tm_leak_kinds_words(void)
{
    return kind_words + 2;
}

void tm_leak_kinds_text(char *buf, size_t size, tm_reach_set set)
{
    size_t n = 0;
    if (size)
        buf[0] = '\0';
    for (int r = 0; r < TM_REACHES; r++) {
        if (!(set & (1u << r)))
            continue;
        int k = snprintf(buf + n, size > n ? size - n : 0, "%s%s", n ? "," : "", reach[r].kind);
        n += k > 0 ? (size_t)k : 0;
        if (n >= size)
            return;
    }
    if (!set)
        snprintf(buf, size, "none");
}

const char *tm_unscanned_reason(const tm_trace *t)
{
    const char *scan = tm_meta(t, "reach_scan");
    if (t->sum.lost_events > 0)
        return "events could not be recorded, and a block whose release was one of them is"
               " counted here: these may not be leaks";
    if (t->sum.program_end && strcmp(t->sum.program_end, "died") == 0)
        return "the program died before its memory could be scanned";
    if (!scan)
        return "the program's memory was not scanned at exit";
    if (strcmp(scan, "done") != 0)
        return "the scan of the program's memory did not complete";
    return "the scan of the program's memory did not classify them";
}
