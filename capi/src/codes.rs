//! The Win32 and Winsock error codes this interface returns, with their Windows values, and
//! how core errors map to them.
//!
//! Calls (`CreateIoCompletionPort`, `GetQueuedCompletionStatusEx`, ...) map through
//! [`code`]; each `registrationResult` through [`registration_code`], from the cause the
//! core gives ([`ErrorCause`]) and the operating-system code it keeps (SPEC rule 22):
//!
//! | cause | `registrationResult` |
//! |---|---|
//! | `InvalidFlags` (bits, more than one operation), `KeyChange` | `WSAEINVAL` |
//! | `BadDescriptor` (closed or negative descriptor, `INVALID_SOCKET`; `EBADF`) | `WSAEBADF` |
//! | `NotSocket` (a pipe, a file; `ENOTSOCK`) | `WSAENOTSOCK` |
//! | `NotRegistered` (DISABLE/REMOVE without a registration) | `ERROR_NOT_FOUND` |
//! | `RegisteredElsewhere` (another port) | `ERROR_ALREADY_EXISTS` |
//! | `PortClosed` | `ERROR_INVALID_HANDLE` |
//! | `Os` | as [`code`]: `ERROR_NOT_ENOUGH_MEMORY`, `ERROR_TOO_MANY_OPEN_FILES`, ... |
//!
//! [`errno_to_winsock`] is the table the compatibility header's `WSAGetLastError` uses for
//! POSIX calls (`EAGAIN` is `WSAEWOULDBLOCK`, ...).

use std::io;

use socknotify_core::ErrorCause;

use crate::types::Dword;

/// `ERROR_SUCCESS` (0).
pub const ERROR_SUCCESS: Dword = 0;
/// `ERROR_TOO_MANY_OPEN_FILES` (4): no descriptor left for a new port.
pub const ERROR_TOO_MANY_OPEN_FILES: Dword = 4;
/// `ERROR_ACCESS_DENIED` (5).
pub const ERROR_ACCESS_DENIED: Dword = 5;
/// `ERROR_INVALID_HANDLE` (6): not a live handle, or the port was closed.
pub const ERROR_INVALID_HANDLE: Dword = 6;
/// `ERROR_NOT_ENOUGH_MEMORY` (8).
pub const ERROR_NOT_ENOUGH_MEMORY: Dword = 8;
/// `ERROR_NOT_SUPPORTED` (50): associating a file handle with a port, for example.
pub const ERROR_NOT_SUPPORTED: Dword = 50;
/// `ERROR_INVALID_PARAMETER` (87).
pub const ERROR_INVALID_PARAMETER: Dword = 87;
/// `ERROR_ALREADY_EXISTS` (183): the socket is registered on another port.
pub const ERROR_ALREADY_EXISTS: Dword = 183;
/// `WAIT_TIMEOUT` (258): nothing was dequeued within the timeout.
pub const WAIT_TIMEOUT: Dword = 258;
/// `ERROR_ABANDONED_WAIT_0` (735): the port was closed while the call waited on it.
pub const ERROR_ABANDONED_WAIT_0: Dword = 735;
/// `ERROR_NOT_FOUND` (1168): DISABLE or REMOVE of a socket with no registration.
pub const ERROR_NOT_FOUND: Dword = 1168;
/// `ERROR_UNIDENTIFIED_ERROR` (1287): an operating-system error with no Win32 equivalent.
pub const ERROR_UNIDENTIFIED_ERROR: Dword = 1287;
/// `ERROR_INTERNAL_ERROR` (1359): a bug in socknotify (a caught panic).
pub const ERROR_INTERNAL_ERROR: Dword = 1359;
/// `ERROR_NO_SYSTEM_RESOURCES` (1450): a kernel limit, such as the epoll watch limit.
pub const ERROR_NO_SYSTEM_RESOURCES: Dword = 1450;
/// `ERROR_TIMEOUT` (1460): declared for Windows code that tests for it; this library
/// reports timeouts as `WAIT_TIMEOUT`, as Windows' completion port functions do.
pub const ERROR_TIMEOUT: Dword = 1460;
/// `WSA_INVALID_HANDLE` (6): `ERROR_INVALID_HANDLE` under its Winsock name.
pub const WSA_INVALID_HANDLE: Dword = ERROR_INVALID_HANDLE;
/// `WSA_NOT_ENOUGH_MEMORY` (8).
pub const WSA_NOT_ENOUGH_MEMORY: Dword = ERROR_NOT_ENOUGH_MEMORY;
/// `WSA_INVALID_PARAMETER` (87): `ERROR_INVALID_PARAMETER` under its Winsock name.
pub const WSA_INVALID_PARAMETER: Dword = ERROR_INVALID_PARAMETER;
/// `WSA_WAIT_TIMEOUT` (258): `WAIT_TIMEOUT` under its Winsock name.
pub const WSA_WAIT_TIMEOUT: Dword = WAIT_TIMEOUT;
/// `WSAEINTR` (10004).
pub const WSAEINTR: Dword = 10004;
/// `WSAEBADF` (10009): in `registrationResult`, the descriptor is not open.
pub const WSAEBADF: Dword = 10009;
/// `WSAEACCES` (10013).
pub const WSAEACCES: Dword = 10013;
/// `WSAEFAULT` (10014).
pub const WSAEFAULT: Dword = 10014;
/// `WSAEINVAL` (10022): in `registrationResult`, bad bits or a changed completion key.
pub const WSAEINVAL: Dword = 10022;
/// `WSAEMFILE` (10024).
pub const WSAEMFILE: Dword = 10024;
/// `WSAEWOULDBLOCK` (10035).
pub const WSAEWOULDBLOCK: Dword = 10035;
/// `WSAEINPROGRESS` (10036).
pub const WSAEINPROGRESS: Dword = 10036;
/// `WSAEALREADY` (10037).
pub const WSAEALREADY: Dword = 10037;
/// `WSAENOTSOCK` (10038): the descriptor is open but is not a socket.
pub const WSAENOTSOCK: Dword = 10038;
/// `WSAEDESTADDRREQ` (10039).
pub const WSAEDESTADDRREQ: Dword = 10039;
/// `WSAEMSGSIZE` (10040).
pub const WSAEMSGSIZE: Dword = 10040;
/// `WSAEPROTOTYPE` (10041).
pub const WSAEPROTOTYPE: Dword = 10041;
/// `WSAENOPROTOOPT` (10042).
pub const WSAENOPROTOOPT: Dword = 10042;
/// `WSAEPROTONOSUPPORT` (10043).
pub const WSAEPROTONOSUPPORT: Dword = 10043;
/// `WSAESOCKTNOSUPPORT` (10044).
pub const WSAESOCKTNOSUPPORT: Dword = 10044;
/// `WSAEOPNOTSUPP` (10045).
pub const WSAEOPNOTSUPP: Dword = 10045;
/// `WSAEPFNOSUPPORT` (10046).
pub const WSAEPFNOSUPPORT: Dword = 10046;
/// `WSAEAFNOSUPPORT` (10047).
pub const WSAEAFNOSUPPORT: Dword = 10047;
/// `WSAEADDRINUSE` (10048).
pub const WSAEADDRINUSE: Dword = 10048;
/// `WSAEADDRNOTAVAIL` (10049).
pub const WSAEADDRNOTAVAIL: Dword = 10049;
/// `WSAENETDOWN` (10050).
pub const WSAENETDOWN: Dword = 10050;
/// `WSAENETUNREACH` (10051).
pub const WSAENETUNREACH: Dword = 10051;
/// `WSAENETRESET` (10052).
pub const WSAENETRESET: Dword = 10052;
/// `WSAECONNABORTED` (10053).
pub const WSAECONNABORTED: Dword = 10053;
/// `WSAECONNRESET` (10054).
pub const WSAECONNRESET: Dword = 10054;
/// `WSAENOBUFS` (10055).
pub const WSAENOBUFS: Dword = 10055;
/// `WSAEISCONN` (10056).
pub const WSAEISCONN: Dword = 10056;
/// `WSAENOTCONN` (10057).
pub const WSAENOTCONN: Dword = 10057;
/// `WSAESHUTDOWN` (10058).
pub const WSAESHUTDOWN: Dword = 10058;
/// `WSAETOOMANYREFS` (10059).
pub const WSAETOOMANYREFS: Dword = 10059;
/// `WSAETIMEDOUT` (10060).
pub const WSAETIMEDOUT: Dword = 10060;
/// `WSAECONNREFUSED` (10061).
pub const WSAECONNREFUSED: Dword = 10061;
/// `WSAELOOP` (10062).
pub const WSAELOOP: Dword = 10062;
/// `WSAENAMETOOLONG` (10063).
pub const WSAENAMETOOLONG: Dword = 10063;
/// `WSAEHOSTDOWN` (10064).
pub const WSAEHOSTDOWN: Dword = 10064;
/// `WSAEHOSTUNREACH` (10065).
pub const WSAEHOSTUNREACH: Dword = 10065;
/// `WSAVERNOTSUPPORTED` (10092): `WSAStartup` with a version this library does not offer.
pub const WSAVERNOTSUPPORTED: Dword = 10092;

/// The code for a failed call (not a registration): a closed port is
/// `ERROR_INVALID_HANDLE` (callers that were waiting use `ERROR_ABANDONED_WAIT_0`), an
/// operating-system error its Win32 code.
#[must_use]
pub fn code(err: &io::Error) -> Dword {
    if socknotify_core::is_port_closed(err) {
        return ERROR_INVALID_HANDLE;
    }
    if let Some(errno) = err.raw_os_error() {
        return match errno {
            libc::ENOMEM => ERROR_NOT_ENOUGH_MEMORY,
            libc::ENOSPC => ERROR_NO_SYSTEM_RESOURCES,
            libc::EMFILE | libc::ENFILE => ERROR_TOO_MANY_OPEN_FILES,
            libc::EPERM | libc::EACCES => ERROR_ACCESS_DENIED,
            libc::EBADF => ERROR_INVALID_HANDLE,
            libc::EINVAL => ERROR_INVALID_PARAMETER,
            _ => ERROR_UNIDENTIFIED_ERROR,
        };
    }
    match err.kind() {
        io::ErrorKind::InvalidInput => ERROR_INVALID_PARAMETER,
        io::ErrorKind::NotFound => ERROR_NOT_FOUND,
        io::ErrorKind::AlreadyExists => ERROR_ALREADY_EXISTS,
        io::ErrorKind::Unsupported => ERROR_NOT_SUPPORTED,
        io::ErrorKind::OutOfMemory => ERROR_NOT_ENOUGH_MEMORY,
        io::ErrorKind::TimedOut => WAIT_TIMEOUT,
        io::ErrorKind::WouldBlock => WSAEWOULDBLOCK,
        _ => ERROR_UNIDENTIFIED_ERROR,
    }
}

/// The `registrationResult` for a registration that failed with `err`: the table in the
/// [module documentation](self), from the core's [`ErrorCause`].
#[must_use]
pub fn registration_code(err: &io::Error) -> Dword {
    match ErrorCause::of(err) {
        Some(ErrorCause::InvalidFlags | ErrorCause::KeyChange) => WSAEINVAL,
        Some(ErrorCause::BadDescriptor) => WSAEBADF,
        Some(ErrorCause::NotSocket) => WSAENOTSOCK,
        Some(ErrorCause::NotRegistered) => ERROR_NOT_FOUND,
        Some(ErrorCause::RegisteredElsewhere) => ERROR_ALREADY_EXISTS,
        Some(ErrorCause::PortClosed) => ERROR_INVALID_HANDLE,
        // Read before `process` saw it: cannot happen for a registration we processed.
        Some(ErrorCause::NotProcessed) => ERROR_INTERNAL_ERROR,
        _ => code(err),
    }
}

/// The Winsock code for an `errno` value that a socket call left: `EAGAIN` is
/// `WSAEWOULDBLOCK` (and so is `EINPROGRESS`, which is what Winsock reports for a
/// non-blocking `connect`), `ECONNRESET` is `WSAECONNRESET`, ...; `ENOMEM` is
/// `WSA_NOT_ENOUGH_MEMORY`; a value with no Winsock equivalent is
/// `ERROR_UNIDENTIFIED_ERROR`.
#[must_use]
pub fn errno_to_winsock(errno: libc::c_int) -> Dword {
    match errno {
        0 => ERROR_SUCCESS,
        libc::EINTR => WSAEINTR,
        libc::EBADF => WSAEBADF,
        libc::EACCES | libc::EPERM => WSAEACCES,
        libc::EFAULT => WSAEFAULT,
        libc::EINVAL => WSAEINVAL,
        libc::EMFILE | libc::ENFILE => WSAEMFILE,
        // EWOULDBLOCK is EAGAIN on Linux.
        libc::EAGAIN | libc::EINPROGRESS => WSAEWOULDBLOCK,
        libc::EALREADY => WSAEALREADY,
        libc::ENOTSOCK => WSAENOTSOCK,
        libc::EDESTADDRREQ => WSAEDESTADDRREQ,
        libc::EMSGSIZE => WSAEMSGSIZE,
        libc::EPROTOTYPE => WSAEPROTOTYPE,
        libc::ENOPROTOOPT => WSAENOPROTOOPT,
        libc::EPROTONOSUPPORT => WSAEPROTONOSUPPORT,
        libc::ESOCKTNOSUPPORT => WSAESOCKTNOSUPPORT,
        // EOPNOTSUPP is ENOTSUP on Linux.
        libc::EOPNOTSUPP => WSAEOPNOTSUPP,
        libc::EPFNOSUPPORT => WSAEPFNOSUPPORT,
        libc::EAFNOSUPPORT => WSAEAFNOSUPPORT,
        libc::EADDRINUSE => WSAEADDRINUSE,
        libc::EADDRNOTAVAIL => WSAEADDRNOTAVAIL,
        libc::ENETDOWN => WSAENETDOWN,
        libc::ENETUNREACH => WSAENETUNREACH,
        libc::ENETRESET => WSAENETRESET,
        libc::ECONNABORTED => WSAECONNABORTED,
        libc::ECONNRESET => WSAECONNRESET,
        libc::ENOBUFS => WSAENOBUFS,
        libc::EISCONN => WSAEISCONN,
        libc::ENOTCONN => WSAENOTCONN,
        // A send after shutdown(SD_SEND); Linux also says EPIPE when the peer reset.
        libc::ESHUTDOWN | libc::EPIPE => WSAESHUTDOWN,
        libc::ETOOMANYREFS => WSAETOOMANYREFS,
        libc::ETIMEDOUT => WSAETIMEDOUT,
        libc::ECONNREFUSED => WSAECONNREFUSED,
        libc::ELOOP => WSAELOOP,
        libc::ENAMETOOLONG => WSAENAMETOOLONG,
        libc::EHOSTDOWN => WSAEHOSTDOWN,
        libc::EHOSTUNREACH => WSAEHOSTUNREACH,
        libc::ENOMEM => WSA_NOT_ENOUGH_MEMORY,
        _ => ERROR_UNIDENTIFIED_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_their_codes() {
        let e = |kind| io::Error::new(kind, "x");
        assert_eq!(
            code(&e(io::ErrorKind::InvalidInput)),
            ERROR_INVALID_PARAMETER
        );
        assert_eq!(code(&e(io::ErrorKind::NotFound)), ERROR_NOT_FOUND);
        assert_eq!(code(&e(io::ErrorKind::AlreadyExists)), ERROR_ALREADY_EXISTS);
        assert_eq!(code(&e(io::ErrorKind::Unsupported)), ERROR_NOT_SUPPORTED);
        assert_eq!(code(&e(io::ErrorKind::Other)), ERROR_UNIDENTIFIED_ERROR);
        let os = io::Error::from_raw_os_error;
        assert_eq!(code(&os(libc::ENOMEM)), ERROR_NOT_ENOUGH_MEMORY);
        assert_eq!(code(&os(libc::EMFILE)), ERROR_TOO_MANY_OPEN_FILES);
        assert_eq!(code(&os(libc::ENOSPC)), ERROR_NO_SYSTEM_RESOURCES);
        assert_eq!(code(&os(libc::EIO)), ERROR_UNIDENTIFIED_ERROR);
    }

    #[test]
    fn os_codes_of_registrations_keep_their_cause() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(registration_code(&os(libc::EBADF)), WSAEBADF);
        assert_eq!(registration_code(&os(libc::ENOTSOCK)), WSAENOTSOCK);
        assert_eq!(
            registration_code(&os(libc::EMFILE)),
            ERROR_TOO_MANY_OPEN_FILES
        );
    }

    #[test]
    fn errno_maps_to_winsock() {
        assert_eq!(errno_to_winsock(libc::EAGAIN), WSAEWOULDBLOCK);
        assert_eq!(errno_to_winsock(libc::EWOULDBLOCK), WSAEWOULDBLOCK);
        assert_eq!(errno_to_winsock(libc::EINPROGRESS), WSAEWOULDBLOCK);
        assert_eq!(errno_to_winsock(libc::ECONNREFUSED), WSAECONNREFUSED);
        assert_eq!(errno_to_winsock(libc::ENOTSOCK), WSAENOTSOCK);
        assert_eq!(errno_to_winsock(libc::EIO), ERROR_UNIDENTIFIED_ERROR);
    }
}
