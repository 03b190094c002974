/* Deep call chains that share their callers, for stack_tree_test.py:
 * descend() recurses DEPTH times and then calls one of three leaves, each
 * of which leaks one block of a size that names the (leaf, depth) pair.
 * The stacks of one leaf at depths 10, 20 and 30 share every frame above
 * the recursion, and the recursion's frames from the top; the three leaves
 * share everything but their own frames.  A fork()ed child does the same
 * once more, so the child's trace (the tree inherited and then dumped)
 * is checked too.  Built without sibling-call optimization, so that every
 * call stays a frame. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink[64];
static int nsink;

__attribute__((noinline)) static void keep(void *p)
{
    sink[nsink++ % 64] = p;
}

__attribute__((noinline)) static void tree_leaf_a(size_t size)
{
    keep(malloc(size));
}

__attribute__((noinline)) static void tree_leaf_b(size_t size)
{
    keep(malloc(size));
}

__attribute__((noinline)) static void tree_leaf_c(size_t size)
{
    keep(malloc(size));
}

typedef void leaf_fn(size_t);

__attribute__((noinline)) static void tree_descend(int n, leaf_fn *leaf, size_t size)
{
    if (n > 0)
        tree_descend(n - 1, leaf, size);
    else
        leaf(size);
    keep(NULL); /* no tail call */
}

static void all_sites(size_t base)
{
    leaf_fn *leaves[3] = {tree_leaf_a, tree_leaf_b, tree_leaf_c};
    for (int l = 0; l < 3; l++)
        for (int d = 10; d <= 30; d += 10)
            tree_descend(d, leaves[l], base + 100 * (size_t)l + (size_t)d);
}

int main(void)
{
    all_sites(1000);
    pid_t pid = fork();
    if (pid == 0) {
        all_sites(2000);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
