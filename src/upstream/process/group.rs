//! The process-group mechanism: signal a group, see whether it is empty, reap
//! its exited members, and make the proxy a child subreaper. Mechanism only:
//! which signal to send and how long to wait is the stop sequence's policy
//! (`stop.rs`).
//!
//! Invariants: a group id of 0 or 1 (our own group, or every process) is never
//! signalled; reaping is only ever `waitpid(-pgid)`, never `waitpid(-1)`, which
//! would steal the exit statuses tokio waits for.

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The process group to signal for a child, refusing ids that would name our
/// own group or every process (0, 1, or a pid that does not fit).
pub(super) fn group_of(pid: u32) -> Option<Pid> {
    match i32::try_from(pid) {
        Ok(p) if p > 1 => Some(Pid::from_raw(p)),
        _ => None,
    }
}

/// Sends `signal` to the group; a group already gone is not an error.
pub(super) fn signal_group(pgid: Option<Pid>, signal: Signal, name: &str, pid: u32) {
    let Some(pgid) = pgid else {
        tracing::error!(server = %name, pid, "refusing to signal process group 0/1");
        return;
    };
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(server = %name, pid, signal = signal.as_str(), error = %e, "killpg failed")
        }
    }
}

/// Whether any process is left in the group (a zombie still counts until reaped).
pub(super) fn group_is_empty(pgid: Pid) -> bool {
    matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// SIGKILLs a group that is not yet known to be empty (its id still belongs to
/// it): the last resort of a stop that was cut short.
pub(super) fn kill_group_last_resort(pgid: Pid) {
    let _ = killpg(pgid, Signal::SIGKILL);
}

/// Reaps every exited child of ours in group `pgid` without blocking; returns
/// how many.
pub(super) fn reap_group_nohang(pgid: Pid) -> usize {
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-pgid.as_raw()), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return reaped,
            Ok(_) => reaped += 1,
            Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(pgid = pgid.as_raw(), error = %e, "waitpid on a process group failed");
                return reaped;
            }
        }
    }
}

/// Makes the proxy a child subreaper: orphans of its children's trees (a
/// grandchild whose wrapper was killed) are re-parented to it instead of to
/// init, so the group reap of the stop sequence can collect them even where
/// init does not reap (containers, sandboxes). Call once at start.
pub fn become_subreaper() -> Result<(), SubreaperError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(SubreaperError)
}

/// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot become a child subreaper: {0}")]
pub struct SubreaperError(#[source] pub nix::Error);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_of_refuses_ids_that_would_signal_everyone() {
        assert_eq!(group_of(0), None);
        assert_eq!(group_of(1), None);
        assert_eq!(group_of(u32::MAX), None);
        assert_eq!(group_of(4242), Some(Pid::from_raw(4242)));
    }
}
