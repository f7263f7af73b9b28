/*
 * socknotify/winsock2.h: the optional compatibility header. The Winsock and Win32 basics
 * that Winsock programs use around ProcessSocketNotifications, mapped to POSIX and to this
 * library, so that such programs compile unchanged:
 *
 *     #include <socknotify/winsock2.h>
 * or, keeping the program's own #include <winsock2.h>, build with
 *     cc -I$(pkg-config --variable=includedir socknotify)/socknotify ...
 *
 * socknotify.h never includes this file. It defines Windows names (CreateThread, Sleep,
 * GetLastError, ...) as static inline functions or macros: a program with a shim of its
 * own for these should not include it. What it covers, and what it does not, is listed in
 * capi/README.md ("The compatibility header"). In short:
 *
 *   - WSAStartup/WSACleanup/WSADATA (nothing to start on Linux), closesocket,
 *     ioctlsocket (FIONBIO, FIONREAD), shutdown's SD_RECEIVE/SD_SEND/SD_BOTH, the
 *     structure names as type names (sockaddr_in, sockaddr, SOCKADDR_IN, ...), u_long.
 *   - WSAGetLastError and GetLastError: the library's last error, or the Winsock code of
 *     errno when a POSIX call (recv, accept, ...) failed after it (WSAEWOULDBLOCK for
 *     EAGAIN, ...). WSASetLastError is SetLastError.
 *   - Threads as handles: CreateThread, WaitForSingleObject, WaitForMultipleObjects,
 *     GetExitCodeThread, closed with CloseHandle (which also closes ports); Sleep,
 *     GetCurrentThreadId; SRWLOCK with SRWLOCK_INIT, Acquire/Release exclusive and shared
 *     (shared is taken exclusively: correct, less concurrent).
 *   - Types and macros Windows code leans on: VOID, CHAR, WCHAR, BOOLEAN, BYTE, WORD, LONG,
 *     INT, UINT, SIZE_T, LPVOID, MAKEWORD, ZeroMemory, RTL_NUMBER_OF/ARRAYSIZE, and the SAL
 *     annotations the Winsock samples use (_In_, _Inout_, _Out_, _Outptr_, ...: empty).
 *
 * Every function here is thread-safe. It compiles as C11 and C++17 with -Wall -Wextra
 * -Werror -pedantic (capi/tests/header.rs).
 */
#ifndef SOCKNOTIFY_WINSOCK2_H
#define SOCKNOTIFY_WINSOCK2_H

#include <string.h>
#include <wchar.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "../socknotify.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Types and macros ----------------------------------------------------------------- */

#ifndef VOID
#define VOID void
#endif
typedef char CHAR;
typedef wchar_t WCHAR;
typedef unsigned char BOOLEAN;
typedef unsigned char BYTE;
typedef uint16_t WORD;
typedef int32_t LONG;
typedef int INT;
typedef unsigned int UINT;
typedef size_t SIZE_T;
typedef void *LPVOID;
typedef const char *LPCSTR;
/* BSD spellings, as Winsock has them; the same types as glibc's where it defines them. */
typedef unsigned char u_char;
typedef unsigned short u_short;
typedef unsigned int u_int;
typedef unsigned long u_long;

#define MAKEWORD(low, high) ((WORD)(((BYTE)(low)) | ((WORD)((BYTE)(high))) << 8))
#define LOBYTE(w) ((BYTE)((w) & 0xff))
#define HIBYTE(w) ((BYTE)(((w) >> 8) & 0xff))
#define ZeroMemory(destination, length) memset((destination), 0, (length))
#define RTL_NUMBER_OF(array) (sizeof(array) / sizeof((array)[0]))
#define ARRAYSIZE(array) RTL_NUMBER_OF(array)

/* SAL annotations: documentation for Microsoft's analyser, nothing for a compiler. */
#define _In_
#define _In_opt_
#define _Out_
#define _Out_opt_
#define _Inout_
#define _Inout_opt_
#define _Outptr_
#define _Post_invalid_
#define _Guarded_by_(lock)

/* The structure names of <sys/socket.h> and <netinet/in.h> as type names, as Winsock
 * declares them. */
typedef struct sockaddr sockaddr;
typedef struct sockaddr SOCKADDR, *PSOCKADDR, *LPSOCKADDR;
typedef struct sockaddr_in sockaddr_in;
typedef struct sockaddr_in SOCKADDR_IN, *PSOCKADDR_IN, *LPSOCKADDR_IN;
typedef struct sockaddr_in6 sockaddr_in6;
typedef struct sockaddr_in6 SOCKADDR_IN6, *PSOCKADDR_IN6;
typedef struct in_addr IN_ADDR, *PIN_ADDR;

/* ---- Winsock ---------------------------------------------------------------------------- */

#define WINSOCK_VERSION MAKEWORD(2, 2)
#define WSADESCRIPTION_LEN 256
#define WSASYS_STATUS_LEN 128

/* The 64-bit Windows layout. */
typedef struct WSAData {
    WORD wVersion;
    WORD wHighVersion;
    unsigned short iMaxSockets;
    unsigned short iMaxUdpDg;
    char *lpVendorInfo;
    char szDescription[WSADESCRIPTION_LEN + 1];
    char szSystemStatus[WSASYS_STATUS_LEN + 1];
} WSADATA, *LPWSADATA;

/* Nothing needs starting on Linux: fills in *lpWSAData and returns 0; WSAVERNOTSUPPORTED
 * for a version below 1.1, WSAEFAULT for NULL. */
static inline int WSAAPI WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData)
{
    static const char description[] = "socknotify";
    if (lpWSAData == NULL) {
        return WSAEFAULT;
    }
    memset(lpWSAData, 0, sizeof *lpWSAData);
    lpWSAData->wHighVersion = MAKEWORD(2, 2);
    lpWSAData->wVersion = (LOBYTE(wVersionRequested) > 2 ||
                           (LOBYTE(wVersionRequested) == 2 && HIBYTE(wVersionRequested) >= 2))
                              ? MAKEWORD(2, 2)
                              : wVersionRequested;
    memcpy(lpWSAData->szDescription, description, sizeof description);
    memcpy(lpWSAData->szSystemStatus, "Running", sizeof "Running");
    if (LOBYTE(wVersionRequested) < 1 ||
        (LOBYTE(wVersionRequested) == 1 && HIBYTE(wVersionRequested) < 1)) {
        return WSAVERNOTSUPPORTED;
    }
    return 0;
}

static inline int WSAAPI WSACleanup(void)
{
    return 0;
}

/* shutdown()'s how values; the same as SHUT_RD, SHUT_WR, SHUT_RDWR. */
#define SD_RECEIVE 0
#define SD_SEND 1
#define SD_BOTH 2

int SocknotifyCloseSocket(SOCKET s);
int SocknotifyIoctlSocket(SOCKET s, long cmd, u_long *argp);

/* close(): 0, or SOCKET_ERROR with WSAGetLastError() = WSAENOTSOCK, ... */
static inline int WSAAPI closesocket(SOCKET s)
{
    return SocknotifyCloseSocket(s);
}

/* FIONBIO and FIONREAD (the Linux values of those names): 0, or SOCKET_ERROR with
 * WSAGetLastError() set. */
static inline int WSAAPI ioctlsocket(SOCKET s, long cmd, u_long *argp)
{
    return SocknotifyIoctlSocket(s, cmd, argp);
}

static inline int WSAAPI WSAGetLastError(void)
{
    return (int)SocknotifyWSAGetLastError();
}

static inline void WSAAPI WSASetLastError(int iError)
{
    SetLastError((DWORD)iError);
}

/* GetLastError sees failed POSIX calls too, as Windows' does for Winsock calls (one last
 * error per thread). socknotify.h's GetLastError, without errno, stays callable as
 * (GetLastError)(). */
#define GetLastError() SocknotifyWSAGetLastError()

/* ---- Threads, sleeping, locks ----------------------------------------------------------- */

typedef DWORD(WINAPI *LPTHREAD_START_ROUTINE)(LPVOID lpThreadParameter);
typedef void *LPSECURITY_ATTRIBUTES;

HANDLE SocknotifyCreateThread(LPSECURITY_ATTRIBUTES lpThreadAttributes, SIZE_T dwStackSize,
                              LPTHREAD_START_ROUTINE lpStartAddress, LPVOID lpParameter,
                              DWORD dwCreationFlags, LPDWORD lpThreadId);
DWORD SocknotifyWaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);
DWORD SocknotifyWaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll,
                                       DWORD dwMilliseconds);
BOOL SocknotifyGetExitCodeThread(HANDLE hThread, LPDWORD lpExitCode);
DWORD SocknotifyGetCurrentThreadId(void);
void SocknotifySleep(DWORD dwMilliseconds);

/* A thread handle, closed with CloseHandle (the thread runs on) and waited on with
 * WaitForSingleObject/WaitForMultipleObjects (thread handles only). CREATE_SUSPENDED is
 * refused (ERROR_NOT_SUPPORTED); lpThreadAttributes is ignored. */
static inline HANDLE WINAPI CreateThread(LPSECURITY_ATTRIBUTES lpThreadAttributes,
                                         SIZE_T dwStackSize,
                                         LPTHREAD_START_ROUTINE lpStartAddress,
                                         LPVOID lpParameter, DWORD dwCreationFlags,
                                         LPDWORD lpThreadId)
{
    return SocknotifyCreateThread(lpThreadAttributes, dwStackSize, lpStartAddress,
                                  lpParameter, dwCreationFlags, lpThreadId);
}

static inline DWORD WINAPI WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds)
{
    return SocknotifyWaitForSingleObject(hHandle, dwMilliseconds);
}

static inline DWORD WINAPI WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles,
                                                  BOOL bWaitAll, DWORD dwMilliseconds)
{
    return SocknotifyWaitForMultipleObjects(nCount, lpHandles, bWaitAll, dwMilliseconds);
}

static inline BOOL WINAPI GetExitCodeThread(HANDLE hThread, LPDWORD lpExitCode)
{
    return SocknotifyGetExitCodeThread(hThread, lpExitCode);
}

static inline DWORD WINAPI GetCurrentThreadId(void)
{
    return SocknotifyGetCurrentThreadId();
}

static inline void WINAPI Sleep(DWORD dwMilliseconds)
{
    SocknotifySleep(dwMilliseconds);
}

/* As Windows declares it: one pointer, zero when free. */
typedef struct _RTL_SRWLOCK {
    PVOID Ptr;
} SRWLOCK, *PSRWLOCK;
#define SRWLOCK_INIT {0}

void SocknotifyInitializeSRWLock(PSRWLOCK SRWLock);
void SocknotifyAcquireSRWLockExclusive(PSRWLOCK SRWLock);
void SocknotifyReleaseSRWLockExclusive(PSRWLOCK SRWLock);

static inline void WINAPI InitializeSRWLock(PSRWLOCK SRWLock)
{
    SocknotifyInitializeSRWLock(SRWLock);
}

static inline void WINAPI AcquireSRWLockExclusive(PSRWLOCK SRWLock)
{
    SocknotifyAcquireSRWLockExclusive(SRWLock);
}

static inline void WINAPI ReleaseSRWLockExclusive(PSRWLOCK SRWLock)
{
    SocknotifyReleaseSRWLockExclusive(SRWLock);
}

static inline void WINAPI AcquireSRWLockShared(PSRWLOCK SRWLock)
{
    SocknotifyAcquireSRWLockExclusive(SRWLock);
}

static inline void WINAPI ReleaseSRWLockShared(PSRWLOCK SRWLock)
{
    SocknotifyReleaseSRWLockExclusive(SRWLock);
}

#ifdef __cplusplus
}
#endif

#endif /* SOCKNOTIFY_WINSOCK2_H */
