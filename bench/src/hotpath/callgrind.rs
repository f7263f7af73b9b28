//! Counting user-space instructions with callgrind: a `hot-one` child under
//! `valgrind --tool=callgrind --toggle-collect=`[`TOGGLE`], so that only the measured loop
//! is counted (not the set-up, the warm-up or another thread), run twice with different
//! lengths; the difference divided by the difference in entries is the cost of one more
//! entry, whatever the loop's fixed costs (its first call, its exit) are. The kernel's
//! work is not seen by callgrind at all.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::probe::{Length, Probe, TOGGLE};
use crate::child;
use crate::exec::Runner;

/// How long one callgrind run may plan to take (the runner adds its own margin).
const PLANNED: Duration = Duration::from_secs(60);

/// valgrind, when it runs here.
#[derive(Debug)]
pub struct Callgrind {
    dir: PathBuf,
}

/// The marginal cost of the measured loop.
#[derive(Clone, Copy, Debug)]
pub struct PerUnit {
    /// Instructions per unit (entry or call), from the difference of the two runs.
    pub instructions: f64,
    /// The two runs' collected totals and units, for the record.
    pub runs: [(u64, u64); 2],
}

impl Callgrind {
    /// Checks that `valgrind --tool=callgrind` can be started; `dir` holds its output.
    pub fn detect(dir: &Path) -> Result<Callgrind, String> {
        let ok = Command::new("valgrind")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err("valgrind not found (Debian: apt-get install valgrind)".into());
        }
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Callgrind {
            dir: dir.to_path_buf(),
        })
    }

    /// Instructions per unit of `probe`'s loop: runs it for `short` and `long` turns and
    /// divides the difference in collected instructions by the difference in units
    /// (entries for the echo, calls for dequeue) that the child reports.
    ///
    /// # Errors
    /// A run failed, collected nothing (the toggle did not match: the measure would be
    /// empty), or the longer run did not do more.
    pub fn per_unit(
        &self,
        runner: &Runner,
        probe: &Probe,
        unit: &str,
        short: u64,
        long: u64,
    ) -> Result<PerUnit, String> {
        let a = self.run(runner, probe, unit, short)?;
        let b = self.run(runner, probe, unit, long)?;
        if b.1 <= a.1 || b.0 <= a.0 {
            return Err(format!(
                "callgrind: the longer run did not count more ({a:?} then {b:?})"
            ));
        }
        Ok(PerUnit {
            instructions: (b.0 - a.0) as f64 / (b.1 - a.1) as f64,
            runs: [a, b],
        })
    }

    /// One run: the instructions collected inside the measured loop and the child's `unit`.
    fn run(
        &self,
        runner: &Runner,
        probe: &Probe,
        unit: &str,
        turns: u64,
    ) -> Result<(u64, u64), String> {
        let probe = Probe {
            length: Length::Turns(turns),
            ..probe.clone()
        };
        let out = self.dir.join("callgrind.out");
        let _ = fs::remove_file(&out);
        let mut command = Command::new("valgrind");
        command
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(format!("--toggle-collect={TOGGLE}"))
            .arg(runner.program())
            .args(probe.to_args());
        let (status, stdout, stderr) = runner.finish(command, PLANNED)?;
        if !status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "callgrind run failed ({status}): {}",
                tail.join(" | ")
            ));
        }
        let fields = child::parse_result(&stdout)
            .ok_or_else(|| format!("callgrind child printed no RESULT line: {stdout:?}"))?;
        let units = field(&fields, unit)? as u64;
        check_echo(&fields)?;
        let text = fs::read_to_string(&out).map_err(|e| format!("no callgrind output: {e}"))?;
        let _ = fs::remove_file(&out);
        let collected = totals(&text).ok_or("callgrind output without a totals line")?;
        if collected == 0 {
            return Err(format!(
                "callgrind collected nothing: {TOGGLE} matched no function (inlined?)"
            ));
        }
        Ok((collected, units))
    }
}

/// A field of a child's `RESULT` line.
pub fn field(fields: &[(String, f64)], name: &str) -> Result<f64, String> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|f| f.1)
        .ok_or_else(|| format!("the child reported no {name}"))
}

/// An echo run must have echoed one message per entry: an entry without a message would
/// be counted as cheap work that is not the workload.
fn check_echo(fields: &[(String, f64)]) -> Result<(), String> {
    let (Ok(entries), Ok(messages)) = (field(fields, "entries"), field(fields, "messages")) else {
        return Ok(());
    };
    if entries > 0.0 && messages != entries {
        return Err(format!(
            "{entries} entries but {messages} messages: not one message per entry"
        ));
    }
    Ok(())
}

/// The `totals:` (or, in older versions, `summary:`) line of a callgrind output file: the
/// instructions collected.
fn totals(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("totals:"))
        .or_else(|| text.lines().find(|l| l.starts_with("summary:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::totals;

    #[test]
    fn reads_the_totals_line() {
        let out = "version: 1\ncmd: x\nevents: Ir\nfn=(1) f\n3 7\nsummary: 120\ntotals: 123\n";
        assert_eq!(totals(out), Some(123));
        assert_eq!(totals("events: Ir\nsummary: 9\n"), Some(9));
        assert_eq!(totals("events: Ir\n"), None);
    }
}
