/* Messages for the library's error codes (see alloctrace/error.h). */
#include <alloctrace/error.h>

const char *at_strerror(int code)
{
    switch ((enum at_error)code) {
    case AT_OK:
        return "success";
#define AT_X_ERROR(id, value, message)                                                             \
    case AT_E_##id:                                                                                \
        return message;
        AT_ERRORS(AT_X_ERROR)
#undef AT_X_ERROR
    }
    return "unknown alloctrace error code";
}
