//! One scrape of `/metrics`, by series.

use std::collections::HashMap;

/// One scrape of `/metrics`: series (name with labels, as printed) → value.
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub HashMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut map = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((series, value)) = line.rsplit_once(' ')
                && let Ok(v) = value.parse::<f64>()
            {
                map.insert(series.to_owned(), v);
            }
        }
        Metrics(map)
    }

    /// A series' value; 0 when absent (families never used are left out).
    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// `stdiopool_requests_total{method,outcome}`.
    pub fn requests(&self, method: &str, outcome: &str) -> f64 {
        self.get(&format!(
            "stdiopool_requests_total{{method=\"{method}\",outcome=\"{outcome}\"}}"
        ))
    }

    /// Requests counted with outcome `rejected`, any method.
    pub fn requests_rejected(&self) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.starts_with("stdiopool_requests_total{") && k.contains("outcome=\"rejected\"")
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Requests counted with any outcome but `rejected`.
    pub fn requests_not_rejected(&self) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.starts_with("stdiopool_requests_total{") && !k.contains("outcome=\"rejected\"")
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// What shows whether a request touched a server process: creations,
    /// checkouts, spawns and every request not refused at the transport.
    pub fn touch_counts(&self) -> [(&'static str, f64); 4] {
        [
            ("created", self.get("stdiopool_pool_created_total")),
            ("recycled", self.get("stdiopool_pool_recycled_total")),
            ("spawned", self.get("stdiopool_process_spawned_total")),
            ("not rejected", self.requests_not_rejected()),
        ]
    }
}
