//! Helpers shared by the conformance tests: backends, socket pairs, and expectations about
//! what a port delivers (as mio's `expect_events`).

#![allow(dead_code)] // each test file uses a different subset

pub mod child;
pub mod race;

use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use socknotify::{
    AsSocketLike, Backend, CompletionEntry, CompletionPort, Events, RawSocketLike, Registration,
    Trigger,
};

/// The code for a closed descriptor or handle (`EBADF`; Winsock's `WSAEBADF`).
#[cfg(unix)]
pub const EBADF: i32 = libc::EBADF;
/// The code for something that is not a socket (`ENOTSOCK`; Winsock's `WSAENOTSOCK`).
#[cfg(unix)]
pub const ENOTSOCK: i32 = libc::ENOTSOCK;
/// The code a backend's "no such registration" would have (`ENOENT`), which must never
/// reach the caller raw.
#[cfg(unix)]
pub const ENOENT: i32 = libc::ENOENT;
/// The code for a closed descriptor or handle (`EBADF`; Winsock's `WSAEBADF`).
#[cfg(windows)]
pub const EBADF: i32 = 10009;
/// The code a backend's "no such registration" would have (`ERROR_NOT_FOUND`, what
/// `STATUS_NOT_FOUND` becomes), which must never reach the caller raw.
#[cfg(windows)]
pub const ENOENT: i32 = 1168;
/// The code for something that is not a socket (`ENOTSOCK`; Winsock's `WSAENOTSOCK`).
#[cfg(windows)]
pub const ENOTSOCK: i32 = 10038;

/// Whether this is a Windows program running under Wine (its ntdll exports
/// `wine_get_version`). Wine's completion port releases its waiters first come, first
/// served, where Windows' releases the most recent first (rule 18's LIFO).
#[cfg(windows)]
pub fn under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: both names are NUL-terminated literals; ntdll is loaded in every process and
    // GetModuleHandleA takes no reference; GetProcAddress only looks the name up.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

/// Whether this is a Windows program running under Wine: never on unix.
#[cfg(unix)]
pub fn under_wine() -> bool {
    false
}

/// The backends this OS has, each tried by [`backends`].
#[cfg(unix)]
const CANDIDATES: [Backend; 2] = [Backend::Epoll, Backend::IoUring];
/// The backends this OS has, each tried by [`backends`].
#[cfg(windows)]
const CANDIDATES: [Backend; 2] = [Backend::Afd, Backend::Native];

/// The raw descriptor (unix) or handle (Windows) of `socket`, with no `cfg` in the tests.
pub fn raw(socket: &impl AsSocketLike) -> RawSocketLike {
    Registration::disable(socket).socket()
}

/// How long an expected entry may take to arrive.
pub const ARRIVAL: Duration = Duration::from_secs(20);
/// How long to watch for an entry that must not come.
pub const QUIET: Duration = Duration::from_millis(150);

/// Every backend this machine can run; says loudly which ones it skips.
pub fn backends() -> Vec<Backend> {
    let mut available = Vec::new();
    for backend in CANDIDATES {
        match CompletionPort::builder().backend(backend).build() {
            Ok(port) => {
                assert_eq!(port.backend(), backend, "backend() must report the truth");
                available.push(backend);
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("SKIP: backend {backend:?} is unavailable here: {e}");
            }
            Err(e) => panic!("building a port with {backend:?} failed: {e}"),
        }
    }
    assert!(!available.is_empty(), "no backend available");
    available
}

/// Runs `test` once per available backend, naming the backend if it fails.
pub fn each_backend(test: impl Fn(Backend)) {
    for backend in backends() {
        eprintln!("-- backend {backend:?}");
        test(backend);
    }
}

/// A port on `backend` with concurrency 0 (the CPU count).
pub fn port(backend: Backend) -> CompletionPort {
    port_with(backend, 0)
}

/// A port on `backend` with the given concurrency.
pub fn port_with(backend: Backend, concurrency: usize) -> CompletionPort {
    CompletionPort::builder()
        .backend(backend)
        .concurrency(concurrency)
        .build()
        .expect("build port")
}

/// A connected loopback TCP pair `(client, server)`, both non-blocking.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// A connected loopback UDP pair, both non-blocking.
pub fn udp_pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
    a.connect(b.local_addr().unwrap()).unwrap();
    b.connect(a.local_addr().unwrap()).unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

pub const LEVEL: Trigger = Trigger::PERSISTENT.union(Trigger::LEVEL);
pub const EDGE: Trigger = Trigger::PERSISTENT.union(Trigger::EDGE);
pub const ONESHOT_LEVEL: Trigger = Trigger::ONESHOT.union(Trigger::LEVEL);
pub const ONESHOT_EDGE: Trigger = Trigger::ONESHOT.union(Trigger::EDGE);

/// Applies `registrations` without dequeuing and returns their results.
pub fn apply(port: &CompletionPort, registrations: &mut [Registration]) -> Vec<io::Result<()>> {
    let n = port
        .process(registrations, &mut [], Some(Duration::ZERO))
        .expect("process");
    assert_eq!(n, 0, "process with no entry buffer dequeues nothing");
    registrations.iter().map(Registration::result).collect()
}

/// Applies one registration and returns its result.
pub fn apply_one(port: &CompletionPort, registration: Registration) -> io::Result<()> {
    apply(port, &mut [registration]).pop().unwrap()
}

/// Registers `socket`, which must succeed.
pub fn enable(
    port: &CompletionPort,
    socket: &impl AsSocketLike,
    key: usize,
    events: Events,
    trigger: Trigger,
) {
    apply_one(port, Registration::enable(socket, key, events, trigger)).expect("enable");
}

/// Dequeues one batch, waiting up to `timeout`.
pub fn dequeue(port: &CompletionPort, timeout: Duration) -> Vec<CompletionEntry> {
    let mut entries = [CompletionEntry::default(); 64];
    let n = port.dequeue(&mut entries, Some(timeout)).expect("dequeue");
    entries[..n].to_vec()
}

/// Waits for the next entry, failing after [`ARRIVAL`].
pub fn next_entry(port: &CompletionPort) -> CompletionEntry {
    let mut entry = [CompletionEntry::default(); 1];
    let n = port.dequeue(&mut entry, Some(ARRIVAL)).expect("dequeue");
    assert_eq!(n, 1, "no entry arrived within {ARRIVAL:?}");
    entry[0]
}

/// Waits for an entry for `key` whose events are exactly `events`.
pub fn expect_entry(port: &CompletionPort, key: usize, events: Events) {
    let entry = next_entry(port);
    assert_eq!(
        (entry.key, entry.events(), entry.overlapped),
        (key, events, 0),
        "unexpected entry {entry:?}"
    );
}

/// Asserts that no entry arrives within [`QUIET`].
pub fn expect_nothing(port: &CompletionPort) {
    let got = dequeue(port, QUIET);
    assert!(got.is_empty(), "expected no entry, got {got:?}");
}

/// Collects every entry that arrives until the port has been quiet for [`QUIET`].
pub fn drain(port: &CompletionPort) -> Vec<CompletionEntry> {
    let mut all = Vec::new();
    loop {
        let got = dequeue(port, QUIET);
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// Removes `socket`'s registration and waits for its REMOVE entry, which must be the only
/// entry for `key` from then on; returns the other entries seen on the way.
pub fn remove_and_wait(
    port: &CompletionPort,
    socket: &impl AsSocketLike,
    key: usize,
) -> Vec<CompletionEntry> {
    apply_one(port, Registration::remove(socket)).expect("remove");
    let deadline = Instant::now() + ARRIVAL;
    let mut others = Vec::new();
    while Instant::now() < deadline {
        for entry in dequeue(port, Duration::from_millis(100)) {
            if entry.key == key && entry.events() == Events::REMOVE {
                return others;
            }
            others.push(entry);
        }
    }
    panic!("no REMOVE entry for key {key} within {ARRIVAL:?}");
}

/// Reads everything available from a non-blocking stream; returns the byte count.
pub fn read_all(stream: &mut TcpStream) -> usize {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Closes `stream` with an RST (SO_LINGER 0), so the peer sees a reset.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(stream);
}

/// Shuts down the writing side, so the peer sees end of stream.
pub fn shutdown_write(stream: &TcpStream) {
    stream.shutdown(Shutdown::Write).expect("shutdown");
}

/// The number of descriptors this process has open (entries of `/proc/self/fd`, less the
/// one used to list them).
#[cfg(target_os = "linux")]
pub fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
        - 1
}

/// Waits until `cond` holds on the port's stats, failing after [`ARRIVAL`].
pub fn wait_for_stats(
    port: &CompletionPort,
    what: &str,
    cond: impl Fn(socknotify::PortStats) -> bool,
) {
    let deadline = Instant::now() + ARRIVAL;
    while !cond(port.stats()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            port.stats()
        );
        std::thread::yield_now();
    }
}

/// The CPU time the calling thread has used.
#[cfg(windows)]
pub fn thread_cpu_time() -> Duration {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::{GetCurrentThread, GetThreadTimes};
    let mut t = [FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    }; 4];
    let [creation, exit, kernel, user] = &mut t;
    // SAFETY: the four FILETIMEs are live locals; the pseudo-handle names this thread.
    let ok = unsafe { GetThreadTimes(GetCurrentThread(), creation, exit, kernel, user) };
    assert_ne!(ok, 0, "GetThreadTimes: {}", io::Error::last_os_error());
    let ticks = |f: &FILETIME| (u64::from(f.dwHighDateTime) << 32) | u64::from(f.dwLowDateTime);
    Duration::from_nanos((ticks(&t[2]) + ticks(&t[3])) * 100)
}

/// The number of handles this process has open.
#[cfg(windows)]
pub fn open_descriptors() -> usize {
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessHandleCount};
    let mut n = 0u32;
    // SAFETY: `n` is a live local; the pseudo-handle names this process.
    let ok = unsafe { GetProcessHandleCount(GetCurrentProcess(), &mut n) };
    assert_ne!(
        ok,
        0,
        "GetProcessHandleCount: {}",
        io::Error::last_os_error()
    );
    n as usize
}

/// The CPU time the calling thread has used.
#[cfg(unix)]
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", io::Error::last_os_error());
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A small seeded PRNG (xorshift64*), so that randomised tests are reproducible without a
/// dependency: a failure prints the seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// The key of the entry that stops [`LoggingDequeuers`] (and the threads of other tests):
/// each thread that takes it posts it again for the next one.
pub const EXIT: usize = usize::MAX;

/// One entry as a [`LoggingDequeuers`] thread saw it: the sequence number taken just before
/// the call that returned it, and the one taken just after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logged {
    pub before: usize,
    pub key: usize,
    pub events: Events,
    pub after: usize,
}

/// Threads that dequeue from a port until an [`EXIT`] entry and log every entry with
/// sequence numbers, so that a test can tell which call began after which event.
pub struct LoggingDequeuers {
    /// The sequence the threads number their calls with; tests take numbers from it too.
    pub seq: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    log: std::sync::Arc<std::sync::Mutex<Vec<Logged>>>,
    /// REMOVE entries logged so far: waiting on it does not hold up the threads.
    removes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl LoggingDequeuers {
    /// Starts `threads` threads, each dequeuing up to `batch` entries per call.
    pub fn spawn(port: &std::sync::Arc<CompletionPort>, threads: usize, batch: usize) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let seq = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let removes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handles = (0..threads)
            .map(|_| {
                let (port, seq, log, removes) =
                    (port.clone(), seq.clone(), log.clone(), removes.clone());
                std::thread::spawn(move || {
                    let mut room = [CompletionEntry::default(); 64];
                    let entries = &mut room[..batch];
                    loop {
                        let before = seq.fetch_add(1, SeqCst);
                        let n = port.dequeue(entries, Some(ARRIVAL)).expect("dequeue");
                        let after = seq.fetch_add(1, SeqCst);
                        let mut log = log.lock().unwrap();
                        for e in &entries[..n] {
                            if e.key == EXIT {
                                port.post(*e).unwrap();
                                return;
                            }
                            if e.events().is_remove() {
                                removes.fetch_add(1, SeqCst);
                            }
                            log.push(Logged {
                                before,
                                key: e.key,
                                events: e.events(),
                                after,
                            });
                        }
                    }
                })
            })
            .collect();
        LoggingDequeuers {
            seq,
            log,
            removes,
            handles,
        }
    }

    /// Waits until `n` REMOVE entries have been logged, failing after [`ARRIVAL`].
    pub fn wait_for_removes(&self, n: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        let deadline = Instant::now() + ARRIVAL;
        while self.removes.load(SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} REMOVE entries within {ARRIVAL:?}",
                self.removes.load(SeqCst)
            );
            std::thread::yield_now();
        }
    }

    /// Stops the threads (one [`EXIT`] entry, passed on) and returns the log.
    pub fn stop(self, port: &CompletionPort) -> Vec<Logged> {
        port.post(CompletionEntry::new(EXIT, 0, 0)).unwrap();
        for h in self.handles {
            h.join().expect("dequeuing thread");
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// Rule 4 over a log: at most one REMOVE entry per key, and no other entry for a key dequeued
/// by a call that began after its REMOVE entry was dequeued. Returns, per removed key, the
/// sequence number right after its REMOVE was dequeued.
pub fn assert_remove_is_last(log: &[Logged]) -> std::collections::HashMap<usize, usize> {
    let mut removed_at = std::collections::HashMap::new();
    for l in log.iter().filter(|l| l.events.is_remove()) {
        assert_eq!(l.events, Events::REMOVE, "REMOVE with other bits: {l:?}");
        assert!(
            removed_at.insert(l.key, l.after).is_none(),
            "two REMOVEs for {}",
            l.key
        );
    }
    for l in log.iter().filter(|l| !l.events.is_remove()) {
        if let Some(&at) = removed_at.get(&l.key) {
            assert!(
                l.before < at,
                "{:?} for {} dequeued by a call that began after its REMOVE",
                l.events,
                l.key
            );
        }
    }
    removed_at
}

/// Raw values that name no open socket: the invalid value and numbers no descriptor or
/// handle of this process has (the limits are far below them, so no other thread of the
/// test can be given one). Each must fail as a closed descriptor (`EBADF`, rule 22).
#[cfg(unix)]
pub fn closed_sockets() -> Vec<RawSocketLike> {
    vec![-1, i32::MIN, 1 << 24, i32::MAX]
}

/// Raw values that name no open socket: `INVALID_SOCKET` and handle values far above any
/// this process is given (never the pseudo-handles -1 and -2 but as `INVALID_SOCKET`).
#[cfg(windows)]
pub fn closed_sockets() -> Vec<RawSocketLike> {
    vec![u64::MAX, 1 << 26, 0x7fff_fffc, 0xffff_fff0]
}

/// An open object that is not a socket, kept open while this lives.
pub struct NonSocket {
    pub what: &'static str,
    pub raw: RawSocketLike,
    _owned: Box<dyn std::any::Any>,
}

/// Descriptors that are not sockets, as the kernel makes them.
#[cfg(unix)]
pub fn non_sockets() -> Vec<NonSocket> {
    use std::fs::File;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut pipe = [-1; 2];
    // SAFETY: `pipe` has room for the two descriptors pipe2 writes; the others are plain
    // syscalls with flag arguments.
    let (eventfd, epoll) = unsafe {
        assert_eq!(libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (
            libc::eventfd(0, libc::EFD_CLOEXEC),
            libc::epoll_create1(libc::EPOLL_CLOEXEC),
        )
    };
    assert!(
        eventfd >= 0 && epoll >= 0,
        "{}",
        std::io::Error::last_os_error()
    );
    // SAFETY: all four are new descriptors (checked above) that nothing else owns.
    let [r, w, eventfd, epoll] =
        [pipe[0], pipe[1], eventfd, epoll].map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let owned: Vec<(&'static str, OwnedFd)> = vec![
        ("pipe reader", r),
        ("pipe writer", w),
        ("regular file", File::open("/proc/self/exe").unwrap().into()),
        ("character device", File::open("/dev/null").unwrap().into()),
        ("directory", File::open("/").unwrap().into()),
        ("eventfd", eventfd),
        ("epoll instance", epoll),
    ];
    owned
        .into_iter()
        .map(|(what, fd)| NonSocket {
            what,
            raw: fd.as_raw_fd(),
            _owned: Box::new(fd),
        })
        .collect()
}

/// Handles that are not sockets: a regular file, the null device.
#[cfg(windows)]
pub fn non_sockets() -> Vec<NonSocket> {
    use std::os::windows::io::AsRawHandle;
    [("regular file", "Cargo.toml"), ("null device", "NUL")]
        .into_iter()
        .map(|(what, path)| {
            let file = std::fs::File::open(path).unwrap();
            NonSocket {
                what,
                raw: file.as_raw_handle() as RawSocketLike,
                _owned: Box::new(file),
            }
        })
        .collect()
}
