/*
 * A multithreaded TCP server: the seed document's third scenario, in C against
 * socknotify.h. SERVER_THREAD_COUNT threads share one completion port (concurrency 0: at
 * most one released thread per CPU); every socket is registered ONESHOT | LEVEL so that
 * one thread at a time owns it, and is re-armed through the next ProcessSocketNotifications
 * call of the thread that handled it. The completion key is a pointer to a context with a
 * type header; PostQueuedCompletionStatus wakes the threads to exit; a socket's context is
 * freed only on its REMOVE entry.
 *
 * CLIENT_THREAD_COUNT clients each send CLIENT_LOOP_COUNT 4-byte payloads and hang up;
 * the server prints
 *   RESULT clients=100 accepted=100 bytes=4000 payloads=1000 corrupt=0 removes=100
 *          failures=0 threads=16 exited=16
 * (on one line).
 *
 * Fixed from the original, besides the common code (see common.h):
 *   - The thread-creation loop never incremented its counter (it overwrote one slot
 *     forever); it now counts, and main joins exactly the threads it created.
 *   - AcceptConnection returned an uninitialised error code on success.
 *   - The listener was registered PERSISTENT | LEVEL although every thread re-arms it as
 *     one-shot; two threads could then both wake for one connection and one block in
 *     accept() forever. It is registered ONESHOT | LEVEL and non-blocking, and an accept
 *     that would block just re-arms it.
 *   - For a connection, a hang-up set operation = REMOVE and then the receive path did
 *     operation |= ENABLE, giving REMOVE | ENABLE, an invalid operation. Now one recv
 *     decides: data re-arms, end of stream or an error removes. Data that arrived with
 *     the hang-up is read first (level-triggered, so it comes back until drained).
 *   - WAIT_TIMEOUT from ProcessSocketNotifications (an idle thread) ended the thread as
 *     an error, taking the whole server down; it means "no entries" and the loop goes on.
 *   - The registration-failure clean-up overwrote the failure code with the result of
 *     its own clean-up call; failures are counted and reported.
 *   - Accepted sockets are non-blocking, so a thread never blocks while holding a
 *     released slot of the port.
 *   - A deadline ends the server with an error instead of waiting forever if clients
 *     go missing.
 *
 * Build: cc -std=c11 multithreaded_tcp_server.c $(pkg-config --cflags --libs socknotify)
 *        -pthread
 */
#include "common.h"

#define CLIENT_THREAD_COUNT 100
#define SERVER_THREAD_COUNT 16
#define SERVER_DEQUEUE_COUNT 3
#define SERVER_EXIT_KEY ((ULONG_PTR)-1)
#define SERVER_DEADLINE_SECONDS 30

typedef struct SERVER_THREAD_CONTEXT {
    SERVER_CONTEXT *commonContext;
    pthread_mutex_t stateLock;
    /* Guarded by stateLock. */
    UINT32 deregisterCount;
    int shouldExit;
    unsigned long accepted, bytes, payloads, corrupt, failures, exited;
    time_t deadline;
} SERVER_THREAD_CONTEXT;

typedef enum SOCKET_TYPE { SOCKET_TYPE_LISTENER, SOCKET_TYPE_ACCEPT } SOCKET_TYPE;

typedef struct SOCKET_CONTEXT {
    SOCKET_TYPE socketType;
    SOCKET socket;
    /* Only the thread that holds the one-shot notification touches these. */
    unsigned long bytes;
    PAYLOAD_CHECKER checker;
} SOCKET_CONTEXT;

static void CancelServerThreadsAsync(SERVER_THREAD_CONTEXT *serverThreadContext)
{
    pthread_mutex_lock(&serverThreadContext->stateLock);
    serverThreadContext->shouldExit = 1;
    pthread_mutex_unlock(&serverThreadContext->stateLock);
}

static void IndicateServerThreadExit(HANDLE ioCompletionPort)
{
    /* Wake one server thread; it wakes the next when it exits. If this fails, the
     * threads could wait forever: give up at once. */
    if (!PostQueuedCompletionStatus(ioCompletionPort, 0, SERVER_EXIT_KEY, NULL)) {
        PrintError("PostQueuedCompletionStatus", GetLastError());
        abort();
    }
}

static void DestroySocketContext(SOCKET_CONTEXT *socketContext)
{
    if (socketContext->socket != INVALID_SOCKET) {
        close(socketContext->socket);
    }
    free(socketContext);
}

/* Accepts one connection. *socketContextOut is NULL (and ERROR_SUCCESS returned) when
 * there was none to accept after all. */
static DWORD AcceptConnection(SOCKET listenSocket, SOCKET_CONTEXT **socketContextOut)
{
    DWORD errorCode;
    SOCKET_CONTEXT *socketContext = (SOCKET_CONTEXT *)calloc(1, sizeof(*socketContext));

    *socketContextOut = NULL;
    if (socketContext == NULL) {
        return ERROR_NOT_ENOUGH_MEMORY;
    }
    socketContext->socketType = SOCKET_TYPE_ACCEPT;
    socketContext->socket = accept(listenSocket, NULL, NULL);
    if (socketContext->socket == INVALID_SOCKET) {
        errorCode = (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
                        ? ERROR_SUCCESS
                        : SocketError("accept");
        goto Exit;
    }
    errorCode = SetNonBlocking(socketContext->socket);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }
    *socketContextOut = socketContext;
    socketContext = NULL;

Exit:
    if (socketContext != NULL) {
        DestroySocketContext(socketContext);
    }
    return errorCode;
}

static void SetRegistration(SOCK_NOTIFY_REGISTRATION *registration, SOCKET_CONTEXT *context,
                            UINT8 operation, UINT16 eventFilter)
{
    memset(registration, 0, sizeof(*registration));
    registration->socket = context->socket;
    registration->completionKey = context;
    registration->operation = operation;
    registration->eventFilter = eventFilter;
    if (operation == SOCK_NOTIFY_OP_ENABLE) {
        registration->triggerFlags = SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_LEVEL;
    }
}

/* Handles one notification for an accepted connection; returns the operation to apply:
 * ENABLE to wait for more, REMOVE when the connection is done. */
static UINT8 ServeConnection(SOCKET_CONTEXT *socketContext, UINT32 events)
{
    char dataBuffer[512];
    ssize_t received = recv(socketContext->socket, dataBuffer, sizeof(dataBuffer), 0);

    if (received > 0) {
        /* One chunk per notification; level-triggered, so more data comes back. */
        socketContext->bytes += (unsigned long)received;
        CheckPayloads(&socketContext->checker, dataBuffer, (size_t)received);
        return SOCK_NOTIFY_OP_ENABLE;
    }
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return (events & (SOCK_NOTIFY_EVENT_HANGUP | SOCK_NOTIFY_EVENT_ERR))
                   ? SOCK_NOTIFY_OP_REMOVE
                   : SOCK_NOTIFY_OP_ENABLE;
    }
    if (received < 0) {
        SocketError("recv");
    }
    return SOCK_NOTIFY_OP_REMOVE; /* end of stream, or the connection failed */
}

static void *ServerThreadRoutine(void *serverThreadContextPointer)
{
    DWORD errorCode = ERROR_SUCCESS;
    SERVER_THREAD_CONTEXT *serverThreadContext =
        (SERVER_THREAD_CONTEXT *)serverThreadContextPointer;
    HANDLE ioCompletionPort = serverThreadContext->commonContext->ioCompletionPort;
    /* Accepting a connection takes two registrations: the new connection, and re-arming
     * the listener. */
    SOCK_NOTIFY_REGISTRATION registrationBuffer[SERVER_DEQUEUE_COUNT * 2];
    UINT32 registrationCount = 0;
    SOCK_NOTIFY_REGISTRATION *registration;
    OVERLAPPED_ENTRY notifications[SERVER_DEQUEUE_COUNT];
    UINT32 notificationCount;
    UINT32 events;
    SOCKET_CONTEXT *socketContext;
    SOCKET_CONTEXT *acceptedContext;
    int shouldExit;

    for (;;) {
        pthread_mutex_lock(&serverThreadContext->stateLock);
        shouldExit = serverThreadContext->shouldExit;
        if (!shouldExit && time(NULL) > serverThreadContext->deadline) {
            serverThreadContext->shouldExit = shouldExit = 1;
            errorCode = WAIT_TIMEOUT;
        }
        pthread_mutex_unlock(&serverThreadContext->stateLock);
        if (shouldExit) {
            goto Exit;
        }

        /* Dequeue, and re-arm the one-shot registrations handled on the last turn. */
        errorCode = ProcessSocketNotifications(ioCompletionPort, registrationCount,
                                               registrationCount == 0 ? NULL : registrationBuffer,
                                               MAX_TIMEOUT, SERVER_DEQUEUE_COUNT, notifications,
                                               &notificationCount);
        if (errorCode == WAIT_TIMEOUT) {
            notificationCount = 0; /* idle: not an error */
        } else if (errorCode != ERROR_SUCCESS) {
            goto Exit;
        }
        errorCode = ERROR_SUCCESS;

        /* Registrations that failed: this thread still owns their contexts (they are
         * one-shot and not armed), so it cleans up. */
        for (UINT32 i = 0; i < registrationCount; i += 1) {
            registration = &registrationBuffer[i];
            if (registration->registrationResult == ERROR_SUCCESS) {
                continue;
            }
            PrintError("registration", registration->registrationResult);
            pthread_mutex_lock(&serverThreadContext->stateLock);
            serverThreadContext->failures += 1;
            pthread_mutex_unlock(&serverThreadContext->stateLock);

            socketContext = (SOCKET_CONTEXT *)registration->completionKey;
            if (socketContext->socketType == SOCKET_TYPE_LISTENER) {
                continue; /* owned by main */
            }
            /* Best effort: if REMOVE works, its entry frees the context later. */
            registration->operation = SOCK_NOTIFY_OP_REMOVE;
            if (ProcessSocketNotifications(ioCompletionPort, 1, registration, 0, 0, NULL, NULL) !=
                    ERROR_SUCCESS ||
                registration->registrationResult != ERROR_SUCCESS) {
                DestroySocketContext(socketContext);
            }
        }

        registrationCount = 0;
        memset(registrationBuffer, 0, sizeof(registrationBuffer));

        for (UINT32 i = 0; i < notificationCount; i += 1) {
            if (notifications[i].lpCompletionKey == SERVER_EXIT_KEY) {
                goto Exit; /* this thread posts the next exit message */
            }

            socketContext = (SOCKET_CONTEXT *)notifications[i].lpCompletionKey;
            events = SocketNotificationRetrieveEvents(&notifications[i]);

            switch (socketContext->socketType) {
            case SOCKET_TYPE_LISTENER:
                /* Accept whatever the notification says: errors show up in accept. */
                errorCode = AcceptConnection(socketContext->socket, &acceptedContext);
                if (errorCode != ERROR_SUCCESS) {
                    goto Exit;
                }
                if (acceptedContext != NULL) {
                    pthread_mutex_lock(&serverThreadContext->stateLock);
                    serverThreadContext->accepted += 1;
                    pthread_mutex_unlock(&serverThreadContext->stateLock);
                    SetRegistration(&registrationBuffer[registrationCount++], acceptedContext,
                                    SOCK_NOTIFY_OP_ENABLE,
                                    SOCK_NOTIFY_EVENT_IN | SOCK_NOTIFY_EVENT_HANGUP);
                }
                SetRegistration(&registrationBuffer[registrationCount++], socketContext,
                                SOCK_NOTIFY_OP_ENABLE, SOCK_NOTIFY_EVENT_IN);
                break;

            case SOCKET_TYPE_ACCEPT:
                if (events & SOCK_NOTIFY_EVENT_REMOVE) {
                    /* The registration's last entry: now the context may go. */
                    pthread_mutex_lock(&serverThreadContext->stateLock);
                    serverThreadContext->bytes += socketContext->bytes;
                    serverThreadContext->payloads += socketContext->checker.payloads;
                    serverThreadContext->corrupt += socketContext->checker.corrupt +
                                                    (socketContext->checker.partialLength != 0);
                    serverThreadContext->deregisterCount += 1;
                    if (serverThreadContext->deregisterCount >= CLIENT_THREAD_COUNT) {
                        serverThreadContext->shouldExit = 1;
                    }
                    pthread_mutex_unlock(&serverThreadContext->stateLock);
                    DestroySocketContext(socketContext);
                    continue;
                }
                SetRegistration(&registrationBuffer[registrationCount++], socketContext,
                                ServeConnection(socketContext, events),
                                SOCK_NOTIFY_EVENT_IN | SOCK_NOTIFY_EVENT_HANGUP);
                break;

            default:
                errorCode = ERROR_INVALID_PARAMETER;
                goto Exit;
            }
        }
    }

Exit:
    if (errorCode != ERROR_SUCCESS) {
        PrintError("server thread", errorCode);
        pthread_mutex_lock(&serverThreadContext->stateLock);
        serverThreadContext->failures += 1;
        pthread_mutex_unlock(&serverThreadContext->stateLock);
        CancelServerThreadsAsync(serverThreadContext);
    }
    /* Wake a remaining server thread. */
    IndicateServerThreadExit(ioCompletionPort);
    pthread_mutex_lock(&serverThreadContext->stateLock);
    serverThreadContext->exited += 1;
    pthread_mutex_unlock(&serverThreadContext->stateLock);
    return NULL;
}

static DWORD MultiThreadedTcpServer(void)
{
    DWORD errorCode;
    SERVER_THREAD_CONTEXT serverContext;
    SOCKET_CONTEXT listenContext;
    SOCK_NOTIFY_REGISTRATION registration;
    pthread_t serverThreads[SERVER_THREAD_COUNT];
    UINT32 serverThreadCount = 0;
    pthread_t clientThreads[CLIENT_THREAD_COUNT];
    UINT32 clientThreadCount = 0;
    int rc;

    memset(&serverContext, 0, sizeof(serverContext));
    pthread_mutex_init(&serverContext.stateLock, NULL);
    serverContext.deadline = time(NULL) + SERVER_DEADLINE_SECONDS;
    memset(&listenContext, 0, sizeof(listenContext));
    listenContext.socket = INVALID_SOCKET;
    listenContext.socketType = SOCKET_TYPE_LISTENER;

    errorCode = CreateServerContext(&serverContext.commonContext);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }
    listenContext.socket = serverContext.commonContext->listenerSocket;
    errorCode = SetNonBlocking(listenContext.socket);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }

    /* Register the listener, one-shot like every registration here: the thread that
     * handles a connection request re-arms it. */
    memset(&registration, 0, sizeof(registration));
    registration.completionKey = &listenContext;
    registration.eventFilter = SOCK_NOTIFY_EVENT_IN;
    registration.operation = SOCK_NOTIFY_OP_ENABLE;
    registration.triggerFlags = SOCK_NOTIFY_TRIGGER_ONESHOT | SOCK_NOTIFY_TRIGGER_LEVEL;
    registration.socket = listenContext.socket;
    errorCode = ProcessSocketNotifications(serverContext.commonContext->ioCompletionPort, 1,
                                           &registration, 0, 0, NULL, NULL);
    if (errorCode == ERROR_SUCCESS) {
        errorCode = registration.registrationResult;
    }
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }

    /* More server threads than CPUs: the port releases at most one per CPU at a time. */
    while (serverThreadCount < SERVER_THREAD_COUNT) {
        rc = pthread_create(&serverThreads[serverThreadCount], NULL, ServerThreadRoutine,
                            &serverContext);
        if (rc != 0) {
            errno = rc;
            errorCode = SocketError("pthread_create");
            goto Exit;
        }
        serverThreadCount += 1;
    }

    while (clientThreadCount < CLIENT_THREAD_COUNT) {
        errorCode = CreateClientThread(&serverContext.commonContext->address, SOCK_STREAM,
                                       CLIENT_LOOP_COUNT, &clientThreads[clientThreadCount]);
        if (errorCode != ERROR_SUCCESS) {
            goto Exit;
        }
        clientThreadCount += 1;
    }

    errorCode = ERROR_SUCCESS;

Exit:
    if (errorCode != ERROR_SUCCESS) {
        PrintError("multithreaded server", errorCode);
        if (serverContext.commonContext != NULL && serverThreadCount > 0) {
            CancelServerThreadsAsync(&serverContext);
            IndicateServerThreadExit(serverContext.commonContext->ioCompletionPort);
        }
    }
    for (UINT32 i = 0; i < clientThreadCount; i += 1) {
        pthread_join(clientThreads[i], NULL);
    }
    printf("Waiting for %u server threads to exit...\n", (unsigned)serverThreadCount);
    for (UINT32 i = 0; i < serverThreadCount; i += 1) {
        pthread_join(serverThreads[i], NULL);
    }
    if (serverContext.commonContext != NULL) {
        DestroyServerContext(serverContext.commonContext);
    }
    printf("RESULT clients=%u accepted=%lu bytes=%lu payloads=%lu corrupt=%lu removes=%lu "
           "failures=%lu threads=%u exited=%lu\n",
           (unsigned)clientThreadCount, serverContext.accepted, serverContext.bytes,
           serverContext.payloads, serverContext.corrupt,
           (unsigned long)serverContext.deregisterCount, serverContext.failures,
           (unsigned)serverThreadCount, serverContext.exited);
    pthread_mutex_destroy(&serverContext.stateLock);
    if (errorCode == ERROR_SUCCESS && serverContext.failures != 0) {
        errorCode = ERROR_INTERNAL_ERROR;
    }
    return errorCode;
}

int main(void)
{
    alarm(WATCHDOG_SECONDS);
    return MultiThreadedTcpServer() == ERROR_SUCCESS ? 0 : 1;
}
