/* Unit tests of the tracer's own allocator (mem.h): where its memory
 * comes from.  A first touch of a 4 KiB page costs ~10 us on the VMs this
 * project runs on, of a huge page ~0.26 us per 4 KiB: the blocks that
 * grow past a huge page (the call tree's index) start on one and ask for
 * huge pages, and so do the chunks the small blocks are cut from, past
 * the first few (a small process stays on 4 KiB pages); each
 * block's bytes are its own, and the memory goes back when freed. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mem.h"
#include "test.h"

enum { HUGE = 2 << 20 };

/* Whether the mapping holding `p` asks for huge pages ("hg" among its
 * VmFlags in /proc/self/smaps); -1 when no mapping holds it. */
static int asks_for_huge_pages(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    ASSERT_TRUE(f != NULL);
    char line[512];
    int in = 0, found = -1;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
            in = a >= lo && a < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

/* The kernel has transparent huge pages (madvise or always). */
static int thp_available(void)
{
    struct stat sb;
    return stat("/sys/kernel/mm/transparent_hugepage/enabled", &sb) == 0;
}

TEST(mem_large_blocks_start_on_a_huge_page_and_ask_for_them)
{
    size_t before = at__mem_mapped();
    size_t sizes[] = {HUGE, 3 * HUGE + 4096, 32u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = at__mem_calloc(sizes[i]);
        ASSERT_TRUE(p != NULL);
        ASSERT_UEQ((uintptr_t)p % HUGE, 0);
        ASSERT_UEQ(p[0] | p[sizes[i] - 1], 0);
        memset(p, 0xab, sizes[i]); /* every byte is the block's own */
        if (thp_available())
            ASSERT_EQ(asks_for_huge_pages(p), 1);
        at__mem_free(p, sizes[i]);
        ASSERT_UEQ(at__mem_mapped(), before);
        ASSERT_EQ(asks_for_huge_pages(p), -1); /* unmapped */
    }
}

TEST(mem_a_block_below_a_huge_page_is_mapped_as_before)
{
    size_t size = (1u << 20) + 4096; /* past the big blocks, below a huge page */
    unsigned char *p = at__mem_calloc(size);
    ASSERT_TRUE(p != NULL);
    memset(p, 1, size);
    ASSERT_EQ(asks_for_huge_pages(p), 0);
    at__mem_free(p, size);
}

TEST(mem_small_blocks_come_from_chunks_that_ask_for_huge_pages_past_the_first)
{
    enum { N = 10000, SIZE = 1024 }; /* 10 MiB: ten chunks */
    static unsigned char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = at__mem_alloc(SIZE);
        ASSERT_TRUE(blocks[i] != NULL);
        memset(blocks[i], i & 0xff, SIZE);
    }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < SIZE; k += 101)
            ASSERT_EQ(blocks[i][k], i & 0xff);
    if (thp_available()) {
        ASSERT_EQ(asks_for_huge_pages(blocks[0]), 0);     /* a first chunk: 4 KiB pages */
        ASSERT_EQ(asks_for_huge_pages(blocks[N - 1]), 1); /* a tenth */
    }
    for (int i = 0; i < N; i++)
        at__mem_free(blocks[i], SIZE);
    /* freed small blocks are reused, not mapped again */
    size_t mapped = at__mem_mapped();
    for (int i = 0; i < N; i++)
        blocks[i] = at__mem_alloc(SIZE);
    ASSERT_UEQ(at__mem_mapped(), mapped);
    for (int i = 0; i < N; i++)
        at__mem_free(blocks[i], SIZE);
}

TEST_MAIN()
