//! Following the proxy's children and grandchildren in `/proc`.

use stdiopool::accounting::{ProcStat, all_processes, proc_stat};

use super::{LIMIT, wait_until};

/// Every descendant of `root` (children, grandchildren, ...), zombies included.
pub fn descendants(root: u32) -> Vec<ProcStat> {
    let all = all_processes().unwrap();
    let mut out: Vec<ProcStat> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if !out.iter().any(|o| o.pid == p.pid) {
                out.push(*p);
                frontier.push(p.pid);
            }
        }
    }
    out
}

/// Whether `pid` exists at all (running or zombie).
pub fn exists(pid: u32) -> bool {
    proc_stat(pid).is_some()
}

/// Waits until `pid` is gone from `/proc`.
pub async fn wait_gone(pid: u32) -> bool {
    wait_until(LIMIT, || !exists(pid)).await
}
