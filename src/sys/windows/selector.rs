//! The selector: one completion port, a few AFD device handles, two pinned polls per
//! socket (its interest poll and its close watch, `sock.rs`).
//!
//! Each watched socket is a [`Sock`] in an [`Arc`]. While a poll is in the kernel, the
//! kernel holds one strong reference (`Arc::into_raw`, passed as the poll's context and
//! given back as the entry's `lpOverlapped`), so the poll's `IO_STATUS_BLOCK` and
//! `PollInfo` cannot be freed or moved before the entry is dequeued; whoever dequeues it
//! takes that reference back (`Arc::from_raw`). A socket's poll state changes only under its
//! `state` lock, so at any moment there is one owner of the decision to issue, cancel or
//! re-issue its polls.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io;
use std::os::windows::io::RawSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Weak;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    ERROR_INVALID_HANDLE, NTSTATUS, STATUS_CANCELLED, STATUS_INVALID_HANDLE, STATUS_PENDING,
};
use windows_sys::Win32::Networking::WinSock::WSAENOTSOCK;
use windows_sys::Win32::System::IO::OVERLAPPED;

use super::afd::{self, Afd};
use super::identity;
use super::port::{self, Port};
use super::sock::{lock, Poll, Sock, State, Which};
use crate::event::Events;
use crate::sys::{Change, ChangeError, Interest, Op, RawEvent, Readiness};

/// The completion key of every AFD poll's entry.
const AFD_KEY: usize = 1;
/// The completion key of a wake.
const WAKE_KEY: usize = 2;
/// Sockets per AFD device handle, as wepoll, mio and polling (AFD scans a handle's polls
/// linearly).
const GROUP_SIZE: usize = 32;
/// AFD conditions that never clear once they hold: a persistent EDGE registration that
/// reported one does not poll for it again.
const STICKY: u32 = afd::DISCONNECT | afd::ABORT | afd::CONNECT_FAIL;
/// How long dropping a selector waits for its cancelled polls to come back.
const DROP_GRACE: Duration = Duration::from_secs(5);
/// The port releases any number of waiters: the registry above gates them.
const PORT_THREADS: u32 = u32::MAX;

/// The selector of one port.
#[derive(Debug)]
pub(crate) struct Selector {
    port: Port,
    /// AFD device handles, each shared by up to [`GROUP_SIZE`] sockets.
    afds: Mutex<Vec<Arc<Afd>>>,
    table: Mutex<Table>,
    /// Polls issued whose entries have not been dequeued yet.
    in_flight: AtomicUsize,
}

/// The watched sockets, by token and by socket identity. A socket seen closed leaves both
/// at once (its poll's memory lives on in the poll's own reference until reaped).
#[derive(Debug, Default)]
struct Table {
    tokens: HashMap<u64, Arc<Sock>>,
    /// Identities of live registrations, so that an `Add` of the same socket replaces the
    /// stale one; each is held in the process-wide identity table while it is here.
    identities: HashMap<RawSocket, u64>,
}

impl Selector {
    pub(crate) fn new() -> io::Result<Selector> {
        Ok(Selector {
            port: Port::new(PORT_THREADS)?,
            afds: Mutex::new(Vec::new()),
            table: Mutex::new(Table::default()),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Applies each change in order and fills in `change.result`. Never blocks on I/O.
    /// Applies the changes in order, up to the first that fails (the contract: the rest
    /// are not applied).
    pub(crate) fn apply(&self, changes: &mut [Change]) {
        let mut failed = false;
        for change in changes {
            if failed {
                change.result = Err(ChangeError::NotApplied);
                continue;
            }
            let mut table = lock(&self.table);
            change.result = match change.op {
                Op::Add(interest) => self.add(&mut table, change.socket, change.token, interest),
                Op::Arm(interest) => self.set(&mut table, change.token, Some(interest)),
                Op::Disarm => self.set(&mut table, change.token, None),
                Op::Delete => self.delete(&mut table, change.token),
                Op::Check => self.check(&mut table, change.socket, change.token),
            };
            failed = change.result.is_err();
        }
    }

    /// Appends at most `max` reports to `out`, blocking up to `timeout` (None: forever)
    /// until at least one report or a wake.
    pub(crate) fn wait(
        &self,
        out: &mut Vec<RawEvent>,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.port.wait(out, max, timeout, WAKE_KEY, |entry, out| {
            if entry.lpCompletionKey == AFD_KEY {
                out.extend(self.complete(entry.lpOverlapped));
            }
        })
    }

    /// Whether a stale item of a closed, duplicated socket still sits under this handle
    /// value: Windows cannot say (socket identity there counts closes instead).
    pub(crate) fn holds_other_file(&self, _socket: crate::sys::Socket) -> Option<bool> {
        None
    }

    /// Releases one waiter, or makes the next `wait` return at once.
    pub(crate) fn wake(&self) -> io::Result<()> {
        self.port.post(WAKE_KEY)
    }

    fn add(
        &self,
        table: &mut Table,
        socket: RawSocket,
        token: u64,
        interest: Interest,
    ) -> Result<(), ChangeError> {
        let base = afd::base_socket(socket).map_err(os)?;
        let identity = identity::canonical(base);
        let datagram = afd::is_datagram(base).map_err(os)?;
        let afd = self.afd().map_err(os)?;
        // A stale item of the same registration (re-attached through another handle) or of
        // the same socket goes first.
        if let Some(old) = table.tokens.remove(&token) {
            self.retire(table, &old);
        }
        if let Some(old) = table
            .identities
            .get(&identity)
            .and_then(|t| table.tokens.remove(t))
        {
            self.retire(table, &old);
        }
        let sock = Arc::new(Sock::new(
            token,
            base,
            identity,
            datagram,
            afd,
            afd_mask(interest),
            interest.oneshot,
        ));
        {
            let mut state = lock(&sock.state);
            // The close watch first: from here on, a close of the socket is seen.
            self.watch(&sock, &mut state)?;
            if let Err(e) = self.issue(&sock, &mut state) {
                state.deleted = true;
                sock.stop(&mut state);
                return Err(e);
            }
        }
        live().insert(identity, Arc::downgrade(&sock));
        table.tokens.insert(token, sock);
        table.identities.insert(identity, token);
        identity::hold(identity);
        Ok(())
    }

    /// Arms (`Some`) or disarms (`None`) the registration `token`.
    fn set(
        &self,
        table: &mut Table,
        token: u64,
        interest: Option<Interest>,
    ) -> Result<(), ChangeError> {
        let sock = Arc::clone(table.tokens.get(&token).ok_or(ChangeError::Gone)?);
        let mut state = lock(&sock.state);
        if state.closed {
            return Err(ChangeError::Gone);
        }
        if sock.closed_early(&mut state) {
            drop(state);
            self.forget(table, &sock);
            return Err(ChangeError::Gone);
        }
        let before = (state.want, state.oneshot, state.mask, state.edge_fired);
        state.want = interest.map(afd_mask);
        state.edge_fired = false;
        state.reported = 0;
        state.sticky = 0;
        if let Some(interest) = interest {
            state.oneshot = interest.oneshot;
            state.mask = afd_mask(interest);
        }
        let result = self.repoll(&sock, &mut state);
        match result {
            Err(ChangeError::Gone) => {
                drop(state);
                self.forget(table, &sock);
            }
            Err(ChangeError::Os(_) | ChangeError::NotApplied) => {
                (state.want, state.oneshot, state.mask, state.edge_fired) = before;
            }
            Ok(()) => {}
        }
        result
    }

    /// Makes the kernel's poll match `state`: issues one if none is in the kernel, cancels
    /// the pending one if it misses something wanted (the thread that reaps the cancelled
    /// poll issues the new one, as in wepoll). A pending poll that watches more than is
    /// wanted is kept: what it reports beyond the interest is filtered out and re-polled.
    fn repoll(&self, sock: &Arc<Sock>, state: &mut State) -> Result<(), ChangeError> {
        // Not armed: no interest poll is needed (the close watch sees a close); one still
        // pending is filtered when it completes.
        let Some(mask) = state.want else {
            return Ok(());
        };
        match state.poll {
            Poll::Idle => self.issue(sock, state),
            Poll::Cancelling => Ok(()),
            Poll::Pending(pending) if pending & mask == mask => Ok(()),
            Poll::Pending(_) => sock.cancel(Which::Interest, state),
        }
    }

    fn delete(&self, table: &mut Table, token: u64) -> Result<(), ChangeError> {
        let sock = table.tokens.remove(&token).ok_or(ChangeError::Gone)?;
        self.retire(table, &sock);
        if lock(&sock.state).closed {
            Err(ChangeError::Gone)
        } else {
            Ok(())
        }
    }

    /// Succeeds if `socket` still names the watched socket; re-polls a persistent EDGE
    /// registration that reported since the last change (see [`State::oneshot`]).
    fn check(&self, table: &mut Table, socket: RawSocket, token: u64) -> Result<(), ChangeError> {
        let sock = Arc::clone(table.tokens.get(&token).ok_or(ChangeError::Gone)?);
        let mut state = lock(&sock.state);
        let result = if sock.closed_early(&mut state) {
            Err(ChangeError::Gone)
        } else if afd::base_socket(socket).ok() != Some(sock.base) {
            // `socket` is closed or another socket's; the registered value may be too, and
            // then the registration ends (`renamed`).
            let _ = sock.renamed(&mut state);
            Err(ChangeError::Gone)
        } else if state.edge_fired {
            // AFD has no edge mode: poll again (`issue` asks whether the value still names
            // the socket), but not for the lasting conditions already reported, which never
            // clear and would be reported again at once.
            state.sticky |= state.reported & STICKY;
            state.want = Some(state.mask & !state.sticky);
            let polled = self.repoll(&sock, &mut state);
            if polled.is_ok() {
                state.edge_fired = false;
            } else {
                state.want = None;
            }
            polled
        } else if sock.renamed(&mut state) {
            Err(ChangeError::Gone)
        } else {
            Ok(())
        };
        if state.closed {
            // Closed, or the registered value no longer names the socket: the value may be
            // handed out again at once, and is a new socket's from now on.
            drop(state);
            self.forget(table, &sock);
            return Err(ChangeError::Gone);
        }
        result
    }

    /// Stops watching `sock` (deleted, or replaced by an `Add`): no more reports; its
    /// pending poll is cancelled and its memory freed when the poll's entry is reaped.
    fn retire(&self, table: &mut Table, sock: &Sock) {
        forget_identity(table, sock);
        let mut state = lock(&sock.state);
        state.deleted = true;
        sock.stop(&mut state);
    }

    /// `sock`'s socket was closed: it leaves the table, and its handle value starts a new
    /// epoch (a new socket that reuses the value is another socket).
    fn forget(&self, table: &mut Table, sock: &Sock) {
        if table
            .tokens
            .get(&sock.token)
            .is_some_and(|s| std::ptr::eq(&**s, sock))
        {
            table.tokens.remove(&sock.token);
        }
        if table.identities.get(&sock.identity) == Some(&sock.token) {
            sock.count_close();
        }
        forget_identity(table, sock);
    }

    /// Issues the interest poll for the armed interest, if armed, and keeps it only if the
    /// handle value still names the socket once it is in the kernel (the poll goes to
    /// whatever the value names when it is issued: [`Sock::renamed`]). `state` must be
    /// `sock`'s, locked, with no interest poll in the kernel.
    fn issue(&self, sock: &Arc<Sock>, state: &mut State) -> Result<(), ChangeError> {
        let Some(mask) = state.want else {
            return Ok(());
        };
        self.start(sock, state, Which::Interest, mask)?;
        // Checked after the poll is issued, not before: a value reused in between would
        // otherwise pass. A completion of the poll waits for `state`'s lock, so it never
        // reports before this check has had its say.
        if state.poll != Poll::Idle && sock.renamed(state) {
            return Err(ChangeError::Gone);
        }
        Ok(())
    }

    /// Issues the close watch. `state` must be `sock`'s, locked, with no watch in the
    /// kernel.
    fn watch(&self, sock: &Arc<Sock>, state: &mut State) -> Result<(), ChangeError> {
        self.start(sock, state, Which::Watch, afd::LOCAL_CLOSE)
    }

    /// Issues the poll `which` of `sock` for `mask`, handing the kernel one reference,
    /// unless the socket is deleted or closed. `state` must be `sock`'s, locked, with that
    /// poll Idle.
    fn start(
        &self,
        sock: &Arc<Sock>,
        state: &mut State,
        which: Which,
        mask: u32,
    ) -> Result<(), ChangeError> {
        debug_assert_eq!(*state.poll_mut(which), Poll::Idle);
        if state.deleted || state.closed {
            return Ok(());
        }
        let io = sock.io(which);
        // The kernel's reference, reclaimed in `complete` (or below if refused).
        let context = which.context(Arc::into_raw(Arc::clone(sock)));
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        // SAFETY: the poll `which` is Idle, so no poll uses `io`, and `state`'s lock keeps
        // this module off it; the strong reference in `context` keeps the `Sock` (and `io`)
        // allocated and unmoved until the entry is dequeued and `complete` reclaims it.
        let issued = unsafe {
            sock.afd.poll(
                &raw mut (*io).iosb,
                &raw mut (*io).info,
                sock.base,
                mask,
                context.cast(),
            )
        };
        match issued {
            Ok(()) => {
                *state.poll_mut(which) = Poll::Pending(mask);
                Ok(())
            }
            Err(status) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                // SAFETY: the request was refused, so no entry will carry `context`: the
                // reference it holds (an `Arc::into_raw` tagged by `which`) is reclaimed
                // here, once.
                drop(unsafe { Arc::from_raw(Which::of_context(context).1) });
                refused(sock, state, status)
            }
        }
    }

    /// Takes back the kernel's reference carried by an AFD entry and turns the poll's
    /// result into at most one report; re-polls when the armed interest saw nothing.
    fn complete(&self, overlapped: *mut OVERLAPPED) -> Option<RawEvent> {
        if overlapped.is_null() {
            return None; // not a poll of ours (every poll has a context)
        }
        let (which, sock) = Which::of_context(overlapped.cast_const().cast());
        // SAFETY: entries with AFD_KEY come only from polls issued by `start`, whose context
        // (given back as `lpOverlapped`) is an `Arc::into_raw` of a `Sock` tagged by the
        // poll (`Which::context`, undone by `of_context`); the port hands each entry out
        // once, so the reference is reclaimed once.
        let sock = unsafe { Arc::from_raw(sock) };
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let mut state = lock(&sock.state);
        *state.poll_mut(which) = Poll::Idle;
        if state.deleted || state.closed {
            return None;
        }
        // SAFETY: the poll's entry has just been dequeued, so the kernel is done with its
        // memory, and `state`'s lock (held) keeps every other thread off it.
        let (status, events) = unsafe {
            let io = &*sock.io(which);
            (io.iosb.Anonymous.Status, io.info.events())
        };
        // A status block still as `start` left it: the result was never written. Wine 8
        // does this when the thread that issued the poll has exited by the time the poll
        // completes (it writes a poll's result from that thread, and posts the entry
        // without it when the thread is gone). The entry then says nothing about the
        // socket, and `info` still holds the request (every event asked for, LOCAL_CLOSE
        // among them): it counts as a cancelled poll, and this thread polls again.
        // Windows writes both before it queues the entry.
        let status = if status == STATUS_PENDING {
            STATUS_CANCELLED
        } else {
            status
        };
        let closed = status >= 0 && events.is_some_and(|e| e & afd::LOCAL_CLOSE != 0);
        if closed || sock.closed_early(&mut state) {
            // Closed by this process (this poll says so, or the other one does): end
            // silently; later changes will say Gone.
            sock.close_seen(&mut state);
            drop(state);
            self.forget(&mut lock(&self.table), &sock);
            return None;
        }
        if which == Which::Watch {
            // Not a close (cancelled by no one of ours: ours set `deleted` or `closed`
            // first), so watch again. A watch that failed is not issued again, so that a
            // lasting failure cannot spin; the interest poll still carries LOCAL_CLOSE.
            let failed = status < 0 && status != STATUS_CANCELLED;
            if !failed && self.watch(&sock, &mut state).is_err() {
                drop(state);
                self.forget(&mut lock(&self.table), &sock);
            }
            return None;
        }
        let readiness = if status == STATUS_CANCELLED {
            Readiness::default()
        } else if status < 0 {
            // The request itself failed: say so rather than go silent.
            Readiness::new(Readiness::ERROR)
        } else {
            readiness(events.unwrap_or(0) & state.want.unwrap_or(0), sock.datagram)
        };
        let report = state.want.is_some() && readiness != Readiness::default();
        if report && sock.renamed(&mut state) {
            // The registered handle was closed while a duplicate keeps the socket open, so
            // no LOCAL_CLOSE came, and its value names no socket or another one now: the
            // report, of the old socket or of a new one under the value, is dropped (rule
            // 7's stale report), and the value is a new socket's from now on.
            drop(state);
            self.forget(&mut lock(&self.table), &sock);
            return None;
        }
        if report {
            // Disarmed until the next Arm (one-shot) or Check (persistent EDGE).
            if !state.oneshot {
                state.edge_fired = true;
                state.reported = events.unwrap_or(0) & state.want.unwrap_or(0);
            }
            state.want = None;
        }
        // Poll again if this completion carried nothing for the armed interest (a report
        // disarmed it: no poll until the next Arm or Check; the close watch stays).
        match self.issue(&sock, &mut state) {
            Ok(()) => {}
            Err(ChangeError::Gone) => {
                drop(state);
                self.forget(&mut lock(&self.table), &sock);
                return None;
            }
            Err(_) if report => {}
            Err(_) => {
                state.want.take()?;
                return Some(RawEvent {
                    token: sock.token,
                    readiness: Readiness::new(Readiness::ERROR),
                });
            }
        }
        report.then_some(RawEvent {
            token: sock.token,
            readiness,
        })
    }

    /// An AFD handle with room for one more socket.
    fn afd(&self) -> io::Result<Arc<Afd>> {
        let mut afds = lock(&self.afds);
        // Handles no socket uses any more (the Vec's own reference is the last) go.
        afds.retain(|afd| Arc::strong_count(afd) > 1);
        if let Some(afd) = afds
            .last()
            .filter(|afd| Arc::strong_count(afd) <= GROUP_SIZE)
        {
            return Ok(Arc::clone(afd));
        }
        let afd = Arc::new(Afd::new(&self.port, AFD_KEY)?);
        afds.push(Arc::clone(&afd));
        Ok(afd)
    }

    /// Cancels every poll and reaps the entries of all polls in flight, waiting up to
    /// [`DROP_GRACE`]. Returns how many are still in the kernel; their memory is leaked on
    /// purpose (never freed), so that the kernel can never write to freed memory.
    pub(super) fn shutdown(&mut self) -> usize {
        let table = std::mem::take(&mut *lock(&self.table));
        for &identity in table.identities.keys() {
            identity::release(identity);
            live().remove(&identity);
        }
        for sock in table.tokens.values() {
            let mut state = lock(&sock.state);
            state.deleted = true;
            sock.stop(&mut state);
        }
        drop(table);
        let deadline = Instant::now() + DROP_GRACE;
        let mut entries = port::entries::<{ port::BATCH }>();
        while self.in_flight.load(Ordering::Acquire) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.port.get_many(&mut entries, Some(left)) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for entry in entries[..n].iter().filter(|e| e.lpCompletionKey == AFD_KEY) {
                        let _ = self.complete(entry.lpOverlapped);
                    }
                }
            }
        }
        self.in_flight.load(Ordering::Acquire)
    }

    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for Selector {
    fn drop(&mut self) {
        // Polls still in the kernel after the grace period keep their `Sock` (and its AFD
        // handle) alive forever: a leak, never a write to freed memory.
        self.shutdown();
    }
}

/// Drops the socket's identity if it still names `sock`'s registration, so that a new
/// socket that reuses the handle value can be added.
fn forget_identity(table: &mut Table, sock: &Sock) {
    if table.identities.get(&sock.identity) == Some(&sock.token) {
        table.identities.remove(&sock.identity);
        identity::release(sock.identity);
        let mut live = live();
        if live
            .get(&sock.identity)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), sock))
        {
            live.remove(&sock.identity);
        }
    }
}

/// The sockets registered on any selector of this process, by identity, so that
/// [`seen_closed`] can look at their polls.
static LIVE: Mutex<BTreeMap<RawSocket, Weak<Sock>>> = Mutex::new(BTreeMap::new());

fn live() -> MutexGuard<'static, BTreeMap<RawSocket, Weak<Sock>>> {
    lock(&LIVE)
}

/// Counts the close of the registered socket with identity `identity` in its epoch if it
/// is known to be closed though no thread has reaped that news yet, so that a new socket
/// that reuses the handle value is a new socket at once (SPEC rule 7): its close watch has
/// completed with `LOCAL_CLOSE`, or (no `LOCAL_CLOSE` comes while a duplicate keeps the
/// old socket open) the handle `base` is the registered value but names another socket now
/// ([`Sock::renamed`]).
pub(super) fn seen_closed(identity: RawSocket, base: RawSocket) {
    let sock = live().get(&identity).and_then(Weak::upgrade);
    if let Some(sock) = sock {
        let mut state = lock(&sock.state);
        if sock.closed_early(&mut state) || (base == sock.base && sock.renamed(&mut state)) {
            drop(state);
            sock.count_close();
        }
    }
}

/// A poll of `sock` was refused with `status`: an invalid handle means the socket is gone
/// (closed before the poll was issued); anything else is the OS's error.
fn refused(sock: &Sock, state: &mut State, status: NTSTATUS) -> Result<(), ChangeError> {
    let err = afd::nt_error(status);
    let code = err.raw_os_error().unwrap_or(0);
    if status == STATUS_INVALID_HANDLE || code == ERROR_INVALID_HANDLE as i32 || code == WSAENOTSOCK
    {
        sock.close_seen(state);
        Err(ChangeError::Gone)
    } else {
        Err(ChangeError::Os(code))
    }
}

/// The AFD events to poll for an interest, as mio maps them. ERROR (`ABORT`,
/// `CONNECT_FAIL`) and `LOCAL_CLOSE` are always polled.
pub(super) fn afd_mask(interest: Interest) -> u32 {
    let mut mask = afd::LOCAL_CLOSE | afd::ABORT | afd::CONNECT_FAIL;
    if interest.filter.contains(Events::IN) {
        mask |= afd::RECEIVE | afd::ACCEPT | afd::DISCONNECT;
    }
    if interest.filter.contains(Events::OUT) {
        mask |= afd::SEND;
    }
    if interest.filter.contains(Events::HANGUP) {
        mask |= afd::DISCONNECT | afd::ABORT;
    }
    mask
}

/// What AFD events mean in backend-neutral readiness. A datagram socket never hangs up.
pub(super) fn readiness(events: u32, datagram: bool) -> Readiness {
    let mut bits = 0;
    if events & (afd::RECEIVE | afd::ACCEPT) != 0 {
        bits |= Readiness::READABLE;
    }
    if events & afd::SEND != 0 {
        bits |= Readiness::WRITABLE;
    }
    if events & afd::DISCONNECT != 0 {
        // End of stream is readable (recv returns 0), as on Linux.
        bits |= Readiness::READABLE | Readiness::HANGUP;
    }
    if events & afd::ABORT != 0 {
        bits |= Readiness::READABLE | Readiness::WRITABLE | Readiness::HANGUP | Readiness::ERROR;
    }
    if events & afd::CONNECT_FAIL != 0 {
        bits |= Readiness::READABLE | Readiness::WRITABLE | Readiness::ERROR;
    }
    if datagram {
        bits &= !Readiness::HANGUP;
    }
    Readiness::new(bits)
}

fn os(err: io::Error) -> ChangeError {
    ChangeError::Os(err.raw_os_error().unwrap_or(0))
}
