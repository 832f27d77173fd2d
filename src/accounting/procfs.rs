//! Probes of the proxy's own processes and descriptors, read from `/proc`:
//! [`open_fd_count`], [`proc_stat`] and its parser, [`all_processes`],
//! [`child_processes`], [`zombie_children`], [`process_group_members`].
//!
//! Invariant: read-only; a process that vanishes while a scan runs is skipped,
//! never an error.

use std::io;
use std::path::Path;

use super::AccountingError;

pub(super) fn proc_error(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> AccountingError {
    let path = path.as_ref().to_path_buf();
    move |source| AccountingError::Proc { path, source }
}

/// Number of file descriptors the proxy has open (`/proc/self/fd`), not counting
/// the one used to list them.
pub fn open_fd_count() -> Result<usize, AccountingError> {
    let dir = "/proc/self/fd";
    let entries = std::fs::read_dir(dir).map_err(proc_error(dir))?;
    let mut count = 0usize;
    for entry in entries {
        entry.map_err(proc_error(dir))?;
        count += 1;
    }
    // The directory stream itself holds one descriptor while it is listed.
    Ok(count.saturating_sub(1))
}

/// The fields of `/proc/<pid>/stat` the accounting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// State letter: `R`, `S`, `D`, `Z` (zombie), `T`, ...
    pub state: char,
    /// Parent process id.
    pub ppid: u32,
    /// Process-group id.
    pub pgrp: u32,
}

impl ProcStat {
    /// Whether the process has exited and waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Parses one `/proc/<pid>/stat` line. The command name sits in parentheses and
/// may itself contain spaces and parentheses, so fields are read after the
/// *last* `)`.
pub fn parse_proc_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line.get(..open)?.trim().parse().ok()?;
    let mut rest = line.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        pgrp,
    })
}

/// Reads `/proc/<pid>/stat`; `None` if the process no longer exists.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&text)
}

/// Every process visible in `/proc`. Processes that vanish while the scan runs
/// are skipped.
pub fn all_processes() -> Result<Vec<ProcStat>, AccountingError> {
    let entries = std::fs::read_dir("/proc").map_err(proc_error("/proc"))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(proc_error("/proc"))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = proc_stat(pid) {
            out.push(stat);
        }
    }
    Ok(out)
}

/// Processes whose parent is this proxy (running or zombie), including orphans
/// adopted because the proxy is a child subreaper.
pub fn child_processes() -> Result<Vec<ProcStat>, AccountingError> {
    let me = std::process::id();
    Ok(all_processes()?
        .into_iter()
        .filter(|p| p.ppid == me)
        .collect())
}

/// Pids of this proxy's children that have exited and were not reaped.
pub fn zombie_children() -> Result<Vec<u32>, AccountingError> {
    Ok(child_processes()?
        .into_iter()
        .filter(ProcStat::is_zombie)
        .map(|p| p.pid)
        .collect())
}

/// Processes in process group `pgid`, whoever their parent is.
pub fn process_group_members(pgid: u32) -> Result<Vec<ProcStat>, AccountingError> {
    Ok(all_processes()?
        .into_iter()
        .filter(|p| p.pgrp == pgid)
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn proc_stat_parser_reads_fields_after_a_command_name_with_parens_and_spaces() {
        let line = "4242 (we ird) (name) Z 17 4242 4242 0 -1 4194304";
        let stat = parse_proc_stat(line).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                pid: 4242,
                state: 'Z',
                ppid: 17,
                pgrp: 4242
            }
        );
        assert!(stat.is_zombie());
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn own_stat_names_this_process() {
        let me = std::process::id();
        let stat = proc_stat(me).unwrap();
        assert_eq!(stat.pid, me);
        assert!(!stat.is_zombie());
    }

    #[test]
    fn open_fd_count_sees_a_new_descriptor() {
        let before = open_fd_count().unwrap();
        let files: Vec<_> = (0..16)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let during = open_fd_count().unwrap();
        drop(files);
        // Other tests may close a few descriptors meanwhile; 16 new ones stand out.
        assert!(during >= before + 8, "{during} >= {before} + 8");
    }
}
