//! `CompletionPort` and `PortBuilder`: the public face. No system calls here; they go
//! through the selector (`sys`) and the registry.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::error::Failure;
use crate::event::CompletionEntry;
use crate::owners;
use crate::queue::{Back, Deadline, Enter, Gate, PortStats, NO_REARM};
use crate::registration::Registration;
use crate::registry::{Registry, Spare};
use crate::sys::{Reports, Selector, WAKE_TOKEN};

/// Which kernel interface a port uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backend {
    /// The best one available on this machine, chosen when the port is built.
    #[default]
    Auto,
    /// Linux `epoll(7)`: one `epoll_ctl` per registration change, one `epoll_wait` per
    /// dequeue.
    Epoll,
    /// Linux `io_uring(7)` driving an epoll interest set: a batch of registration changes
    /// costs one `io_uring_enter` instead of one `epoll_ctl` each. Building a port with it
    /// fails with [`ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported) where the
    /// kernel lacks a needed feature, or the crate was built without its `io-uring`
    /// feature.
    IoUring,
    /// Windows' AFD poll interface (`\Device\Afd`, `IOCTL_AFD_POLL`, as wepoll, mio and
    /// polling use it) on a native I/O completion port: one poll per registered socket,
    /// issued on its base socket. [`Auto`](Backend::Auto) picks it on Windows;
    /// [`ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported) elsewhere.
    #[doc(alias = "IOCTL_AFD_POLL")]
    Afd,
    /// Windows' own `ProcessSocketNotifications` (Windows 11, Server 2022 and later),
    /// looked up at run time, so the same binary runs on older Windows (where building a
    /// port with it fails with [`ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported));
    /// opt-in, [`Auto`](Backend::Auto) picks [`Afd`](Backend::Afd). Not yet run by CI:
    /// Wine, which CI tests under, has no such function.
    #[doc(alias = "ProcessSocketNotifications")]
    Native,
}

/// A completion port: a queue of completion entries shared by any number of threads, fed by
/// the sockets registered on it and by [`post`](CompletionPort::post).
///
/// `CompletionPort` is `Send + Sync`: share it with [`Arc`] or scoped threads. Dropping it
/// closes it ([`close`](CompletionPort::close)) and ends every registration silently.
///
/// # fork
///
/// A port belongs to the process that built it. In a child of `fork`, every call on a port
/// inherited from the parent fails with [`Unsupported`](io::ErrorKind::Unsupported)
/// ([`ErrorCause::InheritedAcrossFork`](crate::ErrorCause::InheritedAcrossFork)), and
/// dropping it only closes its descriptors (the parent's registrations are untouched: the
/// kernel objects are shared). The child may build and use ports of its own, even if
/// other threads of the parent were inside socknotify at the fork.
///
/// See the [crate documentation](crate) for the model and an example.
#[doc(alias = "CreateIoCompletionPort")]
#[doc(alias = "HANDLE")]
pub struct CompletionPort {
    shared: Arc<Shared>,
}

/// What the port's threads share; released threads refer to it weakly.
struct Shared {
    selector: Selector,
    registry: Registry,
    gate: Gate,
    /// The fork generation the port was built in.
    fork: u64,
}

/// Builds a [`CompletionPort`] with a chosen concurrency and backend.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct PortBuilder {
    concurrency: usize,
    backend: Backend,
}

impl PortBuilder {
    /// How many threads may be released at once (`NumberOfConcurrentThreads`); 0, the
    /// default, means the number of CPUs.
    ///
    /// # Examples
    ///
    /// ```
    /// let port = socknotify::CompletionPort::builder().concurrency(4).build()?;
    /// assert_eq!(port.concurrency(), 4);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn concurrency(mut self, threads: usize) -> Self {
        self.concurrency = threads;
        self
    }

    /// Which backend to use; [`Backend::Auto`] by default. The environment variable
    /// `SOCKNOTIFY_BACKEND` (`epoll`, `io_uring`, `afd`, `native`) overrides `Auto`, so that a test suite can
    /// run once per backend.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{Backend, CompletionPort};
    /// let port = CompletionPort::builder().backend(Backend::Epoll).build()?;
    /// assert_eq!(port.backend(), Backend::Epoll);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Creates the port.
    ///
    /// # Errors
    ///
    /// The kernel's error if the selector cannot be created (descriptor limits, for
    /// example); [`Unsupported`](io::ErrorKind::Unsupported) for a backend this build or
    /// this machine cannot provide; [`InvalidInput`](io::ErrorKind::InvalidInput) for an
    /// unknown `SOCKNOTIFY_BACKEND` value.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use socknotify::{Backend, CompletionPort};
    /// // io_uring where the kernel has it, else say why and use epoll.
    /// let port = match CompletionPort::builder().backend(Backend::IoUring).build() {
    ///     Err(e) if e.kind() == ErrorKind::Unsupported => CompletionPort::new()?,
    ///     other => other?,
    /// };
    /// assert_ne!(port.backend(), Backend::Auto);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn build(self) -> io::Result<CompletionPort> {
        let backend = match self.backend {
            Backend::Auto => backend_from_env()?,
            chosen => chosen,
        };
        let concurrency = match self.concurrency {
            0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            n => n,
        };
        let selector = Selector::new(backend)?;
        let port = owners::new_port();
        Ok(CompletionPort {
            shared: Arc::new(Shared {
                selector,
                registry: Registry::new(port),
                gate: Gate::new(concurrency),
                fork: owners::fork_generation(),
            }),
        })
    }
}

fn backend_from_env() -> io::Result<Backend> {
    match std::env::var("SOCKNOTIFY_BACKEND") {
        Err(_) => Ok(Backend::Auto),
        Ok(v) => match v.as_str() {
            "" | "auto" => Ok(Backend::Auto),
            "epoll" => Ok(Backend::Epoll),
            "io_uring" | "iouring" | "uring" => Ok(Backend::IoUring),
            "afd" => Ok(Backend::Afd),
            "native" => Ok(Backend::Native),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "SOCKNOTIFY_BACKEND={other:?} is not one of auto, epoll, io_uring, afd, native"
                ),
            )),
        },
    }
}

/// Per-thread buffers, reused by every call so that the hot path does not allocate.
#[derive(Default)]
struct Scratch {
    /// Kernel reports of one wait.
    raw: Reports,
    /// REMOVE entries produced by one call.
    removed: Vec<CompletionEntry>,
    /// The registry's batch buffers.
    spare: Spare,
}

/// The port a thread was last released on (a dangling `Weak` before its first call), and
/// the persistent registrations whose entries it received and owes a re-arm. Dropping it
/// while `active` (the thread exits) ends the release: the re-arms are applied and the slot
/// goes to a waiting thread.
///
/// A thread's record stays in place from call to call on the same port (`active` tells
/// whether the thread is released now), so that a call neither clones nor drops a `Weak`,
/// and its re-arms are kept in place: applied, cleared and filled again by the next call.
#[derive(Default)]
struct Release {
    port: Weak<Shared>,
    rearms: Vec<u64>,
    active: bool,
}

impl Release {
    fn on(&self, shared: &Arc<Shared>) -> bool {
        Weak::as_ptr(&self.port) == Arc::as_ptr(shared)
    }

    /// A record for `shared`, not released yet.
    fn new(shared: &Arc<Shared>) -> Release {
        Release {
            port: Arc::downgrade(shared),
            rearms: Vec::new(),
            active: false,
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        if let Some(shared) = self.port.upgrade() {
            shared.end_release(&self.rearms);
        }
    }
}

/// What a thread keeps from call to call: its buffers, and its release.
#[derive(Default)]
struct Local {
    scratch: Scratch,
    release: Release,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// Runs `f` with this thread's kept state, or a fresh one where it is gone or in use (a
/// thread-local destructor, rule 20); a release recorded in a fresh one ends with `f`.
/// `f` runs once; it is `FnMut` so that the fallback can call it without an `Option`
/// around it (a closure over borrowed arguments is `FnMut` by reborrowing them).
#[inline]
fn with_local<R>(mut f: impl FnMut(&mut Local) -> R) -> R {
    let done = LOCAL.try_with(|cell| {
        let mut local = cell.try_borrow_mut().ok()?;
        Some(f(&mut local))
    });
    match done {
        Ok(Some(r)) => r,
        _ => f(&mut Local::default()),
    }
}

fn with_scratch<R>(mut f: impl FnMut(&mut Scratch) -> R) -> R {
    with_local(|local| f(&mut local.scratch))
}

impl Shared {
    /// Whether this port was inherited across `fork` (see [`CompletionPort`]).
    fn inherited(&self) -> bool {
        self.fork != owners::fork_generation()
    }

    fn check(&self) -> Result<(), Failure> {
        if self.inherited() {
            return Err(Failure::Forked);
        }
        Ok(())
    }

    /// Applies `registrations` in order, with the deferred re-arms `rearms`; queues the
    /// REMOVE entries. Fails only if the port is closed.
    fn apply(
        &self,
        scratch: &mut Scratch,
        registrations: &mut [Registration],
        rearms: &[u64],
    ) -> Result<(), Failure> {
        if !registrations.is_empty() || !rearms.is_empty() {
            scratch.removed.clear();
            self.registry.apply(
                &self.selector,
                registrations,
                rearms,
                &mut scratch.removed,
                &mut scratch.spare,
            );
            if !scratch.removed.is_empty() {
                self.queue_removed(&mut scratch.removed);
            }
        }
        if self.registry.is_closed() {
            return Err(Failure::PortClosed);
        }
        Ok(())
    }

    /// Queues the REMOVE entries of one call, in order.
    #[inline(never)]
    fn queue_removed(&self, removed: &mut Vec<CompletionEntry>) {
        for entry in removed.drain(..) {
            // Only a closed port refuses, and closing drops queued entries anyway.
            if let Ok(wake) = self.gate.push(entry) {
                self.wake_if(wake);
            }
        }
    }

    /// Ends this thread's release on this port without a call: applies what it owes, and
    /// hands its slot on.
    fn end_release(&self, rearms: &[u64]) {
        if self.inherited() {
            return;
        }
        if !rearms.is_empty() {
            with_scratch(|scratch| {
                let _ = self.apply(scratch, &mut [], rearms);
            });
        }
        let wake = self.gate.leave();
        self.wake_if(wake);
    }

    fn wake_if(&self, wake: bool) {
        if wake {
            // A wake can only fail if the eventfd is broken, which would be a bug; the
            // waiter then still ends at its timeout.
            let result = self.selector.wake();
            debug_assert!(result.is_ok(), "wake failed: {result:?}");
        }
    }

    /// Turns kernel reports into entries in `out`; the owed re-arms go to `rearms`. Returns
    /// how many, and whether a wake was among the reports.
    fn deliver(&self, raw: &Reports, out: &mut [CompletionEntry], rearms: &mut Vec<u64>) -> usize {
        let mut n = 0;
        for event in raw.iter().filter(|e| e.token != WAKE_TOKEN) {
            if let Some((entry, owed)) = self.registry.deliver(&self.selector, event) {
                out[n] = entry;
                n += 1;
                if owed {
                    rearms.push(event.token);
                }
            }
        }
        n
    }
}

/// Counts the calling thread out of the kernel wait if it unwinds from there (no panic
/// leaks a slot or a waiter, rule 18).
struct InKernel<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for InKernel<'_> {
    fn drop(&mut self) {
        if self.armed {
            let wake = self.shared.gate.abandon_kernel();
            self.shared.wake_if(wake);
        }
    }
}

/// Counts the calling thread out of the released ones if it unwinds while validating.
struct Running<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.armed {
            let wake = self.shared.gate.leave();
            self.shared.wake_if(wake);
        }
    }
}

impl CompletionPort {
    /// A port with concurrency 0 (the number of CPUs) and [`Backend::Auto`].
    ///
    /// # Errors
    ///
    /// As [`PortBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// let port = socknotify::CompletionPort::new()?;
    /// assert!(port.concurrency() >= 1); // the number of CPUs
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn new() -> io::Result<CompletionPort> {
        Self::builder().build()
    }

    /// A builder for a port with a chosen concurrency or backend.
    ///
    /// # Examples
    ///
    /// ```
    /// let port = socknotify::CompletionPort::builder().concurrency(1).build()?;
    /// assert_eq!(port.concurrency(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> PortBuilder {
        PortBuilder::default()
    }

    /// The backend this port uses (never [`Backend::Auto`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{Backend, CompletionPort};
    /// let port = CompletionPort::new()?;
    /// assert!(matches!(port.backend(), Backend::Epoll | Backend::IoUring));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.shared.selector.backend()
    }

    /// The concurrency: how many threads may be released at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let port = socknotify::CompletionPort::builder().concurrency(3).build()?;
    /// assert_eq!(port.concurrency(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn concurrency(&self) -> usize {
        self.shared.gate.concurrency()
    }

    /// The number of registrations on this port (including sockets closed since they were
    /// registered, which the port has not yet noticed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{CompletionPort, Events, Registration, Trigger};
    /// let port = CompletionPort::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let mut change = [Registration::enable(&socket, 1, Events::IN, Trigger::LEVEL)];
    /// port.process(&mut change, &mut [], None)?;
    /// change[0].result()?;
    /// assert_eq!(port.registrations(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn registrations(&self) -> usize {
        self.shared.registry.len()
    }

    /// Applies `registrations` in order, then dequeues into `entries` as
    /// [`dequeue`](CompletionPort::dequeue) does (`ProcessSocketNotifications`).
    ///
    /// Each registration gets its own result ([`Registration::result`]); one bad
    /// registration does not stop the others. With an empty `entries`, `process` only
    /// registers and returns `Ok(0)` at once (a released thread stays released). Returns
    /// the number of entries written.
    ///
    /// # Errors
    ///
    /// Only for the call as a whole: [`BrokenPipe`](io::ErrorKind::BrokenPipe) if the port
    /// is or gets closed (every registration's result says so too), even when every
    /// registration was invalid; [`Unsupported`](io::ErrorKind::Unsupported) for a port
    /// inherited across `fork`; a kernel error from the wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, Events, Registration, Trigger};
    /// let port = CompletionPort::new()?;
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// socket.send_to(b"hi", socket.local_addr()?)?;
    /// // Register and wait in one call; each registration has its own result.
    /// let mut changes = [Registration::enable(&socket, 9, Events::IN, Trigger::ONESHOT | Trigger::LEVEL)];
    /// let mut entries = [CompletionEntry::default(); 8];
    /// let n = port.process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
    /// changes[0].result()?;
    /// assert_eq!((n, entries[0].key, entries[0].events()), (1, 9, Events::IN));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias = "ProcessSocketNotifications")]
    pub fn process(
        &self,
        registrations: &mut [Registration],
        entries: &mut [CompletionEntry],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.shared.check()?;
        if entries.is_empty() {
            return with_scratch(|scratch| self.shared.apply(scratch, registrations, &[]))
                .map(|()| 0)
                .map_err(io::Error::from);
        }
        self.call(registrations, entries, timeout)
    }

    /// Dequeues up to `entries.len()` entries, waiting up to `timeout` for the first
    /// (`GetQueuedCompletionStatusEx`). Returns how many were written, `Ok(0)` on timeout.
    ///
    /// `None` waits forever; `Some(Duration::ZERO)` never blocks; any other timeout returns
    /// no earlier than it when nothing arrives. When `concurrency` threads are released,
    /// the others wait even if entries are ready; the most recent waiter goes first. The
    /// calling thread counts as released from the moment this returns entries until it
    /// calls again; the persistent registrations whose entries it received are re-armed
    /// then.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an empty `entries`;
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) if the port is or gets closed;
    /// [`Unsupported`](io::ErrorKind::Unsupported) for a port inherited across `fork`; a
    /// kernel error from the wait.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort};
    /// let port = CompletionPort::new()?;
    /// let mut entries = [CompletionEntry::default(); 4];
    /// // Nothing queued: a zero timeout returns at once with nothing.
    /// assert_eq!(port.dequeue(&mut entries, Some(Duration::ZERO))?, 0);
    /// port.post(CompletionEntry::new(1, 2, 3))?;
    /// assert_eq!(port.dequeue(&mut entries, None)?, 1);
    /// assert_eq!(entries[0], CompletionEntry::new(1, 2, 3));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias = "GetQueuedCompletionStatusEx")]
    pub fn dequeue(
        &self,
        entries: &mut [CompletionEntry],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        if entries.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the entries buffer is empty; pass room for at least one entry",
            ));
        }
        self.shared.check()?;
        self.call(&mut [], entries, timeout)
    }

    /// One call that dequeues: ends the thread's release (its owed re-arms ride with the
    /// call's registrations), applies, waits, and records the new release.
    fn call(
        &self,
        registrations: &mut [Registration],
        entries: &mut [CompletionEntry],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        with_local(|local| self.call_with(local, registrations, entries, timeout))
    }

    fn call_with(
        &self,
        local: &mut Local,
        registrations: &mut [Registration],
        entries: &mut [CompletionEntry],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        // The call's clock, read as it starts.
        let timeout = (timeout, Deadline::after(timeout));
        let shared = &self.shared;
        let release = &mut local.release;
        if !release.on(shared) {
            // A release on another port ends here (that port's slot is handed on).
            *release = Release::new(shared);
        }
        let released_here = std::mem::replace(&mut release.active, false);
        let applied = shared.apply(&mut local.scratch, registrations, &release.rearms);
        release.rearms.clear();
        let result = match applied {
            Ok(()) => self.wait(
                &mut local.scratch,
                entries,
                &mut release.rearms,
                timeout,
                released_here,
            ),
            Err(failure) => {
                if released_here {
                    let wake = shared.gate.leave();
                    shared.wake_if(wake);
                }
                Err(failure.into())
            }
        };
        // Not released: nothing is owed.
        release.active = matches!(result, Ok(n) if n > 0);
        debug_assert!(release.active || release.rearms.is_empty());
        result
    }

    /// Waits for entries; with some, the thread is released on return.
    fn wait(
        &self,
        scratch: &mut Scratch,
        out: &mut [CompletionEntry],
        rearms: &mut Vec<u64>,
        (mut timeout, deadline): (Option<Duration>, Deadline),
        mut released_here: bool,
    ) -> io::Result<usize> {
        let shared = &*self.shared;
        let gate = &shared.gate;
        loop {
            let again = std::mem::take(&mut released_here);
            let (enter, wake) = gate.enter(out, rearms, deadline, again)?;
            shared.wake_if(wake);
            match enter {
                Enter::Taken(n) => return Ok(n),
                Enter::Timeout => return Ok(0),
                Enter::Kernel => {}
            }
            let mut in_kernel = InKernel {
                shared,
                armed: true,
            };
            // The first kernel wait of a call gets its timeout as it is (the call started
            // a moment ago); a later one what is left of it.
            let timeout = timeout.take().map_or_else(|| deadline.left(), Some);
            scratch.raw.clear();
            let waited = shared.selector.wait(&mut scratch.raw, out.len(), timeout);
            in_kernel.armed = false;
            let back = if scratch.raw.is_empty() && waited.is_ok() {
                // The kernel reported nothing (and no wake): with nothing to validate, the
                // thread takes no slot; it enters again, or looks at the queue a last time.
                let wake = gate.abandon_kernel();
                shared.wake_if(wake);
                None
            } else {
                let saw_wake = scratch.raw.iter().any(|e| e.token == WAKE_TOKEN);
                let back = gate.back(saw_wake).map_err(|(failure, pass_on)| {
                    shared.wake_if(pass_on);
                    io::Error::from(failure)
                })?;
                Some(back)
            };
            match back {
                None => {}
                Some(Back::Run) => {
                    let mut running = Running {
                        shared,
                        armed: true,
                    };
                    let got = shared.deliver(&scratch.raw, out, rearms);
                    let (taken, wake) = gate.ran(got, &mut out[got..], rearms);
                    running.armed = false;
                    shared.wake_if(wake);
                    if got + taken > 0 {
                        return Ok(got + taken);
                    }
                }
                Some(Back::Full(mut stash)) => {
                    // Every slot is taken: the reports wait in the queue for whoever runs
                    // next, and this thread waits for a slot.
                    for event in scratch.raw.iter().filter(|e| e.token != WAKE_TOKEN) {
                        if let Some((entry, owed)) =
                            shared.registry.deliver(&shared.selector, event)
                        {
                            stash.push(entry, if owed { event.token } else { NO_REARM });
                        }
                    }
                }
            }
            match waited {
                Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
                _ => {}
            }
            if deadline.passed() {
                // A last look at the queue without blocking, then give up.
                let (taken, wake) = gate.last_look(out, rearms)?;
                shared.wake_if(wake);
                return Ok(taken);
            }
        }
    }

    /// Queues `entry` for one dequeuing thread (`PostQueuedCompletionStatus`). `key`,
    /// `bytes` and `overlapped` come out unchanged; any key is allowed, including one equal
    /// to a registration's.
    ///
    /// # Errors
    ///
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) if the port is closed;
    /// [`Unsupported`](io::ErrorKind::Unsupported) for a port inherited across `fork`.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{CompletionEntry, CompletionPort};
    /// let port = CompletionPort::new()?;
    /// // An exit entry, say, that the dequeuing threads pass on to each other.
    /// port.post(CompletionEntry::new(usize::MAX, 0, 0))?;
    /// let mut entries = [CompletionEntry::default(); 1];
    /// assert_eq!(port.dequeue(&mut entries, None)?, 1);
    /// assert_eq!(entries[0].key, usize::MAX);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias = "PostQueuedCompletionStatus")]
    pub fn post(&self, entry: CompletionEntry) -> io::Result<()> {
        self.shared.check()?;
        let wake = self.shared.gate.push(entry)?;
        self.shared.wake_if(wake);
        Ok(())
    }

    /// Runs `f`, a call that may block on something other than this port, with the calling
    /// thread's release slot given back for that time, so that another thread can run in its
    /// place (what Windows does by itself when a released thread blocks in the kernel).
    ///
    /// The persistent registrations whose entries the thread received are re-armed first.
    /// Inside `f` the thread may call this port or others, and `blocking` nests. Afterwards
    /// the thread counts as released here again (even if that briefly exceeds the
    /// concurrency), unless a call inside `f` left it released somewhere. If the thread is
    /// not released on this port, `f` simply runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort};
    /// let port = CompletionPort::builder().concurrency(1).build()?;
    /// port.post(CompletionEntry::new(1, 0, 0))?;
    /// let mut entries = [CompletionEntry::default(); 1];
    /// port.dequeue(&mut entries, None)?; // this thread is released now
    /// assert_eq!(port.stats().released, 1);
    /// // While it sleeps (a database call, a lock...), another thread may run in its place.
    /// port.blocking(|| {
    ///     assert_eq!(port.stats().released, 0);
    ///     std::thread::sleep(Duration::from_millis(1));
    /// });
    /// assert_eq!(port.stats().released, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        let held = LOCAL
            .try_with(|local| {
                let mut local = local.try_borrow_mut().ok()?;
                let release = &mut local.release;
                if release.active && release.on(&self.shared) {
                    release.active = false;
                    Some(std::mem::take(&mut release.rearms))
                } else {
                    None
                }
            })
            .ok()
            .flatten();
        let Some(rearms) = held else {
            return f();
        };
        self.shared.end_release(&rearms);

        /// Takes the slot back when `f` returns or unwinds.
        struct Restore<'a>(&'a CompletionPort);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let port = self.0;
                let _ = LOCAL.try_with(|local| {
                    let Ok(mut local) = local.try_borrow_mut() else {
                        return;
                    };
                    let release = &mut local.release;
                    if release.active || port.shared.inherited() {
                        return;
                    }
                    port.shared.gate.retake();
                    if !release.on(&port.shared) {
                        // Not released anywhere: replacing the record ends nothing.
                        *release = Release::new(&port.shared);
                    }
                    release.active = true;
                });
            }
        }
        let _restore = Restore(self);
        f()
    }

    /// Closes the port (`CloseHandle`). Every thread waiting in `dequeue`/`process` wakes
    /// with a [`BrokenPipe`](io::ErrorKind::BrokenPipe) error; every later call fails the
    /// same way; queued entries are dropped; every registration ends without a REMOVE
    /// entry, so its sockets can be registered on another port. Closing twice is harmless.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{is_port_closed, CompletionEntry, CompletionPort};
    /// let port = CompletionPort::new()?;
    /// port.close();
    /// let err = port.post(CompletionEntry::default()).unwrap_err();
    /// assert!(is_port_closed(&err));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias = "CloseHandle")]
    pub fn close(&self) {
        if self.shared.inherited() {
            return;
        }
        // Registrations first, so that none is made afterwards.
        self.shared.registry.close();
        if self.shared.gate.close() {
            self.shared.wake_if(true);
        }
    }

    /// What the port's threads are doing right now: for monitoring, and for tests that
    /// need to know that a thread is waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{CompletionEntry, CompletionPort};
    /// let port = CompletionPort::new()?;
    /// port.post(CompletionEntry::new(5, 0, 0))?;
    /// let stats = port.stats();
    /// assert_eq!((stats.queued, stats.released, stats.waiting_in_kernel), (1, 0, 0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> PortStats {
        self.shared.gate.stats()
    }

    /// Whether [`close`](CompletionPort::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let port = socknotify::CompletionPort::new()?;
    /// assert!(!port.is_closed());
    /// port.close();
    /// assert!(port.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.gate.is_closed()
    }
}

impl Drop for CompletionPort {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for CompletionPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionPort")
            .field("backend", &self.backend())
            .field("concurrency", &self.concurrency())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
