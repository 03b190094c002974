/* Messages for the library's error codes (see alloctrace/error.h). */
#include <alloctrace/error.h>

const char *at_strerror(int code)
{
    switch ((enum at_error)code) {
    case AT_OK:
        return "success";
    case AT_E_ALIGN_ZERO:
        return "alignment is zero";
    case AT_E_ALIGN_NOT_POW2:
        return "alignment is not a power of two";
    case AT_E_SIZE_OVERFLOW:
        return "size rounded up to the alignment overflows";
    case AT_E_NOMEM:
        return "out of memory";
    case AT_E_INVALID:
        return "invalid argument";
    case AT_E_EXISTS:
        return "the trace file already exists";
    case AT_E_SYMLINK:
        return "the trace path is a symbolic link";
    case AT_E_ACCESS:
        return "the trace file cannot be created or written";
    case AT_E_IO:
        return "I/O error while writing the trace";
    case AT_E_DB:
        return "SQLite refused an operation on the trace";
    case AT_E_THREAD:
        return "the background writer thread could not be started";
    }
    return "unknown alloctrace error code";
}
