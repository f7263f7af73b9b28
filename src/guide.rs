//! # Writing a multi-threaded server
//!
//! This guide walks through the decisions a server on one [`CompletionPort`] shared by
//! several threads has to make, in the order it meets them. The complete program it
//! describes, the crate's main example, is at the end. Rule numbers refer to
//! [the specification](crate::spec).
//!
//! ## The shape of a server thread
//!
//! Every thread runs the same loop around one call:
//!
//! 1. [`process`](crate::CompletionPort::process) applies the registration changes the thread
//!    collected while handling its previous batch, then waits for the next batch of
//!    entries. One kernel transition does both.
//! 2. It reads each change's [`result`](crate::Registration::result): a failure concerns that
//!    registration only (rule 9), and is dealt with without stopping the server.
//! 3. It handles each entry, pushing the changes the entries call for (re-arms, REMOVEs) for
//!    the next `process`.
//!
//! `process` itself fails only for the call as a whole: the port was closed, or the wait
//! failed. That is the one error that ends a thread.
//!
//! ## Choosing the concurrency
//!
//! A port releases at most its *concurrency* threads at once (rule 18): a thread counts from
//! the moment `process` or `dequeue` hands it entries until it calls again; the others wait,
//! the most recent first, so a few threads stay hot in the cache.
//!
//! - `0`, the default, means the number of CPUs: right for handlers that compute and do
//!   non-blocking I/O, since more running threads than CPUs only adds switches.
//! - Start a few more threads than the concurrency. A released thread that blocks (on a
//!   disk, a lock, a blocking call) does not free its slot by itself as it would on
//!   Windows; wrap such calls in [`CompletionPort::blocking`], which lends the slot to a
//!   waiting thread for that time. The spare threads are the ones that take over.
//! - Concurrency `1` serialises the handlers without a lock of your own; more threads than
//!   that then only stand by.
//!
//! ## Per-connection state
//!
//! A completion key is a `usize`. [`ContextPort`] turns it into a safe handle: register a
//! socket with its context (the socket itself, buffers, a protocol state machine) and each
//! entry comes back as a [`Delivery`] holding an [`Arc`](std::sync::Arc) of that context.
//! Keys are generation-checked, so an entry for a connection that is gone never reaches the
//! one that reused its slot. Keep your own keys (the listener's, the exit entry's) in the
//! reserved ranges of [`is_context_key`]: `0` and `usize::MAX` are both free.
//!
//! ## The listener's trigger
//!
//! Register the listener `ONESHOT | LEVEL` and let the thread that gets its entry accept
//! until `WouldBlock`, then re-arm it through its next `process`:
//!
//! - `PERSISTENT | LEVEL` wakes a thread per entry while connections wait, several of which
//!   find nothing to accept; and when `accept` fails with `EMFILE` (out of descriptors) the
//!   connection stays pending, so every dequeue reports the listener again: the server
//!   spins at full speed, doing nothing.
//! - `EDGE` does not spin, but after an `EMFILE` the pending connection produces no new
//!   edge: the listener falls silent until another client happens to connect.
//! - `ONESHOT | LEVEL` hands the listener to one thread at a time. On `EMFILE` that thread
//!   simply does not re-arm it, and records that it is paused; whoever frees a descriptor
//!   (a connection's REMOVE entry) or notices a quiet timeout re-arms it, and since the
//!   condition is level-triggered the pending connection is reported again at once
//!   (rule 12).
//!
//! Make the listener non-blocking: an entry means "was readable", and another process (or a
//! client that gave up, `ECONNABORTED`) may have taken the connection since.
//!
//! ## One-shot connections, re-armed through the next `process`
//!
//! Register each connection `ONESHOT | LEVEL` for `IN | HANGUP`. After one entry it is
//! disarmed (rule 12), so the thread that got the entry owns the connection until it
//! re-arms it: no two threads read the same socket, and its state needs no lock contention.
//!
//! - Read one chunk per entry: with level triggering, re-arming while data is left queues a
//!   new entry at once, possibly for another thread, which keeps one busy connection from
//!   starving the others.
//! - Write without blocking. What the socket does not take goes into the connection's
//!   buffer, and the re-arm asks for `OUT` as well until the buffer is empty.
//! - `read` returning 0 is the end of the stream (HANGUP alone is not: data may still be
//!   queued before it). Finish writing, then REMOVE.
//! - Push the re-arm into the thread's change list: it rides with the thread's next
//!   `process`, which on io_uring costs no system call of its own.
//!
//! `WouldBlock` and `Interrupted` on a read or write mean "later", never the end of the
//! connection. Any other error ends that connection: REMOVE it.
//!
//! ## When a registration fails
//!
//! Each failed change has a meaning for the registration it names:
//!
//! - A connection's first ENABLE ([`ContextPort::register`]) fails: nothing was registered,
//!   and the context comes back in [`Refused`]; drop it (closing the socket).
//! - A re-arm fails: the registration stays as it was, registered and disarmed, so nothing
//!   would ever report it again. REMOVE it.
//! - A REMOVE fails: no REMOVE entry will come. Let the context go with
//!   [`ContextPort::take`].
//!
//! [`Registration::with_key`] puts the key on DISABLE and REMOVE changes, so that a failed
//! one says whose it was, and [`Registration`]'s `Debug` names its operation and flags for
//! the log.
//!
//! ## The shutdown order
//!
//! 1. **Apply the pending changes.** Stop accepting (REMOVE the listener), and REMOVE the
//!    connections you are closing. Every thread's change list must reach a `process` call:
//!    a re-arm or a REMOVE still sitting in a list does nothing.
//! 2. **Wait for the REMOVE entries.** A REMOVE entry is a registration's last (rule 4);
//!    only then may its context (and socket) go. With a [`ContextPort`], the
//!    [`Delivery::Removed`] hands the context back; count them.
//! 3. **Post the exit entry.** The thread that dequeues the last REMOVE entry posts an
//!    entry with a key of your own. One entry wakes one thread: each thread that takes it
//!    finishes its batch, applies its pending changes, posts the entry again for the next
//!    thread, and leaves.
//!
//! Then join the threads and close the port ([`ContextPort::close`] hands back any context
//! left, which after a clean shutdown is none). Closing the port first instead would wake
//! every thread with an error and end every registration without a REMOVE entry: right as
//! a last resort, when something has gone wrong, but it skips the orderly part.
//!
//! ## The complete example
//!
//! The crate's `examples/multithreaded_tcp_server/server.rs`, the Winsock document's multi-threaded
//! server written this way (`cargo run --release --example multithreaded_tcp_server`):
//!
//! [`CompletionPort`]: crate::CompletionPort
//! [`CompletionPort::blocking`]: crate::CompletionPort::blocking
//! [`ContextPort`]: crate::ContextPort
//! [`ContextPort::register`]: crate::ContextPort::register
//! [`ContextPort::take`]: crate::ContextPort::take
//! [`ContextPort::close`]: crate::ContextPort::close
//! [`Delivery`]: crate::Delivery
//! [`Delivery::Removed`]: crate::Delivery::Removed
//! [`Refused`]: crate::Refused
//! [`is_context_key`]: crate::is_context_key
//! [`Registration`]: crate::Registration
//! [`Registration::with_key`]: crate::Registration::with_key
#![doc = concat!(
    "```ignore\n",
    "// examples/multithreaded_tcp_server/server.rs (built by `cargo build --examples`,\n",
    "// run by the scenario tests; `main.rs` beside it drives it with clients)\n",
    include_str!("../examples/multithreaded_tcp_server/server.rs"),
    "```"
)]
