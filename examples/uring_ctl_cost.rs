//! What one `epoll_ctl` costs the kernel through each way the io_uring backend could
//! submit it, without socknotify around it: the figures behind `docs/io_uring.md`
//! ("Setup flags").
//!
//! ```text
//! cargo run --release --example uring_ctl_cost -- [--changes 100] [--rounds 5000] [--reps 3]
//! ```
//!
//! `--changes` one-shot Unix sockets are registered in one epoll instance; each round
//! re-arms every one of them (`EPOLL_CTL_MOD`), either with one `epoll_ctl` each or as one
//! chain of linked `IORING_OP_EPOLL_CTL` requests (as the backend submits a batch) in one
//! `io_uring_enter`, on a ring set up with the flags in the row's name. The process has a
//! second, sleeping thread, as a program with a port has: the kernel then takes a
//! reference on every descriptor a call looks up. Each row is the thread's CPU time per
//! change (per call for the `getppid` and empty-enter rows), median (min–max) of
//! `--reps` repetitions, the rows interleaved.

#[cfg(all(target_os = "linux", feature = "io-uring"))]
fn main() {
    linux::main();
}

#[cfg(not(all(target_os = "linux", feature = "io-uring")))]
fn main() {
    eprintln!("uring_ctl_cost needs Linux and the io-uring feature");
}

#[cfg(all(target_os = "linux", feature = "io-uring"))]
mod linux {
    use io_uring::{opcode, squeue, types, IoUring};

    #[derive(Clone, Copy)]
    enum Way {
        /// A system call that does next to nothing: the transition alone.
        Getppid,
        /// One `epoll_ctl` per change.
        Direct,
        /// One chain per round, on a ring with these flags; unlinked if `false`.
        Ring(&'static str, bool),
        /// `io_uring_enter` with nothing to submit or reap, through the ring's descriptor
        /// or (true) its registered index.
        Enter(&'static str, bool),
    }

    const WAYS: &[(&str, Way)] = &[
        ("getppid (one transition)", Way::Getppid),
        ("epoll_ctl, one per change", Way::Direct),
        ("ring, linked, no flags", Way::Ring("", true)),
        ("ring, linked, COOP_TASKRUN", Way::Ring("coop", true)),
        (
            "ring, linked, COOP_TASKRUN + TASKRUN_FLAG",
            Way::Ring("coop tflag", true),
        ),
        (
            "ring, linked, COOP_TASKRUN + SUBMIT_ALL",
            Way::Ring("coop all", true),
        ),
        ("ring, linked, SINGLE_ISSUER", Way::Ring("single", true)),
        (
            "ring, linked, SINGLE_ISSUER + DEFER_TASKRUN",
            Way::Ring("single defer", true),
        ),
        ("ring, unlinked, COOP_TASKRUN", Way::Ring("coop", false)),
        (
            "ring, unlinked, SINGLE_ISSUER + DEFER_TASKRUN",
            Way::Ring("single defer", false),
        ),
        ("empty enter, COOP_TASKRUN", Way::Enter("coop", false)),
        (
            "empty enter, COOP_TASKRUN, registered ring",
            Way::Enter("coop", true),
        ),
        (
            "empty enter, SINGLE_ISSUER + DEFER_TASKRUN",
            Way::Enter("single defer", false),
        ),
        (
            "empty enter, SINGLE_ISSUER + DEFER_TASKRUN, registered ring",
            Way::Enter("single defer", true),
        ),
    ];

    fn cpu_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write to.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    fn ring(flags: &str) -> IoUring {
        let mut builder = IoUring::builder();
        for flag in flags.split_whitespace() {
            match flag {
                "coop" => builder.setup_coop_taskrun(),
                "tflag" => builder.setup_taskrun_flag(),
                "all" => builder.setup_submit_all(),
                "single" => builder.setup_single_issuer(),
                "defer" => builder.setup_defer_taskrun(),
                _ => unreachable!("{flag}"),
            };
        }
        builder.build(128).expect("io_uring_setup (flags too new?)")
    }

    fn number(args: &[String], name: &str, default: u64) -> u64 {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].parse().expect("a number"))
            .unwrap_or(default)
    }

    pub(super) fn main() {
        let args: Vec<String> = std::env::args().collect();
        let changes = number(&args, "--changes", 100).clamp(1, 128) as usize;
        let rounds = number(&args, "--rounds", 5000);
        let reps = number(&args, "--reps", 3).max(1);
        std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(86_400)));

        // SAFETY: plain system calls on descriptors this function owns; the events
        // outlive every call that reads them.
        let (epfd, sockets) = unsafe {
            let epfd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            assert!(epfd >= 0, "epoll_create1");
            let mut sockets = Vec::new();
            for i in 0..changes {
                let mut pair = [0; 2];
                let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
                assert_eq!(
                    libc::socketpair(libc::AF_UNIX, kind, 0, pair.as_mut_ptr()),
                    0
                );
                let mut event = libc::epoll_event {
                    events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
                    u64: i as u64,
                };
                assert_eq!(
                    libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, pair[0], &mut event),
                    0
                );
                sockets.push(pair);
            }
            (epfd, sockets)
        };
        let events: Vec<libc::epoll_event> = (0..changes)
            .map(|i| libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
                u64: i as u64,
            })
            .collect();

        let mut samples = vec![Vec::new(); WAYS.len()];
        for _ in 0..reps {
            for (index, (_, way)) in WAYS.iter().enumerate() {
                let (ns, ops) = run(*way, epfd, &sockets, &events, rounds);
                samples[index].push(ns as f64 / ops as f64);
            }
        }
        println!("{changes} changes per round, {rounds} rounds, {reps} repetitions");
        println!("| way | CPU ns per change (per call for enter, getppid) |");
        println!("|---|---|");
        for ((name, _), mut values) in WAYS.iter().zip(samples) {
            values.sort_by(f64::total_cmp);
            println!(
                "| {name} | {:.0} ({:.0}–{:.0}) |",
                values[values.len() / 2],
                values[0],
                values[values.len() - 1]
            );
        }
    }

    fn run(
        way: Way,
        epfd: i32,
        sockets: &[[i32; 2]],
        events: &[libc::epoll_event],
        rounds: u64,
    ) -> (u64, u64) {
        let n = sockets.len();
        let calls = rounds * n as u64;
        match way {
            Way::Getppid => {
                let start = cpu_ns();
                for _ in 0..calls {
                    // SAFETY: getppid has no arguments and no failure.
                    unsafe { libc::getppid() };
                }
                (cpu_ns() - start, calls)
            }
            Way::Direct => {
                let start = cpu_ns();
                for _ in 0..rounds {
                    for (pair, event) in sockets.iter().zip(events) {
                        let mut event = *event;
                        // SAFETY: registered descriptors; `event` is a valid epoll_event.
                        let rc = unsafe {
                            libc::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, pair[0], &mut event)
                        };
                        assert_eq!(rc, 0);
                    }
                }
                (cpu_ns() - start, calls)
            }
            Way::Ring(flags, linked) => {
                let mut ring = ring(flags);
                let start = cpu_ns();
                for _ in 0..rounds {
                    {
                        let mut sq = ring.submission();
                        for (index, (pair, event)) in sockets.iter().zip(events).enumerate() {
                            let entry = opcode::EpollCtl::new(
                                types::Fd(epfd),
                                types::Fd(pair[0]),
                                libc::EPOLL_CTL_MOD,
                                (event as *const libc::epoll_event).cast(),
                            )
                            .build()
                            .user_data(index as u64);
                            let entry = if linked && index + 1 < n {
                                entry.flags(squeue::Flags::IO_LINK)
                            } else {
                                entry
                            };
                            // SAFETY: `events` outlives the round, whose completions are
                            // all reaped below; the queue (128) has room for `n` (≤ 128).
                            unsafe { sq.push(&entry) }.expect("room");
                        }
                    }
                    let mut reaped = 0;
                    while reaped < n {
                        ring.submit_and_wait(n - reaped).expect("io_uring_enter");
                        for cqe in ring.completion() {
                            assert!(cqe.result() >= 0, "EPOLL_CTL: {}", cqe.result());
                            reaped += 1;
                        }
                    }
                }
                (cpu_ns() - start, calls)
            }
            Way::Enter(flags, registered) => {
                let ring = ring(flags);
                let mut submitter = ring.submitter();
                if registered {
                    submitter
                        .register_ring_fd()
                        .expect("IORING_REGISTER_RING_FDS");
                }
                let start = cpu_ns();
                for _ in 0..calls {
                    // SAFETY: nothing to submit, nothing to wait for, no argument.
                    unsafe { submitter.enter::<libc::sigset_t>(0, 0, 0, None) }
                        .expect("io_uring_enter");
                }
                let spent = cpu_ns() - start;
                if registered {
                    // The thread's registration holds the ring open (16 at most per thread).
                    submitter
                        .unregister_ring_fd()
                        .expect("IORING_UNREGISTER_RING_FDS");
                }
                (spent, calls)
            }
        }
    }
}
