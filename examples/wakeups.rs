//! Counts how many threads wake per entry when several wait on one port: the thundering-herd
//! check for each backend.
//!
//! `--waiters` threads (default 8) wait in `dequeue` on a port whose concurrency lets all of
//! them wait in the kernel. The main thread then makes `--rounds` entries, one at a time
//! (a posted entry, or a byte on a one-shot socket with `--sockets`), waiting until a thread
//! has taken each. Voluntary context switches of the waiting threads (each is a wake that
//! ended in sleeping again) are read from `/proc/self/task/*/status` before and after; one
//! per entry is the ideal, one per waiter is a thundering herd.
//!
//! ```text
//! cargo run --release --example wakeups -- --backend epoll
//! cargo run --release --example wakeups -- --backend io_uring --sockets
//! ```

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socknotify::{Backend, CompletionEntry, CompletionPort, Events, Registration, Trigger};

/// Voluntary context switches (a thread went to sleep: it had been woken) of every thread of
/// this process but the caller. Involuntary ones are preemption, noise on a shared machine.
fn switches_of_others() -> io::Result<u64> {
    let me = std::fs::read_link("/proc/thread-self")?;
    let me = me.file_name().map(|n| n.to_os_string());
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?;
        if Some(task.file_name()) == me {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status"))?;
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok(total)
}

fn run(backend: Backend, waiters: usize, rounds: usize, sockets: bool) -> io::Result<()> {
    let port = Arc::new(
        CompletionPort::builder()
            .backend(backend)
            .concurrency(waiters)
            .build()?,
    );
    let taken = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    server.set_nonblocking(true)?;
    let trigger = Trigger::ONESHOT | Trigger::LEVEL;
    if sockets {
        let mut r = [Registration::enable(&server, 1, Events::IN, trigger)];
        port.process(&mut r, &mut [], None)?;
        r[0].result()?;
    }
    let server = Arc::new(server);
    let handles: Vec<_> = (0..waiters)
        .map(|_| {
            let (port, taken, server) = (port.clone(), taken.clone(), server.clone());
            std::thread::spawn(move || -> io::Result<()> {
                let mut entries = [CompletionEntry::default(); 4];
                let mut rearm = Vec::new();
                loop {
                    let n = port
                        .process(&mut rearm, &mut entries, None)
                        .inspect_err(|e| {
                            eprintln!("wakeups: a waiting thread failed: {e}");
                        })?;
                    rearm.clear();
                    let exits = entries[..n].iter().filter(|e| e.key == usize::MAX).count();
                    if exits > 0 {
                        // Leave the other exit entries of this batch to the other threads.
                        for _ in 1..exits {
                            port.post(CompletionEntry::new(usize::MAX, 0, 0))?;
                        }
                        return Ok(());
                    }
                    for e in &entries[..n] {
                        if e.key == 1 {
                            let mut buf = [0u8; 16];
                            let _ = io::Read::read(&mut &*server, &mut buf);
                            rearm.push(Registration::enable(&*server, 1, Events::IN, trigger));
                        }
                        taken.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    while port.stats().waiting_in_kernel < waiters {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = switches_of_others()?;
    for round in 0..rounds {
        if sockets {
            client.write_all(b"x")?;
        } else {
            port.post(CompletionEntry::new(2, 0, 0))?;
        }
        while taken.load(Ordering::SeqCst) <= round {
            std::hint::spin_loop();
        }
        // Let the taker go back to waiting before the next entry.
        while port.stats().waiting_in_kernel < waiters {
            std::hint::spin_loop();
        }
    }
    let after = switches_of_others()?;
    port.post(CompletionEntry::new(usize::MAX, 0, 0))?;
    for _ in 1..waiters {
        port.post(CompletionEntry::new(usize::MAX, 0, 0))?;
    }
    for h in handles {
        h.join()
            .map_err(|_| io::Error::other("waiter panicked"))??;
    }
    println!(
        "backend={:?} source={} waiters={} entries={} sleeps_per_entry={:.2}",
        port.backend(),
        if sockets { "socket" } else { "post" },
        waiters,
        rounds,
        (after - before) as f64 / rounds as f64
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut backend = Backend::Auto;
    let mut waiters = 8;
    let mut rounds = 2000;
    let mut sockets = false;
    let usage = || {
        eprintln!(
            "usage: wakeups [--backend auto|epoll|io_uring] [--waiters N] [--rounds N] [--sockets]"
        );
        ExitCode::from(2)
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--sockets" {
            sockets = true;
            continue;
        }
        let value = args.next();
        match (flag.as_str(), value.as_deref()) {
            ("--backend", Some("epoll")) => backend = Backend::Epoll,
            ("--backend", Some("io_uring")) => backend = Backend::IoUring,
            ("--backend", Some("auto")) => backend = Backend::Auto,
            ("--waiters", Some(v)) if v.parse::<usize>().is_ok() => {
                waiters = v.parse().unwrap_or(8)
            }
            ("--rounds", Some(v)) if v.parse::<usize>().is_ok() => {
                rounds = v.parse().unwrap_or(2000)
            }
            _ => return usage(),
        }
    }
    finish(backend, waiters, rounds, sockets)
}

fn finish(backend: Backend, waiters: usize, rounds: usize, sockets: bool) -> ExitCode {
    match run(backend, waiters, rounds, sockets) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wakeups: {e}");
            ExitCode::FAILURE
        }
    }
}
