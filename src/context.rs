//! `ContextPort`: per-registration contexts without `unsafe`, on the public API of
//! [`CompletionPort`] only.
//!
//! A completion key is a bare `usize`. Winsock programs put a pointer in it, which in Rust
//! means `unsafe` and a use-after-free as soon as an entry outlives its context; a global
//! `Mutex<HashMap>` is the safe alternative, with keys that can be reused while an old entry
//! is still in flight. `ContextPort` keeps each context in a slab under a key made of the
//! slot's index and a generation: the REMOVE entry (or [`take`](ContextPort::take)) frees the
//! slot and bumps its generation, so an entry carrying an old key never reaches the slot's
//! next context.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::{CompletionEntry, CompletionPort, Events, Registration, Trigger};

/// Bits of a context key that hold the slot index; the bits above hold the generation.
const INDEX_BITS: u32 = if usize::BITS >= 64 { 32 } else { 20 };
/// The index part of a key.
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// The generation with every bit set: never used, so that the highest keys stay free.
const GENERATION_MAX: usize = usize::MAX >> INDEX_BITS;

/// Whether `key` is one that a [`ContextPort`] may hand out.
///
/// Context keys never fall in the two reserved ranges: `0..2^32` and the top `2^32` keys up
/// to `usize::MAX` on 64-bit targets (`0..2^20` and the top `2^20` on 32-bit ones). Use keys
/// from those ranges for posted entries (an exit entry with `usize::MAX`, say) and for
/// sockets registered with keys of your own (a listener with key 0): a [`ContextPort`]
/// reports them as [`Delivery::Other`], unchanged.
///
/// # Examples
///
/// ```
/// use socknotify::is_context_key;
///
/// assert!(!is_context_key(0));
/// assert!(!is_context_key(1000));
/// assert!(!is_context_key(usize::MAX));
/// ```
#[must_use]
pub const fn is_context_key(key: usize) -> bool {
    let generation = key >> INDEX_BITS;
    generation != 0 && generation != GENERATION_MAX
}

/// A [`CompletionPort`] whose socket registrations each own a context of type `T`.
///
/// - [`register`](ContextPort::register) stores the context and registers the socket under
///   a fresh key; if the kernel refuses the registration, the context comes back at once in
///   [`Refused`].
/// - [`entry`](ContextPort::entry) turns each dequeued entry into a [`Delivery`]: the
///   context of its key as an [`Arc<T>`], or, for the REMOVE entry, the context itself, no
///   longer held by the port.
/// - [`close`](ContextPort::close) closes the port and hands back every context left.
///
/// Everything else goes through [`port`](ContextPort::port): re-arms and REMOVEs are plain
/// [`Registration`]s with the context's key, applied by the next
/// [`process`](CompletionPort::process), and [`post`](CompletionPort::post) works as
/// usual. Keep posted keys in the reserved ranges of [`is_context_key`]; a posted entry
/// with a live context's key would be taken for that context's entry.
///
/// Send a key's ENABLEs only while its registration exists: after the REMOVE, an ENABLE
/// with the old key would register the socket anew under a key that reaches nothing (its
/// entries come out as [`Delivery::Stale`]). With `ONESHOT` registrations this holds by
/// itself, since only the thread that got a connection's last entry re-arms or removes it.
///
/// # Cost and locking
///
/// One mutex guards a slab of `(generation, Arc<T>)` slots: 16 bytes per context on 64-bit
/// targets, besides the `Arc` itself. `entry` holds it for an index, a comparison and an
/// `Arc` clone (one atomic increment); `register` and the REMOVE entry for a push or a pop
/// of the free list. Nothing allocates per entry; the slab grows to the largest number of
/// contexts alive at once and keeps that capacity. `register` costs one `process` call of
/// its own (which a new registration's kernel call needs anyway); re-arms stay batched.
///
/// `ContextPort<T>` is `Send + Sync` when `T` is: share it with `Arc` or scoped threads.
///
/// A generation has 32 bits on 64-bit targets (12 on 32-bit ones): a stale key could only
/// meet a new context after that many reuses of one slot while its entry was still queued,
/// which the REMOVE rule (rule 4) rules out for keys freed by their REMOVE entry.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::net::{TcpListener, TcpStream};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use socknotify::{
///     CompletionEntry, CompletionPort, ContextPort, Delivery, Events, Registration, Trigger,
/// };
///
/// struct Conn {
///     name: &'static str,
///     stream: TcpStream,
/// }
///
/// let port: ContextPort<Conn> = ContextPort::new(CompletionPort::new()?);
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut client = TcpStream::connect(listener.local_addr()?)?;
/// let (stream, _) = listener.accept()?;
/// // The context owns the socket: register it through an `Arc` the port can keep.
/// let conn = Arc::new(Conn { name: "first", stream });
/// let key = port.register(&conn.stream, Arc::clone(&conn), Events::IN, Trigger::LEVEL)?;
/// drop(conn);
/// client.write_all(b"ping")?;
///
/// let mut entries = [CompletionEntry::default(); 4];
/// let n = port.port().dequeue(&mut entries, Some(Duration::from_secs(5)))?;
/// let Delivery::Event { context, .. } = port.entry(&entries[0]) else { panic!() };
/// assert_eq!((n, context.name), (1, "first"));
///
/// // REMOVE, then the REMOVE entry hands the context back.
/// let mut changes = [Registration::remove(&context.stream)];
/// drop(context);
/// let n = port.port().process(&mut changes, &mut entries, Some(Duration::from_secs(5)))?;
/// changes[0].result()?;
/// let Delivery::Removed { key: removed, context } = port.entry(&entries[n - 1]) else {
///     panic!()
/// };
/// assert_eq!(removed, key);
/// let conn: Conn = Arc::into_inner(context).expect("the port no longer holds it");
/// assert!(port.is_empty());
/// # drop(conn);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ContextPort<T> {
    // Declared first, so that dropping closes the port before the contexts go.
    port: CompletionPort,
    table: Mutex<Table<T>>,
}

/// What one dequeued entry is, as [`ContextPort::entry`] sees it.
#[derive(Debug)]
#[must_use]
pub enum Delivery<T> {
    /// A notification (or a posted entry) for the live context of `key`.
    Event {
        /// The completion key.
        key: usize,
        /// The entry's events ([`CompletionEntry::events`]).
        events: Events,
        /// The context registered with `key`.
        context: Arc<T>,
    },
    /// The registration's REMOVE entry, its last: the port has let go of the context, and
    /// no other entry will reach it (rule 4). If no other thread still holds a clone from an
    /// earlier entry, [`Arc::into_inner`] gives back the `T`.
    Removed {
        /// The completion key, free from now on.
        key: usize,
        /// The context, no longer held by the port.
        context: Arc<T>,
    },
    /// An entry whose key is not a context key ([`is_context_key`]): a posted entry, or a
    /// registration made with a key of your own. Unchanged.
    Other(CompletionEntry),
    /// An entry with a context key whose context is gone: it was
    /// [`take`](ContextPort::take)n, or the port was closed. It never reaches another
    /// context.
    Stale(CompletionEntry),
}

/// A context whose registration [`ContextPort::register`] could not make, handed back with
/// the reason. The port holds nothing for it: no registration, no slot.
///
/// `?` turns it into the [`io::Error`] (dropping the context).
pub struct Refused<T> {
    /// Why the registration failed (the registration's result).
    pub error: io::Error,
    /// The context, as it was passed in.
    pub context: Arc<T>,
}

impl<T> ContextPort<T> {
    /// Wraps `port`; its sockets get contexts through [`register`](ContextPort::register).
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{CompletionPort, ContextPort};
    ///
    /// let port: ContextPort<String> = ContextPort::new(CompletionPort::new()?);
    /// assert!(port.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn new(port: CompletionPort) -> Self {
        ContextPort {
            port,
            table: Mutex::new(Table::new()),
        }
    }

    /// The completion port, for `process`, `dequeue`, `post` and the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, ContextPort, Delivery};
    ///
    /// let port: ContextPort<()> = ContextPort::new(CompletionPort::new()?);
    /// port.port().post(CompletionEntry::new(usize::MAX, 0, 0))?;
    /// let mut entries = [CompletionEntry::default(); 1];
    /// port.port().dequeue(&mut entries, Some(Duration::from_secs(5)))?;
    /// assert!(matches!(port.entry(&entries[0]), Delivery::Other(e) if e.key == usize::MAX));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn port(&self) -> &CompletionPort {
        &self.port
    }

    /// Registers `socket` (ENABLE with `events` and `trigger`) under a new key that owns
    /// `context`, and returns the key. Pass `T` or an `Arc<T>`.
    ///
    /// The registration is made at once, by a `process` call of its own. Re-arm it, change
    /// its filter or REMOVE it with [`Registration`]s that carry the returned key, through
    /// [`port`](ContextPort::port)`().process`.
    ///
    /// # Errors
    ///
    /// [`Refused`], holding the context, when the registration fails: the reason is the
    /// registration's result (a descriptor that is not a socket, a socket already
    /// registered, a closed port, ...). Nothing of it is left in the port.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::fs::File;
    /// use std::net::UdpSocket;
    /// use std::sync::Arc;
    /// use socknotify::{CompletionPort, ContextPort, Events, Trigger};
    ///
    /// let port = ContextPort::new(CompletionPort::new()?);
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let key = port.register(&socket, "udp", Events::IN, Trigger::EDGE)?;
    /// assert_eq!(port.get(key).as_deref(), Some(&"udp"));
    ///
    /// // Not a socket: the context comes straight back.
    /// let refused = port
    ///     .register(&File::open("/dev/null")?, "file", Events::IN, Trigger::LEVEL)
    ///     .unwrap_err();
    /// assert_eq!(*refused.context, "file");
    /// assert_eq!(port.len(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn register(
        &self,
        socket: &impl crate::AsSocketLike,
        context: impl Into<Arc<T>>,
        events: Events,
        trigger: Trigger,
    ) -> Result<usize, Refused<T>> {
        let context = context.into();
        let Some(key) = self.table().insert(Arc::clone(&context)) else {
            let error = io::Error::new(
                io::ErrorKind::OutOfMemory,
                "every context key is in use; REMOVE registrations before adding more",
            );
            return Err(Refused { error, context });
        };
        let mut change = [Registration::enable(socket, key, events, trigger)];
        let result = self
            .port
            .process(&mut change, &mut [], Some(Duration::ZERO))
            .and_then(|_| change[0].result());
        match result {
            Ok(()) => Ok(key),
            Err(error) => {
                // No registration was made, so no entry can carry the key: free it now. (If
                // `close` got there first, it has handed out a clone already.)
                self.table().take(key);
                Err(Refused { error, context })
            }
        }
    }

    /// Says what `entry`, just dequeued from [`port`](ContextPort::port), is for.
    ///
    /// An entry with [`Events::REMOVE`] and a live context's key frees the key and hands the
    /// context back ([`Delivery::Removed`]); any other entry with a live key hands out a
    /// clone of its context ([`Delivery::Event`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use std::time::Duration;
    /// use socknotify::{CompletionEntry, CompletionPort, ContextPort, Delivery, Events, Trigger};
    ///
    /// let port = ContextPort::new(CompletionPort::new()?);
    /// let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    /// let key = port.register(&a, 7_u32, Events::IN, Trigger::ONESHOT | Trigger::LEVEL)?;
    /// b.send_to(b"hi", a.local_addr()?)?;
    /// let mut entries = [CompletionEntry::default(); 1];
    /// port.port().dequeue(&mut entries, Some(Duration::from_secs(5)))?;
    /// match port.entry(&entries[0]) {
    ///     Delivery::Event { key: k, events, context } => {
    ///         assert_eq!((k, events, *context), (key, Events::IN, 7));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn entry(&self, entry: &CompletionEntry) -> Delivery<T> {
        let key = entry.key;
        if !is_context_key(key) {
            return Delivery::Other(*entry);
        }
        let events = entry.events();
        let mut table = self.table();
        if events.is_remove() {
            match table.take(key) {
                Some(context) => Delivery::Removed { key, context },
                None => Delivery::Stale(*entry),
            }
        } else {
            match table.get(key) {
                Some(context) => Delivery::Event {
                    key,
                    events,
                    context: Arc::clone(context),
                },
                None => Delivery::Stale(*entry),
            }
        }
    }

    /// The context of `key`, if it is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{CompletionPort, ContextPort, Events, Trigger};
    ///
    /// let port = ContextPort::new(CompletionPort::new()?);
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let key = port.register(&socket, String::from("ctx"), Events::IN, Trigger::LEVEL)?;
    /// assert_eq!(port.get(key).as_deref().map(String::as_str), Some("ctx"));
    /// assert!(port.get(key ^ 1).is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn get(&self, key: usize) -> Option<Arc<T>> {
        self.table().get(key).cloned()
    }

    /// Frees `key` and hands its context back without waiting for a REMOVE entry: for a
    /// registration that ended without one (its socket was closed, rule 7). Entries still
    /// queued with `key` then come out as [`Delivery::Stale`]; a registration that still
    /// exists keeps delivering them, so REMOVE it first where you can.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{CompletionEntry, CompletionPort, ContextPort, Delivery, Events, Trigger};
    ///
    /// let port = ContextPort::new(CompletionPort::new()?);
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// let key = port.register(&socket, 1_u8, Events::IN, Trigger::LEVEL)?;
    /// drop(socket); // closing it ends the registration silently
    /// assert_eq!(port.take(key).as_deref(), Some(&1));
    /// let late = CompletionEntry::new(key, u32::from(Events::IN.bits()), 0);
    /// assert!(matches!(port.entry(&late), Delivery::Stale(_)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take(&self, key: usize) -> Option<Arc<T>> {
        self.table().take(key)
    }

    /// The number of live contexts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{CompletionPort, ContextPort, Events, Trigger};
    ///
    /// let port = ContextPort::new(CompletionPort::new()?);
    /// let socket = UdpSocket::bind("127.0.0.1:0")?;
    /// port.register(&socket, (), Events::IN, Trigger::LEVEL)?;
    /// assert_eq!(port.len(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.table().len
    }

    /// Whether no context is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use socknotify::{CompletionPort, ContextPort};
    ///
    /// let port: ContextPort<()> = ContextPort::new(CompletionPort::new()?);
    /// assert!(port.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the port ([`CompletionPort::close`]: every registration ends without a REMOVE
    /// entry, waiting threads wake with an error) and hands back every context left. Later
    /// calls to [`register`](ContextPort::register) are refused; later entries are stale.
    ///
    /// Dropping a `ContextPort` does the same and drops the contexts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::UdpSocket;
    /// use socknotify::{CompletionPort, ContextPort, Events, Trigger};
    ///
    /// let port = ContextPort::new(CompletionPort::new()?);
    /// let (a, b) = (UdpSocket::bind("127.0.0.1:0")?, UdpSocket::bind("127.0.0.1:0")?);
    /// port.register(&a, 'a', Events::IN, Trigger::LEVEL)?;
    /// port.register(&b, 'b', Events::IN, Trigger::LEVEL)?;
    /// let mut left: Vec<char> = port.close().into_iter().map(|c| *c).collect();
    /// left.sort();
    /// assert_eq!(left, ['a', 'b']);
    /// assert!(port.register(&a, 'c', Events::IN, Trigger::LEVEL).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[doc(alias = "CloseHandle")]
    pub fn close(&self) -> Vec<Arc<T>> {
        self.port.close();
        self.table().drain()
    }

    fn table(&self) -> MutexGuard<'_, Table<T>> {
        // Every table operation completes before anything that can panic.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> fmt::Debug for ContextPort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextPort")
            .field("port", &self.port)
            .field("contexts", &self.len())
            .finish()
    }
}

impl<T> fmt::Debug for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registration refused: {}", self.error)
    }
}

impl<T> std::error::Error for Refused<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<Refused<T>> for io::Error {
    fn from(refused: Refused<T>) -> io::Error {
        refused.error
    }
}

/// The slab: slots addressed by index, each with the generation its key must carry.
struct Table<T> {
    slots: Vec<Slot<T>>,
    /// Indices of empty slots, reused last-freed first.
    free: Vec<usize>,
    /// Slots holding a context.
    len: usize,
}

struct Slot<T> {
    generation: usize,
    context: Option<Arc<T>>,
}

impl<T> Table<T> {
    fn new() -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Stores `context` and returns its key, or `None` when every index is in use.
    fn insert(&mut self, context: Arc<T>) -> Option<usize> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.slots.len() <= INDEX_MASK => {
                self.slots.push(Slot {
                    generation: 1,
                    context: None,
                });
                self.slots.len() - 1
            }
            None => return None,
        };
        let slot = &mut self.slots[index];
        slot.context = Some(context);
        self.len += 1;
        Some(slot.generation << INDEX_BITS | index)
    }

    /// The slot `key` names, if its generation matches.
    fn slot(&mut self, key: usize) -> Option<&mut Slot<T>> {
        let slot = self.slots.get_mut(key & INDEX_MASK)?;
        (slot.generation == key >> INDEX_BITS).then_some(slot)
    }

    fn get(&mut self, key: usize) -> Option<&Arc<T>> {
        self.slot(key)?.context.as_ref()
    }

    /// Empties the slot of `key` and moves it to the next generation.
    fn take(&mut self, key: usize) -> Option<Arc<T>> {
        let slot = self.slot(key)?;
        let context = slot.context.take()?;
        slot.generation = next_generation(slot.generation);
        self.free.push(key & INDEX_MASK);
        self.len -= 1;
        Some(context)
    }

    /// Empties every slot.
    fn drain(&mut self) -> Vec<Arc<T>> {
        let mut contexts = Vec::with_capacity(self.len);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Some(context) = slot.context.take() {
                slot.generation = next_generation(slot.generation);
                self.free.push(index);
                contexts.push(context);
            }
        }
        self.len = 0;
        contexts
    }
}

/// The generation after `generation`, skipping 0 and the all-ones value (reserved keys).
fn next_generation(generation: usize) -> usize {
    if generation + 1 >= GENERATION_MAX {
        1
    } else {
        generation + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_avoid_both_reserved_ranges() {
        let mut table = Table::new();
        let keys: Vec<usize> = (0..1000)
            .map(|i| table.insert(Arc::new(i)).unwrap())
            .collect();
        for &key in &keys {
            assert!(is_context_key(key), "{key:#x}");
            assert!(key > INDEX_MASK, "{key:#x} is in the low range");
            assert!(
                key >> INDEX_BITS != GENERATION_MAX,
                "{key:#x} in the high range"
            );
        }
        assert!(!is_context_key(0));
        assert!(!is_context_key(INDEX_MASK));
        assert!(is_context_key(INDEX_MASK + 1));
        assert!(!is_context_key(usize::MAX));
        assert!(!is_context_key(GENERATION_MAX << INDEX_BITS));
        assert!(is_context_key((GENERATION_MAX << INDEX_BITS) - 1));
    }

    #[test]
    fn a_freed_slot_comes_back_under_a_new_key() {
        let mut table = Table::new();
        let old = table.insert(Arc::new("old")).unwrap();
        assert_eq!(table.take(old).as_deref(), Some(&"old"));
        assert!(table.take(old).is_none(), "a key is freed once");
        let new = table.insert(Arc::new("new")).unwrap();
        assert_eq!(new & INDEX_MASK, old & INDEX_MASK, "the slot is reused");
        assert_ne!(new, old);
        assert!(
            table.get(old).is_none(),
            "the old key must not reach the new context"
        );
        assert_eq!(table.get(new).map(|c| **c), Some("new"));
        assert_eq!(table.len, 1);
    }

    #[test]
    fn generations_wrap_past_the_reserved_values() {
        assert_eq!(next_generation(1), 2);
        assert_eq!(next_generation(GENERATION_MAX - 1), 1);
        let mut table = Table::new();
        let key = table.insert(Arc::new(())).unwrap();
        table.slots[0].generation = GENERATION_MAX - 1;
        let last = (GENERATION_MAX - 1) << INDEX_BITS;
        assert!(table.take(key).is_none(), "a key of another generation");
        assert!(table.take(last).is_some());
        let again = table.insert(Arc::new(())).unwrap();
        assert_eq!(again >> INDEX_BITS, 1);
        assert!(is_context_key(again));
    }

    #[test]
    fn drain_empties_every_slot_and_retires_its_keys() {
        let mut table = Table::new();
        let keys: Vec<usize> = (0..5).map(|i| table.insert(Arc::new(i)).unwrap()).collect();
        table.take(keys[2]);
        let mut left: Vec<i32> = table.drain().into_iter().map(|c| *c).collect();
        left.sort_unstable();
        assert_eq!(left, [0, 1, 3, 4]);
        assert_eq!(table.len, 0);
        assert!(keys.iter().all(|&k| table.get(k).is_none()));
        assert!(!keys.contains(&table.insert(Arc::new(9)).unwrap()));
    }

    #[test]
    fn context_port_is_send_and_sync_when_its_contexts_are() {
        fn shareable<T: Send + Sync>() {}
        shareable::<ContextPort<String>>();
        shareable::<Delivery<Vec<u8>>>();
    }
}
