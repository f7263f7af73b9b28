//! `report.md`: the machine, the exact command, the notes, the tables and the plots, ready
//! to be copied into the repository's `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys;

/// What the results were measured on.
#[derive(Debug)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub cpu_model: String,
    pub memory: String,
    pub files: u64,
    pub syscalls: String,
    /// Load averages when the run started and when it ended: other work on the machine.
    pub load: (String, String),
}

impl Machine {
    pub fn detect(files: u64, syscalls: String, load_at_start: String) -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: sys::kernel_release(),
            cpu_model: sys::cpu_model(),
            memory: sys::mem_total(),
            files,
            syscalls,
            load: (load_at_start, sys::load_average()),
        }
    }

    pub fn markdown(&self) -> String {
        format!(
            "| | |\n|---|---|\n\
             | CPUs (`nproc`) | {} |\n\
             | CPU model | {} |\n\
             | kernel (`uname -r`) | {} |\n\
             | memory | {} |\n\
             | descriptor limit | {} |\n\
             | system calls counted by | {} |\n\
             | load average (1, 5, 15 min) at start | {} |\n\
             | load average at end | {} |\n",
            self.cpus,
            self.cpu_model,
            self.kernel,
            self.memory,
            self.files,
            self.syscalls,
            self.load.0,
            self.load.1
        )
    }
}

/// Writes the report page to `path`; plots are linked by file name (they sit beside it).
pub fn write(
    path: &Path,
    machine: &Machine,
    command: &str,
    notes: &[String],
    tables: &str,
    plots: &[PathBuf],
) -> io::Result<()> {
    let mut out = String::from("# socknotify benchmark results\n\n## Machine\n\n");
    out.push_str(&machine.markdown());
    let _ = write!(out, "\n## Command\n\n```text\n{command}\n```\n\n");
    if !notes.is_empty() {
        out.push_str("## Notes\n\n");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }
    out.push_str("## Tables\n\n");
    out.push_str(tables);
    if !plots.is_empty() {
        out.push_str("## Plots\n\n");
        for p in plots {
            if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                let _ = writeln!(out, "![{name}]({name})\n");
            }
        }
    }
    fs::write(path, out)
}
