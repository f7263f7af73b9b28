//! Counting system calls with `perf stat -e raw_syscalls:sys_enter` (and, where asked,
//! other tracepoints such as `syscalls:sys_enter_futex` in the same run).
//!
//! The parent starts a child under `perf stat -D -1 --control fifo:CTL,ACK`: counting starts
//! disabled, and the child itself enables it when its measured window opens and disables it
//! when the window closes, so set-up and tear-down are not counted. The child finds the
//! two FIFOs through the environment variables [`CTL_ENV`] and [`ACK_ENV`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sys;

pub const CTL_ENV: &str = "SOCKNOTIFY_BENCH_PERF_CTL";
pub const ACK_ENV: &str = "SOCKNOTIFY_BENCH_PERF_ACK";
/// Every system call a thread enters.
pub const SYSCALLS: &str = "raw_syscalls:sys_enter";
/// `futex(2)` calls only.
pub const FUTEX: &str = "syscalls:sys_enter_futex";

/// The child's end of perf's control FIFOs.
#[derive(Debug)]
pub struct Control {
    ctl: File,
    ack: File,
}

impl Control {
    /// The FIFOs named in the environment, if the parent runs this child under perf.
    pub fn from_env() -> io::Result<Option<Control>> {
        let (Some(ctl), Some(ack)) = (std::env::var_os(CTL_ENV), std::env::var_os(ACK_ENV)) else {
            return Ok(None);
        };
        // perf holds both FIFOs open for reading and writing, so neither open blocks.
        let ctl = OpenOptions::new().write(true).open(ctl)?;
        let ack = File::open(ack)?;
        Ok(Some(Control { ctl, ack }))
    }

    /// The parent's end of a [`Perf::attach`]ed perf's FIFOs. Both are opened read-write
    /// (which never blocks on a FIFO), and each reply is awaited for at most a few seconds,
    /// so a perf that died cannot hang the caller.
    pub fn open(ctl: &Path, ack: &Path) -> io::Result<Control> {
        let rw = |p: &Path| OpenOptions::new().read(true).write(true).open(p);
        Ok(Control {
            ctl: rw(ctl)?,
            ack: rw(ack)?,
        })
    }

    pub fn enable(&self) -> io::Result<()> {
        self.command(b"enable\n")
    }

    pub fn disable(&self) -> io::Result<()> {
        self.command(b"disable\n")
    }

    fn command(&self, cmd: &[u8]) -> io::Result<()> {
        (&self.ctl).write_all(cmd)?;
        if !sys::readable_within(&self.ack, std::time::Duration::from_secs(10))? {
            return Err(io::Error::other("perf did not answer a control command"));
        }
        let mut reply = [0u8; 16];
        let n = (&self.ack).read(&mut reply)?;
        if reply[..n].starts_with(b"ack") {
            Ok(())
        } else {
            Err(io::Error::other(
                "perf did not acknowledge a control command",
            ))
        }
    }
}

/// `perf`, when it can count system calls here.
#[derive(Debug)]
pub struct Perf {
    dir: PathBuf,
    /// The tracepoints counted, [`SYSCALLS`] unless [`Perf::detect_events`] said otherwise.
    events: Vec<&'static str>,
}

/// Where the count of a command wrapped in `perf stat` will be.
#[derive(Debug)]
pub struct Wrapped {
    output: PathBuf,
    fifos: [PathBuf; 2],
    events: Vec<&'static str>,
}

impl Perf {
    /// Checks that `perf stat -e raw_syscalls:sys_enter` works (the binary is there, the
    /// tracepoint exists, `perf_event_paranoid` allows it). `dir` holds its scratch files.
    pub fn detect(dir: &Path) -> Result<Perf, String> {
        Perf::detect_events(dir, &[SYSCALLS])
    }

    /// As [`detect`](Perf::detect), counting each of `events` (tracepoints) in every run;
    /// [`Wrapped::counts`] gives them in this order.
    pub fn detect_events(dir: &Path, events: &[&'static str]) -> Result<Perf, String> {
        let list = events.join(",");
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let out = dir.join("perf-probe.txt");
        let status = Command::new("perf")
            .args(["stat", "-e", &list, "-x,", "-o"])
            .arg(&out)
            .args(["--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("perf not runnable ({e}); install it (Debian: linux-perf)"))?;
        let text = fs::read_to_string(&out).unwrap_or_default();
        let counted = events.iter().all(|e| parse(&text, e).is_some());
        let _ = fs::remove_file(&out);
        match (status.success(), counted) {
            (true, true) => Ok(Perf {
                dir: dir.to_path_buf(),
                events: events.to_vec(),
            }),
            _ => Err(format!(
                "perf stat -e {list} does not count here (exit {status}); \
                 check kernel.perf_event_paranoid and tracefs"
            )),
        }
    }

    /// `perf stat ... -- program args`, counting only inside the child's window.
    pub fn wrap(
        &self,
        tag: &str,
        program: &Path,
        args: &[String],
    ) -> io::Result<(Command, Wrapped)> {
        let (mut command, wrapped) = self.stat(tag)?;
        command
            .arg("--")
            .arg(program)
            .args(args)
            .env(CTL_ENV, &wrapped.fifos[0])
            .env(ACK_ENV, &wrapped.fifos[1]);
        Ok((command, wrapped))
    }

    /// `perf stat ... -p pid`: counts the system calls of every thread of a running
    /// process while the [`Control`] of the returned [`Wrapped`] has it enabled. It ends
    /// by itself when the process ends.
    pub fn attach(&self, tag: &str, pid: u32) -> io::Result<(Command, Wrapped)> {
        let (mut command, wrapped) = self.stat(tag)?;
        command.arg("-p").arg(pid.to_string());
        Ok((command, wrapped))
    }

    /// `perf stat`, disabled at the start, with fresh control FIFOs and output file.
    fn stat(&self, tag: &str) -> io::Result<(Command, Wrapped)> {
        let output = self.dir.join(format!("perf-{tag}.txt"));
        let ctl = self.dir.join(format!("perf-{tag}.ctl"));
        let ack = self.dir.join(format!("perf-{tag}.ack"));
        for p in [&output, &ctl, &ack] {
            let _ = fs::remove_file(p);
        }
        sys::mkfifo(&ctl)?;
        sys::mkfifo(&ack)?;
        let mut control = std::ffi::OsString::from("fifo:");
        control.push(&ctl);
        control.push(",");
        control.push(&ack);
        let mut command = Command::new("perf");
        command
            .args([
                "stat",
                "-e",
                &self.events.join(","),
                "-x,",
                "-D",
                "-1",
                "--control",
            ])
            .arg(control)
            .arg("-o")
            .arg(&output);
        let wrapped = Wrapped {
            output,
            fifos: [ctl, ack],
            events: self.events.clone(),
        };
        Ok((command, wrapped))
    }
}

impl Wrapped {
    /// Opens the control FIFOs from the parent's side.
    pub fn control(&self) -> io::Result<Control> {
        Control::open(&self.fifos[0], &self.fifos[1])
    }

    /// The count of the first event (the system calls), once the command has finished;
    /// removes the scratch files.
    pub fn count(&self) -> Option<u64> {
        self.counts().into_iter().next().flatten()
    }

    /// The count of every event, in the order the [`Perf`] was detected with, once the
    /// command has finished; removes the scratch files.
    pub fn counts(&self) -> Vec<Option<u64>> {
        let text = fs::read_to_string(&self.output).unwrap_or_default();
        let _ = fs::remove_file(&self.output);
        for f in &self.fifos {
            let _ = fs::remove_file(f);
        }
        self.events.iter().map(|e| parse(&text, e)).collect()
    }
}

/// The count of `event` in `perf stat -x,` output: `12345,,raw_syscalls:sys_enter,...`.
fn parse(text: &str, event: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.split(',').nth(2) == Some(event))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::{parse, FUTEX, SYSCALLS};

    #[test]
    fn parses_csv_counts() {
        let out = "# started on ...\n\n166613,,raw_syscalls:sys_enter,107303622,100.00,,\n";
        assert_eq!(parse(out, SYSCALLS), Some(166_613));
        assert_eq!(
            parse("<not counted>,,raw_syscalls:sys_enter,0,100.00,,", SYSCALLS),
            None
        );
        let both =
            "12,,raw_syscalls:sys_enter,1,100.00,,\n3,,syscalls:sys_enter_futex,1,100.00,,\n";
        assert_eq!(parse(both, FUTEX), Some(3));
        assert_eq!(parse(both, SYSCALLS), Some(12));
    }
}
