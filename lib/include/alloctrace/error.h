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
#include <alloctrace/vocab.h>

#ifdef __cplusplus
extern "C" {
#endif

/* AT_E_ALIGN_ZERO ... AT_E_LATE_CORRUPT: the codes and their sentences are
 * listed once, in vocab.h (AT_ERRORS).  The layout invariants come first,
 * one code per broken rule; then allocation, arguments and environment. */
enum at_error {
    AT_OK = 0,
#define AT_X_ERROR(id, code, message) AT_E_##id = code,
    AT_ERRORS(AT_X_ERROR)
#undef AT_X_ERROR
};

/* A static, never-NULL description of `code`.  Unknown codes get a generic
 * sentence that includes no number, so this never allocates. */
AT_API const char *at_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
