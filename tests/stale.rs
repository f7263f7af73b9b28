//! SPEC rule 7, its duplicate clause: closing the registered descriptor of a socket that
//! stays open through a duplicate must not make the port spin or deliver entries under the
//! old key forever; at most one stale report, then silence, and REMOVE through a remaining
//! descriptor works (issue 10, row e).

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use socknotify::{CompletionEntry, ErrorCause, Events, Registration, Trigger};
use util::*;

/// How long the port must stay silent, and how much of that the waiting thread may spend on
/// the CPU: a port that spins uses nearly all of it.
const SILENCE: Duration = Duration::from_millis(500);
const CPU_BUDGET: Duration = Duration::from_millis(250);

#[test]
fn rule_07_closed_registered_dup_reports_at_most_once_row_e() {
    each_backend(|b| {
        for trigger in [LEVEL, EDGE, Trigger::LEVEL, Trigger::EDGE] {
            const KEY: usize = 0xe;
            let port = port(b);
            let (mut client, server) = tcp_pair();
            let copy = server.try_clone().expect("try_clone");
            enable(&port, &server, KEY, Events::IN, trigger);
            drop(server); // the registered descriptor; the socket stays open through `copy`
            client.write_all(b"unread").unwrap();
            // At most one report under the old key, and nothing else.
            let mut stale = Vec::new();
            let window = Instant::now();
            while window.elapsed() < QUIET * 2 {
                stale.extend(dequeue(&port, QUIET));
                assert!(
                    stale.len() <= 1,
                    "{trigger:?}: entries keep coming for a closed descriptor: {stale:?}"
                );
            }
            if let Some(e) = stale.first() {
                assert_eq!((e.key, e.events()), (KEY, Events::IN), "{trigger:?}");
            }
            // Then silence, without spinning.
            let cpu = thread_cpu_time();
            let start = Instant::now();
            let mut entries = [CompletionEntry::default(); 8];
            let n = port.dequeue(&mut entries, Some(SILENCE)).expect("dequeue");
            let (waited, cpu) = (start.elapsed(), thread_cpu_time() - cpu);
            assert_eq!(n, 0, "{trigger:?}: not silent: {:?}", &entries[..n]);
            assert!(waited >= SILENCE, "{trigger:?}: the wait ended early");
            assert!(
                cpu < CPU_BUDGET,
                "{trigger:?}: the port spins: {cpu:?} of CPU in a {waited:?} wait"
            );
            // Windows: once the registered handle is closed, user mode cannot tell that the
            // duplicate names the same socket (a known limit, left for issue 12), so the
            // registration is not found through it; the silence above is what holds there.
            if cfg!(windows) {
                continue;
            }
            // REMOVE through the remaining descriptor: Ok, and one REMOVE entry, the last.
            apply_one(&port, Registration::remove(&copy))
                .unwrap_or_else(|e| panic!("{trigger:?}: REMOVE through the duplicate: {e}"));
            assert_eq!(
                drain(&port),
                [CompletionEntry::new(KEY, Events::REMOVE.bits().into(), 0)],
                "{trigger:?}: not exactly one REMOVE entry"
            );
            let err = apply_one(&port, Registration::remove(&copy)).expect_err("second REMOVE");
            assert_eq!(
                ErrorCause::of(&err),
                Some(ErrorCause::NotRegistered),
                "{err}"
            );
            client.write_all(b"more").unwrap();
            expect_nothing(&port);
            assert_eq!(port.registrations(), 0, "{trigger:?}");
            // The socket is free again: the duplicate registers afresh, with any key.
            enable(&port, &copy, KEY + 1, Events::IN, ONESHOT_LEVEL);
            expect_entry(&port, KEY + 1, Events::IN);
        }
    });
}

/// The same with the duplicate closed instead: the registered descriptor is the one left,
/// and the registration goes on as if nothing happened.
#[test]
fn rule_07_closing_a_duplicate_changes_nothing() {
    each_backend(|b| {
        const KEY: usize = 0xe1;
        let port = port(b);
        let (mut client, server) = tcp_pair();
        let copy = server.try_clone().expect("try_clone");
        enable(&port, &server, KEY, Events::IN, ONESHOT_LEVEL);
        drop(copy);
        client.write_all(b"x").unwrap();
        expect_entry(&port, KEY, Events::IN);
        expect_nothing(&port);
        enable(&port, &server, KEY, Events::IN, ONESHOT_LEVEL);
        expect_entry(&port, KEY, Events::IN);
        remove_and_wait(&port, &server, KEY);
        assert_eq!(port.registrations(), 0);
    });
}

/// Found by the fuzzer: a persistent EDGE registration whose registered descriptor was
/// closed, its socket kept open by a duplicate, reported every new arrival under the old
/// key (its kernel interest stays edge-armed). Now the first entry leads to the detection
/// and the rest are dropped.
#[test]
fn rule_07_edge_registration_of_a_closed_descriptor_goes_silent_after_one_entry() {
    each_backend(|b| {
        for trigger in [EDGE, Trigger::EDGE] {
            let port = port(b);
            let (mut client, server) = tcp_pair();
            let copy = server.try_clone().expect("try_clone");
            enable(&port, &server, 0xed, Events::IN, trigger);
            drop(server);
            let mut stale = 0;
            for round in 0..5 {
                client.write_all(&[round]).unwrap();
                stale += dequeue(&port, QUIET).len();
            }
            assert!(stale <= 1, "{trigger:?}: {stale} entries after the close");
            if cfg!(windows) {
                continue; // REMOVE through the duplicate: the known limit above
            }
            apply_one(&port, Registration::remove(&copy)).expect("REMOVE through the dup");
            expect_entry(&port, 0xed, Events::REMOVE);
        }
    });
}

/// Found by the fuzzer: when the registered descriptor's number is taken by a new socket
/// (here atomically, with `dup2`) and that socket is registered, the old registration
/// stays findable through the duplicate that keeps its socket open: REMOVE through it
/// works and gives the old key's REMOVE entry (rule 7). The new socket's registration is
/// untouched.
#[test]
#[cfg(unix)] // dup2; the Windows form of this is in tests/windows.rs
fn rule_07_remove_through_a_duplicate_after_the_number_is_registered_again() {
    use std::os::fd::AsRawFd;
    each_backend(|b| {
        let port = port(b);
        let (_peer, old) = tcp_pair();
        let dup = old.try_clone().expect("try_clone");
        enable(&port, &old, 1, Events::IN, LEVEL);
        let (mut client, new) = tcp_pair();
        let number = old.as_raw_fd();
        // SAFETY: `number` is `old`'s descriptor; dup2 atomically makes it name `new`'s
        // socket, and `old` is forgotten so that it does not close the number twice.
        assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), number) }, number);
        std::mem::forget(old);
        // SAFETY: the number now names a descriptor of `new`'s socket, owned here.
        let renumbered =
            unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(number) };
        enable(&port, &renumbered, 2, Events::IN, LEVEL);
        apply_one(&port, Registration::remove(&dup)).expect("REMOVE through the duplicate");
        expect_entry(&port, 1, Events::REMOVE);
        client.write_all(b"x").unwrap();
        expect_entry(&port, 2, Events::IN);
        drop(new);
    });
}
