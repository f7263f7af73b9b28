//! SPEC rule 22: errors keep the operating system's code where there is one, so that a
//! caller can tell a closed descriptor from a non-socket from bad flags; and a failed ENABLE,
//! DISABLE or REMOVE leaves the registration exactly as it was.

mod util;

use std::io::{ErrorKind, Write};

use socknotify::{ErrorCause, Events, Operation, Registration, Trigger};
use util::*;

#[test]
fn rule_22_a_closed_descriptor_is_ebadf() {
    each_backend(|b| {
        let port = port(b);
        // Numbers no descriptor or handle has (closing one of ours would race with other
        // threads).
        for fd in closed_sockets() {
            for trigger in [LEVEL, ONESHOT_EDGE] {
                let r = Registration::from_raw(fd, 1, Events::IN, Operation::Enable, trigger);
                let err = apply_one(&port, r).expect_err("registered a closed descriptor");
                assert_eq!(err.raw_os_error(), Some(EBADF), "{fd}: {err}");
                assert_eq!(
                    ErrorCause::of(&err),
                    Some(ErrorCause::BadDescriptor),
                    "{fd}"
                );
            }
        }
        assert_eq!(port.registrations(), 0);
    });
}

/// A pipe's two ends (`pipe2`).
#[cfg(unix)]
#[test]
fn rule_22_a_pipe_is_enotsock() {
    use std::os::fd::{FromRawFd, OwnedFd};
    each_backend(|b| {
        let port = port(b);
        let mut fds = [-1; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both are new descriptors that nothing else owns.
        let ends = fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
        for end in &ends {
            let err = apply_one(&port, Registration::enable(end, 1, Events::IN, LEVEL))
                .expect_err("registered a pipe");
            assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK), "{err}");
            assert_eq!(ErrorCause::of(&err), Some(ErrorCause::NotSocket), "{err}");
        }
        assert_eq!(port.registrations(), 0);
    });
}

/// A pipe's two ends (`CreatePipe`): open handles that are not sockets.
#[cfg(windows)]
#[test]
fn rule_22_a_pipe_is_enotsock() {
    use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
    use windows_sys::Win32::System::Pipes::CreatePipe;
    each_backend(|b| {
        let port = port(b);
        let (mut read, mut write) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: both out-pointers are live locals; no security attributes, the default
        // buffer size.
        let ok = unsafe { CreatePipe(&mut read, &mut write, std::ptr::null(), 0) };
        assert_ne!(ok, 0, "CreatePipe: {}", std::io::Error::last_os_error());
        // SAFETY: both are new handles (checked above) that nothing else owns.
        let ends = [read, write].map(|h| unsafe { OwnedHandle::from_raw_handle(h) });
        for end in &ends {
            let raw = end.as_raw_handle() as socknotify::RawSocketLike;
            let r = Registration::from_raw(raw, 1, Events::IN, Operation::Enable, LEVEL);
            let err = apply_one(&port, r).expect_err("registered a pipe");
            assert_eq!(err.raw_os_error(), Some(ENOTSOCK), "{err}");
            assert_eq!(ErrorCause::of(&err), Some(ErrorCause::NotSocket), "{err}");
        }
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn rule_22_bad_flags_are_invalid_input_without_an_os_code() {
    each_backend(|b| {
        let port = port(b);
        let (_client, server) = tcp_pair();
        let fd = raw(&server);
        for r in [
            Registration::enable(&server, 1, Events::IN, Trigger::all()),
            Registration::enable(&server, 1, Events::IN, Trigger::ONESHOT),
            Registration::from_bits(fd, 1, 0x01, 0x03, LEVEL.bits()),
            Registration::from_bits(fd, 1, 0x40, 0x01, LEVEL.bits()),
            Registration::from_bits(fd, 1, 0x01, 0x01, 0x10 | LEVEL.bits()),
        ] {
            let err = apply_one(&port, r).expect_err("bad flags accepted");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
            assert_eq!(err.raw_os_error(), None, "{err}");
            assert_eq!(
                ErrorCause::of(&err),
                Some(ErrorCause::InvalidFlags),
                "{err}"
            );
        }
        assert_eq!(port.registrations(), 0);
    });
}

#[test]
fn rule_22_failed_operations_leave_the_registration_as_it_was() {
    each_backend(|b| {
        const KEY: usize = 22;
        let port = port(b);
        let (mut client, server) = tcp_pair();
        let fd = raw(&server);
        // Persistent level on IN; the socket is writable too, so an OUT that leaked into
        // the filter would show.
        enable(&port, &server, KEY, Events::IN, LEVEL);
        client.write_all(b"unread").unwrap();
        expect_entry(&port, KEY, Events::IN);
        let failing = [
            // ENABLE with another key (and another filter and trigger): a key change.
            (
                Registration::enable(&server, KEY + 1, Events::OUT, ONESHOT_EDGE),
                ErrorCause::KeyChange,
            ),
            // ENABLE, DISABLE and REMOVE with bad bits.
            (
                Registration::from_bits(fd, KEY, 0x02, 0x01, 0x80 | LEVEL.bits()),
                ErrorCause::InvalidFlags,
            ),
            (
                Registration::from_bits(fd, KEY, 0x100, 0x02, 0),
                ErrorCause::InvalidFlags,
            ),
            (
                Registration::from_bits(fd, KEY, 0, 0x02, 0x80),
                ErrorCause::InvalidFlags,
            ),
            (
                Registration::from_bits(fd, KEY, 0, 0x04, 0x80),
                ErrorCause::InvalidFlags,
            ),
            (
                Registration::from_bits(fd, KEY, 0, 0x06, 0),
                ErrorCause::InvalidFlags,
            ),
        ];
        for (registration, cause) in failing {
            let what = format!("{registration:?}");
            let err = apply_one(&port, registration).expect_err(&what);
            assert_eq!(ErrorCause::of(&err), Some(cause), "{what}: {err}");
            // As before: registered, same key, IN only, persistent level.
            assert_eq!(port.registrations(), 1, "{what}");
            expect_entry(&port, KEY, Events::IN);
            expect_entry(&port, KEY, Events::IN);
        }
        // And it still ends the ordinary way, with one REMOVE entry under its key.
        remove_and_wait(&port, &server, KEY);
        assert_eq!(port.registrations(), 0);
    });
}
