//! The Win32 error codes this interface returns, with their Windows values, and how core
//! errors map to them.
//!
//! | core error | code |
//! |---|---|
//! | `InvalidInput` for a descriptor that is not an open socket | `WSAENOTSOCK` |
//! | other `InvalidInput` (bits, key change, ...) | `ERROR_INVALID_PARAMETER` |
//! | `NotFound` (no such registration) | `ERROR_NOT_FOUND` |
//! | `AlreadyExists` (registered on another port) | `ERROR_ALREADY_EXISTS` |
//! | port closed ([`is_port_closed`](socknotify_core::is_port_closed)) | `ERROR_INVALID_HANDLE`; `ERROR_ABANDONED_WAIT_0` for a wait it ended |
//! | `Unsupported` | `ERROR_NOT_SUPPORTED` |
//! | `OutOfMemory`, `ENOMEM` | `ERROR_NOT_ENOUGH_MEMORY` |
//! | `ENOSPC` (epoll watch limit) | `ERROR_NO_SYSTEM_RESOURCES` |
//! | `EMFILE`, `ENFILE` | `ERROR_TOO_MANY_OPEN_FILES` |
//! | `EPERM`, `EACCES` | `ERROR_ACCESS_DENIED` |
//! | `EBADF` | `ERROR_INVALID_HANDLE` |
//! | `EINVAL` | `ERROR_INVALID_PARAMETER` |
//! | anything else | `ERROR_UNIDENTIFIED_ERROR` |

use std::io;

use crate::types::Dword;

/// `ERROR_SUCCESS` (0).
pub const ERROR_SUCCESS: Dword = 0;
/// `ERROR_INVALID_HANDLE` (6): not a live port handle, or the port was closed.
pub const ERROR_INVALID_HANDLE: Dword = 6;
/// `ERROR_ACCESS_DENIED` (5).
pub const ERROR_ACCESS_DENIED: Dword = 5;
/// `ERROR_TOO_MANY_OPEN_FILES` (4): no descriptor left for a new port.
pub const ERROR_TOO_MANY_OPEN_FILES: Dword = 4;
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
/// `WSAEINVAL` (10022).
pub const WSAEINVAL: Dword = 10022;
/// `WSAEWOULDBLOCK` (10035).
pub const WSAEWOULDBLOCK: Dword = 10035;
/// `WSAENOTSOCK` (10038): the descriptor is not an open socket.
pub const WSAENOTSOCK: Dword = 10038;

/// The code for a core error: the table in the [module documentation](self).
///
/// A closed port maps to `ERROR_INVALID_HANDLE`; callers that were waiting use
/// `ERROR_ABANDONED_WAIT_0` instead. `InvalidInput` maps to `ERROR_INVALID_PARAMETER`;
/// [`registration_code`] refines it to `WSAENOTSOCK`.
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

/// The `registrationResult` for a registration of `socket` that failed with `err`: as
/// [`code`], except that invalid input on a descriptor that is not an open socket is
/// `WSAENOTSOCK`, as Winsock reports it.
///
/// The core does not say which check failed, so a registration with bad bits *and* a bad
/// descriptor reports `WSAENOTSOCK` too.
#[must_use]
pub fn registration_code(socket: libc::c_int, err: &io::Error) -> Dword {
    match code(err) {
        ERROR_INVALID_PARAMETER if !is_open_socket(socket) => WSAENOTSOCK,
        other => other,
    }
}

fn is_open_socket(fd: libc::c_int) -> bool {
    if fd < 0 {
        return false;
    }
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stat` is valid for writes of one `struct stat`; fstat only writes it, and an
    // invalid descriptor makes it fail with EBADF, not misbehave.
    let rc = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so it filled in the whole structure.
    let stat = unsafe { stat.assume_init() };
    stat.st_mode & libc::S_IFMT == libc::S_IFSOCK
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
    fn invalid_input_on_a_non_socket_is_wsaenotsock() {
        let invalid = io::Error::new(io::ErrorKind::InvalidInput, "x");
        assert_eq!(registration_code(-1, &invalid), WSAENOTSOCK);
        // An open descriptor that is not a socket.
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        assert_eq!(registration_code(fd, &invalid), WSAENOTSOCK);
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        assert_eq!(registration_code(fd, &invalid), ERROR_INVALID_PARAMETER);
        let missing = io::Error::new(io::ErrorKind::NotFound, "x");
        assert_eq!(registration_code(fd, &missing), ERROR_NOT_FOUND);
    }
}
