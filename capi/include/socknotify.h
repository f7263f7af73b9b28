/*
 * socknotify.h: Winsock socket state notifications (ProcessSocketNotifications on an I/O
 * completion port) for Linux, with the Windows names, types, layouts and values, so that
 * code written for Windows ports by recompiling. Link with -lsocknotify (pkg-config:
 * socknotify). For the Winsock basics around it (WSAStartup, closesocket, ioctlsocket,
 * WSAGetLastError, CreateThread, ...), include <socknotify/winsock2.h> instead, or
 * build with -I$(includedir)/socknotify and keep #include <winsock2.h>.
 *
 * What differs from Windows:
 *   - SOCKET is UINT_PTR as on Windows, holding a POSIX descriptor: (SOCKET)fd and
 *     (int)s convert both ways, and a failed socket() or accept() (-1) becomes
 *     INVALID_SOCKET, (SOCKET)~0. Socket calls (recv, accept, ...) report failures in
 *     errno; the compatibility header's GetLastError/WSAGetLastError map it.
 *   - CreateIoCompletionPort only creates ports: CreateIoCompletionPort(
 *     INVALID_HANDLE_VALUE, NULL, 0, n). Associating a file handle fails with
 *     ERROR_NOT_SUPPORTED; register sockets with ProcessSocketNotifications.
 *   - CloseHandle closes the handles this library issues (ports, and the compatibility
 *     header's threads). A HANDLE is an opaque number, not a pointer; a closed or made-up
 *     one fails with ERROR_INVALID_HANDLE. SocknotifyCloseHandle is the same function under
 *     a name a program with its own CloseHandle can call.
 *   - SOCK_NOTIFY_TRIGGER_EDGE: registering or re-enabling while the condition already
 *     holds (data already waiting) may queue one entry; Windows queues none. A program
 *     that drains until WSAEWOULDBLOCK, as edge-triggered code must, is not affected.
 *   - A call returns at most SOCKNOTIFY_MAX_ENTRIES_PER_CALL entries.
 *   - GetQueuedCompletionStatusEx ignores fAlertable (there are no APCs).
 *   - A released thread that blocks elsewhere does not free its slot by itself: bracket
 *     the blocking call with SocknotifyBlockingBegin/SocknotifyBlockingEnd.
 *
 * Every function is thread-safe. The library's Rust tests check this header's layouts
 * and values against the library (capi/tests/header.rs).
 */
#ifndef SOCKNOTIFY_H
#define SOCKNOTIFY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Windows types, as Linux spells them ------------------------------------------- */

/* Calling conventions: the platform's C convention on Linux. */
#ifndef WINAPI
#define WINAPI
#endif
#ifndef WSAAPI
#define WSAAPI
#endif

typedef void *HANDLE;
typedef void *PVOID;
typedef int BOOL;
typedef uint8_t UINT8;
typedef uint16_t UINT16;
typedef uint32_t UINT32;
typedef uint32_t DWORD;
typedef DWORD *LPDWORD;
typedef uint32_t ULONG;
typedef ULONG *PULONG;
typedef uintptr_t ULONG_PTR;
typedef ULONG_PTR *PULONG_PTR;
typedef uintptr_t UINT_PTR;
typedef UINT_PTR SOCKET;

/* As in Windows' minwinbase.h. This library never reads or writes one: lpOverlapped values
 * are carried through as numbers. */
typedef struct _OVERLAPPED {
    ULONG_PTR Internal;
    ULONG_PTR InternalHigh;
    union {
#if defined(__GNUC__)
        __extension__
#endif
        struct {
            DWORD Offset;
            DWORD OffsetHigh;
        };
        PVOID Pointer;
    };
    HANDLE hEvent;
} OVERLAPPED, *LPOVERLAPPED;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define INVALID_HANDLE_VALUE ((HANDLE)(intptr_t)-1)
#define INVALID_SOCKET ((SOCKET)~(SOCKET)0)
#define SOCKET_ERROR (-1)
/* A timeout that never expires. */
#define INFINITE 0xFFFFFFFF

/* ---- Socket notification constants (winsock2.h values) ----------------------------- */

/* What a registration asks for (eventFilter). */
#define SOCK_NOTIFY_REGISTER_EVENT_NONE 0x00
#define SOCK_NOTIFY_REGISTER_EVENT_IN 0x01
#define SOCK_NOTIFY_REGISTER_EVENT_OUT 0x02
#define SOCK_NOTIFY_REGISTER_EVENT_HANGUP 0x04
#define SOCK_NOTIFY_REGISTER_EVENTS_ALL \
    (SOCK_NOTIFY_REGISTER_EVENT_IN | SOCK_NOTIFY_REGISTER_EVENT_OUT | \
     SOCK_NOTIFY_REGISTER_EVENT_HANGUP)

/* What a notification reports (SocketNotificationRetrieveEvents). ERR and REMOVE come
 * without being asked for; REMOVE marks a registration's last entry. */
#define SOCK_NOTIFY_EVENT_IN SOCK_NOTIFY_REGISTER_EVENT_IN
#define SOCK_NOTIFY_EVENT_OUT SOCK_NOTIFY_REGISTER_EVENT_OUT
#define SOCK_NOTIFY_EVENT_HANGUP SOCK_NOTIFY_REGISTER_EVENT_HANGUP
#define SOCK_NOTIFY_EVENT_ERR 0x40
#define SOCK_NOTIFY_EVENT_REMOVE 0x80
#define SOCK_NOTIFY_EVENTS_ALL \
    (SOCK_NOTIFY_REGISTER_EVENTS_ALL | SOCK_NOTIFY_EVENT_ERR | SOCK_NOTIFY_EVENT_REMOVE)

/* operation: exactly one per registration. */
#define SOCK_NOTIFY_OP_NONE 0x00
#define SOCK_NOTIFY_OP_ENABLE 0x01
#define SOCK_NOTIFY_OP_DISABLE 0x02
#define SOCK_NOTIFY_OP_REMOVE 0x04

/* triggerFlags: ENABLE needs exactly one of LEVEL/EDGE and at most one of
 * ONESHOT/PERSISTENT; neither means PERSISTENT, as on Windows. EDGE: see the top of this
 * file for a condition that already holds at registration. */
#define SOCK_NOTIFY_TRIGGER_ONESHOT 0x01
#define SOCK_NOTIFY_TRIGGER_PERSISTENT 0x02
#define SOCK_NOTIFY_TRIGGER_LEVEL 0x04
#define SOCK_NOTIFY_TRIGGER_EDGE 0x08
#define SOCK_NOTIFY_TRIGGER_ALL \
    (SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_PERSISTENT | \
     SOCK_NOTIFY_TRIGGER_LEVEL | SOCK_NOTIFY_TRIGGER_EDGE)

/* The most entries one GetQueuedCompletionStatusEx or ProcessSocketNotifications call
 * returns, whatever room it is given. */
#define SOCKNOTIFY_MAX_ENTRIES_PER_CALL 4096

/* ---- Win32 and Winsock error codes (Windows values) --------------------------------- */

#define ERROR_SUCCESS 0
#define ERROR_TOO_MANY_OPEN_FILES 4
#define ERROR_ACCESS_DENIED 5
/* Not a live handle of this library, or the port was closed. */
#define ERROR_INVALID_HANDLE 6
#define ERROR_NOT_ENOUGH_MEMORY 8
/* Associating a file handle with a port. */
#define ERROR_NOT_SUPPORTED 50
/* NULL arrays with a count, bad arguments of a call. */
#define ERROR_INVALID_PARAMETER 87
/* In registrationResult: the socket is registered on another port. */
#define ERROR_ALREADY_EXISTS 183
/* Nothing was dequeued within the timeout. */
#define WAIT_TIMEOUT 258
/* The port was closed while the call waited on it. */
#define ERROR_ABANDONED_WAIT_0 735
/* In registrationResult: DISABLE or REMOVE of a socket with no registration here. */
#define ERROR_NOT_FOUND 1168
/* An operating-system error with no Win32 equivalent. */
#define ERROR_UNIDENTIFIED_ERROR 1287
/* A bug in socknotify. */
#define ERROR_INTERNAL_ERROR 1359
/* A kernel limit, such as the epoll watch limit. */
#define ERROR_NO_SYSTEM_RESOURCES 1450
/* Declared for code that tests for it; timeouts here are WAIT_TIMEOUT, as on Windows. */
#define ERROR_TIMEOUT 1460
/* The Winsock names of the codes above. */
#define WSA_INVALID_HANDLE 6
#define WSA_NOT_ENOUGH_MEMORY 8
#define WSA_INVALID_PARAMETER 87
#define WSA_WAIT_TIMEOUT 258
/* Wait results (WaitForSingleObject, WaitForMultipleObjects). */
#define WAIT_OBJECT_0 0
#define WAIT_ABANDONED_0 0x80
#define WAIT_IO_COMPLETION 0xC0
#define WAIT_FAILED 0xFFFFFFFF
#define MAXIMUM_WAIT_OBJECTS 64
#define STILL_ACTIVE 259
#define WSAEINTR 10004
/* In registrationResult: the descriptor is not open (closed, negative, INVALID_SOCKET). */
#define WSAEBADF 10009
#define WSAEACCES 10013
#define WSAEFAULT 10014
/* In registrationResult: bad operation, filter or trigger bits, or a changed key. */
#define WSAEINVAL 10022
#define WSAEMFILE 10024
#define WSAEWOULDBLOCK 10035
#define WSAEINPROGRESS 10036
#define WSAEALREADY 10037
/* In registrationResult: the descriptor is open but is not a socket. */
#define WSAENOTSOCK 10038
#define WSAEDESTADDRREQ 10039
#define WSAEMSGSIZE 10040
#define WSAEPROTOTYPE 10041
#define WSAENOPROTOOPT 10042
#define WSAEPROTONOSUPPORT 10043
#define WSAESOCKTNOSUPPORT 10044
#define WSAEOPNOTSUPP 10045
#define WSAEPFNOSUPPORT 10046
#define WSAEAFNOSUPPORT 10047
#define WSAEADDRINUSE 10048
#define WSAEADDRNOTAVAIL 10049
#define WSAENETDOWN 10050
#define WSAENETUNREACH 10051
#define WSAENETRESET 10052
#define WSAECONNABORTED 10053
#define WSAECONNRESET 10054
#define WSAENOBUFS 10055
#define WSAEISCONN 10056
#define WSAENOTCONN 10057
#define WSAESHUTDOWN 10058
#define WSAETOOMANYREFS 10059
#define WSAETIMEDOUT 10060
#define WSAECONNREFUSED 10061
#define WSAELOOP 10062
#define WSAENAMETOOLONG 10063
#define WSAEHOSTDOWN 10064
#define WSAEHOSTUNREACH 10065
#define WSAVERNOTSUPPORTED 10092

/* Whenever the library sets the thread's last error it also sets errno to this value (no
 * system call uses it), so that SocknotifyWSAGetLastError can tell whether the library or
 * a later POSIX call failed last. */
#define SOCKNOTIFY_ERRNO_LAST_ERROR 0x534E4B00

/* ---- Structures --------------------------------------------------------------------- */

/* One registration change for ProcessSocketNotifications. */
typedef struct SOCK_NOTIFY_REGISTRATION {
    SOCKET socket;
    /* Carried in lpCompletionKey of every entry for this socket. Fixed at creation: to
     * change it, REMOVE, wait for the REMOVE entry, and ENABLE again. */
    PVOID completionKey;
    UINT16 eventFilter;
    UINT8 operation;
    UINT8 triggerFlags;
    /* Output: ERROR_SUCCESS or why this registration failed. Need not be initialised. */
    DWORD registrationResult;
} SOCK_NOTIFY_REGISTRATION;

/* One dequeued entry. For a socket notification lpOverlapped is NULL and
 * dwNumberOfBytesTransferred holds the SOCK_NOTIFY_EVENT_* bits. */
typedef struct _OVERLAPPED_ENTRY {
    ULONG_PTR lpCompletionKey;
    LPOVERLAPPED lpOverlapped;
    ULONG_PTR Internal;
    DWORD dwNumberOfBytesTransferred;
} OVERLAPPED_ENTRY, *LPOVERLAPPED_ENTRY;

/* ---- Functions ---------------------------------------------------------------------- */

/*
 * Creates a completion port: CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, n).
 * At most n threads are released at once (0: the number of CPUs). Returns the port, or
 * NULL with GetLastError() = ERROR_NOT_SUPPORTED (FileHandle is not INVALID_HANDLE_VALUE),
 * ERROR_INVALID_PARAMETER (ExistingCompletionPort is not NULL), or why the port could not
 * be created (ERROR_TOO_MANY_OPEN_FILES, ...).
 */
HANDLE WINAPI CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort,
                              ULONG_PTR CompletionKey, DWORD NumberOfConcurrentThreads);

/*
 * Applies registrationCount registration changes in order, each with its own
 * registrationResult, then, if completionCount is not 0, dequeues up to completionCount
 * entries, waiting up to timeoutMs milliseconds (INFINITE: forever) for the first.
 *
 * Returns ERROR_SUCCESS, or WAIT_TIMEOUT if completionCount > 0 and nothing came in time;
 * then check every registrationResult, and *receivedEntryCount holds the number of
 * entries written. Otherwise nothing was done (ERROR_INVALID_HANDLE: not a live port;
 * ERROR_INVALID_PARAMETER: a NULL array with a non-zero count, a NULL receivedEntryCount
 * with a non-zero completionCount, overlapping arrays; ERROR_NOT_ENOUGH_MEMORY), or the
 * port was closed during the call (ERROR_ABANDONED_WAIT_0).
 *
 * registrationResult codes, from the cause of the failure: ERROR_SUCCESS; WSAEINVAL (bad
 * operation, filter or trigger bits, a different completion key); WSAEBADF (the
 * descriptor is not open: closed, negative, INVALID_SOCKET); WSAENOTSOCK (open but not a
 * socket: a pipe, a file); ERROR_NOT_FOUND (DISABLE/REMOVE without a registration here);
 * ERROR_ALREADY_EXISTS (registered on another port); ERROR_INVALID_HANDLE (the port is
 * closed); ERROR_NOT_ENOUGH_MEMORY, ERROR_NO_SYSTEM_RESOURCES, ... (the kernel refused).
 * Windows documents no code for the last three kinds; these say what happened.
 *
 * When a count is 0 its pointer and (for completionCount) timeoutMs are ignored.
 */
DWORD WSAAPI ProcessSocketNotifications(HANDLE completionPort, UINT32 registrationCount,
                                 SOCK_NOTIFY_REGISTRATION *registrationInfos,
                                 UINT32 timeoutMs, ULONG completionCount,
                                 OVERLAPPED_ENTRY *completionPortEntries,
                                 UINT32 *receivedEntryCount);

/* The SOCK_NOTIFY_EVENT_* bits of a socket notification. */
static inline UINT32 SocketNotificationRetrieveEvents(OVERLAPPED_ENTRY *notification)
{
    return (UINT32)notification->dwNumberOfBytesTransferred;
}

/*
 * Dequeues up to ulCount entries, waiting up to dwMilliseconds (INFINITE: forever) for
 * the first. Returns TRUE with *ulNumEntriesRemoved set, or FALSE with
 * *ulNumEntriesRemoved = 0 and GetLastError() = WAIT_TIMEOUT (nothing in time),
 * ERROR_ABANDONED_WAIT_0 (the port was closed while waiting), ERROR_INVALID_HANDLE (not
 * a live port) or ERROR_INVALID_PARAMETER (NULL pointers, ulCount 0).
 */
BOOL WINAPI GetQueuedCompletionStatusEx(HANDLE CompletionPort,
                                 LPOVERLAPPED_ENTRY lpCompletionPortEntries, ULONG ulCount,
                                 PULONG ulNumEntriesRemoved, DWORD dwMilliseconds,
                                 BOOL fAlertable);

/*
 * Dequeues one entry, waiting up to dwMilliseconds (INFINITE: forever). Returns TRUE with
 * the entry's three values written, or FALSE with *lpOverlapped = NULL and GetLastError()
 * = WAIT_TIMEOUT, ERROR_ABANDONED_WAIT_0 (the port was closed while waiting),
 * ERROR_INVALID_HANDLE or ERROR_INVALID_PARAMETER (a NULL pointer).
 */
BOOL WINAPI GetQueuedCompletionStatus(HANDLE CompletionPort, LPDWORD lpNumberOfBytesTransferred,
                                      PULONG_PTR lpCompletionKey, LPOVERLAPPED *lpOverlapped,
                                      DWORD dwMilliseconds);

/*
 * Queues an entry for one dequeuing thread; the three values come out unchanged. Returns
 * TRUE, or FALSE with GetLastError() = ERROR_INVALID_HANDLE.
 */
BOOL WINAPI PostQueuedCompletionStatus(HANDLE CompletionPort,
                                       DWORD dwNumberOfBytesTransferred,
                                       ULONG_PTR dwCompletionKey, LPOVERLAPPED lpOverlapped);

/*
 * Closes a handle of this library. A port: waiting threads fail with
 * ERROR_ABANDONED_WAIT_0, registrations end without REMOVE entries, queued entries are
 * dropped. A thread (compatibility header's CreateThread): let go, the thread runs on.
 * The handle becomes invalid. Returns TRUE, or FALSE with GetLastError() =
 * ERROR_INVALID_HANDLE for anything else.
 *
 * A program that defines a CloseHandle of its own (for handles of other kinds) replaces
 * this one; it must pass this library's handles on to SocknotifyCloseHandle.
 */
BOOL WINAPI CloseHandle(HANDLE hObject);
BOOL SocknotifyCloseHandle(HANDLE hObject);

/* The calling thread's last error code, set by the functions above when they fail (they
 * also set errno to SOCKNOTIFY_ERRNO_LAST_ERROR). */
DWORD WINAPI GetLastError(void);

/* Sets the calling thread's last error code (and errno to SOCKNOTIFY_ERRNO_LAST_ERROR). */
void WINAPI SetLastError(DWORD dwErrCode);

/* GetLastError, or the Winsock code of errno (WSAEWOULDBLOCK for EAGAIN, ...) if a POSIX
 * call failed after the library last set it: the compatibility header's WSAGetLastError
 * and GetLastError. */
DWORD SocknotifyWSAGetLastError(void);

/* The Winsock code for an errno value: WSAEWOULDBLOCK for EAGAIN and EINPROGRESS,
 * WSAECONNRESET for ECONNRESET, ...; ERROR_UNIDENTIFIED_ERROR if there is none. */
DWORD SocknotifyErrnoToWinsock(int errnum);

/*
 * The about-to-block pair (no Windows equivalent: Windows sees a released thread block in
 * the kernel by itself). A thread released by this port that is about to block on
 * something else (a lock, Sleep, a blocking recv) calls SocknotifyBlockingBegin(port)
 * first and SocknotifyBlockingEnd(port) after: in between, its slot is given back and
 * another waiting thread is released in its place; after End it counts as released again
 * (even if that briefly exceeds the concurrency, as on Windows). Pairs nest, each End
 * closing the innermost Begin of the thread, and the thread may use any port in between.
 * For a thread that holds no released slot on the port, the pair does nothing. Both run
 * on the calling thread and must be paired on it; a thread that exits with pairs open has
 * them closed for it.
 *
 * Begin returns TRUE, or FALSE with GetLastError() = ERROR_INVALID_HANDLE (not a live
 * port) or ERROR_NOT_ENOUGH_MEMORY. End returns TRUE, or FALSE with
 * ERROR_INVALID_PARAMETER when the thread's innermost open Begin is not for this handle
 * (or there is none).
 */
BOOL SocknotifyBlockingBegin(HANDLE port);
BOOL SocknotifyBlockingEnd(HANDLE port);

#ifdef __cplusplus
}
#endif

#endif /* SOCKNOTIFY_H */
