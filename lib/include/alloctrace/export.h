/* Symbol visibility for alloctrace's public API.
 *
 * The library is built with -fvisibility=hidden; only declarations marked
 * AT_API are exported (the linker version script lib/alloctrace.map lists
 * the same names, so an accidental export fails the build's symbol test).
 */
#ifndef ALLOCTRACE_EXPORT_H
#define ALLOCTRACE_EXPORT_H

#if defined(AT_BUILDING_LIBRARY)
#define AT_API __attribute__((visibility("default")))
#else
#define AT_API
#endif

#endif
