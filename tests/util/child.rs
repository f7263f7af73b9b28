//! Running a scenario in a child process (the test binary again, running one test), so
//! that an abort or a hang fails that test instead of killing or stalling the whole binary.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Set in a re-executed test binary to the name of the test whose scenario it must run.
const CHILD: &str = "SOCKNOTIFY_TEST_CHILD";
/// How long a child process may take before it counts as hung and is killed.
const CHILD_LIMIT: Duration = Duration::from_secs(20);
/// How often the parent looks whether the child has exited.
const POLL: Duration = Duration::from_millis(10);

/// Runs `scenario` in a child process: the test binary again, running only test `name`
/// with [`CHILD`] set. In that child, runs `scenario`; here, fails unless the child passes.
pub fn in_child_process(name: &str, scenario: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        scenario();
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    // Both pipes are read to the end meanwhile, so that a chatty child never blocks.
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the child hung for {CHILD_LIMIT:?}:\n{}",
                stderr.join().unwrap()
            );
        }
        thread::sleep(POLL);
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success() && stdout.contains("1 passed"),
        "the child failed ({status}):\n{stdout}\n{stderr}"
    );
}
