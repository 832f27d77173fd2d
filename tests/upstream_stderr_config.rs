//! The stderr budget options (`--stderr-lines-per-sec`, `--stderr-bytes-per-sec`,
//! `--stderr-burst`): their defaults are the documented production ones, and
//! the command line and the config file both set them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use stdiopool::config::Config;
use stdiopool::upstream::process::StderrBudget;

#[test]
fn the_default_stderr_budget_is_the_documented_one() {
    let c = Config::load_from(["stdiopool", "--", "srv"]).unwrap();
    assert_eq!(c.server.stderr, StderrBudget::default());
    assert_eq!(c.server.stderr.lines_per_sec, 100);
    assert_eq!(c.server.stderr.bytes_per_sec, 32 * 1024);
    assert_eq!(c.server.stderr.burst, Duration::from_secs(5));
    assert_eq!(c.server.stderr.summary_every, Duration::from_secs(5));
}

#[test]
fn the_stderr_budget_is_set_from_the_command_line_and_the_file() {
    let c = Config::load_from([
        "stdiopool",
        "--stderr-lines-per-sec",
        "7",
        "--stderr-bytes-per-sec",
        "2KiB",
        "--stderr-burst",
        "30s",
        "--",
        "srv",
    ])
    .unwrap();
    assert_eq!(
        (c.server.stderr.lines_per_sec, c.server.stderr.bytes_per_sec),
        (7, 2048)
    );
    assert_eq!(c.server.stderr.burst, Duration::from_secs(30));

    let toml = "command = [\"srv\"]\nstderr_lines_per_sec = 0\nstderr_bytes_per_sec = \"1MiB\"\nstderr_burst = \"1s\"\n";
    let c = Config::load_from_with_file(["stdiopool"], toml, Path::new("t.toml")).unwrap();
    assert_eq!(
        c.server.stderr.lines_per_sec, 0,
        "0 turns the line limit off"
    );
    assert_eq!(c.server.stderr.bytes_per_sec, 1 << 20);
    assert_eq!(c.server.stderr.burst, Duration::from_secs(1));
}
