/*
 * A simple replacement for poll: the seed document's first scenario, in C against
 * socknotify.h. Single-threaded, one persistent level-triggered registration, entries
 * dequeued with GetQueuedCompletionStatusEx.
 *
 * A client thread connects to 127.0.0.1, sends CLIENT_LOOP_COUNT 4-byte payloads and
 * hangs up; the server reads until the hang-up, removes the registration, and prints
 *   RESULT bytes=40 payloads=10 corrupt=0 hangups=1 removes=1
 *
 * Fixed from the original, besides the common code (see common.h):
 *   - triggerFlags was LEVEL alone; a registration needs one of ONESHOT/PERSISTENT, and
 *     the text says this scenario is persistent: PERSISTENT | LEVEL.
 *   - The data that arrives with the hang-up is read before exiting (the original left
 *     everything after the first 512 bytes unread).
 *   - A dequeue that times out is not an error while the client is still busy; it is
 *     retried a bounded number of times.
 *   - The client thread is joined.
 *
 * Build: cc -std=c11 poll_replacement.c $(pkg-config --cflags --libs socknotify) -pthread
 */
#include "common.h"

static DWORD SimplePollReplacement(void)
{
    DWORD errorCode;
    SERVER_CONTEXT *serverContext = NULL;
    SOCKET tcpAcceptSocket = INVALID_SOCKET;
    SOCKET currentSocket;
    SOCK_NOTIFY_REGISTRATION registration;
    OVERLAPPED_ENTRY notification;
    ULONG notificationCount;
    UINT32 events;
    char dataBuffer[512];
    ssize_t received;
    pthread_t clientThread;
    int clientStarted = 0;
    unsigned idle = 0;
    unsigned long bytes = 0, hangups = 0, removes = 0;
    PAYLOAD_CHECKER checker;

    memset(&checker, 0, sizeof(checker));
    errorCode = CreateServerContext(&serverContext);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }

    errorCode = CreateClientThread(&serverContext->address, SOCK_STREAM, CLIENT_LOOP_COUNT,
                                   &clientThread);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }
    clientStarted = 1;

    tcpAcceptSocket = accept(serverContext->listenerSocket, NULL, NULL);
    if (tcpAcceptSocket == INVALID_SOCKET) {
        errorCode = SocketError("accept");
        goto Exit;
    }

    errorCode = SetNonBlocking(tcpAcceptSocket);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }

    /* Register the accepted connection, with the socket itself as the completion key. */
    memset(&registration, 0, sizeof(registration));
    registration.completionKey = (PVOID)(intptr_t)tcpAcceptSocket;
    registration.eventFilter = SOCK_NOTIFY_REGISTER_EVENT_IN | SOCK_NOTIFY_REGISTER_EVENT_HANGUP;
    registration.operation = SOCK_NOTIFY_OP_ENABLE;
    registration.triggerFlags = SOCK_NOTIFY_TRIGGER_PERSISTENT | SOCK_NOTIFY_TRIGGER_LEVEL;
    registration.socket = tcpAcceptSocket;
    errorCode = ProcessSocketNotifications(serverContext->ioCompletionPort, 1, &registration, 0,
                                           0, NULL, NULL);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }
    if (registration.registrationResult != ERROR_SUCCESS) {
        errorCode = registration.registrationResult;
        goto Exit;
    }

    /* Keep receiving data until the client disconnects. */
    for (;;) {
        if (!GetQueuedCompletionStatusEx(serverContext->ioCompletionPort, &notification, 1,
                                         &notificationCount, MAX_TIMEOUT, FALSE)) {
            errorCode = GetLastError();
            if (errorCode == WAIT_TIMEOUT && ++idle < MAX_IDLE_TIMEOUTS) {
                continue;
            }
            goto Exit;
        }
        idle = 0;

        /* The events are in the number-of-bytes field; the key is the socket. */
        events = SocketNotificationRetrieveEvents(&notification);
        currentSocket = (SOCKET)(intptr_t)notification.lpCompletionKey;

        if (events & SOCK_NOTIFY_EVENT_IN) {
            received = recv(currentSocket, dataBuffer, sizeof(dataBuffer), 0);
            if (received > 0) {
                bytes += (unsigned long)received;
                CheckPayloads(&checker, dataBuffer, (size_t)received);
            } else if (received < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                errorCode = SocketError("recv");
                goto Exit;
            }
        }

        if (events & SOCK_NOTIFY_EVENT_HANGUP) {
            /* Whatever the client sent before hanging up is still to be read. */
            while ((received = recv(currentSocket, dataBuffer, sizeof(dataBuffer), 0)) > 0) {
                bytes += (unsigned long)received;
                CheckPayloads(&checker, dataBuffer, (size_t)received);
            }
            hangups += 1;
            printf("Client hung up. Exiting.\n");
            break;
        }

        if (events & SOCK_NOTIFY_EVENT_ERR) {
            int socketError = 0;
            socklen_t length = sizeof(socketError);
            getsockopt(currentSocket, SOL_SOCKET, SO_ERROR, &socketError, &length);
            errno = socketError;
            errorCode = SocketError("the connection was reset or failed");
            goto Exit;
        }
    }

    errorCode = ERROR_SUCCESS;

Exit:
    if (errorCode != ERROR_SUCCESS) {
        PrintError("poll replacement", errorCode);
    }
    if (serverContext != NULL) {
        if (tcpAcceptSocket != INVALID_SOCKET) {
            DWORD removeCode = DeregisterAndWait(serverContext->ioCompletionPort, tcpAcceptSocket);
            if (removeCode == ERROR_SUCCESS) {
                removes += 1;
            } else {
                PrintError("DeregisterAndWait", removeCode);
                errorCode = removeCode;
            }
        }
        DestroyServerContext(serverContext);
    }
    if (tcpAcceptSocket != INVALID_SOCKET) {
        close(tcpAcceptSocket);
    }
    if (clientStarted) {
        pthread_join(clientThread, NULL);
    }
    printf("RESULT bytes=%lu payloads=%lu corrupt=%lu hangups=%lu removes=%lu\n", bytes,
           checker.payloads, checker.corrupt, hangups, removes);
    return errorCode;
}

int main(void)
{
    alarm(WATCHDOG_SECONDS);
    return SimplePollReplacement() == ERROR_SUCCESS ? 0 : 1;
}
