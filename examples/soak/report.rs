//! What the soak counted, and the table it prints and writes.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One fault kind's counts.
#[derive(Debug, Default, Clone)]
pub struct FaultCount {
    /// Times injected (connections or sockets it hit).
    pub injected: u64,
    /// Of those, the ones that ended as they should.
    pub ok: u64,
}

/// Everything counted during a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections opened (authenticated).
    pub connections: u64,
    /// Most connections open at once.
    pub peak_open: u64,
    /// Connections ended cleanly at the end (`fin` exchanged, close 1000).
    pub healthy: u64,
    /// Numbered frames client → upstream, received in order.
    pub frames_up: u64,
    /// Numbered frames upstream → client, received in order.
    pub frames_down: u64,
    /// Frames of healthy connections that never arrived.
    pub lost: u64,
    /// Frames that arrived twice or out of order (any connection).
    pub disorder: u64,
    /// REAUTHs sent on `auth_required`.
    pub reauths: u64,
    /// REAUTHs answered with `AUTHENTICATED`.
    pub reauths_answered: u64,
    /// Per fault kind.
    pub faults: BTreeMap<&'static str, FaultCount>,
    /// Times each fault kind of `faults::FAULTS` was scheduled.
    pub scheduled: BTreeMap<&'static str, u64>,
    /// Problems (the first few kept).
    pub problems: Vec<String>,
    /// How many problems there were.
    pub problem_count: u64,
    /// Problems by kind (their text without digits).
    pub problem_kinds: BTreeMap<String, u64>,
}

impl Stats {
    /// Records a problem.
    pub fn problem(&mut self, what: String) {
        self.problem_count += 1;
        let kind: String = what
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(100)
            .collect();
        *self.problem_kinds.entry(kind).or_default() += 1;
        if self.problems.len() < 20 {
            self.problems.push(what);
        }
    }

    /// Records one injection of `kind` and whether it ended as it should.
    pub fn fault(&mut self, kind: &'static str, ok: bool, what: impl FnOnce() -> String) {
        let f = self.faults.entry(kind).or_default();
        f.injected += 1;
        if ok {
            f.ok += 1;
        } else {
            self.problem(format!("{kind}: {}", what()));
        }
    }
}

/// The end-of-run measurements besides the counts.
pub struct Outcome {
    /// The command line's settings, as text.
    pub settings: String,
    /// Seconds of load.
    pub seconds: f64,
    /// `wsguard_connections_active` at the end (before the drain).
    pub active_at_end: f64,
    /// The last `wsguard_connections_active` scraped during the drain
    /// (the process exits 10 ms after its last connection, so it may miss the 0).
    pub active_in_drain: Option<f64>,
    /// The RSS at the end of each round (bytes).
    pub round_rss: Vec<u64>,
    /// RSS before the load, at its peak, and at the end (bytes).
    pub rss: (u64, u64, u64),
    /// Error-level log lines and panics.
    pub bad_log_lines: u64,
    /// The first few of them.
    pub bad_log: Vec<String>,
    /// Log lines read.
    pub log_lines: u64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// The largest RSS the end may show: baseline + max(10 %, 16 MiB).
pub fn rss_allowed(baseline: u64) -> u64 {
    baseline + (baseline / 10).max(16 << 20)
}

/// The table, and whether every check passed.
pub fn table(s: &Stats, o: &Outcome) -> (String, bool) {
    let mut t = String::new();
    let checks = [
        (
            "frames lost (healthy connections)",
            s.lost == 0,
            s.lost.to_string(),
        ),
        (
            "frames duplicated or reordered",
            s.disorder == 0,
            s.disorder.to_string(),
        ),
        (
            "faults that ended wrongly, unexpected closes",
            s.problem_count == 0,
            s.problem_count.to_string(),
        ),
        (
            "REAUTHs unanswered",
            s.reauths == s.reauths_answered,
            (s.reauths - s.reauths_answered.min(s.reauths)).to_string(),
        ),
        (
            "leaked connections (wsguard_connections_active)",
            o.active_at_end == 0.0,
            o.active_at_end.to_string(),
        ),
        (
            "RSS at the end ≤ baseline + max(10 %, 16 MiB)",
            o.rss.2 <= rss_allowed(o.rss.0),
            format!("{} (allowed {})", mib(o.rss.2), mib(rss_allowed(o.rss.0))),
        ),
        (
            "error-level log lines and panics",
            o.bad_log_lines == 0,
            o.bad_log_lines.to_string(),
        ),
    ];
    let pass = checks.iter().all(|c| c.1);
    let _ = writeln!(t, "soak: {}\n", o.settings);
    let _ = writeln!(t, "| load | value |\n| --- | --- |");
    let rate = (s.frames_up + s.frames_down) as f64 / o.seconds.max(1.0);
    for (k, v) in [
        (
            "connections opened (authenticated)",
            s.connections.to_string(),
        ),
        ("connections open at the peak", s.peak_open.to_string()),
        (
            "connections ended healthy (all frames checked)",
            s.healthy.to_string(),
        ),
        ("numbered frames client → upstream", s.frames_up.to_string()),
        (
            "numbered frames upstream → client",
            s.frames_down.to_string(),
        ),
        ("frames/s (both ways)", format!("{rate:.0}")),
        (
            "REAUTHs (answered)",
            format!("{} ({})", s.reauths, s.reauths_answered),
        ),
        (
            "RSS baseline / peak / end",
            format!("{} / {} / {}", mib(o.rss.0), mib(o.rss.1), mib(o.rss.2)),
        ),
        (
            "RSS at the end of each round",
            o.round_rss
                .iter()
                .map(|r| mib(*r))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("log lines read", o.log_lines.to_string()),
        (
            "wsguard_connections_active last scraped in the drain",
            o.active_in_drain.map_or("none".into(), |v| v.to_string()),
        ),
    ] {
        let _ = writeln!(t, "| {k} | {v} |");
    }
    let _ = writeln!(t, "\n| fault | scheduled |\n| --- | --- |");
    for (kind, n) in &s.scheduled {
        let _ = writeln!(t, "| {kind} | {n} |");
    }
    let _ = writeln!(
        t,
        "\n| fault outcome | connections or sockets hit | ended as expected |\n| --- | --- | --- |"
    );
    for (kind, f) in &s.faults {
        let _ = writeln!(t, "| {kind} | {} | {} |", f.injected, f.ok);
    }
    let _ = writeln!(t, "\n| check | result | value |\n| --- | --- | --- |");
    for (name, ok, value) in &checks {
        let _ = writeln!(
            t,
            "| {name} | {} | {value} |",
            if *ok { "pass" } else { "FAIL" }
        );
    }
    for (kind, n) in &s.problem_kinds {
        let _ = writeln!(t, "\n    {n} × {kind}");
    }
    for p in s.problems.iter().chain(o.bad_log.iter()) {
        let _ = writeln!(t, "\n    {p}");
    }
    (t, pass)
}
