/*
 * An edge-triggered UDP server: the seed document's second scenario, in C against
 * socknotify.h. The socket is registered before it is bound, so no datagram can arrive
 * unseen; every entry is followed by reading until the socket would block, or the next
 * rising edge might never come. UDP shows that HANGUP is never reported for datagrams.
 *
 * A client thread sends CLIENT_LOOP_COUNT 4-byte datagrams to 127.0.0.1; the server
 * prints
 *   RESULT datagrams=10 bytes=40 corrupt=0 hangups=0 removes=1 notifications=N
 * with 1 <= N <= 10 (several datagrams may share one rising edge).
 *
 * Fixed from the original, besides the common code (see common.h):
 *   - triggerFlags was EDGE alone; a registration needs one of ONESHOT/PERSISTENT:
 *     PERSISTENT | EDGE, as the text recommends.
 *   - The result of ioctlsocket (0 or SOCKET_ERROR, not an error code) was stored as the
 *     error code.
 *   - The client really sends UDP (the original assumed a UDP variant of its TCP client).
 *   - The "would block" that ends a drain is errno EAGAIN/EWOULDBLOCK on Linux.
 *   - A dequeue that times out while datagrams are still expected is retried a bounded
 *     number of times instead of failing.
 *
 * Build: cc -std=c11 edge_udp_server.c $(pkg-config --cflags --libs socknotify) -pthread
 */
#include "common.h"

static DWORD SimpleEdgeTriggeredSample(void)
{
    DWORD errorCode;
    SOCKET serverSocket = INVALID_SOCKET;
    SOCKET currentSocket;
    HANDLE ioCompletionPort = NULL;
    struct sockaddr_in serverAddress;
    socklen_t addressLength = sizeof(serverAddress);
    SOCK_NOTIFY_REGISTRATION registration;
    OVERLAPPED_ENTRY notification;
    ULONG notificationCount;
    UINT32 events;
    char dataBuffer[512];
    ssize_t receiveResult;
    UINT32 datagramCount = 0;
    pthread_t clientThread;
    int clientStarted = 0;
    unsigned idle = 0;
    unsigned long bytes = 0, hangups = 0, removes = 0, notifications = 0;
    PAYLOAD_CHECKER checker;

    memset(&checker, 0, sizeof(checker));
    ioCompletionPort = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (ioCompletionPort == NULL) {
        errorCode = GetLastError();
        goto Exit;
    }

    serverSocket = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (serverSocket == INVALID_SOCKET) {
        errorCode = SocketError("socket");
        goto Exit;
    }

    /* Register before binding, so that no data can be present before the registration. */
    memset(&registration, 0, sizeof(registration));
    registration.completionKey = (PVOID)(intptr_t)serverSocket;
    registration.eventFilter = SOCK_NOTIFY_REGISTER_EVENT_IN;
    registration.operation = SOCK_NOTIFY_OP_ENABLE;
    registration.triggerFlags = SOCK_NOTIFY_TRIGGER_PERSISTENT | SOCK_NOTIFY_TRIGGER_EDGE;
    registration.socket = serverSocket;
    errorCode = ProcessSocketNotifications(ioCompletionPort, 1, &registration, 0, 0, NULL, NULL);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }
    if (registration.registrationResult != ERROR_SUCCESS) {
        errorCode = registration.registrationResult;
        goto Exit;
    }

    /* Edge-triggered needs non-blocking sockets: the data must be drained. */
    errorCode = SetNonBlocking(serverSocket);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }

    memset(&serverAddress, 0, sizeof(serverAddress));
    serverAddress.sin_family = AF_INET;
    serverAddress.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    serverAddress.sin_port = htons(0);
    if (bind(serverSocket, (struct sockaddr *)&serverAddress, sizeof(serverAddress)) != 0) {
        errorCode = SocketError("bind");
        goto Exit;
    }
    if (getsockname(serverSocket, (struct sockaddr *)&serverAddress, &addressLength) != 0) {
        errorCode = SocketError("getsockname");
        goto Exit;
    }

    errorCode = CreateClientThread(&serverAddress, SOCK_DGRAM, CLIENT_LOOP_COUNT, &clientThread);
    if (errorCode != ERROR_SUCCESS) {
        goto Exit;
    }
    clientStarted = 1;

    /* Receive the datagrams. */
    while (datagramCount < CLIENT_LOOP_COUNT) {
        if (!GetQueuedCompletionStatusEx(ioCompletionPort, &notification, 1, &notificationCount,
                                         MAX_TIMEOUT, FALSE)) {
            errorCode = GetLastError();
            if (errorCode == WAIT_TIMEOUT && ++idle < MAX_IDLE_TIMEOUTS) {
                continue;
            }
            goto Exit;
        }
        idle = 0;
        notifications += 1;

        events = SocketNotificationRetrieveEvents(&notification);
        currentSocket = (SOCKET)(intptr_t)notification.lpCompletionKey;

        if (events & SOCK_NOTIFY_EVENT_HANGUP) {
            hangups += 1; /* never for UDP: the RESULT line shows it */
        }
        if (events & SOCK_NOTIFY_EVENT_ERR) {
            int socketError = 0;
            socklen_t length = sizeof(socketError);
            getsockopt(currentSocket, SOL_SOCKET, SO_ERROR, &socketError, &length);
            errno = socketError;
            errorCode = SocketError("socket error");
            goto Exit;
        }
        if ((events & SOCK_NOTIFY_EVENT_IN) == 0) {
            continue;
        }

        /* Receive until the read would block, or the edge may not be reset. */
        for (;;) {
            receiveResult = recv(currentSocket, dataBuffer, sizeof(dataBuffer), 0);
            if (receiveResult < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    errorCode = SocketError("recv");
                    goto Exit;
                }
                break;
            }
            datagramCount += 1;
            bytes += (unsigned long)receiveResult;
            CheckPayloads(&checker, dataBuffer, (size_t)receiveResult);
        }
    }

    printf("Received all data. Exiting...\n");
    errorCode = ERROR_SUCCESS;

Exit:
    if (errorCode != ERROR_SUCCESS) {
        PrintError("edge-triggered UDP server", errorCode);
    }
    if (serverSocket != INVALID_SOCKET) {
        if (ioCompletionPort != NULL) {
            DWORD removeCode = DeregisterAndWait(ioCompletionPort, serverSocket);
            if (removeCode == ERROR_SUCCESS) {
                removes += 1;
            } else {
                PrintError("DeregisterAndWait", removeCode);
                errorCode = removeCode;
            }
        }
        close(serverSocket);
    }
    if (ioCompletionPort != NULL) {
        CloseHandle(ioCompletionPort);
    }
    if (clientStarted) {
        pthread_join(clientThread, NULL);
    }
    printf("RESULT datagrams=%lu bytes=%lu corrupt=%lu hangups=%lu removes=%lu "
           "notifications=%lu\n",
           (unsigned long)datagramCount, bytes, checker.corrupt, hangups, removes,
           notifications);
    return errorCode;
}

int main(void)
{
    alarm(WATCHDOG_SECONDS);
    return SimpleEdgeTriggeredSample() == ERROR_SUCCESS ? 0 : 1;
}
