//! Mapping the validated [`Config`] onto the parts the proxy is built from:
//! the process spec (where `--demo` is resolved, the one place that does),
//! the upstream connection settings and the pool settings.
//!
//! Invariant: these are pure functions of the configuration (plus, for
//! `--demo`, where this executable is); nothing here starts anything.

use std::sync::Arc;
use std::time::Duration;

use super::ServeError;
use crate::accounting::Accounting;
use crate::config::{Config, Mode, ServerCommand};
use crate::pool::PoolConfig;
use crate::upstream::manager::UpstreamConfig;
use crate::upstream::process::{ProcessSpec, StopTimeouts};

/// Set in the environment of `--demo`'s children when the fixture server is
/// built into this executable: the child runs as the fixture server.
pub const RUN_FIXTURE_ENV: &str = "STDIOPOOL_RUN_FIXTURE";

/// Where `--demo`'s bundled fixture server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoServer {
    /// The `stdiopool-fixture` binary next to this executable (a program
    /// embedding the library).
    NextToExecutable,
    /// This executable itself, run with [`RUN_FIXTURE_ENV`] set (the
    /// `stdiopool` binary, which has the fixture built in so `--demo` works
    /// from a plain `cargo run`).
    ThisExecutable,
}

/// The process spec for the configured server command.
pub fn process_spec(config: &Config, demo: DemoServer) -> Result<ProcessSpec, ServeError> {
    let server = &config.server;
    let mut env_set = server.env.clone();
    let (program, args) = match (&server.command, demo) {
        (ServerCommand::Exec { program, args }, _) => (program.clone(), args.clone()),
        (ServerCommand::Demo, DemoServer::ThisExecutable) => {
            let exe = std::env::current_exe().map_err(ServeError::CurrentExe)?;
            env_set.push((RUN_FIXTURE_ENV.into(), "1".into()));
            (exe.into_os_string(), vec!["--name".into(), "demo".into()])
        }
        (ServerCommand::Demo, DemoServer::NextToExecutable) => {
            let fixture = std::env::current_exe()
                .map(|exe| exe.with_file_name("stdiopool-fixture"))
                .map_err(ServeError::CurrentExe)?;
            if !fixture.is_file() {
                return Err(ServeError::FixtureMissing(fixture.display().to_string()));
            }
            (
                fixture.into_os_string(),
                vec!["--name".into(), "demo".into()],
            )
        }
    };
    Ok(ProcessSpec {
        program,
        args,
        env_set,
        env_unset: server.unset_env.clone(),
        cwd: server.cwd.clone(),
        name: server.name.clone(),
        stop: StopTimeouts {
            stdin_grace: server.stop_timeout,
            term_grace: server.stop_timeout,
        },
        stderr: server.stderr,
    })
}

pub(super) fn upstream_config(
    config: &Config,
    spec: ProcessSpec,
    accounting: &Arc<Accounting>,
    handshake: bool,
) -> UpstreamConfig {
    let mut upstream = UpstreamConfig::new(spec, accounting.clone());
    upstream.protocol_version = config.protocol_version.as_str().to_owned();
    upstream.handshake = handshake;
    upstream.handshake_timeout = config.pool.create_timeout;
    upstream.max_frame = config.max_frame;
    if handshake {
        // Pooled processes may ask what the proxy can relay to the client
        // of the request they serve (docs/PROXY.md, "Server requests in
        // pooled mode").
        upstream.client_capabilities = crate::proxy::mcp::relay::relayed_capabilities();
    }
    upstream
}

pub(super) fn pool_config(config: &Config, ping_timeout: Duration) -> PoolConfig {
    let p = &config.pool;
    let mut pool = PoolConfig::new(p.max_size);
    pool.min_idle = p.min_idle;
    pool.wait_timeout = Some(p.wait_timeout);
    // The pool's own deadline is a backstop; the handshake has its own.
    pool.create_timeout = Some(p.create_timeout + Duration::from_secs(5));
    pool.recycle_timeout = Some(ping_timeout + Duration::from_secs(1));
    pool.max_lifetime = p.max_lifetime;
    pool.idle_timeout = p.idle_timeout;
    // A session's process serves that session only and is destroyed with it.
    pool.max_uses = match config.mode {
        Mode::Pooled => p.max_uses,
        Mode::Session => None,
    };
    pool
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["stdiopool"];
        all.extend_from_slice(args);
        Config::load_from(all).unwrap()
    }

    #[test]
    fn demo_in_the_binary_runs_this_executable_as_the_fixture() {
        let c = config(&["--demo", "--env", "A=1"]);
        let spec = process_spec(&c, DemoServer::ThisExecutable).unwrap();
        assert_eq!(
            spec.program,
            std::env::current_exe().unwrap().into_os_string()
        );
        assert_eq!(spec.args, vec!["--name", "demo"]);
        assert_eq!(spec.name, "demo");
        // The user's environment first, then the switch that makes the child
        // the fixture server.
        assert_eq!(
            spec.env_set,
            vec![
                ("A".into(), "1".into()),
                (RUN_FIXTURE_ENV.into(), "1".into())
            ]
        );
    }

    #[test]
    fn a_command_is_run_as_given_whatever_the_demo_source() {
        let c = config(&["--", "srv", "--flag"]);
        for demo in [DemoServer::ThisExecutable, DemoServer::NextToExecutable] {
            let spec = process_spec(&c, demo).unwrap();
            assert_eq!(spec.program, "srv");
            assert_eq!(spec.args, vec!["--flag"]);
            assert!(spec.env_set.is_empty(), "{demo:?}: {:?}", spec.env_set);
        }
    }
}
