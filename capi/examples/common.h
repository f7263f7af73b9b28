/*
 * Common code of the three scenarios: the seed document's "common code" section ported
 * to Linux, with its bugs fixed.
 *
 *   - The server binds 127.0.0.1 in network byte order (the original used a little-endian
 *     literal) to port 0, and reads the port the OS chose with getsockname (the original
 *     used an unset placeholder port without htons).
 *   - The client closes its own socket (the original called closesocket(INVALID_SOCKET)
 *     and leaked it) and is joinable, so main can wait for it.
 *   - DeregisterAndWait issues REMOVE once, then dequeues until the REMOVE entry (the
 *     original re-issued REMOVE on every turn, which fails with ERROR_NOT_FOUND once the
 *     first has succeeded, treated a timeout as success and read an entry it never got).
 *   - Every wait is bounded, and alarm() ends a program that hangs anyway.
 *
 * Socket calls report failures in errno here, not through GetLastError; the helpers
 * print them where they happen.
 */
#ifndef SOCKNOTIFY_EXAMPLES_COMMON_H
#define SOCKNOTIFY_EXAMPLES_COMMON_H

#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "socknotify.h"

#define MAX_TIMEOUT 1000        /* milliseconds, for every dequeue */
#define MAX_IDLE_TIMEOUTS 20    /* consecutive idle dequeues before giving up */
#define CLIENT_LOOP_COUNT 10    /* payloads per client */
#define WATCHDOG_SECONDS 60     /* alarm(): the process ends by itself, whatever happens */
#define PAYLOAD 0xdeadbeefu

typedef struct SERVER_CONTEXT {
    HANDLE ioCompletionPort;
    SOCKET listenerSocket;
    struct sockaddr_in address; /* where the server listens, port chosen by the OS */
} SERVER_CONTEXT;

typedef struct CLIENT_CONTEXT {
    UINT32 transmitCount;
    int type; /* SOCK_STREAM or SOCK_DGRAM */
    struct sockaddr_in server;
} CLIENT_CONTEXT;

/* Counts 4-byte payloads in a byte stream, which recv may split anywhere. */
typedef struct PAYLOAD_CHECKER {
    unsigned char partial[4];
    unsigned partialLength;
    unsigned long payloads;
    unsigned long corrupt;
} PAYLOAD_CHECKER;

static pthread_mutex_t g_printLock = PTHREAD_MUTEX_INITIALIZER;

static inline void CheckPayloads(PAYLOAD_CHECKER *checker, const char *data, size_t length)
{
    const UINT32 expected = PAYLOAD;
    for (size_t i = 0; i < length; i += 1) {
        checker->partial[checker->partialLength++] = (unsigned char)data[i];
        if (checker->partialLength == sizeof(expected)) {
            if (memcmp(checker->partial, &expected, sizeof(expected)) == 0) {
                checker->payloads += 1;
            } else {
                checker->corrupt += 1;
            }
            checker->partialLength = 0;
        }
    }
}

/* A Win32 code from socknotify. */
static inline void PrintError(const char *what, DWORD errorCode)
{
    pthread_mutex_lock(&g_printLock);
    fprintf(stderr, "error: %s: Win32 code %lu\n", what, (unsigned long)errorCode);
    pthread_mutex_unlock(&g_printLock);
}

/* A failed socket call: prints errno and returns a code for the caller's errorCode. */
static inline DWORD SocketError(const char *call)
{
    int saved = errno;
    pthread_mutex_lock(&g_printLock);
    fprintf(stderr, "error: %s: %s\n", call, strerror(saved));
    pthread_mutex_unlock(&g_printLock);
    return ERROR_UNIDENTIFIED_ERROR;
}

/* ioctlsocket(socket, FIONBIO, &nonBlocking). */
static inline DWORD SetNonBlocking(SOCKET socket)
{
    int flags = fcntl(socket, F_GETFL);
    if (flags < 0 || fcntl(socket, F_SETFL, flags | O_NONBLOCK) != 0) {
        return SocketError("fcntl(O_NONBLOCK)");
    }
    return ERROR_SUCCESS;
}

static inline void DestroyServerContext(SERVER_CONTEXT *serverContext)
{
    if (serverContext->listenerSocket != INVALID_SOCKET) {
        close(serverContext->listenerSocket);
    }
    if (serverContext->ioCompletionPort != NULL) {
        CloseHandle(serverContext->ioCompletionPort);
    }
    free(serverContext);
}

/* A port and a listening TCP socket on 127.0.0.1 with a port chosen by the OS. */
static inline DWORD CreateServerContext(SERVER_CONTEXT **serverContext)
{
    DWORD errorCode;
    socklen_t addressLength;
    SERVER_CONTEXT *localContext = (SERVER_CONTEXT *)calloc(1, sizeof(*localContext));

    if (localContext == NULL) {
        return ERROR_NOT_ENOUGH_MEMORY;
    }
    localContext->listenerSocket = INVALID_SOCKET;

    localContext->ioCompletionPort = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (localContext->ioCompletionPort == NULL) {
        errorCode = GetLastError();
        goto Exit;
    }

    localContext->listenerSocket = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (localContext->listenerSocket == INVALID_SOCKET) {
        errorCode = SocketError("socket");
        goto Exit;
    }

    localContext->address.sin_family = AF_INET;
    localContext->address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    localContext->address.sin_port = htons(0);
    if (bind(localContext->listenerSocket, (struct sockaddr *)&localContext->address,
             sizeof(localContext->address)) != 0) {
        errorCode = SocketError("bind");
        goto Exit;
    }
    addressLength = sizeof(localContext->address);
    if (getsockname(localContext->listenerSocket, (struct sockaddr *)&localContext->address,
                    &addressLength) != 0) {
        errorCode = SocketError("getsockname");
        goto Exit;
    }
    if (listen(localContext->listenerSocket, SOMAXCONN) != 0) {
        errorCode = SocketError("listen");
        goto Exit;
    }

    *serverContext = localContext;
    localContext = NULL;
    errorCode = ERROR_SUCCESS;

Exit:
    if (localContext != NULL) {
        DestroyServerContext(localContext);
    }
    return errorCode;
}

/* Connects to the server, sends transmitCount payloads, then disconnects. */
static inline void *ClientThreadRoutine(void *clientContextPointer)
{
    const UINT32 payload = PAYLOAD;
    CLIENT_CONTEXT *clientContext = (CLIENT_CONTEXT *)clientContextPointer;
    SOCKET clientSocket = socket(AF_INET, clientContext->type, 0);

    if (clientSocket == INVALID_SOCKET) {
        SocketError("client socket");
        goto Exit;
    }
    if (connect(clientSocket, (struct sockaddr *)&clientContext->server,
                sizeof(clientContext->server)) != 0) {
        SocketError("client connect");
        goto Exit;
    }
    for (UINT32 index = 0; index < clientContext->transmitCount; index += 1) {
        if (send(clientSocket, &payload, sizeof(payload), 0) != (ssize_t)sizeof(payload)) {
            SocketError("client send");
            goto Exit;
        }
    }
    if (clientContext->type == SOCK_STREAM && shutdown(clientSocket, SHUT_RDWR) != 0) {
        SocketError("client shutdown");
    }

Exit:
    if (clientSocket != INVALID_SOCKET) {
        close(clientSocket);
    }
    free(clientContext);
    return NULL;
}

static inline DWORD CreateClientThread(const struct sockaddr_in *server, int type,
                                UINT32 transmitCount, pthread_t *clientThread)
{
    int rc;
    CLIENT_CONTEXT *clientContext = (CLIENT_CONTEXT *)calloc(1, sizeof(*clientContext));

    if (clientContext == NULL) {
        return ERROR_NOT_ENOUGH_MEMORY;
    }
    clientContext->transmitCount = transmitCount;
    clientContext->type = type;
    clientContext->server = *server;
    rc = pthread_create(clientThread, NULL, ClientThreadRoutine, clientContext);
    if (rc != 0) {
        free(clientContext);
        errno = rc;
        return SocketError("pthread_create");
    }
    return ERROR_SUCCESS;
}

/*
 * Removes the registration of `socket` and waits for its REMOVE entry, after which
 * nothing more comes for it. Entries for it that were queued before are dropped: use this
 * only when `socket` is the only registration on the port.
 */
static inline DWORD DeregisterAndWait(HANDLE ioCompletionPort, SOCKET socket)
{
    DWORD errorCode;
    SOCK_NOTIFY_REGISTRATION registration;
    OVERLAPPED_ENTRY notification;
    UINT32 notificationCount = 0;
    unsigned idle = 0;

    memset(&registration, 0, sizeof(registration));
    registration.operation = SOCK_NOTIFY_OP_REMOVE;
    registration.socket = socket;
    errorCode = ProcessSocketNotifications(ioCompletionPort, 1, &registration, MAX_TIMEOUT, 1,
                                           &notification, &notificationCount);
    for (;;) {
        if (errorCode == WAIT_TIMEOUT && ++idle < MAX_IDLE_TIMEOUTS) {
            errorCode = ERROR_SUCCESS;
        } else if (errorCode != ERROR_SUCCESS) {
            return errorCode;
        }
        if (registration.registrationResult != ERROR_SUCCESS) {
            return registration.registrationResult;
        }
        if (notificationCount == 1 &&
            (SocketNotificationRetrieveEvents(&notification) & SOCK_NOTIFY_EVENT_REMOVE)) {
            return ERROR_SUCCESS;
        }
        /* Not the REMOVE entry yet: dequeue only. */
        registration.operation = SOCK_NOTIFY_OP_NONE;
        errorCode = ProcessSocketNotifications(ioCompletionPort, 1, &registration, MAX_TIMEOUT,
                                               1, &notification, &notificationCount);
    }
}

#endif /* SOCKNOTIFY_EXAMPLES_COMMON_H */
