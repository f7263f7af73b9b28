//! The `epoll(7)` backend.
//!
//! Interest: `IN` → `EPOLLIN`, `OUT` → `EPOLLOUT`, `HANGUP` → `EPOLLRDHUP` (the kernel adds
//! `EPOLLERR | EPOLLHUP` itself); `EDGE` → `EPOLLET`, `ONESHOT` → `EPOLLONESHOT`.
//!
//! Waking: an `eventfd` registered edge-triggered with [`WAKE_TOKEN`]. Every write to it is
//! a new edge, and epoll wakes its waiters exclusively, so one `wake` releases one thread.
//! The counter is never read: at one write per wake it cannot reach its limit (2^64 - 2).
//!
//! # References
//! - [`epoll_ctl(2)`](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html)
//! - [`epoll_wait(2)`](https://man7.org/linux/man-pages/man2/epoll_wait.2.html)
//! - [`eventfd(2)`](https://man7.org/linux/man-pages/man2/eventfd.2.html)

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{syscall, Change, RawEvent, Readiness, PROBE_TOKEN, WAKE_TOKEN};
use crate::event::{Events, Trigger};

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

    pub(crate) fn add(
        &self,
        fd: RawFd,
        token: u64,
        filter: Events,
        trigger: Trigger,
    ) -> io::Result<()> {
        self.ctl_interest(libc::EPOLL_CTL_ADD, fd, token, interest(filter, trigger))
    }

    pub(crate) fn modify(
        &self,
        fd: RawFd,
        token: u64,
        filter: Events,
        trigger: Trigger,
    ) -> io::Result<()> {
        self.ctl_interest(libc::EPOLL_CTL_MOD, fd, token, interest(filter, trigger))
    }

    /// Applies a change planned by the registry: `modify`, or `disarm` without interest.
    pub(crate) fn apply(&self, change: &Change) -> io::Result<()> {
        self.ctl_interest(
            libc::EPOLL_CTL_MOD,
            change.fd,
            change.token,
            change_bits(change),
        )
    }

    pub(crate) fn disarm(&self, fd: RawFd, token: u64) -> io::Result<()> {
        // A one-shot interest in nothing: the kernel may still report ERR or HUP once,
        // which the registry drops because the registration is disabled.
        self.ctl_interest(libc::EPOLL_CTL_MOD, fd, token, libc::EPOLLONESHOT as u32)
    }

    fn ctl_interest(&self, op: libc::c_int, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        ctl(self.fd(), op, fd, &mut event)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // A non-null event for kernels before 2.6.9 (epoll_ctl(2), BUGS).
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        ctl(self.fd(), libc::EPOLL_CTL_DEL, fd, &mut event)
    }

    pub(crate) fn wait(
        &self,
        buf: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        thread_local! {
            static EVENTS: RefCell<Vec<libc::epoll_event>> = const { RefCell::new(Vec::new()) };
        }
        let max = max.clamp(1, i32::MAX as usize);
        let timeout_ms = timeout_ms(timeout);
        EVENTS.with(|events| {
            let mut events = events.borrow_mut();
            events.clear();
            events.reserve(max);
            // SAFETY: the pointer is valid for `max` writes (just reserved); the kernel
            // writes `n <= max` initialised entries, and the length is set to `n` only after
            // it returns successfully.
            let n = syscall!(epoll_wait(
                self.fd(),
                events.as_mut_ptr(),
                max as libc::c_int,
                timeout_ms,
            ))?;
            // SAFETY: the kernel initialised the first `n` entries (see above).
            unsafe { events.set_len(n as usize) };
            convert(&events, buf);
            Ok(())
        })
    }

    /// Applies `changes` one by one, then waits if `max > 0`: what a backend without
    /// batching does with a batch.
    pub(crate) fn submit(
        &self,
        changes: &[Change],
        results: &mut Vec<io::Result<()>>,
        buf: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        results.extend(changes.iter().map(|c| self.apply(c)));
        match max {
            0 => Ok(()),
            _ => self.wait(buf, max, timeout),
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

/// Whether the epoll instance `epfd` watches the open file `fd` names now: `EPOLL_CTL_ADD`
/// fails with `EEXIST` exactly then. If the add succeeds, it is undone at once.
pub(crate) fn probe(epfd: RawFd, fd: RawFd) -> io::Result<bool> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLONESHOT as u32,
        u64: PROBE_TOKEN,
    };
    match ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut event) {
        Ok(()) => {
            ctl(epfd, libc::EPOLL_CTL_DEL, fd, &mut event)?;
            Ok(false)
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(true),
        Err(e) => Err(e),
    }
}

fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, event: &mut libc::epoll_event) -> io::Result<()> {
    // SAFETY: `event` is a valid epoll_event for the duration of the call; any `fd` value is
    // acceptable (a bad one gives EBADF, ENOENT or EPERM).
    syscall!(epoll_ctl(epfd, op, fd, event)).map(drop)
}

/// Appends the kernel's events to `buf` in backend-neutral form.
pub(crate) fn convert(events: &[libc::epoll_event], buf: &mut Vec<RawEvent>) {
    buf.extend(events.iter().map(|e| RawEvent {
        token: e.u64,
        readiness: readiness(e.events),
    }));
}

/// The epoll interest bits of a planned change (`disarm` when it has no interest).
pub(crate) fn change_bits(change: &Change) -> u32 {
    match change.interest {
        Some((filter, trigger)) => interest(filter, trigger),
        None => libc::EPOLLONESHOT as u32,
    }
}

/// The epoll interest bits for a filter and trigger.
pub(crate) fn interest(filter: Events, trigger: Trigger) -> u32 {
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
    if trigger.contains(Trigger::EDGE) {
        bits |= libc::EPOLLET;
    }
    if trigger.contains(Trigger::ONESHOT) {
        bits |= libc::EPOLLONESHOT;
    }
    bits as u32
}

fn readiness(bits: u32) -> Readiness {
    let bits = bits as libc::c_int;
    let mut r = 0;
    if bits & libc::EPOLLIN != 0 {
        r |= Readiness::READABLE;
    }
    if bits & libc::EPOLLOUT != 0 {
        r |= Readiness::WRITABLE;
    }
    if bits & libc::EPOLLRDHUP != 0 {
        r |= Readiness::READ_HANGUP;
    }
    if bits & libc::EPOLLHUP != 0 {
        r |= Readiness::HANGUP;
    }
    if bits & libc::EPOLLERR != 0 {
        r |= Readiness::ERROR;
    }
    Readiness::new(r)
}

/// Milliseconds for `epoll_wait`, rounded up so that a wait never ends before `timeout`.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_secs(1 << 40))), i32::MAX);
    }

    #[test]
    fn interest_bits() {
        let i = interest(
            Events::IN | Events::HANGUP,
            Trigger::ONESHOT | Trigger::EDGE,
        );
        let want = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT | libc::EPOLLET;
        assert_eq!(i, want as u32);
    }
}
