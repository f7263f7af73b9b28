//! tokio: its multi-threaded runtime with `threads` workers, one task per connection, the
//! idiomatic `read` / `write_all` loop. Stopping shuts the runtime down.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use super::{requests, responses, Running, BUFFER, RESPONSE};

struct Tokio {
    runtime: Runtime,
    served: Arc<AtomicU64>,
}

impl Running for Tokio {
    fn stop(self: Box<Self>) -> io::Result<u64> {
        self.runtime.shutdown_background();
        Ok(self.served.load(Ordering::Relaxed))
    }
}

pub fn start(listener: std::net::TcpListener, threads: usize) -> io::Result<Box<dyn Running>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_io()
        .build()?;
    let served = Arc::new(AtomicU64::new(0));
    let listener = {
        let _context = runtime.enter();
        TcpListener::from_std(listener)?
    };
    let counted = served.clone();
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if stream.set_nodelay(true).is_err() {
                continue;
            }
            tokio::spawn(connection(stream, counted.clone()));
        }
    });
    Ok(Box::new(Tokio { runtime, served }))
}

/// Serves one connection until the peer closes it; adds its responses to `served` then
/// (a per-connection count: no shared counter on the hot path).
async fn connection(mut stream: TcpStream, served: Arc<AtomicU64>) {
    let mut buf = vec![0u8; BUFFER];
    let mut tail = Vec::new();
    let mut count = 0u64;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let k = requests(&mut tail, &buf[..n]);
        let written = match k {
            0 => Ok(()),
            1 => stream.write_all(RESPONSE).await,
            _ => stream.write_all(&responses(k)).await,
        };
        if written.is_err() {
            break;
        }
        count += k as u64;
    }
    served.fetch_add(count, Ordering::Relaxed);
}
