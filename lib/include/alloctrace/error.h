/* alloctrace error codes.
 *
 * One convention for the whole library: a function that can fail returns an
 * int that is 0 on success or one of the negative codes below, and
 * at_strerror() turns any code into a sentence.  Functions that return
 * pointers return NULL on failure instead and say in their comment how the
 * caller learns why.
 */
#ifndef ALLOCTRACE_ERROR_H
#define ALLOCTRACE_ERROR_H

#include <alloctrace/export.h>

#ifdef __cplusplus
extern "C" {
#endif

enum at_error {
    AT_OK = 0,
    /* Layout invariants, one code per broken rule. */
    AT_E_ALIGN_ZERO = -1,     /* alignment is zero */
    AT_E_ALIGN_NOT_POW2 = -2, /* alignment is not a power of two */
    AT_E_SIZE_OVERFLOW = -3,  /* size rounded up to the alignment overflows */
    /* Allocation. */
    AT_E_NOMEM = -4, /* the allocator could not satisfy the request */
    /* Arguments and environment. */
    AT_E_INVALID = -5, /* an argument is NULL or out of range */
    AT_E_EXISTS = -6,  /* the trace file already exists */
    AT_E_SYMLINK = -7, /* the trace path is a symbolic link */
    AT_E_ACCESS = -8,  /* the trace file cannot be created or written */
    AT_E_IO = -9,      /* an I/O error while writing the trace */
    AT_E_DB = -10,     /* SQLite refused an operation on the trace */
    AT_E_THREAD = -11, /* the background writer could not be started */
};

/* A static, never-NULL description of `code`.  Unknown codes get a generic
 * sentence that includes no number, so this never allocates. */
AT_API const char *at_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
