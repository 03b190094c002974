/* Memory layouts: a size and a power-of-two alignment.
 *
 * Modelled on Rust's std::alloc::Layout.  Every valid layout satisfies:
 *   - align is non-zero and a power of two;
 *   - size rounded up to a multiple of align does not overflow, that is
 *     size <= SIZE_MAX - (align - 1).
 * The checked constructors return AT_E_ALIGN_ZERO, AT_E_ALIGN_NOT_POW2 or
 * AT_E_SIZE_OVERFLOW (in that order of precedence) and leave *out untouched
 * on failure.  Every function taking an at_layout expects a valid one unless
 * its comment says otherwise; the arithmetic helpers are overflow-checked
 * and never wrap.
 */
#ifndef ALLOCTRACE_LAYOUT_H
#define ALLOCTRACE_LAYOUT_H

#include <stddef.h>
#include <alloctrace/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct at_layout {
    size_t size;
    size_t align;
} at_layout;

/* Checks the invariants above; 0 when `layout` is valid, else the code of
 * the first broken rule.  Accepts any bit pattern. */
AT_API int at_layout_check(at_layout layout);

/* Builds a layout, or returns the code of the first broken invariant. */
AT_API int at_layout_from_size_align(size_t size, size_t align, at_layout *out);

/* For callers that already know the invariants hold (asserted in debug
 * builds). */
AT_API at_layout at_layout_from_size_align_unchecked(size_t size, size_t align);

/* The layout of a type, or of the type of an expression (not evaluated). */
#define AT_LAYOUT_OF(type) ((at_layout){sizeof(type), _Alignof(type)})
#define AT_LAYOUT_OF_VAL(expr) ((at_layout){sizeof(expr), _Alignof(__typeof__(expr))})

/* size rounded up to align: (size + align - 1) & ~(align - 1).  Cannot
 * overflow for a valid layout. */
AT_API size_t at_layout_padded_size(at_layout layout);

/* Bytes needed after `size` to reach a multiple of `layout.align`. */
AT_API size_t at_layout_padding_needed(at_layout layout);

/* Bytes needed after `layout.size` to reach a multiple of `align`, which must
 * be a power of two (Rust's padding_needed_for). */
AT_API size_t at_layout_padding_needed_for(at_layout layout, size_t align);

/* The layout padded to its own alignment (Rust's pad_to_align). */
AT_API at_layout at_layout_pad_to_align(at_layout layout);

/* n elements of `elem` laid out back to back, each padded to its alignment
 * (Rust's Layout::repeat / Layout::array).  AT_E_SIZE_OVERFLOW when the
 * total does not fit. */
AT_API int at_layout_array(at_layout elem, size_t n, at_layout *out);

/* The layout of a struct whose fields are `a` then `b` (Rust's
 * Layout::extend): *offset receives where `b` starts; the result's alignment
 * is the larger of the two and its size is not padded at the end (call
 * at_layout_pad_to_align for that).  `offset` may be NULL. */
AT_API int at_layout_extend(at_layout a, at_layout b, at_layout *out, size_t *offset);

#ifdef __cplusplus
}
#endif
#endif
