//! The listener's options (issue 18): their defaults, the command line and
//! the config file, and the values refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use stdiopool::config::{Config, ConfigError};
use stdiopool::listener::ListenerSettings;

fn load(args: &[&str]) -> Result<Config, ConfigError> {
    let mut all = vec!["stdiopool"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "server"]);
    Config::load_from(all)
}

fn load_with_file(args: &[&str], toml: &str) -> Result<Config, ConfigError> {
    let mut all = vec!["stdiopool"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "server"]);
    Config::load_from_with_file(all, toml, Path::new("test.toml"))
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let l = load(&[]).unwrap().listener;
    assert_eq!(l, ListenerSettings::default());
    assert_eq!(l.header_read_timeout, Duration::from_secs(10));
    assert_eq!(l.body_read_timeout, Duration::from_secs(30));
    assert_eq!(l.keep_alive_timeout, Duration::from_secs(60));
    assert_eq!(l.send_timeout, Duration::from_secs(60));
    assert_eq!(l.sse_idle_timeout, Duration::from_secs(300));
    assert_eq!(l.max_connections, None);
    assert_eq!(l.max_get_streams, None);
}

#[test]
fn every_listener_option_is_read_from_the_command_line() {
    let l = load(&[
        "--header-read-timeout",
        "2s",
        "--body-read-timeout",
        "5s",
        "--keep-alive-timeout",
        "7s",
        "--send-timeout",
        "9s",
        "--sse-idle-timeout",
        "1m",
        "--max-connections",
        "100",
        "--max-get-streams",
        "auto",
    ])
    .unwrap()
    .listener;
    assert_eq!(l.header_read_timeout, Duration::from_secs(2));
    assert_eq!(l.body_read_timeout, Duration::from_secs(5));
    assert_eq!(l.keep_alive_timeout, Duration::from_secs(7));
    assert_eq!(l.send_timeout, Duration::from_secs(9));
    assert_eq!(l.sse_idle_timeout, Duration::from_secs(60));
    assert_eq!(l.max_connections, Some(100));
    assert_eq!(l.max_get_streams, None);
}

#[test]
fn the_file_sets_them_and_the_command_line_wins() {
    let toml = r#"
        header_read_timeout = "4s"
        keep_alive_timeout = 20
        max_connections = 50
        max_get_streams = "auto"
    "#;
    let l = load_with_file(&["--max-connections", "70"], toml)
        .unwrap()
        .listener;
    assert_eq!(l.header_read_timeout, Duration::from_secs(4));
    assert_eq!(l.keep_alive_timeout, Duration::from_secs(20));
    assert_eq!(l.max_connections, Some(70));
    assert_eq!(l.max_get_streams, None);
}

#[test]
fn zero_bounds_and_counts_are_refused() {
    for option in [
        "--header-read-timeout",
        "--body-read-timeout",
        "--keep-alive-timeout",
        "--send-timeout",
        "--sse-idle-timeout",
    ] {
        let e = load(&[option, "0s"]).unwrap_err();
        assert!(
            matches!(e, ConfigError::ZeroDuration { .. }),
            "{option}: {e}"
        );
    }
    for option in ["--max-connections", "--max-get-streams"] {
        assert!(load(&[option, "0"]).is_err(), "{option} 0");
        assert!(load(&[option, "lots"]).is_err(), "{option} lots");
    }
}
