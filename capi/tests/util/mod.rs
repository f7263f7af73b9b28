//! Shared helpers: where the built library and the header are, compiling C and C++ with
//! the system compilers, and running a program with a time limit.
//!
//! The library comes from the build of this very package: because its crate types include
//! `rlib`, `cargo test -p socknotify-capi` (and `cargo test --workspace`) builds the lib
//! unit with all its crate types before the integration tests, leaving `libsocknotify.a`
//! and `libsocknotify.so` in `target/<profile>/deps/`, the directory of the test
//! executable itself. No nested cargo, no build script.

#![allow(dead_code)] // each test file uses a part

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/deps/`: where cargo put this test and the library's artefacts.
pub fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .expect("the test executable's directory")
        .to_path_buf()
}

/// The static library built for this test run (cargo's name for it:
/// `libsocknotify_capi.a`; installed as `libsocknotify.a`).
pub fn static_lib() -> PathBuf {
    artefact("libsocknotify_capi.a")
}

/// The shared library built for this test run (`libsocknotify_capi.so`, SONAME
/// `libsocknotify.so.0`).
pub fn shared_lib() -> PathBuf {
    artefact("libsocknotify_capi.so")
}

/// A library directory laid out as `make install` lays it out: `libsocknotify.so.0` (the
/// SONAME, which programs load) and `libsocknotify.so` (what `-lsocknotify` finds).
pub fn installed_lib_dir(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).expect("create the library directory");
    std::fs::copy(shared_lib(), lib.join("libsocknotify.so.0")).expect("copy the library");
    let _ = std::fs::remove_file(lib.join("libsocknotify.so"));
    std::os::unix::fs::symlink("libsocknotify.so.0", lib.join("libsocknotify.so"))
        .expect("link libsocknotify.so");
    lib
}

fn artefact(name: &str) -> PathBuf {
    let path = deps_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo builds it with this package's lib (crate types cdylib, \
         staticlib, rlib); run the tests through cargo",
        path.display()
    );
    path
}

/// The directory holding `socknotify.h`.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// `capi/examples/<name>`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A fresh scratch directory for one test's outputs.
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("capi-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

/// Runs a compiler (or any tool) to completion; panics with its output if it fails.
pub fn run_tool(mut cmd: Command) {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The strict flags every C file here must compile cleanly with.
pub const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];
/// The same for C++.
pub const CXX_FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// Compiles `source` into the executable `out`, linked statically against
/// `libsocknotify.a` (plus what the Rust standard library needs from the system).
pub fn build_static(source: &Path, out: &Path) {
    let mut cc = Command::new("cc");
    cc.args(C_FLAGS)
        .args(["-O1", "-pthread", "-I"])
        .arg(include_dir())
        .arg(source)
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-o"])
        .arg(out);
    run_tool(cc);
}

/// Compiles `source` into the executable `out`, linked against the shared library as
/// `-lsocknotify` with an rpath to it (laid out as installed, next to `out`).
pub fn build_shared(source: &Path, out: &Path) {
    let lib = installed_lib_dir(out.parent().expect("a directory for the program"));
    let mut cc = Command::new("cc");
    cc.args(C_FLAGS)
        .args(["-O1", "-pthread", "-I"])
        .arg(include_dir())
        .arg(source)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lsocknotify", "-o"])
        .arg(out);
    run_tool(cc);
}

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// The backends this machine can run, by their `SOCKNOTIFY_BACKEND` names. Every C
/// program runs once per backend, as the core's conformance suite does; a backend that
/// is missing is reported loudly.
pub fn backends() -> Vec<&'static str> {
    let mut names = vec!["epoll"];
    match socknotify_core::CompletionPort::builder()
        .backend(socknotify_core::Backend::IoUring)
        .build()
    {
        Ok(_) => names.push("io_uring"),
        Err(e) => eprintln!("SKIPPING the io_uring backend for the C programs: {e}"),
    }
    names
}

/// Runs `program` with `SOCKNOTIFY_BACKEND=backend`, killing it if it has not finished
/// within `limit`; panics unless it exits with status 0.
pub fn run_program(program: &Path, backend: &str, limit: Duration) -> Output {
    run(Command::new(program), backend, limit, true)
}

/// As [`run_program`] for a prepared command, but a non-zero exit is left to the caller
/// (which reads the program's RESULT line); a time-out still panics.
pub fn run_group(command: Command, backend: &str, limit: Duration) -> Output {
    run(command, backend, limit, false)
}

fn run(mut command: Command, backend: &str, limit: Duration, must_succeed: bool) -> Output {
    let program = PathBuf::from(command.get_program());
    let mut child = command
        .env("SOCKNOTIFY_BACKEND", backend)
        // cargo points LD_LIBRARY_PATH at target/<profile> too, which outranks the
        // program's RUNPATH: a libsocknotify.so left there by an earlier `cargo build`
        // would be loaded instead of the one built for this run.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // Our own child, ended by its id.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    };
    match status {
        None => panic!(
            "{} ({backend}) did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
            program.display(),
            output.stdout,
            output.stderr
        ),
        Some(status) => assert!(
            status.success() || !must_succeed,
            "{} ({backend}) failed ({status})\nstdout:\n{}\nstderr:\n{}",
            program.display(),
            output.stdout,
            output.stderr
        ),
    }
    output
}

/// The `key=value` pairs of the last line that starts with `RESULT`.
pub fn result_line(output: &Output) -> Vec<(String, u64)> {
    let line = output
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{}", output.stdout));
    line.split_whitespace()
        .skip(1)
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("bad pair {pair:?} in {line:?}"));
            let v = v
                .parse()
                .unwrap_or_else(|_| panic!("bad number in {pair:?} of {line:?}"));
            (k.to_string(), v)
        })
        .collect()
}

/// The value of `key` in a RESULT line.
pub fn value(pairs: &[(String, u64)], key: &str) -> u64 {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {pairs:?}"))
        .1
}
