//! `CompletionPort` and `PortBuilder`: the public face. No system calls here; they go
//! through the selector (`sys`) and the registry.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Failure;
use crate::event::CompletionEntry;
use crate::owners;
use crate::queue::{self, Gate, PortStats};
use crate::registration::Registration;
use crate::registry::{Planned, Registry};
use crate::sync::Arc;
use crate::sys::{Change, RawEvent, Selector, PROBE_TOKEN, WAKE_TOKEN};

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
    /// Linux `io_uring(7)` (6.15 or later) driving an epoll interest set: a batch of
    /// re-arms and the wait cost one `io_uring_enter`. Building a port with it fails with
    /// [`ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported) where the kernel lacks a
    /// needed feature.
    IoUring,
}

/// A completion port: a queue of completion entries shared by any number of threads, fed by
/// the sockets registered on it and by [`post`](CompletionPort::post).
///
/// `CompletionPort` is `Send + Sync`: share it with [`Arc`] or scoped threads. Dropping it
/// closes it ([`close`](CompletionPort::close)) and ends every registration silently.
///
/// See the [crate documentation](crate) for the model and an example.
#[doc(alias = "CreateIoCompletionPort")]
#[doc(alias = "HANDLE")]
pub struct CompletionPort {
    inner: Inner,
}

struct Inner {
    selector: Selector,
    registry: Mutex<Registry>,
    gate: Arc<Gate>,
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
    pub fn concurrency(mut self, threads: usize) -> Self {
        self.concurrency = threads;
        self
    }

    /// Which backend to use; [`Backend::Auto`] by default. The environment variable
    /// `SOCKNOTIFY_BACKEND` (`epoll`, `io_uring`) overrides `Auto`, so that a test suite can
    /// run once per backend.
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
        let port = owners::register_port(selector.fd());
        Ok(CompletionPort {
            inner: Inner {
                selector,
                registry: Mutex::new(Registry::new(port)),
                gate: Gate::new(concurrency),
            },
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
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("SOCKNOTIFY_BACKEND={other:?} is not one of auto, epoll, io_uring"),
            )),
        },
    }
}

/// Per-thread buffers, reused by every call so that the hot path does not allocate.
#[derive(Default)]
struct Scratch {
    /// Kernel reports of one wait.
    raw: Vec<RawEvent>,
    /// Changes planned by the registry, with the index of their registration.
    planned: Vec<(usize, Planned)>,
    /// The planned changes, as the selector takes them.
    changes: Vec<Change>,
    /// The selector's answer for each change.
    results: Vec<io::Result<()>>,
}

impl Scratch {
    fn is_planned(&self, fd: std::os::fd::RawFd) -> bool {
        self.planned.iter().any(|(_, p)| p.change.fd == fd)
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl CompletionPort {
    /// A port with concurrency 0 (the number of CPUs) and [`Backend::Auto`].
    ///
    /// # Errors
    ///
    /// As [`PortBuilder::build`].
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn new() -> io::Result<CompletionPort> {
        Self::builder().build()
    }

    /// A builder for a port with a chosen concurrency or backend.
    pub fn builder() -> PortBuilder {
        PortBuilder::default()
    }

    /// The backend this port uses (never [`Backend::Auto`]).
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.inner.selector.backend()
    }

    /// The concurrency: how many threads may be released at once.
    #[must_use]
    pub fn concurrency(&self) -> usize {
        self.inner.gate.concurrency()
    }

    /// The number of registrations on this port (including sockets closed since they were
    /// registered, which the port has not yet noticed).
    #[must_use]
    pub fn registrations(&self) -> usize {
        self.registry().len()
    }

    /// Applies `registrations` in order, then dequeues into `entries` as
    /// [`dequeue`](CompletionPort::dequeue) does (`ProcessSocketNotifications`).
    ///
    /// Each registration gets its own result ([`Registration::result`]); one bad
    /// registration does not stop the others. With an empty `entries`, `process` only
    /// registers and returns `Ok(0)` at once. Returns the number of entries written.
    ///
    /// # Errors
    ///
    /// Only for the call as a whole: [`BrokenPipe`](io::ErrorKind::BrokenPipe) if the port
    /// is or gets closed (every registration's result says so too), or a kernel error from
    /// the wait.
    #[doc(alias = "ProcessSocketNotifications")]
    pub fn process(
        &self,
        registrations: &mut [Registration],
        entries: &mut [CompletionEntry],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            let applied = self.apply(scratch, registrations);
            if applied.is_err() || entries.is_empty() {
                self.flush(scratch, registrations);
                // With neither registrations nor room for entries, nothing else would
                // notice a closed port.
                if registrations.is_empty() && self.is_closed() {
                    return Err(Failure::PortClosed.into());
                }
                return applied.map(|()| 0);
            }
            self.dequeue_in(scratch, registrations, entries, timeout)
        })
    }

    /// Applies `registrations` in order. Re-arms and DISABLEs of registered sockets are only
    /// planned when the backend batches them with the wait; the rest is applied now. Any
    /// operation on a socket that already has a planned change first submits the planned
    /// changes, so that each socket's operations reach the kernel in order.
    fn apply(&self, scratch: &mut Scratch, registrations: &mut [Registration]) -> io::Result<()> {
        if registrations.is_empty() {
            return Ok(());
        }
        // A closed port is noticed under the registry's lock: `close` closes the registry
        // first, and every registration then gets `PortClosed`.
        let batching = self.inner.selector.batches();
        let mut registry = Some(self.registry());
        let mut closed = false;
        for i in 0..registrations.len() {
            let request = match registrations[i].request() {
                Ok(request) => request,
                Err(failure) => {
                    registrations[i].set_result(Err(failure));
                    continue;
                }
            };
            if batching {
                if request.fd().is_some_and(|fd| scratch.is_planned(fd)) {
                    // One change per socket in flight, so that the kernel sees them in order.
                    registry = None;
                    self.flush(scratch, registrations);
                }
                let reg = registry.get_or_insert_with(|| self.registry());
                if let Some(planned) = reg.plan(request) {
                    scratch.planned.push((i, planned));
                    continue;
                }
            }
            let reg = registry.get_or_insert_with(|| self.registry());
            let result = reg
                .apply(&self.inner.selector, request)
                .and_then(|remove| remove.map_or(Ok(()), |entry| self.queue(entry)));
            closed |= result == Err(Failure::PortClosed);
            registrations[i].set_result(result);
        }
        if closed {
            return Err(Failure::PortClosed.into());
        }
        Ok(())
    }

    /// Submits the planned changes without waiting, and records their results.
    fn flush(&self, scratch: &mut Scratch, registrations: &mut [Registration]) {
        if !scratch.planned.is_empty() {
            let _ = self.wait(scratch, registrations, &mut [], None);
        }
    }

    /// Dequeues up to `entries.len()` entries, waiting up to `timeout` for the first
    /// (`GetQueuedCompletionStatusEx`). Returns how many were written, `Ok(0)` on timeout.
    ///
    /// `None` waits forever; `Some(Duration::ZERO)` never blocks; any other timeout returns
    /// no earlier than it when nothing arrives. When more threads call than the port's
    /// concurrency allows, the others wait even if entries are ready; the most recent
    /// waiter goes first. The calling thread counts as released from the moment this
    /// returns entries until it calls again.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) for an empty `entries`;
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) if the port is or gets closed; a kernel
    /// error from the wait.
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
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            self.dequeue_in(scratch, &mut [], entries, timeout)
        })
    }

    /// Dequeues; the planned changes in `scratch` go with the first kernel wait.
    fn dequeue_in(
        &self,
        scratch: &mut Scratch,
        registrations: &mut [Registration],
        entries: &mut [CompletionEntry],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        // No deadline: forever (also for timeouts too large to represent).
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let gate = &self.inner.gate;
        let admitted = if scratch.planned.is_empty() {
            Gate::admit(gate, entries, deadline)
        } else {
            // Changes must not wait for a slot: apply them first if one is not free now.
            match Gate::admit(gate, entries, Some(Instant::now())) {
                Ok(None) => {
                    self.flush(scratch, registrations);
                    Gate::admit(gate, entries, deadline)
                }
                other => {
                    if other.is_err() {
                        self.flush(scratch, registrations);
                    }
                    other
                }
            }
        };
        let Some(admission) = admitted? else {
            return Ok(0);
        };
        self.wake_if(admission.wake);
        let mut got = admission.taken;
        loop {
            let wait = if got > 0 {
                Some(Duration::ZERO)
            } else {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            };
            // With a full buffer this only applies the planned changes, if any.
            let (delivered, saw_wake, result) =
                self.wait(scratch, registrations, &mut entries[got..], wait);
            got += delivered;
            let again = got == 0
                && deadline.is_none_or(|d| Instant::now() < d)
                && result
                    .as_ref()
                    .map_or_else(|e| e.kind() == io::ErrorKind::Interrupted, |_| true);
            let back = Gate::back(gate, got, saw_wake, &mut entries[got..], again);
            self.wake_if(back.wake);
            got += back.taken;
            if back.again {
                continue;
            }
            if got > 0 {
                return Ok(got);
            }
            if gate.is_closed() {
                return Err(Failure::PortClosed.into());
            }
            return match result {
                Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
                _ => Ok(0),
            };
        }
    }

    /// One kernel transition: applies the planned changes (settling their registrations'
    /// results) and, if `out` has room, waits and delivers validated entries into it.
    /// Returns how many, whether a wake was seen, and the wait's result.
    fn wait(
        &self,
        scratch: &mut Scratch,
        registrations: &mut [Registration],
        out: &mut [CompletionEntry],
        timeout: Option<Duration>,
    ) -> (usize, bool, io::Result<()>) {
        let Scratch {
            raw,
            planned,
            changes,
            results,
        } = scratch;
        raw.clear();
        changes.clear();
        results.clear();
        changes.extend(planned.iter().map(|(_, p)| p.change));
        let selector = &self.inner.selector;
        let result = match (changes.is_empty(), out.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => selector.wait(raw, out.len(), timeout),
            (false, _) => selector.submit(changes, results, raw, out.len(), timeout),
        };
        let mut delivered = 0;
        let mut saw_wake = false;
        if !raw.is_empty() || !planned.is_empty() {
            let mut registry = self.registry();
            for ((index, plan), result) in planned.drain(..).zip(results.drain(..)) {
                registrations[index].set_result(registry.settle(selector, &plan, result));
            }
            for event in raw.iter() {
                match event.token {
                    WAKE_TOKEN => saw_wake = true,
                    PROBE_TOKEN => {}
                    _ => {
                        if let Some(entry) = registry.deliver(selector, *event) {
                            out[delivered] = entry;
                            delivered += 1;
                        }
                    }
                }
            }
        }
        (delivered, saw_wake, result)
    }

    /// Queues `entry` for one dequeuing thread (`PostQueuedCompletionStatus`). `key`,
    /// `bytes` and `overlapped` come out unchanged; any key is allowed, including one equal
    /// to a registration's.
    ///
    /// # Errors
    ///
    /// [`BrokenPipe`](io::ErrorKind::BrokenPipe) if the port is closed.
    #[doc(alias = "PostQueuedCompletionStatus")]
    pub fn post(&self, entry: CompletionEntry) -> io::Result<()> {
        self.queue(entry).map_err(io::Error::from)
    }

    fn queue(&self, entry: CompletionEntry) -> Result<(), Failure> {
        let wake = self.inner.gate.push(entry)?;
        self.wake_if(wake);
        Ok(())
    }

    /// Runs `f`, a call that may block on something other than this port, with the calling
    /// thread's release slot given back for that time, so that another thread can run in its
    /// place (what Windows does by itself when a released thread blocks in the kernel).
    /// Afterwards the thread counts as released again, even if that briefly exceeds the
    /// concurrency. If the thread is not released on this port, `f` simply runs.
    pub fn blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        queue::blocking(&self.inner.gate, f)
    }

    /// Closes the port (`CloseHandle`). Every thread waiting in `dequeue`/`process` wakes
    /// with a [`BrokenPipe`](io::ErrorKind::BrokenPipe) error; every later call fails the
    /// same way; queued entries are dropped; every registration ends without a REMOVE
    /// entry, so its sockets can be registered on another port. Closing twice is harmless.
    #[doc(alias = "CloseHandle")]
    pub fn close(&self) {
        // Registrations first, under the registry lock, so that none is made afterwards.
        self.registry().close();
        if self.inner.gate.close() {
            self.wake_if(true);
        }
    }

    /// What the port's threads are doing right now: for monitoring, and for tests that
    /// need to know that a thread is waiting.
    #[must_use]
    pub fn stats(&self) -> PortStats {
        self.inner.gate.stats()
    }

    /// Whether [`close`](CompletionPort::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.gate.is_closed()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Registry operations leave it consistent before anything that can panic.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn wake_if(&self, wake: bool) {
        if wake {
            // A wake can only fail if the eventfd is broken, which would be a bug; the
            // waiter then still ends at its timeout.
            let result = self.inner.selector.wake();
            debug_assert!(result.is_ok(), "wake failed: {result:?}");
        }
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
