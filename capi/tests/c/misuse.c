/*
 * C misuse of the interface, through the shared library: every case must fail with its
 * documented code instead of crashing. Prints "RESULT checks=N failures=F".
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socknotify.h"

static unsigned checks;
static unsigned failures;

static void expect_code(const char *what, unsigned long got, unsigned long want)
{
    checks += 1;
    if (got != want) {
        failures += 1;
        fprintf(stderr, "FAIL %s: got %lu, want %lu\n", what, got, want);
    }
    /* Progress, so that a call that hangs can be told from the last line. */
    printf("checked %s\n", what);
    fflush(stdout);
}

static void expect_true(const char *what, int condition)
{
    expect_code(what, condition ? 1 : 0, 1);
}

/* A BOOL call that must fail with `code` as the last error. */
static void expect_fail(const char *what, BOOL ok, DWORD code)
{
    expect_code(what, (unsigned long)ok, FALSE);
    expect_code(what, GetLastError(), code);
}

static SOCK_NOTIFY_REGISTRATION reg(SOCKET s, UINT8 op, UINT8 trigger, ULONG_PTR key)
{
    SOCK_NOTIFY_REGISTRATION r;
    r.socket = s;
    r.completionKey = (PVOID)key;
    r.eventFilter = SOCK_NOTIFY_REGISTER_EVENT_IN;
    r.operation = op;
    r.triggerFlags = trigger;
    r.registrationResult = 0xDEADBEEF; /* must be overwritten */
    return r;
}

static void handles(void)
{
    OVERLAPPED_ENTRY entry;
    ULONG removed = 99;
    UINT32 received = 99;
    HANDLE port;

    port = CreateIoCompletionPort((HANDLE)(intptr_t)3, NULL, 0, 0);
    expect_true("file association returns NULL", port == NULL);
    expect_code("file association", GetLastError(), ERROR_NOT_SUPPORTED);

    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    expect_true("create", port != NULL && port != INVALID_HANDLE_VALUE);
    expect_true("existing port returns NULL",
                CreateIoCompletionPort(INVALID_HANDLE_VALUE, port, 0, 0) == NULL);
    expect_code("existing port", GetLastError(), ERROR_INVALID_PARAMETER);

    expect_fail("close NULL", CloseHandle(NULL), ERROR_INVALID_HANDLE);
    expect_fail("close made-up", CloseHandle((HANDLE)(intptr_t)0x1234), ERROR_INVALID_HANDLE);
    expect_fail("close INVALID_HANDLE_VALUE", CloseHandle(INVALID_HANDLE_VALUE),
                ERROR_INVALID_HANDLE);
    expect_fail("dequeue NULL port", GetQueuedCompletionStatusEx(NULL, &entry, 1, &removed, 0, FALSE),
                ERROR_INVALID_HANDLE);
    expect_code("dequeue NULL port count", removed, 0);
    expect_fail("post NULL port", PostQueuedCompletionStatus(NULL, 0, 0, NULL),
                ERROR_INVALID_HANDLE);
    expect_code("process NULL port",
                ProcessSocketNotifications(NULL, 0, NULL, 0, 1, &entry, &received),
                ERROR_INVALID_HANDLE);

    /* NULL arrays with counts, zero counts. */
    expect_fail("dequeue NULL entries", GetQueuedCompletionStatusEx(port, NULL, 1, &removed, 0, FALSE),
                ERROR_INVALID_PARAMETER);
    expect_fail("dequeue zero count", GetQueuedCompletionStatusEx(port, &entry, 0, &removed, 0, FALSE),
                ERROR_INVALID_PARAMETER);
    expect_fail("dequeue NULL count", GetQueuedCompletionStatusEx(port, &entry, 1, NULL, 0, FALSE),
                ERROR_INVALID_PARAMETER);
    expect_code("process NULL registrations",
                ProcessSocketNotifications(port, 1, NULL, 0, 0, NULL, NULL),
                ERROR_INVALID_PARAMETER);
    expect_code("process NULL entries",
                ProcessSocketNotifications(port, 0, NULL, 0, 1, NULL, &received),
                ERROR_INVALID_PARAMETER);
    expect_code("process NULL received",
                ProcessSocketNotifications(port, 0, NULL, 0, 1, &entry, NULL),
                ERROR_INVALID_PARAMETER);
    expect_code("process nothing", ProcessSocketNotifications(port, 0, NULL, 0, 0, NULL, NULL),
                ERROR_SUCCESS);
    {
        /* The registrations and the entries share memory. */
        SOCK_NOTIFY_REGISTRATION shared[4];
        memset(shared, 0, sizeof shared);
        expect_code("process overlapping arrays",
                    ProcessSocketNotifications(port, 2, shared, 0, 1,
                                               (OVERLAPPED_ENTRY *)(void *)&shared[1], &received),
                    ERROR_INVALID_PARAMETER);
    }

    /* Timeouts. */
    expect_fail("dequeue timeout", GetQueuedCompletionStatusEx(port, &entry, 1, &removed, 0, FALSE),
                WAIT_TIMEOUT);
    expect_code("dequeue timeout count", removed, 0);
    received = 99;
    expect_code("process timeout", ProcessSocketNotifications(port, 0, NULL, 10, 1, &entry, &received),
                WAIT_TIMEOUT);
    expect_code("process timeout count", received, 0);

    /* A posted entry comes back unchanged. */
    expect_true("post", PostQueuedCompletionStatus(port, 7, 42, (LPOVERLAPPED)(uintptr_t)0x99));
    expect_true("dequeue posted", GetQueuedCompletionStatusEx(port, &entry, 4, &removed, 5000, TRUE));
    expect_code("posted count", removed, 1);
    expect_code("posted key", entry.lpCompletionKey, 42);
    expect_code("posted bytes", entry.dwNumberOfBytesTransferred, 7);
    expect_code("posted overlapped", (unsigned long)(uintptr_t)entry.lpOverlapped, 0x99);
    expect_code("posted events", SocketNotificationRetrieveEvents(&entry), 7);

    /* A closed handle is dead for good. */
    expect_true("close", CloseHandle(port));
    expect_fail("close twice", CloseHandle(port), ERROR_INVALID_HANDLE);
    expect_fail("post closed", PostQueuedCompletionStatus(port, 0, 0, NULL), ERROR_INVALID_HANDLE);
    expect_fail("dequeue closed", GetQueuedCompletionStatusEx(port, &entry, 1, &removed, 0, FALSE),
                ERROR_INVALID_HANDLE);
    expect_code("process closed", ProcessSocketNotifications(port, 0, NULL, 0, 0, NULL, NULL),
                ERROR_INVALID_HANDLE);
}

static void registrations(void)
{
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    HANDLE other = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    SOCKET a = socket(AF_INET, SOCK_DGRAM, 0);
    SOCKET b = socket(AF_INET, SOCK_DGRAM, 0);
    SOCKET closed = socket(AF_INET, SOCK_DGRAM, 0);
    int pipefd[2];
    const UINT8 persistent_level = SOCK_NOTIFY_TRIGGER_PERSISTENT | SOCK_NOTIFY_TRIGGER_LEVEL;
    SOCK_NOTIFY_REGISTRATION batch[11];
    FILE *file = tmpfile();
    OVERLAPPED_ENTRY entries[4];
    UINT32 received = 99;
    DWORD rc;

    expect_true("setup", port != NULL && other != NULL && a != INVALID_SOCKET &&
                             b != INVALID_SOCKET && closed != INVALID_SOCKET &&
                             pipe(pipefd) == 0);
    close((int)closed);
    batch[0] = reg(b, SOCK_NOTIFY_OP_ENABLE, persistent_level, 2);
    rc = ProcessSocketNotifications(other, 1, batch, 0, 0, NULL, NULL);
    expect_code("register b on the other port", rc, ERROR_SUCCESS);
    expect_code("register b on the other port result", batch[0].registrationResult, ERROR_SUCCESS);

    /* One bad registration does not stop the others; each gets its own code. */
    batch[0] = reg(a, SOCK_NOTIFY_OP_ENABLE, persistent_level, 1);
    batch[1] = reg(a, SOCK_NOTIFY_OP_ENABLE, persistent_level, 9);        /* key change */
    batch[2] = reg(a, SOCK_NOTIFY_OP_ENABLE, persistent_level | SOCK_NOTIFY_TRIGGER_ONESHOT,
                   1); /* both modes */
    batch[3] = reg(a, SOCK_NOTIFY_OP_ENABLE | SOCK_NOTIFY_OP_REMOVE, persistent_level, 1);
    batch[4] = reg((SOCKET)pipefd[0], SOCK_NOTIFY_OP_ENABLE, persistent_level, 3);
    batch[5] = reg(closed, SOCK_NOTIFY_OP_ENABLE, persistent_level, 4);
    batch[6] = reg(INVALID_SOCKET, SOCK_NOTIFY_OP_ENABLE, persistent_level, 5);
    batch[7] = reg(b, SOCK_NOTIFY_OP_ENABLE, persistent_level, 2); /* on the other port */
    batch[8] = reg(b, SOCK_NOTIFY_OP_REMOVE, 0, 0);                /* not on this port */
    batch[9] = reg((SOCKET)fileno(file), SOCK_NOTIFY_OP_ENABLE, persistent_level, 6);
    batch[10] = reg((SOCKET)(int)-5, SOCK_NOTIFY_OP_ENABLE, persistent_level, 7);
    rc = ProcessSocketNotifications(port, 11, batch, 0, 4, entries, &received);
    expect_code("batch return", rc, WAIT_TIMEOUT);
    expect_code("batch received", received, 0);
    expect_code("good", batch[0].registrationResult, ERROR_SUCCESS);
    expect_code("key change", batch[1].registrationResult, WSAEINVAL);
    expect_code("both modes", batch[2].registrationResult, WSAEINVAL);
    expect_code("two operations", batch[3].registrationResult, WSAEINVAL);
    expect_code("pipe", batch[4].registrationResult, WSAENOTSOCK);
    expect_code("closed descriptor", batch[5].registrationResult, WSAEBADF);
    expect_code("INVALID_SOCKET", batch[6].registrationResult, WSAEBADF);
    expect_code("other port", batch[7].registrationResult, ERROR_ALREADY_EXISTS);
    expect_code("not registered here", batch[8].registrationResult, ERROR_NOT_FOUND);
    expect_code("regular file", batch[9].registrationResult, WSAENOTSOCK);
    expect_code("negative descriptor", batch[10].registrationResult, WSAEBADF);

    /* LEVEL alone and EDGE alone are valid and persistent (Windows, and the seed). */
    batch[0] = reg(a, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_TRIGGER_LEVEL, 1);
    batch[1] = reg(b, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    rc = ProcessSocketNotifications(port, 1, batch, 0, 0, NULL, NULL);
    expect_code("LEVEL alone", batch[0].registrationResult, ERROR_SUCCESS);
    batch[0] = reg(a, SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_TRIGGER_EDGE, 1);
    rc = ProcessSocketNotifications(port, 1, batch, 0, 0, NULL, NULL);
    expect_code("EDGE alone", batch[0].registrationResult, ERROR_SUCCESS);

    /* REMOVE then its entry; a second REMOVE is NOT_FOUND. */
    batch[0] = reg(a, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    rc = ProcessSocketNotifications(port, 1, batch, 1000, 4, entries, &received);
    expect_code("remove", rc, ERROR_SUCCESS);
    expect_code("remove result", batch[0].registrationResult, ERROR_SUCCESS);
    expect_code("remove entry count", received, 1);
    expect_code("remove entry key", entries[0].lpCompletionKey, 1);
    expect_code("remove entry events", SocketNotificationRetrieveEvents(&entries[0]),
                SOCK_NOTIFY_EVENT_REMOVE);
    expect_true("remove entry overlapped", entries[0].lpOverlapped == NULL);
    batch[0] = reg(a, SOCK_NOTIFY_OP_REMOVE, 0, 0);
    rc = ProcessSocketNotifications(port, 1, batch, 0, 0, NULL, NULL);
    expect_code("second remove", batch[0].registrationResult, ERROR_NOT_FOUND);

    /* Registering on a closed port: the handle is gone. */
    expect_true("close port", CloseHandle(port));
    batch[0] = reg(a, SOCK_NOTIFY_OP_ENABLE, persistent_level, 1);
    rc = ProcessSocketNotifications(port, 1, batch, 0, 0, NULL, NULL);
    expect_code("closed port", rc, ERROR_INVALID_HANDLE);

    expect_true("close other", CloseHandle(other));
    close((int)a);
    close((int)b);
    fclose(file);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(void)
{
    SetLastError(1234);
    expect_code("SetLastError", GetLastError(), 1234);
    handles();
    registrations();
    printf("RESULT checks=%u failures=%u\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
