/* Unit tests of stack interning (stacks.h): tens of thousands of distinct
 * stacks sharing their outer frames, as a program's do, interned through
 * per-thread caches and without; each gets one id, distinct stacks
 * distinct ids, again in another order; the call tree's nodes give each
 * stack's frames back, and a stack's outer part is its node's parent;
 * every stack is visited once; the tracer's memory running out gives 0,
 * never a wrong id. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "stacks.h"
#include "test.h"

enum { NSTACKS = 60000, MAX_DEPTH = 48 };

/* Stack i: its innermost frame is its own; the outer ones come from a few
 * per level, chosen by i's digits, so stacks share long outer paths. */
static uint32_t stack_of(uint32_t i, uintptr_t *frames)
{
    uint32_t depth = 1 + (i * 2654435761u >> 7) % MAX_DEPTH;
    frames[0] = 0x400000 + (uintptr_t)i * 16;
    uint32_t x = i;
    for (uint32_t l = 1; l < depth; l++) {
        frames[l] = 0x800000 + (uintptr_t)l * 4096 + (x % 3) * 8;
        x = x / 3 + l;
    }
    return depth;
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct visit {
    uint32_t count;
    const uint32_t *ids;
} visit;

static void count_stack(const at_stack *s, void *arg)
{
    visit *v = arg;
    uintptr_t frames[MAX_DEPTH];
    if (s->frames[0] >= 0x800000)
        return; /* an outer part, interned as a stack of its own */
    uint32_t i = (uint32_t)((s->frames[0] - 0x400000) / 16);
    ASSERT_TRUE(i < NSTACKS);
    ASSERT_UEQ(s->depth, stack_of(i, frames));
    ASSERT_TRUE(memcmp(s->frames, frames, s->depth * sizeof *frames) == 0);
    ASSERT_UEQ(s->id, v->ids[i]);
    v->count++;
}

TEST(stacks_one_id_each_and_the_tree_gives_them_back)
{
    static at_stacks st;
    static at_stack_cache caches[3];
    ASSERT_EQ(at__stacks_init(&st), 0);
    memset(caches, 0, sizeof caches);
    uint32_t *ids = malloc(NSTACKS * sizeof *ids), *sorted = malloc(NSTACKS * sizeof *ids);
    ASSERT_NOT_NULL(ids);
    ASSERT_NOT_NULL(sorted);
    uintptr_t frames[MAX_DEPTH];
    for (uint32_t i = 0; i < NSTACKS; i++) {
        uint32_t depth = stack_of(i, frames);
        at_stack_cache *c = i % 4 == 3 ? NULL : &caches[i % 4];
        ids[i] = at__stacks_intern(&st, c, frames, depth);
        ASSERT_TRUE(ids[i] != 0);
        ASSERT_UEQ(at__stacks_intern(&st, c, frames, depth), ids[i]); /* the cache's hit */
    }
    memcpy(sorted, ids, NSTACKS * sizeof *ids);
    qsort(sorted, NSTACKS, sizeof *sorted, by_value);
    for (uint32_t i = 1; i < NSTACKS; i++)
        ASSERT_TRUE(sorted[i - 1] != sorted[i]);
    /* Again, backwards, through other caches: the same ids; the tree gives
     * the frames back, innermost first, and the stack without its
     * innermost frame is its node's parent. */
    for (uint32_t i = NSTACKS; i-- > 0;) {
        uint32_t depth = stack_of(i, frames);
        ASSERT_UEQ(at__stacks_intern(&st, &caches[(i + 1) % 3], frames, depth), ids[i]);
        uint32_t id = ids[i];
        for (uint32_t l = 0; l < depth; l++) {
            ASSERT_TRUE(id != 0);
            const at_stack_node *n = at__stacks_node(&st, id);
            ASSERT_UEQ(n->ip, frames[l]);
            ASSERT_UEQ(n->depth, depth - l);
            id = n->parent;
        }
        ASSERT_UEQ(id, 0);
        if (depth > 1 && i % 7 == 0)
            ASSERT_UEQ(at__stacks_intern(&st, NULL, frames + 1, depth - 1),
                       at__stacks_node(&st, ids[i])->parent);
    }
    visit v = {0, ids};
    at__stacks_foreach(&st, count_stack, &v);
    ASSERT_UEQ(v.count, NSTACKS); /* each once */
    free(ids);
    free(sorted);
    at__stacks_destroy(&st);
}

static void count_only(const at_stack *s, void *arg)
{
    (void)s;
    (*(uint32_t *)arg)++;
}

/* Memory that runs out while stacks are interned: a stack gets 0 or its
 * own id, and those interned keep theirs. */
TEST(stacks_out_of_memory_gives_no_wrong_id)
{
    static at_stacks st;
    ASSERT_EQ(at__stacks_init(&st), 0);
    uintptr_t frames[MAX_DEPTH];
    enum { N = 5000 };
    uint32_t ids[N];
    at__mem_fail_after(3000);
    uint32_t zero = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t depth = stack_of(i, frames);
        ids[i] = at__stacks_intern(&st, NULL, frames, depth);
        zero += ids[i] == 0;
    }
    at__mem_fail_after(-1);
    ASSERT_TRUE(zero > 0);
    uint32_t interned = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t depth = stack_of(i, frames);
        uint32_t again = at__stacks_intern(&st, NULL, frames, depth);
        ASSERT_TRUE(again != 0);
        if (ids[i]) {
            ASSERT_UEQ(again, ids[i]);
            interned++;
        }
    }
    uint32_t seen = 0;
    at__stacks_foreach(&st, count_only, &seen);
    ASSERT_UEQ(seen, N);
    ASSERT_TRUE(interned > 0);
    at__stacks_destroy(&st);
}

TEST_MAIN()
