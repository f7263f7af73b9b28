/*
 * Documented behaviours, one group per run (argv[1]), through the shared library and the
 * compatibility header. Prints "checked ..." per check and "RESULT checks=N failures=F".
 *
 *   lifo1     concurrency 1, three waiters, one post: the most recent waiter gets it
 *   lifo8     concurrency 8, three waiters (all in the kernel), one post: the same
 *   blocking  SocknotifyBlockingBegin/End: a released thread that blocks frees its slot
 *   nesting   pairs nest; a port where the thread holds no slot is unaffected; the thread
 *             may use the port inside; misuse fails cleanly
 *   gqcs      GetQueuedCompletionStatus
 *   threads   CreateThread handles: waits, exit codes, CloseHandle
 *   errors    GetLastError/WSAGetLastError after failed POSIX calls, closesocket
 *   edge      EDGE registered while data waits: at most one entry, then one per arrival
 */
#include <stdio.h>
#include <string.h>

#include <socknotify/winsock2.h>

static unsigned checks;
static unsigned failures;

static void expect_code(const char *what, unsigned long got, unsigned long want)
{
    checks += 1;
    if (got != want) {
        failures += 1;
        fprintf(stderr, "FAIL %s: got %lu, want %lu\n", what, got, want);
    }
    printf("checked %s\n", what);
    fflush(stdout);
}

static void expect_true(const char *what, int condition)
{
    expect_code(what, condition ? 1 : 0, 1);
}

/* Whether thread `tid` of this process is asleep (blocked). */
static int asleep(DWORD tid)
{
    char path[64];
    char stat[512];
    char *paren;
    FILE *f;
    snprintf(path, sizeof path, "/proc/self/task/%lu/stat", (unsigned long)tid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    if (fgets(stat, sizeof stat, f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    paren = strrchr(stat, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'S';
}

static void wait_asleep(const char *what, DWORD tid)
{
    int i;
    for (i = 0; i < 5000 && !asleep(tid); i += 1) {
        Sleep(1);
    }
    /* Asleep for a while: in the call, not on its way there. */
    Sleep(50);
    expect_true(what, asleep(tid));
}

static HANDLE new_port(DWORD concurrency)
{
    return CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, concurrency);
}

/* ---- LIFO ----------------------------------------------------------------------------- */

struct waiter {
    HANDLE port;
    volatile int got; /* 1 once it dequeued an entry */
    ULONG_PTR key;
};

static DWORD WINAPI wait_once(LPVOID p)
{
    struct waiter *w = (struct waiter *)p;
    OVERLAPPED_ENTRY entry;
    ULONG n = 0;
    if (GetQueuedCompletionStatusEx(w->port, &entry, 1, &n, 10000, FALSE) && n == 1) {
        w->key = entry.lpCompletionKey;
        __atomic_store_n(&w->got, 1, __ATOMIC_SEQ_CST);
    }
    return 0;
}

static void lifo(DWORD concurrency)
{
    struct waiter waiters[3];
    HANDLE threads[3];
    DWORD tids[3];
    int i, n, winner = -1;
    HANDLE port = new_port(concurrency);
    expect_true("lifo port", port != NULL);
    for (i = 0; i < 3; i += 1) {
        waiters[i].port = port;
        waiters[i].got = 0;
        waiters[i].key = 0;
        threads[i] = CreateThread(NULL, 0, wait_once, &waiters[i], 0, &tids[i]);
        expect_true("lifo waiter started", threads[i] != NULL);
        wait_asleep("lifo waiter waits", tids[i]);
    }
    expect_true("lifo post", PostQueuedCompletionStatus(port, 0, 77, NULL));
    for (i = 0; i < 5000 && winner < 0; i += 1) {
        for (n = 0; n < 3; n += 1) {
            if (__atomic_load_n(&waiters[n].got, __ATOMIC_SEQ_CST)) {
                winner = n;
            }
        }
        Sleep(1);
    }
    Sleep(50);
    n = 0;
    for (i = 0; i < 3; i += 1) {
        n += __atomic_load_n(&waiters[i].got, __ATOMIC_SEQ_CST);
    }
    expect_code("lifo one waiter got the entry", (unsigned long)n, 1);
    expect_code("lifo the most recent waiter got it (SPEC rule 18)", (unsigned long)winner, 2);
    expect_code("lifo key", waiters[winner < 0 ? 0 : winner].key, winner < 0 ? 0 : 77);
    expect_true("lifo close", CloseHandle(port));
    expect_code("lifo waiters end", WaitForMultipleObjects(3, threads, TRUE, 20000),
                WAIT_OBJECT_0);
    for (i = 0; i < 3; i += 1) {
        CloseHandle(threads[i]);
    }
}

/* ---- The about-to-block pair ------------------------------------------------------------ */

struct blocker {
    HANDLE port;
    volatile int released; /* dequeued its entry */
    volatile int begun;    /* inside Begin/End */
    volatile int ended;    /* after its blocking Sleep */
    BOOL begin_ok, end_ok;
};

static DWORD WINAPI dequeue_then_block(LPVOID p)
{
    struct blocker *b = (struct blocker *)p;
    OVERLAPPED_ENTRY entry;
    ULONG n = 0;
    if (!GetQueuedCompletionStatusEx(b->port, &entry, 1, &n, 10000, FALSE)) {
        return 1;
    }
    __atomic_store_n(&b->released, 1, __ATOMIC_SEQ_CST);
    b->begin_ok = SocknotifyBlockingBegin(b->port);
    __atomic_store_n(&b->begun, 1, __ATOMIC_SEQ_CST);
    Sleep(1500); /* blocked elsewhere, holding nothing */
    __atomic_store_n(&b->ended, 1, __ATOMIC_SEQ_CST);
    b->end_ok = SocknotifyBlockingEnd(b->port);
    return 0;
}

static void blocking(void)
{
    struct blocker b;
    struct waiter w;
    HANDLE t1, t2;
    DWORD tid1, tid2;
    int i;

    b.port = new_port(1);
    b.released = b.begun = b.ended = 0;
    t1 = CreateThread(NULL, 0, dequeue_then_block, &b, 0, &tid1);
    wait_asleep("blocking first thread waits", tid1);
    expect_true("blocking post 1", PostQueuedCompletionStatus(b.port, 0, 1, NULL));
    for (i = 0; i < 5000 && !__atomic_load_n(&b.begun, __ATOMIC_SEQ_CST); i += 1) {
        Sleep(1);
    }
    expect_true("blocking first thread released and inside the pair",
                __atomic_load_n(&b.begun, __ATOMIC_SEQ_CST));
    w.port = b.port;
    w.got = 0;
    t2 = CreateThread(NULL, 0, wait_once, &w, 0, &tid2);
    wait_asleep("blocking second thread waits", tid2);
    expect_true("blocking post 2", PostQueuedCompletionStatus(b.port, 0, 2, NULL));
    for (i = 0; i < 1000 && !__atomic_load_n(&w.got, __ATOMIC_SEQ_CST); i += 1) {
        Sleep(1);
    }
    expect_true("blocking: the second thread ran while the first was blocked",
                __atomic_load_n(&w.got, __ATOMIC_SEQ_CST) &&
                    !__atomic_load_n(&b.ended, __ATOMIC_SEQ_CST));
    expect_code("blocking threads end", WaitForSingleObject(t1, 20000), WAIT_OBJECT_0);
    expect_code("blocking threads end 2", WaitForSingleObject(t2, 20000), WAIT_OBJECT_0);
    expect_true("blocking Begin and End returned TRUE", b.begin_ok && b.end_ok);
    CloseHandle(t1);
    CloseHandle(t2);
    CloseHandle(b.port);
}

static void nesting(void)
{
    struct blocker b;
    HANDLE other;
    OVERLAPPED_ENTRY entry;
    ULONG n;
    b.port = new_port(1);

    /* Nesting, on a thread that holds a slot (it dequeued a posted entry). */
    expect_true("nest post", PostQueuedCompletionStatus(b.port, 0, 3, NULL));
    expect_true("nest dequeue", GetQueuedCompletionStatusEx(b.port, &entry, 1, &n, 5000, FALSE));
    other = new_port(1);
    expect_true("nest begin", SocknotifyBlockingBegin(b.port));
    expect_true("nest begin inner", SocknotifyBlockingBegin(b.port));
    expect_true("nest begin other port (no slot there: no-op)", SocknotifyBlockingBegin(other));
    SetLastError(0);
    expect_code("nest end of the wrong port fails", (unsigned long)SocknotifyBlockingEnd(b.port),
                FALSE);
    expect_code("nest end of the wrong port code", (GetLastError)(), ERROR_INVALID_PARAMETER);
    expect_true("nest end other", SocknotifyBlockingEnd(other));
    /* Inside the pair the thread may use the port. */
    expect_true("nest post inside", PostQueuedCompletionStatus(b.port, 0, 4, NULL));
    expect_true("nest end inner", SocknotifyBlockingEnd(b.port));
    expect_true("nest end", SocknotifyBlockingEnd(b.port));
    expect_code("nest end without begin fails", (unsigned long)SocknotifyBlockingEnd(b.port),
                FALSE);
    expect_code("nest end without begin code", (GetLastError)(), ERROR_INVALID_PARAMETER);
    expect_code("begin on a bad handle fails",
                (unsigned long)SocknotifyBlockingBegin((HANDLE)(intptr_t)0x1234), FALSE);
    expect_code("begin on a bad handle code", (GetLastError)(), ERROR_INVALID_HANDLE);
    expect_true("nest dequeue after", GetQueuedCompletionStatusEx(b.port, &entry, 1, &n, 5000,
                                                                 FALSE) && entry.lpCompletionKey == 4);
    CloseHandle(other);
    CloseHandle(b.port);
}

/* ---- GetQueuedCompletionStatus ---------------------------------------------------------- */

static void gqcs(void)
{
    HANDLE port = new_port(0);
    DWORD bytes = 99;
    ULONG_PTR key = 99;
    LPOVERLAPPED overlapped = (LPOVERLAPPED)(uintptr_t)0x10;
    expect_true("gqcs post", PostQueuedCompletionStatus(port, 5, 6, (LPOVERLAPPED)(uintptr_t)0x70));
    expect_true("gqcs dequeue", GetQueuedCompletionStatus(port, &bytes, &key, &overlapped, 5000));
    expect_code("gqcs bytes", bytes, 5);
    expect_code("gqcs key", key, 6);
    expect_code("gqcs overlapped", (unsigned long)(uintptr_t)overlapped, 0x70);
    expect_code("gqcs timeout", (unsigned long)GetQueuedCompletionStatus(port, &bytes, &key,
                                                                          &overlapped, 10),
                FALSE);
    expect_code("gqcs timeout code", GetLastError(), WAIT_TIMEOUT);
    expect_true("gqcs timeout overlapped NULL", overlapped == NULL);
    expect_code("gqcs NULL pointer", (unsigned long)GetQueuedCompletionStatus(port, NULL, &key,
                                                                               &overlapped, 0),
                FALSE);
    expect_code("gqcs NULL pointer code", GetLastError(), ERROR_INVALID_PARAMETER);
    expect_true("gqcs close through the prefixed name", SocknotifyCloseHandle(port));
    expect_code("gqcs closed", (unsigned long)GetQueuedCompletionStatus(port, &bytes, &key,
                                                                         &overlapped, 0),
                FALSE);
    expect_code("gqcs closed code", GetLastError(), ERROR_INVALID_HANDLE);
}

/* ---- Thread handles -------------------------------------------------------------------- */

static DWORD WINAPI return_arg(LPVOID p)
{
    Sleep(20);
    return (DWORD)(uintptr_t)p;
}

static void threads(void)
{
    HANDLE t[2];
    DWORD code = 0;
    t[0] = CreateThread(NULL, 0, return_arg, (LPVOID)(uintptr_t)41, 0, NULL);
    t[1] = CreateThread(NULL, 0, return_arg, (LPVOID)(uintptr_t)42, 0, NULL);
    expect_true("threads created", t[0] != NULL && t[1] != NULL);
    expect_true("threads wait any", WaitForMultipleObjects(2, t, FALSE, 10000) < WAIT_OBJECT_0 + 2);
    expect_code("threads wait all", WaitForMultipleObjects(2, t, TRUE, 10000), WAIT_OBJECT_0);
    expect_true("threads exit code", GetExitCodeThread(t[1], &code));
    expect_code("threads exit code value", code, 42);
    expect_true("threads CloseHandle on a thread", CloseHandle(t[0]));
    expect_code("threads closed twice", (unsigned long)CloseHandle(t[0]), FALSE);
    expect_code("threads closed twice code", GetLastError(), ERROR_INVALID_HANDLE);
    expect_code("threads wait on a closed handle", WaitForSingleObject(t[0], 0), WAIT_FAILED);
    expect_true("threads CloseHandle 2", CloseHandle(t[1]));
    expect_code("threads CREATE_SUSPENDED refused",
                (unsigned long)(uintptr_t)CreateThread(NULL, 0, return_arg, NULL, 4, NULL), 0);
    expect_code("threads CREATE_SUSPENDED code", GetLastError(), ERROR_NOT_SUPPORTED);
}

/* ---- Errors ---------------------------------------------------------------------------- */

static void errors(void)
{
    SOCKET s = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    u_long on = 1;
    char buffer[16];
    HANDLE port = new_port(0);
    OVERLAPPED_ENTRY entry;
    ULONG n;
    expect_true("errors socket", s != INVALID_SOCKET);
    expect_code("errors FIONBIO", (unsigned long)ioctlsocket(s, FIONBIO, &on), 0);
    expect_true("errors recv would block", recv(s, buffer, sizeof buffer, 0) < 0);
    expect_code("errors GetLastError after recv", GetLastError(), WSAEWOULDBLOCK);
    expect_code("errors WSAGetLastError after recv", (unsigned long)WSAGetLastError(),
                WSAEWOULDBLOCK);
    /* A later library failure wins, as the one last error of Windows does. */
    expect_code("errors dequeue timeout",
                (unsigned long)GetQueuedCompletionStatusEx(port, &entry, 1, &n, 0, FALSE), FALSE);
    expect_code("errors GetLastError after the library", GetLastError(), WAIT_TIMEOUT);
    expect_code("errors bind with a short address",
                (unsigned long)(unsigned)(bind(s, (sockaddr *)NULL, 0) != 0), 1);
    expect_code("errors GetLastError after bind (EINVAL)", GetLastError(), WSAEINVAL);
    expect_code("errors closesocket", (unsigned long)closesocket(s), 0);
    expect_code("errors closesocket INVALID_SOCKET", (unsigned long)(unsigned)closesocket(INVALID_SOCKET),
                (unsigned long)(unsigned)SOCKET_ERROR);
    expect_code("errors closesocket INVALID_SOCKET code", GetLastError(), WSAENOTSOCK);
    WSASetLastError(WSAECONNRESET);
    expect_code("errors WSASetLastError", (unsigned long)WSAGetLastError(), WSAECONNRESET);
    CloseHandle(port);
}

/* ---- EDGE with data already waiting ------------------------------------------------------ */

static void edge(void)
{
    SOCKET r = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    SOCKET w = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    sockaddr_in address;
    socklen_t length = sizeof address;
    u_long on = 1;
    char buffer[16];
    HANDLE port = new_port(0);
    SOCK_NOTIFY_REGISTRATION reg;
    OVERLAPPED_ENTRY entries[4];
    UINT32 received = 0, total = 0;
    int i;

    ZeroMemory(&address, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    expect_true("edge bind", bind(r, (sockaddr *)&address, sizeof address) == 0 &&
                                 getsockname(r, (sockaddr *)&address, &length) == 0 &&
                                 ioctlsocket(r, FIONBIO, &on) == 0);
    expect_true("edge send before", sendto(w, "ab", 2, 0, (sockaddr *)&address, sizeof address) == 2);
    Sleep(20);
    ZeroMemory(&reg, sizeof reg);
    reg.socket = r;
    reg.completionKey = (PVOID)r;
    reg.eventFilter = SOCK_NOTIFY_REGISTER_EVENT_IN;
    reg.operation = SOCK_NOTIFY_OP_ENABLE;
    reg.triggerFlags = SOCK_NOTIFY_TRIGGER_EDGE;
    expect_code("edge register", ProcessSocketNotifications(port, 1, &reg, 0, 0, NULL, NULL),
                ERROR_SUCCESS);
    expect_code("edge register result", reg.registrationResult, ERROR_SUCCESS);
    for (i = 0; i < 3; i += 1) {
        if (ProcessSocketNotifications(port, 0, NULL, 100, 4, entries, &received) == ERROR_SUCCESS) {
            total += received;
        }
    }
    /* Windows: none; socknotify: at most one (documented in socknotify.h). */
    expect_true("edge at most one entry for data that was already there", total <= 1);
    while (recv(r, buffer, sizeof buffer, 0) > 0) {
    }
    expect_code("edge drained", GetLastError(), WSAEWOULDBLOCK);
    expect_true("edge send after", sendto(w, "cd", 2, 0, (sockaddr *)&address, sizeof address) == 2);
    total = 0;
    for (i = 0; i < 3; i += 1) {
        if (ProcessSocketNotifications(port, 0, NULL, i == 0 ? 5000 : 100, 4, entries,
                                       &received) == ERROR_SUCCESS) {
            total += received;
        }
    }
    expect_code("edge one entry for the new datagram", total, 1);
    closesocket(r);
    closesocket(w);
    CloseHandle(port);
}

int main(int argc, char **argv)
{
    const char *group = argc > 1 ? argv[1] : "";
    if (strcmp(group, "lifo1") == 0) {
        lifo(1);
    } else if (strcmp(group, "lifo8") == 0) {
        lifo(8);
    } else if (strcmp(group, "blocking") == 0) {
        blocking();
    } else if (strcmp(group, "nesting") == 0) {
        nesting();
    } else if (strcmp(group, "gqcs") == 0) {
        gqcs();
    } else if (strcmp(group, "threads") == 0) {
        threads();
    } else if (strcmp(group, "errors") == 0) {
        errors();
    } else if (strcmp(group, "edge") == 0) {
        edge();
    } else {
        fprintf(stderr, "unknown group %s\n", group);
        return 2;
    }
    printf("RESULT checks=%u failures=%u\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
