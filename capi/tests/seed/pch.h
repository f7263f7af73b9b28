/*
 * The seed programs' precompiled header, which the seed document includes and does not
 * show: the C runtime headers, and the MSVC runtime and Win32 pieces the samples use that
 * the compatibility header does not cover (see capi/README.md), in their simplest form.
 */
#ifndef SEED_PCH_H
#define SEED_PCH_H

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

#include <winsock2.h> /* capi/include/socknotify/winsock2.h, with -I.../socknotify */

/* MSVC runtime (Annex K and crtdbg.h). */
#define wprintf_s wprintf
#define _ASSERT(expression) assert(expression)

/* Win32: no message tables here, so PrintError prints the code alone. */
#define FORMAT_MESSAGE_FROM_SYSTEM 0x00001000
static inline DWORD FormatMessageW(DWORD flags, const void *source, DWORD id, DWORD language,
                                   WCHAR *buffer, DWORD size, void *arguments)
{
    (void)flags, (void)source, (void)id, (void)language, (void)buffer, (void)size,
        (void)arguments;
    return 0;
}

static inline void RaiseFailFastException(void *record, void *context, DWORD flags)
{
    (void)record, (void)context, (void)flags;
    abort();
}

#endif
