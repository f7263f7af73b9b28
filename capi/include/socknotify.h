/*
 * socknotify.h: Winsock socket state notifications (ProcessSocketNotifications on an I/O
 * completion port) for Linux, with the Windows names and values, so that code written
 * for Windows ports by recompiling. Link with -lsocknotify (pkg-config: socknotify).
 *
 * What differs from Windows:
 *   - SOCKET is an int (a file descriptor) and INVALID_SOCKET is -1. Socket calls (recv,
 *     accept, ...) report failures in errno, not through GetLastError.
 *   - CreateIoCompletionPort only creates ports: CreateIoCompletionPort(
 *     INVALID_HANDLE_VALUE, NULL, 0, n). Associating a file handle fails with
 *     ERROR_NOT_SUPPORTED.
 *   - CloseHandle closes ports only. A port HANDLE is an opaque number, not a pointer; a
 *     closed or made-up one fails with ERROR_INVALID_HANDLE.
 *   - ENABLE needs exactly one of ONESHOT/PERSISTENT and exactly one of LEVEL/EDGE.
 *   - A call returns at most SOCKNOTIFY_MAX_ENTRIES_PER_CALL entries.
 *   - GetQueuedCompletionStatusEx ignores fAlertable (there are no APCs).
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

typedef int SOCKET;
typedef void *HANDLE;
typedef void *PVOID;
typedef int BOOL;
typedef uint8_t UINT8;
typedef uint16_t UINT16;
typedef uint32_t UINT32;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef ULONG *PULONG;
typedef uintptr_t ULONG_PTR;
/* Never dereferenced by this library: posted values come back as they went in. */
typedef struct OVERLAPPED OVERLAPPED;
typedef OVERLAPPED *LPOVERLAPPED;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define INVALID_HANDLE_VALUE ((HANDLE)(intptr_t)-1)
#define INVALID_SOCKET (-1)
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

/* triggerFlags: ENABLE needs one of ONESHOT/PERSISTENT and one of LEVEL/EDGE. */
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

/* ---- Win32 error codes (Windows values) -------------------------------------------- */

#define ERROR_SUCCESS 0
#define ERROR_TOO_MANY_OPEN_FILES 4
#define ERROR_ACCESS_DENIED 5
/* Not a live port handle, or the port was closed. */
#define ERROR_INVALID_HANDLE 6
#define ERROR_NOT_ENOUGH_MEMORY 8
/* Associating a file handle with a port. */
#define ERROR_NOT_SUPPORTED 50
/* Bad bits in a registration, NULL arrays with a count, a changed completion key, ... */
#define ERROR_INVALID_PARAMETER 87
/* The socket is registered on another port. */
#define ERROR_ALREADY_EXISTS 183
/* Nothing was dequeued within the timeout. */
#define WAIT_TIMEOUT 258
/* The port was closed while the call waited on it. */
#define ERROR_ABANDONED_WAIT_0 735
/* DISABLE or REMOVE of a socket that has no registration on this port. */
#define ERROR_NOT_FOUND 1168
/* An operating-system error with no Win32 equivalent. */
#define ERROR_UNIDENTIFIED_ERROR 1287
/* A bug in socknotify. */
#define ERROR_INTERNAL_ERROR 1359
/* A kernel limit, such as the epoll watch limit. */
#define ERROR_NO_SYSTEM_RESOURCES 1450
#define WSAEINVAL 10022
#define WSAEWOULDBLOCK 10035
/* The descriptor is not an open socket. */
#define WSAENOTSOCK 10038

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
typedef struct OVERLAPPED_ENTRY {
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
HANDLE CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort,
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
 * registrationResult codes: ERROR_SUCCESS; ERROR_INVALID_PARAMETER (bad bits, a different
 * completion key); WSAENOTSOCK (not an open socket); ERROR_NOT_FOUND (DISABLE/REMOVE
 * without a registration); ERROR_ALREADY_EXISTS (registered on another port);
 * ERROR_INVALID_HANDLE (the port is closed).
 *
 * When a count is 0 its pointer and (for completionCount) timeoutMs are ignored.
 */
DWORD ProcessSocketNotifications(HANDLE completionPort, UINT32 registrationCount,
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
BOOL GetQueuedCompletionStatusEx(HANDLE CompletionPort,
                                 LPOVERLAPPED_ENTRY lpCompletionPortEntries, ULONG ulCount,
                                 PULONG ulNumEntriesRemoved, DWORD dwMilliseconds,
                                 BOOL fAlertable);

/*
 * Queues an entry for one dequeuing thread; the three values come out unchanged. Returns
 * TRUE, or FALSE with GetLastError() = ERROR_INVALID_HANDLE.
 */
BOOL PostQueuedCompletionStatus(HANDLE CompletionPort, DWORD dwNumberOfBytesTransferred,
                                ULONG_PTR dwCompletionKey, LPOVERLAPPED lpOverlapped);

/*
 * Closes a port: waiting threads fail with ERROR_ABANDONED_WAIT_0, registrations end
 * without REMOVE entries, queued entries are dropped, the handle becomes invalid.
 * Returns TRUE, or FALSE with GetLastError() = ERROR_INVALID_HANDLE.
 */
BOOL CloseHandle(HANDLE hObject);

/* The calling thread's last error code, set by the functions above when they fail. */
DWORD GetLastError(void);

/* Sets the calling thread's last error code. */
void SetLastError(DWORD dwErrCode);

#ifdef __cplusplus
}
#endif

#endif /* SOCKNOTIFY_H */
