//! The thin system-call layer of the harness: every `libc` call of the benchmark that is
//! not a contender's own API goes through here.

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Calls a libc function and turns `-1` into the thread's `errno`, as mio's `syscall!`.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        // SAFETY: each call site states in its own SAFETY comment why its arguments satisfy
        // the libc function's contract.
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// Raises the soft descriptor limit as far as allowed: first the hard limit itself to
/// `wanted` (works only with `CAP_SYS_RESOURCE`), then the soft limit to the hard one.
/// Returns the soft limit in force afterwards.
pub fn raise_nofile(wanted: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write to.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim))?;
    if lim.rlim_max < wanted {
        let more = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: wanted,
        };
        // SAFETY: `more` is a valid rlimit to read; failure (EPERM) changes nothing.
        if syscall!(setrlimit(libc::RLIMIT_NOFILE, &more)).is_ok() {
            return Ok(wanted);
        }
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit to read; soft up to hard needs no privilege.
        syscall!(setrlimit(libc::RLIMIT_NOFILE, &lim))?;
    }
    Ok(lim.rlim_cur)
}

/// `n` connected pairs of non-blocking stream sockets: `fds[2i]` and `fds[2i + 1]` are the
/// two ends of pair `i`. Unix socket pairs, or TCP connections over 127.0.0.1 with
/// `TCP_NODELAY`.
pub fn socket_pairs(n: usize, tcp: bool) -> io::Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(2 * n);
    if tcp {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        for _ in 0..n {
            let a = TcpStream::connect(addr)?;
            let (b, _) = listener.accept()?;
            for s in [a, b] {
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                fds.push(OwnedFd::from(s));
            }
        }
        return Ok(fds);
    }
    for _ in 0..n {
        let mut pair = [-1; 2];
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: `pair` has room for the two descriptors socketpair writes.
        syscall!(socketpair(libc::AF_UNIX, ty, 0, pair.as_mut_ptr()))?;
        for fd in pair {
            // SAFETY: socketpair returned two new descriptors that nothing else owns.
            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Ok(fds)
}

/// One `read(2)`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writes; any `fd` value is acceptable.
    syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len())).map(|n| n as usize)
}

/// One `write(2)`.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` reads; any `fd` value is acceptable.
    syscall!(write(fd, buf.as_ptr().cast(), buf.len())).map(|n| n as usize)
}

/// A non-blocking eventfd, the usual way to wake a thread blocked in epoll or poll.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with an initial value and flags.
    let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
    // SAFETY: eventfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter.
pub fn eventfd_add(fd: &OwnedFd) -> io::Result<()> {
    match send(fd.as_raw_fd(), &1u64.to_ne_bytes()) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Resets an eventfd's counter to zero (it stops being readable).
pub fn eventfd_reset(fd: &OwnedFd) -> io::Result<()> {
    let mut value = [0u8; 8];
    match recv(fd.as_raw_fd(), &mut value) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// This process's resident set size in bytes (`VmRSS` in `/proc/self/status`).
pub fn rss_bytes() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other("no VmRSS line in /proc/self/status"))
}

/// `mkfifo(3)` with mode 0600.
pub fn mkfifo(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    syscall!(mkfifo(c.as_ptr(), 0o600)).map(drop)
}

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The first CPU model name in `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Total memory from `/proc/meminfo`, as the kernel prints it.
pub fn mem_total() -> String {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// CPU time this process has used so far, all threads, user and kernel
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_time() -> io::Result<std::time::Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    syscall!(clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts))?;
    Ok(std::time::Duration::new(
        ts.tv_sec as u64,
        ts.tv_nsec as u32,
    ))
}

/// The load averages (`/proc/loadavg`: 1, 5 and 15 minutes).
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// User and system CPU time of this process so far, every thread (`getrusage(RUSAGE_SELF)`).
pub fn rusage_self() -> io::Result<(std::time::Duration, std::time::Duration)> {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid rusage to write to.
    syscall!(getrusage(libc::RUSAGE_SELF, &mut ru))?;
    let time = |t: libc::timeval| {
        std::time::Duration::new(t.tv_sec as u64, 0)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    Ok((time(ru.ru_utime), time(ru.ru_stime)))
}

/// Whether `file` becomes readable within `timeout` (`poll(2)`).
pub fn readable_within(file: &impl AsRawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
    loop {
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        match syscall!(poll(&mut pfd, 1, ms)) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
