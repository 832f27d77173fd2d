//! How the fixture *process* misbehaves on request: `--wrapper` (a parent
//! that does not forward signals, like a careless `npx`) and
//! `--ignore-sigterm`. Kept apart from the MCP server in `main.rs`.

use std::ffi::OsString;

/// `--wrapper`: run this same program without `--wrapper` as a child that
/// inherits our stdin/stdout/stderr, wait for it and exit with its status.
/// Signals are deliberately *not* forwarded (like a careless `npx`): only a
/// process-group kill reaches the grandchild.
pub(super) fn run_wrapper(args: &[OsString]) -> ! {
    let rest: Vec<&OsString> = args
        .iter()
        .filter(|a| a.as_os_str() != "--wrapper")
        .collect();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("stdiopool-fixture: wrapper cannot find its own executable: {e}");
            std::process::exit(2);
        }
    };
    match std::process::Command::new(exe).args(rest).status() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            let code = status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1);
            std::process::exit(code);
        }
        Err(e) => {
            eprintln!("stdiopool-fixture: wrapper could not start its child: {e}");
            std::process::exit(2);
        }
    }
}

#[allow(unsafe_code)]
pub(super) fn ignore_sigterm() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing `SigIgn` registers no Rust handler, so nothing can run
    // in signal context; it is async-signal-safe and touches no Rust state.
    if let Err(e) = unsafe { signal(Signal::SIGTERM, SigHandler::SigIgn) } {
        eprintln!("stdiopool-fixture: cannot ignore SIGTERM: {e}");
        std::process::exit(2);
    }
}
