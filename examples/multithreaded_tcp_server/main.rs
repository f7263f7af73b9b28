//! Runs the model server (`server.rs`, the file to read and copy) against a pool of
//! loopback clients that each send payloads and check the echo, and prints a summary.
//!
//! Flags: `--threads N --clients N --messages N --backend auto|epoll|io_uring`.

mod server;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use socknotify::{Backend, CompletionPort, ContextPort, Events, Registration};

use server::{Counts, Server, LISTENER, ONESHOT_LEVEL, PAYLOAD};

/// A client thread: `turns` connections one after the other, each sending `messages`
/// payloads and checking the echo. Returns how many got it all back.
fn client(addr: SocketAddr, turns: usize, messages: usize) -> usize {
    let echo = || -> io::Result<bool> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        for _ in 0..messages {
            stream.write_all(&PAYLOAD)?;
        }
        stream.shutdown(Shutdown::Write)?;
        let mut echo = Vec::new();
        stream.read_to_end(&mut echo)?;
        Ok(echo.len() == 4 * messages && echo.chunks(4).all(|p| p == PAYLOAD))
    };
    let report = |e: &io::Error| eprintln!("multithreaded_tcp_server: client: {e}");
    (0..turns)
        .filter(|_| echo().inspect_err(report).unwrap_or(false))
        .count()
}

/// Serves `clients` clients of `messages` payloads each with `threads` threads on `port`,
/// prints a summary, and says whether everything came back.
pub fn run(port: CompletionPort, [threads, clients, messages]: [usize; 3]) -> io::Result<bool> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let listen = Registration::enable(&listener, LISTENER, Events::IN, ONESHOT_LEVEL);
    let mut first = vec![listen];
    if clients == 0 {
        first.push(Registration::remove(&listener)); // nobody to wait for
    }
    port.process(&mut first, &mut [], None)?;
    first.iter().try_for_each(Registration::result)?;
    let (b, c) = (port.backend(), port.concurrency());
    println!("  port          backend {b:?}, concurrency {c} (the CPU count)");
    let (conns, n, start) = (ContextPort::new(port), Counts::default(), Instant::now());
    let server = Server {
        conns,
        listener,
        clients,
        n,
    };
    let (ok, exits) = std::thread::scope(|scope| {
        let servers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| server.serve()))
            .collect();
        let pool = clients.clamp(1, 100); // past 100 clients, they take turns
        let turns = move |t: usize| clients.saturating_sub(t).div_ceil(pool);
        let spawn = |t| scope.spawn(move || client(addr, turns(t), messages));
        let pool: Vec<_> = (0..pool).map(spawn).collect();
        let ok: usize = pool.into_iter().map(|c| c.join().unwrap_or(0)).sum();
        if ok < clients {
            server.conns.close(); // the server would wait for them: wake every thread
        }
        let exits = servers.into_iter().map(|s| s.join().unwrap_or(false));
        (ok, exits.filter(|&through_exit| through_exit).count())
    });
    let registrations = server.conns.port().registrations();
    let left = server.conns.close().len();
    let n = &server.n;
    let [accepted, removed, echoed, rearms, errors] =
        [&n.accepted, &n.removed, &n.echoed, &n.rearms, &n.errors].map(|a| a.load(SeqCst));
    let bytes = 4 * clients * messages;
    println!("  connections   {accepted} accepted, {removed} REMOVE entries, {left} contexts left");
    println!("  bytes         {echoed} of {bytes} echoed, {ok} of {clients} clients got them all");
    println!("  re-arms       {rearms} (one-shot, through the next process call)");
    println!("  errors        {errors}");
    println!("  shutdown      {exits} of {threads} server threads left through the exit entry");
    println!("  wall time     {:.1?}", start.elapsed());
    let served = [accepted, removed, ok] == [clients; 3] && echoed == bytes;
    let ok = served && left + registrations + errors == 0 && exits == threads;
    println!("  result        {}", if ok { "OK" } else { "FAILED" });
    Ok(ok)
}

fn main() -> ExitCode {
    let ([t, c, m], backend) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("multithreaded_tcp_server: {e}");
            eprintln!("flags: --threads N --clients N --messages N --backend auto|epoll|io_uring");
            return ExitCode::from(2);
        }
    };
    println!("multithreaded_tcp_server: {c} clients x {m} payloads of 4 bytes, {t} server threads");
    let port = CompletionPort::builder().backend(backend).build();
    match port.and_then(|port| run(port, [t, c, m])) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("multithreaded_tcp_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The flags: `--threads N --clients N --messages N --backend auto|epoll|io_uring`.
fn parse(args: impl Iterator<Item = String>) -> Result<([usize; 3], Backend), String> {
    let (args, mut backend) = (args.collect::<Vec<_>>(), Backend::Auto);
    let [mut threads, mut clients, mut messages] = [16, 100, 10];
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            return Err(format!("{pair:?} needs a value"));
        };
        let number = || {
            value
                .parse()
                .map_err(|_| format!("{flag} {value}: not a number"))
        };
        match (flag.as_str(), value.as_str()) {
            ("--threads", _) => threads = number()?,
            ("--clients", _) => clients = number()?,
            ("--messages", _) => messages = number()?,
            ("--backend", "auto") => backend = Backend::Auto,
            ("--backend", "epoll") => backend = Backend::Epoll,
            ("--backend", "io_uring") => backend = Backend::IoUring,
            _ => return Err(format!("{flag} {value}: unknown")),
        }
    }
    Ok(([threads.max(1), clients, messages], backend))
}
