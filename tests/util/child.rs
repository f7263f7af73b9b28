//! Running a scenario in a child process (the test binary again, running one test), so
//! that an abort or a hang fails that test instead of killing or stalling the whole binary.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Set in a re-executed test binary to the name of the test whose scenario it must run.
const CHILD: &str = "SOCKNOTIFY_TEST_CHILD";
/// How long a child process may take before it counts as hung and is killed.
const CHILD_LIMIT: Duration = Duration::from_secs(20);

/// Runs `scenario` in a child process: the test binary again, running only test `name`
/// with [`CHILD`] set. In that child, runs `scenario`; here, fails unless the child passes.
pub fn in_child_process(name: &str, scenario: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        scenario();
        return;
    }
    let child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || tx.send(child.wait_with_output()).unwrap());
    let output = match rx.recv_timeout(CHILD_LIMIT) {
        Ok(output) => output.expect("wait for the child"),
        Err(_) => {
            // SAFETY: `pid` is our child, not yet reaped (the waiter thread reaps it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let output = rx.recv().unwrap().expect("wait for the killed child");
            panic!(
                "the child hung for {CHILD_LIMIT:?}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    waiter.join().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
