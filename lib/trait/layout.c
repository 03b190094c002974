/* Layout arithmetic.  Every helper is written so that no intermediate value
 * can wrap: the invariant size <= SIZE_MAX - (align - 1) is what makes
 * rounding up safe, and every function that builds a new layout re-checks
 * it through at_layout_from_size_align. */
#include <alloctrace/layout.h>

#include <alloctrace/error.h>
#include <assert.h>
#include <stdint.h>

static int is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

int at_layout_check(at_layout layout)
{
    if (layout.align == 0)
        return AT_E_ALIGN_ZERO;
    if (!is_pow2(layout.align))
        return AT_E_ALIGN_NOT_POW2;
    if (layout.size > SIZE_MAX - (layout.align - 1))
        return AT_E_SIZE_OVERFLOW;
    return AT_OK;
}

int at_layout_from_size_align(size_t size, size_t align, at_layout *out)
{
    at_layout l = {size, align};
    int rc = at_layout_check(l);
    if (rc == AT_OK)
        *out = l;
    return rc;
}

at_layout at_layout_from_size_align_unchecked(size_t size, size_t align)
{
    at_layout l = {size, align};
    assert(at_layout_check(l) == AT_OK);
    return l;
}

size_t at_layout_padded_size(at_layout layout)
{
    return (layout.size + layout.align - 1) & ~(layout.align - 1);
}

size_t at_layout_padding_needed(at_layout layout)
{
    return at_layout_padded_size(layout) - layout.size;
}

size_t at_layout_padding_needed_for(at_layout layout, size_t align)
{
    /* Rust returns a value for any size; if rounding up would wrap, the
     * padding is computed modulo 2^N, which is what unsigned arithmetic
     * gives: (-size) mod align. */
    return (size_t)(0 - layout.size) & (align - 1);
}

at_layout at_layout_pad_to_align(at_layout layout)
{
    return (at_layout){at_layout_padded_size(layout), layout.align};
}

int at_layout_array(at_layout elem, size_t n, at_layout *out)
{
    size_t stride = at_layout_padded_size(elem);
    size_t total;
    if (__builtin_mul_overflow(stride, n, &total))
        return AT_E_SIZE_OVERFLOW;
    return at_layout_from_size_align(total, elem.align, out);
}

int at_layout_extend(at_layout a, at_layout b, at_layout *out, size_t *offset)
{
    size_t align = a.align > b.align ? a.align : b.align;
    size_t pad = at_layout_padding_needed_for(a, b.align);
    size_t off, size;
    if (__builtin_add_overflow(a.size, pad, &off) || __builtin_add_overflow(off, b.size, &size))
        return AT_E_SIZE_OVERFLOW;
    int rc = at_layout_from_size_align(size, align, out);
    if (rc == AT_OK && offset)
        *offset = off;
    return rc;
}
