//! The `epoll(7)` backend.
//!
//! Interest: `IN` → `EPOLLIN`, `OUT` → `EPOLLOUT`, `HANGUP` → `EPOLLRDHUP` (the kernel adds
//! `EPOLLERR | EPOLLHUP` itself); `EPOLLONESHOT` for one-shot interest, `EPOLLET` for edge
//! interest. [`Op::Check`] is an `EPOLL_CTL_ADD` that must fail with `EEXIST`: the item
//! for this file and number is still there (an add that succeeds is undone at once).
//!
//! A change whose `epoll_ctl` fails with `ENOENT` or `EBADF` is [`ChangeError::Gone`]: epoll
//! keys its items by open file *and* descriptor number, so `EPOLL_CTL_MOD` on a number that
//! was closed (`EBADF`) or reused by another file (`ENOENT`) cannot touch the old item.
//! That makes every change an identity check for free.
//!
//! Waking: an `eventfd` registered edge-triggered with [`WAKE_TOKEN`]. Every write to it is
//! a new edge, and epoll wakes its waiters exclusively, so one `wake` releases one thread.
//! The counter is never read: at one write per wake it cannot reach its limit (2^64 - 2).
//! epoll queues its waiters most recent first, so the most recent waiter is the one woken
//! (rule 18's LIFO, for free).
//!
//! # References
//! - [`epoll_ctl(2)`](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html)
//! - [`epoll_wait(2)`](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)
//! - [`eventfd(2)`](https://man7.org/linux/man-pages/man2/eventfd.2.html)

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{syscall, Change, ChangeError, Interest, Op, RawEvent, Readiness, WAKE_TOKEN};
use crate::event::Events;

/// An epoll instance and its waker.
#[derive(Debug)]
pub(crate) struct Selector {
    epoll: OwnedFd,
    waker: OwnedFd,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        // SAFETY: plain syscall with a flags argument.
        let epoll = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: `epoll_create1` returned a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: plain syscall with an initial value and flags.
        let waker = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
        // SAFETY: `eventfd` returned a new descriptor that nothing else owns.
        let waker = unsafe { OwnedFd::from_raw_fd(waker) };
        let selector = Selector { epoll, waker };
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: WAKE_TOKEN,
        };
        ctl(
            selector.fd(),
            libc::EPOLL_CTL_ADD,
            selector.waker.as_raw_fd(),
            &mut event,
        )?;
        Ok(selector)
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Applies each change with its own `epoll_ctl`, up to the first that fails.
    pub(crate) fn apply(&self, changes: &mut [Change]) {
        let mut failed = false;
        for change in changes {
            change.result = if failed {
                Err(ChangeError::NotApplied)
            } else {
                self.apply_one(change)
            };
            failed |= change.stops();
        }
    }

    /// Applies one change directly, following an `ADD` that finds a stale item with `MOD`.
    #[inline(always)]
    pub(crate) fn apply_one(&self, change: &Change) -> Result<(), ChangeError> {
        let (op, bits) = epoll_op(change.op);
        let mut event = libc::epoll_event {
            events: bits,
            u64: change.token,
        };
        match ctl(self.fd(), op, change.socket, &mut event) {
            Ok(()) => settle_ok(self, change),
            Err(e) => settle_error(self, change, &e),
        }
    }

    /// Replaces `events` with what the kernel reports (at most `max`, 1024 at most).
    pub(crate) fn wait(
        &self,
        events: &mut Vec<libc::epoll_event>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let max = max.clamp(1, 1024);
        events.clear();
        events.reserve(max);
        // SAFETY: the pointer is valid for `max` writes (just reserved); the kernel writes
        // `n <= max` initialised entries, and the length is set to `n` only after it
        // returns successfully.
        let n = syscall!(epoll_wait(
            self.fd(),
            events.as_mut_ptr(),
            max as libc::c_int,
            timeout_ms(timeout),
        ))?;
        // SAFETY: the kernel initialised the first `n` entries (see above).
        unsafe { events.set_len(n as usize) };
        Ok(())
    }

    /// Whether this epoll instance still has an item for descriptor number `fd` whose open
    /// file is not the one `fd` names now: a registered socket whose number was closed and
    /// reused, kept open by a duplicate (epoll drops an item only when its file is
    /// released). `None` where the kernel cannot say (`kcmp` missing or forbidden).
    ///
    /// # References
    /// - [`kcmp(2)`](https://man7.org/linux/man-pages/man2/kcmp.2.html), `KCMP_EPOLL_TFD`
    pub(crate) fn holds_other_file(&self, fd: RawFd) -> Option<bool> {
        /// `struct kcmp_epoll_slot` of `<linux/kcmp.h>`.
        #[repr(C)]
        struct Slot {
            efd: u32,
            tfd: u32,
            toff: u32,
        }
        const KCMP_EPOLL_TFD: libc::c_long = 7;
        let slot = Slot {
            efd: self.fd() as u32,
            tfd: fd as u32,
            toff: 0,
        };
        // SAFETY: `kcmp` reads the `kcmp_epoll_slot` behind the last argument, which lives
        // for the call; the other arguments are plain integers.
        let pid = unsafe { libc::getpid() };
        // SAFETY: as above.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_kcmp,
                pid,
                pid,
                KCMP_EPOLL_TFD,
                fd as libc::c_long,
                &slot as *const Slot,
            )
        };
        match rc {
            0 => Some(false),
            rc if rc > 0 => Some(true),
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENOENT) => Some(false),
                _ => None,
            },
        }
    }

    pub(crate) fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to the eventfd this selector owns.
        match syscall!(write(
            self.waker.as_raw_fd(),
            (&one as *const u64).cast(),
            std::mem::size_of::<u64>(),
        )) {
            Ok(_) => Ok(()),
            // The counter is full, so a wake is pending anyway.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The `epoll_ctl` operation and interest bits of a change.
pub(crate) fn epoll_op(op: Op) -> (libc::c_int, u32) {
    match op {
        Op::Add(i) => (libc::EPOLL_CTL_ADD, interest(i)),
        Op::Arm(i) => (libc::EPOLL_CTL_MOD, interest(i)),
        // A one-shot interest in nothing: the kernel may still report ERR or HUP once,
        // which the registry drops because the registration is not armed.
        Op::Disarm => (libc::EPOLL_CTL_MOD, libc::EPOLLONESHOT as u32),
        Op::Delete => (libc::EPOLL_CTL_DEL, 0),
        Op::Check => (libc::EPOLL_CTL_ADD, libc::EPOLLONESHOT as u32),
    }
}

/// The result of a change whose `epoll_ctl` succeeded: a check's add means the number names
/// another file now, whose new item goes again.
#[inline]
pub(crate) fn settle_ok(selector: &Selector, change: &Change) -> Result<(), ChangeError> {
    if change.op == Op::Check {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        let _ = ctl(
            selector.fd(),
            libc::EPOLL_CTL_DEL,
            change.socket,
            &mut event,
        );
        return Err(ChangeError::Gone);
    }
    Ok(())
}

/// The result of a change whose `epoll_ctl` failed with `err`: an `ADD` that finds a stale
/// item of the same file and number (a socket whose registration ended while a duplicate
/// kept it open, then given its number back) takes the item over with `MOD`.
#[cold]
#[inline(never)]
pub(crate) fn settle_error(
    selector: &Selector,
    change: &Change,
    err: &io::Error,
) -> Result<(), ChangeError> {
    match (change.op, err.raw_os_error()) {
        (Op::Add(i), Some(libc::EEXIST)) => {
            selector.apply_one(&Change::new(change.socket, change.token, Op::Arm(i)))
        }
        (Op::Check, Some(libc::EEXIST)) => Ok(()),
        (_, code) => Err(change_error(code)),
    }
}

/// The backend-neutral form of an `epoll_ctl` error.
pub(crate) fn change_error(code: Option<i32>) -> ChangeError {
    match code {
        Some(libc::ENOENT | libc::EBADF) => ChangeError::Gone,
        Some(code) => ChangeError::Os(code),
        None => ChangeError::Os(libc::EIO),
    }
}

#[inline]
fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, event: &mut libc::epoll_event) -> io::Result<()> {
    // SAFETY: `event` is a valid epoll_event for the duration of the call; any `fd` value is
    // acceptable (a bad one gives EBADF, ENOENT or EPERM).
    syscall!(epoll_ctl(epfd, op, fd, event)).map(drop)
}

/// One kernel report in backend-neutral form.
pub(crate) fn report(event: &libc::epoll_event) -> RawEvent {
    RawEvent {
        token: event.u64,
        readiness: readiness(event.events),
    }
}

/// The epoll interest bits for an interest.
pub(crate) fn interest(interest: Interest) -> u32 {
    let filter = interest.filter;
    let mut bits = 0;
    if filter.contains(Events::IN) {
        bits |= libc::EPOLLIN;
    }
    if filter.contains(Events::OUT) {
        bits |= libc::EPOLLOUT;
    }
    if filter.contains(Events::HANGUP) {
        bits |= libc::EPOLLRDHUP;
    }
    if interest.edge {
        bits |= libc::EPOLLET;
    }
    if interest.oneshot {
        bits |= libc::EPOLLONESHOT;
    }
    bits as u32
}

fn readiness(bits: u32) -> Readiness {
    // One table lookup for the bits below `EPOLLRDHUP`, whose bit is moved by a shift.
    const LOW: u32 = 0x20;
    const _: () = assert!(
        ((libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32) < LOW
            && libc::EPOLLRDHUP as u32 >= LOW
    );
    const TABLE: [u8; LOW as usize] = {
        let mut table = [0; LOW as usize];
        let mut bits = 0;
        while bits < LOW {
            table[bits as usize] = readiness_of(bits);
            bits += 1;
        }
        table
    };
    let rdhup = libc::EPOLLRDHUP as u32;
    let hangup = (bits & rdhup) >> (rdhup.trailing_zeros() - Readiness::HANGUP.trailing_zeros());
    Readiness::new(TABLE[(bits % LOW) as usize] | hangup as u8)
}

/// The readiness of epoll `bits`, one condition at a time.
const fn readiness_of(bits: u32) -> u8 {
    let mut r = 0;
    if bits & libc::EPOLLIN as u32 != 0 {
        r |= Readiness::READABLE;
    }
    if bits & libc::EPOLLOUT as u32 != 0 {
        r |= Readiness::WRITABLE;
    }
    if bits & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0 {
        r |= Readiness::HANGUP;
    }
    if bits & libc::EPOLLERR as u32 != 0 {
        r |= Readiness::ERROR;
    }
    r
}

/// Milliseconds for `epoll_wait`, rounded up so that a wait never ends before `timeout`.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            // In 64 bits (a 128-bit division is a library call): whole seconds above
            // `c_int::MAX` milliseconds are capped before they can overflow.
            let secs = t.as_secs().min(libc::c_int::MAX as u64 / 1000 + 1);
            let ms = secs * 1000 + u64::from(t.subsec_nanos().div_ceil(1_000_000));
            ms.min(libc::c_int::MAX as u64) as libc::c_int
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_bits() {
        let cases = [
            (libc::EPOLLIN, Readiness::READABLE),
            (libc::EPOLLOUT, Readiness::WRITABLE),
            (libc::EPOLLRDHUP, Readiness::HANGUP),
            (libc::EPOLLHUP, Readiness::HANGUP),
            (libc::EPOLLERR, Readiness::ERROR),
            (libc::EPOLLPRI | libc::EPOLLET | libc::EPOLLONESHOT, 0),
        ];
        let mut all = (0, 0);
        for (epoll, want) in cases {
            assert_eq!(readiness(epoll as u32), Readiness::new(want), "{epoll:#x}");
            all = (all.0 | epoll, all.1 | want);
        }
        assert_eq!(readiness(all.0 as u32), Readiness::new(all.1));
    }

    #[test]
    fn timeouts_round_up() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_secs(1 << 40))), i32::MAX);
        assert_eq!(timeout_ms(Some(Duration::MAX)), i32::MAX);
        assert_eq!(timeout_ms(Some(Duration::new(2, 999_999_999))), 3000);
        assert_eq!(
            timeout_ms(Some(Duration::new(2_147_483, 647_000_000))),
            i32::MAX
        );
        assert_eq!(
            timeout_ms(Some(Duration::new(2_147_483, 646_000_001))),
            i32::MAX
        );
        assert_eq!(
            timeout_ms(Some(Duration::new(2_147_483, 646_000_000))),
            i32::MAX - 1
        );
    }

    #[test]
    fn a_stale_item_of_a_live_duplicate_is_seen() {
        use std::os::unix::net::UnixStream;
        let selector = Selector::new().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let dup = a.try_clone().unwrap();
        let fd = a.as_raw_fd();
        let change = Change::new(
            fd,
            1,
            Op::Add(Interest::of(Events::IN, crate::Trigger::LEVEL)),
        );
        assert_eq!(selector.apply_one(&change), Ok(()));
        // The same file still at the number: not another file.
        assert_eq!(selector.holds_other_file(fd), Some(false));
        // The number taken by another file while the duplicate keeps the socket open.
        let (other, _c) = UnixStream::pair().unwrap();
        // SAFETY: `fd` is `a`'s descriptor, open; dup2 closes it and reuses the number for
        // `other`'s file, and `a` is forgotten below so that it does not close it again.
        assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), fd) }, fd);
        std::mem::forget(a);
        assert_eq!(selector.holds_other_file(fd), Some(true));
        // The duplicate closed: the file is released, and epoll forgets its item.
        drop(dup);
        assert_eq!(selector.holds_other_file(fd), Some(false));
        // SAFETY: `fd` now belongs to this test (a dup of `other`'s file).
        unsafe { libc::close(fd) };
    }

    #[test]
    fn interest_bits() {
        use crate::event::Trigger;
        let filter = Events::IN | Events::HANGUP;
        let base = libc::EPOLLIN | libc::EPOLLRDHUP;
        let cases = [
            (
                Trigger::ONESHOT | Trigger::EDGE,
                base | libc::EPOLLONESHOT | libc::EPOLLET,
            ),
            (Trigger::ONESHOT | Trigger::LEVEL, base | libc::EPOLLONESHOT),
            (
                Trigger::PERSISTENT | Trigger::LEVEL,
                base | libc::EPOLLONESHOT,
            ),
            (Trigger::PERSISTENT | Trigger::EDGE, base | libc::EPOLLET),
        ];
        for (trigger, want) in cases {
            assert_eq!(
                interest(Interest::of(filter, trigger)),
                want as u32,
                "{trigger:?}"
            );
        }
        assert_eq!(
            interest(Interest::parked(filter)),
            (base | libc::EPOLLET) as u32
        );
    }
}
