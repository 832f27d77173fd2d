//! How a process ended and how far its stop had to go: [`ExitCause`],
//! [`StopStage`], [`StopReason`], [`StopOutcome`], and the one mapping from
//! those to the lifecycle counters' [`ExitClass`].

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::Signal;

use crate::accounting::ExitClass;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// It exited with this status code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
    /// Its status could not be learned (it was reaped elsewhere, or it never
    /// died after SIGKILL within the bounded wait).
    Unknown,
}

impl ExitCause {
    pub(super) fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitCause::Code(code),
            (None, Some(sig)) => ExitCause::Signal(sig),
            (None, None) => ExitCause::Unknown,
        }
    }

    pub(super) fn from_wait(res: io::Result<ExitStatus>) -> Self {
        match res {
            Ok(status) => Self::from_status(status),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for an upstream process failed");
                ExitCause::Unknown
            }
        }
    }

    /// Whether the process exited by itself with status 0.
    pub fn is_clean(&self) -> bool {
        *self == ExitCause::Code(0)
    }
}

impl fmt::Display for ExitCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitCause::Code(code) => write!(f, "exited with code {code}"),
            ExitCause::Signal(sig) => match Signal::try_from(sig) {
                Ok(s) => write!(f, "killed by signal {} ({sig})", s.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            ExitCause::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// How far the stop sequence had to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopStage {
    /// The process had already exited before the stop began.
    AlreadyExited,
    /// It exited after its stdin was closed.
    StdinClosed,
    /// It needed SIGTERM.
    Terminated,
    /// It needed SIGKILL.
    Killed,
}

impl StopStage {
    /// The lifecycle counter a process stopped at this stage with this cause
    /// falls under: the signals the stop sent win over the exit status.
    pub(super) fn exit_class(self, cause: ExitCause) -> ExitClass {
        match (self, cause) {
            (StopStage::Killed, _) => ExitClass::KilledByStop,
            (StopStage::Terminated, _) => ExitClass::TerminatedByStop,
            (_, ExitCause::Code(0)) => ExitClass::Clean,
            (_, ExitCause::Code(_)) => ExitClass::Nonzero,
            (_, ExitCause::Signal(_)) => ExitClass::Signal,
            (_, ExitCause::Unknown) => ExitClass::Unknown,
        }
    }
}

/// Why a process is being stopped (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Retired by the pool: lifetime, idle timeout, use count, session end.
    Retired,
    /// Found broken: crashed, closed stdout, wrote an untrustworthy stream.
    Broken,
    /// Failed during start-up (spawn or handshake).
    StartupFailed,
    /// Its pool was closed.
    PoolClosed,
    /// The proxy is shutting down.
    Shutdown,
    /// Its handle was dropped without an explicit stop.
    Dropped,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Retired => "retired",
            StopReason::Broken => "broken",
            StopReason::StartupFailed => "start-up failed",
            StopReason::PoolClosed => "pool closed",
            StopReason::Shutdown => "shutdown",
            StopReason::Dropped => "handle dropped",
        })
    }
}

/// What a completed stop sequence found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutcome {
    /// How the group leader ended.
    pub cause: ExitCause,
    /// How far the sequence had to go.
    pub stage: StopStage,
    /// Other group members (adopted orphans) reaped after the leader.
    pub group_reaped: usize,
    /// The last lines the process wrote to stderr.
    pub stderr_tail: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_cause_names_the_signal() {
        assert_eq!(
            ExitCause::Signal(9).to_string(),
            "killed by signal SIGKILL (9)"
        );
        assert_eq!(ExitCause::Code(3).to_string(), "exited with code 3");
    }

    #[test]
    fn signals_the_stop_sent_win_over_the_exit_status() {
        let sig = ExitCause::Signal(15);
        assert_eq!(
            StopStage::Terminated.exit_class(sig),
            ExitClass::TerminatedByStop
        );
        assert_eq!(
            StopStage::Killed.exit_class(ExitCause::Code(0)),
            ExitClass::KilledByStop
        );
        assert_eq!(StopStage::AlreadyExited.exit_class(sig), ExitClass::Signal);
        assert_eq!(
            StopStage::StdinClosed.exit_class(ExitCause::Code(0)),
            ExitClass::Clean
        );
        assert_eq!(
            StopStage::StdinClosed.exit_class(ExitCause::Code(1)),
            ExitClass::Nonzero
        );
    }
}
