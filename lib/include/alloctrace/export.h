/* Symbol visibility for alloctrace's public API.
 *
 * The library is built with -fvisibility=hidden; only declarations marked
 * AT_API are exported.  The linker version script lib/alloctrace.map lists
 * the same names one by one, and docs/abi.md documents them: the symbol
 * test (tests/abi_test.py, `meson test abi`) fails when the AT_API
 * declarations of these headers, the map, that list and what the built
 * liballoctrace.so exports (`nm -D --defined-only`) are not the same set.
 */
#ifndef ALLOCTRACE_EXPORT_H
#define ALLOCTRACE_EXPORT_H

#if defined(AT_BUILDING_LIBRARY)
#define AT_API __attribute__((visibility("default")))
#else
#define AT_API
#endif

#endif
