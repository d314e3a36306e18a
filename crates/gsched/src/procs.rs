//! How many workers: the CPUs this process may use.

use std::fmt;

/// The environment variable that overrides the worker count.
pub const PROCS_VAR: &str = "GSCHED_PROCS";

/// A `GSCHED_PROCS` value that is not a positive whole number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcsError {
    value: String,
}

impl fmt::Display for ProcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PROCS_VAR}={:?} is not a valid worker count: expected a whole number from 1 to 4096",
            self.value
        )
    }
}

impl std::error::Error for ProcsError {}

/// The worker count from `GSCHED_PROCS` when it is set, else the CPUs the process may use. An
/// empty value counts as unset, as Go treats an empty `GOMAXPROCS`.
pub(crate) fn default_workers() -> Result<usize, ProcsError> {
    procs_or_cpus(std::env::var(PROCS_VAR).ok().as_deref())
}

fn procs_or_cpus(value: Option<&str>) -> Result<usize, ProcsError> {
    match value {
        Some(value) if !value.trim().is_empty() => parse_procs(value),
        _ => Ok(available_cpus()),
    }
}

pub(crate) fn parse_procs(value: &str) -> Result<usize, ProcsError> {
    match value.trim().parse::<usize>() {
        Ok(count) if (1..=4096).contains(&count) => Ok(count),
        _ => Err(ProcsError {
            value: value.to_string(),
        }),
    }
}

/// CPUs in the affinity mask, capped by the cgroup v2 CPU quota (`cpu.max`), at least 1.
pub fn available_cpus() -> usize {
    let affinity = std::thread::available_parallelism().map_or(1, usize::from);
    match cgroup_quota() {
        Some(quota) => affinity.min(quota).max(1),
        None => affinity,
    }
}

/// The cgroup v2 quota in whole CPUs (rounded up), if one is set.
fn cgroup_quota() -> Option<usize> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|line| line.strip_prefix("0::"))?;
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup{}/cpu.max", path.trim_end()))
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/cpu.max"))
        .ok()?;
    parse_cpu_max(&max)
}

pub(crate) fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: u64 = fields.next()?.parse().ok()?;
    if quota == "max" || period == 0 {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    usize::try_from(quota.div_ceil(period)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procs_values() {
        assert_eq!(parse_procs("4"), Ok(4));
        assert_eq!(parse_procs(" 2\n"), Ok(2));
        for bad in ["0", "-1", "two", "", "5000"] {
            let err = parse_procs(bad).unwrap_err();
            assert!(err.to_string().starts_with("GSCHED_PROCS="), "{err}");
        }
    }

    #[test]
    fn an_empty_procs_value_counts_as_unset() {
        assert_eq!(procs_or_cpus(Some("")), Ok(available_cpus()));
        assert_eq!(procs_or_cpus(Some("  ")), Ok(available_cpus()));
        assert_eq!(procs_or_cpus(None), Ok(available_cpus()));
        assert_eq!(procs_or_cpus(Some("3")), Ok(3));
        assert!(procs_or_cpus(Some("abc")).is_err());
    }

    #[test]
    fn cpu_max_values() {
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(parse_cpu_max("200000 100000"), Some(2));
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("garbage"), None);
    }
}
