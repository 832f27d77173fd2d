//! The `stdiopool` binary as a child of the test: start on a free port,
//! logs, signals, bounded waits, and a guard that always reaps it.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hyper::http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{ACCEPT_BOTH, BIN, FIXTURE, LIMIT, Metrics, Req};

/// A running `stdiopool`; dropping it stops and reaps it.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub path: String,
    stderr: Arc<Mutex<String>>,
}

/// A proxy that did not come up: its exit status and what it said.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    pub stderr: String,
    pub stdout: String,
}

/// Arguments for `stdiopool`: `opts` before `--`, then the fixture with
/// `fixture_args`.
pub fn fixture_args(opts: &[&str], fixture_args: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = opts.iter().map(|s| (*s).to_owned()).collect();
    args.push("--".into());
    args.push(FIXTURE.into());
    args.extend(fixture_args.iter().map(|s| (*s).to_owned()));
    args
}

fn drain_into(
    mut reader: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}

impl ProxyProcess {
    /// Starts the proxy in front of the fixture (`opts`, then `-- fixture
    /// fixture_args`) on a free loopback port; panics if it does not come up.
    pub fn start(opts: &[&str], fixture: &[&str]) -> ProxyProcess {
        match Self::launch(&fixture_args(opts, fixture)) {
            Ok(p) => p,
            Err(f) => panic!(
                "stdiopool did not start ({}):\n{}{}",
                f.status, f.stdout, f.stderr
            ),
        }
    }

    /// Starts `stdiopool --listen 127.0.0.1:0 <args>` and waits for its
    /// banner; if it exits first, returns how it exited and what it said.
    pub fn launch(args: &[String]) -> Result<ProxyProcess, StartFailure> {
        Self::launch_with(&[], args, &[("NO_COLOR", Some("1"))])
    }

    /// [`ProxyProcess::launch`] through `prefix`, a program that execs the
    /// proxy in its own place (such as `prlimit --nofile=256:256`), so the
    /// pid is still the proxy's.
    pub fn launch_via(prefix: &[&str], args: &[String]) -> Result<ProxyProcess, StartFailure> {
        Self::launch_with(prefix, args, &[("NO_COLOR", Some("1"))])
    }

    /// As [`ProxyProcess::launch`], with `env` set (`Some`) or removed
    /// (`None`) in the proxy's environment instead of `NO_COLOR=1`.
    pub fn launch_env(
        args: &[String],
        env: &[(&str, Option<&str>)],
    ) -> Result<ProxyProcess, StartFailure> {
        Self::launch_with(&[], args, env)
    }

    /// Starts the proxy through `prefix` (may be empty) with `env` applied.
    fn launch_with(
        prefix: &[&str],
        args: &[String],
        env: &[(&str, Option<&str>)],
    ) -> Result<ProxyProcess, StartFailure> {
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        // SIGTERM drains at once unless a test asks for the drain delay
        // (`--drain-delay` or this variable in `env`): every test stops its
        // proxy with SIGTERM, and the delay is for load balancers.
        command.env("STDIOPOOL_DRAIN_DELAY", "0");
        for (key, value) in env {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        let mut child = command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stdiopool");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_done = drain_into(child.stderr.take().unwrap(), stderr.clone());
        let stdout_text = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let seen = stdout_text.clone();
        let stdout_done = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                seen.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("connect an MCP client to: ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                // A server list (`--config` with servers): the listing's URL.
                if let Some(rest) = line.strip_prefix("servers: ")
                    && let Some(url) = rest.split_whitespace().next()
                {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        match rx.recv_timeout(LIMIT) {
            Ok(url) => {
                let rest = url.strip_prefix("http://").expect("http URL in the banner");
                let slash = rest.find('/').expect("a path in the banner URL");
                Ok(ProxyProcess {
                    child: Some(child),
                    addr: rest[..slash].parse().expect("an address in the banner"),
                    path: rest[slash..].to_owned(),
                    stderr,
                })
            }
            Err(_) => {
                // No banner: it exited (or hung, which the bound turns into a kill).
                let status = wait_bounded(&mut child, LIMIT).unwrap_or_else(|| {
                    let _ = child.kill();
                    child.wait().unwrap()
                });
                // Let the drain threads reach EOF (bounded, in case something
                // that inherited the pipes outlives the proxy).
                let (done, drained) = mpsc::channel();
                std::thread::spawn(move || {
                    let _ = stderr_done.join();
                    let _ = stdout_done.join();
                    let _ = done.send(());
                });
                let _ = drained.recv_timeout(Duration::from_secs(5));
                let stderr = stderr.lock().unwrap().clone();
                let stdout = stdout_text.lock().unwrap().clone();
                Err(StartFailure {
                    status,
                    stderr,
                    stdout,
                })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// What the proxy has logged so far (its logs and the fixture's stderr).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the proxy's stderr contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        let found = wait_until(LIMIT, || self.stderr().contains(needle)).await;
        assert!(
            found,
            "the proxy never logged {needle:?}; it logged:\n{}",
            self.stderr()
        );
    }

    /// Sends `signal` to the proxy.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits (bounded) for the proxy to exit and reaps it.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the proxy was already reaped");
        tokio::task::spawn_blocking(move || {
            wait_bounded(&mut child, LIMIT).unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the proxy did not exit within {LIMIT:?}");
            })
        })
        .await
        .unwrap()
    }

    /// `http://addr/path` for the MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// A POST to the MCP endpoint with a conforming client's headers.
    pub fn post(&self, body: impl Into<Vec<u8>>) -> Req {
        Req::new(self.addr, Method::POST, &self.path)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(body)
    }

    /// A request with `method` to the MCP endpoint and no other header than Host.
    pub fn request(&self, method: Method) -> Req {
        Req::new(self.addr, method, &self.path)
    }

    /// The current `/metrics`.
    pub async fn metrics(&self) -> Metrics {
        let reply = Req::new(self.addr, Method::GET, "/metrics").send().await;
        assert_eq!(reply.status, StatusCode::OK);
        Metrics::parse(&reply.text())
    }

    /// Waits until `/metrics` satisfies `cond`; returns the last scrape.
    pub async fn wait_metrics(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + LIMIT;
        loop {
            let m = self.metrics().await;
            if cond(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "metrics never showed {what}: {m:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            if wait_bounded(&mut child, LIMIT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("---- stdiopool stderr ----\n{}", self.stderr());
        }
    }
}

/// Polls `child` until it exits or `limit` passes.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms for at most `limit`; whether it became true.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A file in the temp directory, named after the test process and `tag`,
/// removed when dropped (also when the test fails).
#[derive(Debug)]
pub struct TempFile(pub std::path::PathBuf);

impl TempFile {
    /// The path, with nothing written yet (any stale file removed).
    pub fn new(tag: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("stdiopool-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
