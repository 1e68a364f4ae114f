//! Reading CPU time and resident memory of other processes from /proc.

use anyhow::{anyhow, bail, Context, Result};

/// Clock ticks per second used by /proc/PID/stat (sysconf(_SC_CLK_TCK) is
/// 100 on every Linux we run on).
pub const CLK_TCK: f64 = 100.0;

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat_ticks(&text).with_context(|| format!("parsing {path}"))
}

/// Parse utime+stime out of the text of /proc/PID/stat. The command name
/// (field 2) may contain spaces and parentheses, so split after the last ')'.
pub fn parse_stat_ticks(text: &str) -> Result<u64> {
    let close = text.rfind(')').ok_or_else(|| anyhow!("no ')' in stat"))?;
    // After ')' come fields 3.. (state, ppid, ...); utime is field 14, stime 15.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let get = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("stat has only {} fields", fields.len()))?
            .parse::<u64>()
            .with_context(|| format!("field {}", i + 3))
    };
    Ok(get(11)? + get(12)?)
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vmrss(&text).with_context(|| format!("parsing {path}"))
}

/// Parse the `VmRSS:   1234 kB` line of /proc/PID/status.
pub fn parse_vmrss(text: &str) -> Result<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS line"))?;
    let num = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("empty VmRSS line"))?;
    num.parse::<u64>().context("VmRSS value")
}

/// Sum of CPU ticks over several processes.
pub fn total_ticks(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| cpu_ticks(p)).sum()
}

/// Sum of VmRSS (KiB) over several processes.
pub fn total_rss_kib(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

/// CPU time of this process (the load generator itself), in ticks.
pub fn self_ticks() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    parse_stat_ticks(&text)
}

/// Busy CPU ticks of the whole machine (all cores) from /proc/stat.
pub fn system_busy_ticks() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_proc_stat_busy(&text)
}

/// user + nice + system + irq + softirq + steal of the aggregate `cpu` line
/// (guest time is already part of user).
pub fn parse_proc_stat_busy(text: &str) -> Result<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<u64>().context("cpu field"))
        .collect::<Result<_>>()?;
    if v.len() < 8 {
        bail!("short cpu line in /proc/stat");
    }
    Ok(v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
}

/// Convert a tick count into microseconds.
pub fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 1_000_000.0 / CLK_TCK
}

/// Snapshot of CPU ticks of the watched processes, the upstream and ourselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSnapshot {
    pub watched: u64,
    pub upstream: u64,
    pub own: u64,
    /// Busy ticks of the whole machine.
    pub system: u64,
}

impl CpuSnapshot {
    pub fn take(watched: &[u32], upstream: &[u32]) -> Result<Self> {
        Ok(Self {
            watched: total_ticks(watched)?,
            upstream: total_ticks(upstream)?,
            own: self_ticks()?,
            system: system_busy_ticks()?,
        })
    }

    /// Ticks spent between `self` (earlier) and `later`.
    pub fn delta(&self, later: &Self) -> Self {
        Self {
            watched: later.watched.saturating_sub(self.watched),
            upstream: later.upstream.saturating_sub(self.upstream),
            own: later.own.saturating_sub(self.own),
            system: later.system.saturating_sub(self.system),
        }
    }

    /// CPU used by processes other than the watched ones, the upstream and
    /// the load generator, in percent of one core over `secs` (noise gauge:
    /// should be ~0 on a quiet machine). Call on a delta. `None` for windows
    /// under 0.5 s, where the 10 ms tick makes it meaningless.
    pub fn other_pct(&self, secs: f64) -> Option<f64> {
        if secs < 0.5 {
            return None;
        }
        let other = self
            .system
            .saturating_sub(self.watched + self.upstream + self.own);
        Some((ticks_to_us(other) / 1e6 / secs * 100.0 * 100.0).round() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let s = "42 (we ird) pr) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 1 2 3";
        assert_eq!(parse_stat_ticks(s).unwrap(), 22);
    }

    #[test]
    fn proc_stat_busy() {
        let s = "cpu  10 1 5 100 7 2 3 4 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(parse_proc_stat_busy(s).unwrap(), 25);
    }

    #[test]
    fn vmrss() {
        let s = "Name:\tx\nVmPeak:\t 10 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_vmrss(s).unwrap(), 2048);
    }
}
