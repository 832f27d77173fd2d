//! `stdiopool`: serve a stdio MCP server over MCP Streamable HTTP from a pool
//! of warm, reused server processes. Thin: parse the configuration, set up
//! logging, start the proxy, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

// The bundled fixture server, built into this binary too, so `--demo` works
// from a plain `cargo run` (which builds only this binary).
#[path = "bin/stdiopool-fixture/main.rs"]
mod fixture;

use anyhow::Context;
use stdiopool::app::{DemoServer, Proxy, RUN_FIXTURE_ENV, operator};
use stdiopool::config::{Config, ConfigError, LogFormat};
use stdiopool::upstream::process::become_subreaper;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    if std::env::var_os(RUN_FIXTURE_ENV).is_some() {
        fixture::main();
        return ExitCode::SUCCESS;
    }
    let config = match Config::load() {
        Ok(config) => config,
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("stdiopool: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stdiopool: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stdiopool: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: log files and journald get
    // plain text (and NO_COLOR turns it off everywhere).
    let ansi = operator::ansi_wanted(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // First of all: from here on SIGTERM/SIGINT (and, with a server list,
    // SIGHUP) are ours, so one that comes during start-up or right after the
    // banner starts the stop sequence instead of killing the proxy outright.
    let stop_signals = stdiopool::app::StopSignals::install();
    let hangups = if config.servers.is_some() {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: reload is off");
                None
            }
        }
    } else {
        None
    };
    // Grandchildren orphaned when a wrapper (npx → node) dies are re-parented
    // to us, so the stop sequence can reap them.
    if let Err(e) = become_subreaper() {
        tracing::warn!(error = %e, "could not become a child subreaper; orphaned grandchildren may be reaped by init instead");
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener
        .local_addr()
        .context("reading the listening address")?;
    let banner_config = config.clone();
    // The fixture server is built into this binary (see `mod fixture`).
    let proxy = Proxy::start_with(config, DemoServer::ThisExecutable).await?;
    let info = proxy.server_info();
    let upstream = info
        .pointer("/serverInfo/name")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    let interfaces = if address.ip().is_unspecified() {
        operator::interface_addresses()
    } else {
        Vec::new()
    };
    let banner = match proxy.servers() {
        Some(table) => {
            // SIGHUP re-reads the file (the same arguments and environment).
            if let Some(hangups) = hangups {
                tokio::spawn(reload_on_sighup(hangups, table.clone()));
            }
            operator::servers_banner(&banner_config, address, &table.banner_lines(), &interfaces)
        }
        None => operator::banner(&banner_config, address, upstream, &interfaces),
    };
    // Where to connect goes to stdout (the one thing this binary prints
    // there). A closed or broken stdout must not stop the proxy: `println!`
    // would panic on EPIPE, e.g. when whoever started us stops reading after
    // the URL line.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{banner}").and_then(|()| out.flush()) {
            tracing::warn!(error = %e, "could not print the banner on stdout");
        }
    }
    let stop = stop_signals.wait(proxy.drain(), banner_config.drain_delay);
    let report = proxy.serve(listener, stop).await?;
    if report.stops_left > 0 {
        tracing::warn!(
            stops_left = report.stops_left,
            "some server processes were still stopping at exit"
        );
    }
    Ok(())
}

/// On each SIGHUP, reads the configuration again and applies its server
/// list; an invalid file changes nothing and is logged as an error.
async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    table: std::sync::Arc<stdiopool::app::ServerTable>,
) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reading the configuration again");
        match Config::load() {
            Ok(config) => {
                table.reload(&config).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused: the configuration is invalid; nothing changed");
            }
        }
    }
}
