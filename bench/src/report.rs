//! Latency histograms, error bookkeeping and result output.

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram in microseconds (1 µs .. 10 min, 3 significant digits).
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

impl Hist {
    pub fn new() -> Self {
        // Bounds are constants and valid, so this cannot fail.
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!()))
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 600_000_000);
        // Value is clamped into the bounds, so saturating record is exact.
        self.0.saturating_record(us);
    }

    pub fn merge(&mut self, other: &Hist) {
        // Same bounds on both sides: add cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn q(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    /// Percentile fields for the JSON line.
    pub fn fields(&self, prefix: &str, out: &mut Map<String, Value>) {
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            out.insert(format!("{prefix}{name}_us"), json!(self.q(q)));
        }
        out.insert(format!("{prefix}max_us"), json!(self.0.max()));
        out.insert(format!("{prefix}mean_us"), json!(round2(self.0.mean())));
    }
}

/// Error counter that keeps the first few messages.
#[derive(Default)]
pub struct Errors {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Errors {
    pub fn add(&self, e: &anyhow::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut v) = self.first.lock() {
            if v.len() < 5 {
                v.push(format!("{e:#}"));
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// "N errors, first: ..." for a failure message.
    pub fn summary(&self) -> String {
        let first = self.samples().into_iter().next().unwrap_or_default();
        format!("{} errors, first: {first}", self.count())
    }

    pub fn samples(&self) -> Vec<String> {
        self.first.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Format microseconds compactly for the human line.
pub fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2}ms", us as f64 / 1000.0)
    } else {
        format!("{us}µs")
    }
}

/// One finished run: a human line and a JSON object.
pub struct Outcome {
    pub human: String,
    pub json: Map<String, Value>,
    pub errors: u64,
    pub samples: Vec<String>,
}

impl Outcome {
    pub fn new(human: String, json: Map<String, Value>, errors: &Errors) -> Self {
        Self {
            human,
            json,
            errors: errors.count(),
            samples: errors.samples(),
        }
    }

    /// Start a JSON object with the fields every mode has.
    pub fn base(mode: &str, target: &str, case: &str, tag: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("mode".into(), json!(mode));
        m.insert("target".into(), json!(target));
        m.insert("case".into(), json!(case));
        m.insert("tag".into(), json!(tag));
        m
    }

    /// Print `# human` and the JSON line; append JSON to `json_out` if given.
    pub fn emit(&self, json_out: Option<&Path>) -> Result<()> {
        let mut obj = self.json.clone();
        obj.insert("errors".into(), json!(self.errors));
        if self.errors > 0 {
            obj.insert("error_samples".into(), json!(self.samples));
        }
        let line = Value::Object(obj).to_string();
        println!("# {}", self.human);
        for e in &self.samples {
            println!("#   error: {e}");
        }
        println!("{line}");
        if let Some(path) = json_out {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}
