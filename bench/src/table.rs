//! Turning JSON result lines into markdown tables (median over rounds).

use serde_json::Value;
use std::collections::BTreeMap;

/// Columns shown per mode: (JSON field, header).
fn columns(mode: &str) -> &'static [(&'static str, &'static str)] {
    match mode {
        "echo" => &[
            ("msgs_per_s", "msg/s"),
            ("p50_us", "p50 µs"),
            ("p90_us", "p90 µs"),
            ("p99_us", "p99 µs"),
            ("p999_us", "p99.9 µs"),
            ("cpu_us_per_msg", "target CPU µs/msg"),
            ("other_cpu_pct", "other CPU %"),
            ("errors", "errors"),
        ],
        "handshake" => &[
            ("hs_per_s", "handshakes/s"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("cpu_us_per_hs", "target CPU µs/hs"),
            ("other_cpu_pct", "other CPU %"),
            ("errors", "errors"),
        ],
        "idle" => &[
            ("opened", "conns"),
            ("kib_per_conn", "KiB/conn"),
            ("rss_after_kib", "RSS after KiB"),
            ("cpu_pct", "idle CPU %"),
            ("frames_received", "frames rcvd"),
            ("other_cpu_pct", "other CPU %"),
            ("errors", "errors"),
        ],
        "reauth" => &[
            ("reauthed", "re-authed"),
            ("all_reauth_ms", "all done ms"),
            ("auth_required_spread_ms", "auth_required spread ms"),
            ("p50_us", "p50 µs"),
            ("p99_us", "p99 µs"),
            ("cpu_ms", "target CPU ms"),
            ("other_cpu_pct", "other CPU %"),
            ("errors", "errors"),
        ],
        _ => &[("errors", "errors")],
    }
}

/// Rows of one mode, in first-seen order, keyed by (case, target).
type Rows = Vec<((String, String), Vec<Value>)>;

const MODES: [&str; 4] = ["echo", "handshake", "idle", "reauth"];

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Build markdown from JSON lines (other lines are ignored). Rows keep the
/// order in which (case, target) first appeared; cells are medians.
pub fn markdown(input: &str) -> String {
    let mut groups: BTreeMap<&str, Rows> = BTreeMap::new();
    for line in input.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        let Some(mode) = MODES.iter().copied().find(|m| *m == s("mode")) else {
            continue;
        };
        let key = (s("case"), s("target"));
        let list = groups.entry(mode).or_default();
        match list.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(v),
            None => list.push((key, vec![v])),
        }
    }
    let mut out = String::new();
    for mode in MODES {
        let Some(list) = groups.get(mode) else {
            continue;
        };
        let cols = columns(mode);
        out.push_str(&format!("\n### {mode}\n\n| case | target | rounds |"));
        for (_, h) in cols {
            out.push_str(&format!(" {h} |"));
        }
        out.push_str("\n|---|---|---:|");
        out.push_str(&"---:|".repeat(cols.len()));
        out.push('\n');
        for ((case, target), rows) in list {
            out.push_str(&format!("| {case} | {target} | {} |", rows.len()));
            for (field, _) in cols {
                let vals: Vec<f64> = rows
                    .iter()
                    .filter_map(|r| r.get(*field).and_then(Value::as_f64))
                    .collect();
                let cell = median(vals).map(fmt_num).unwrap_or_else(|| "–".into());
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_per_case_and_target() {
        let input = r#"# human
{"mode":"echo","case":"a","target":"direct","msgs_per_s":10,"errors":0}
{"mode":"echo","case":"a","target":"direct","msgs_per_s":30,"errors":0}
{"mode":"echo","case":"a","target":"direct","msgs_per_s":20,"errors":1}
{"mode":"echo","case":"a","target":"nginx","msgs_per_s":5,"errors":0}
"#;
        let md = markdown(input);
        assert!(md.contains("| a | direct | 3 | 20 |"), "{md}");
        assert!(md.contains("| a | nginx | 1 | 5 |"), "{md}");
        assert_eq!(median(vec![1.0, 2.0, 3.0, 4.0]), Some(2.5));
    }
}
