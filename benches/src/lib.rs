//! Shared helpers of the benchmark programs.

/// The project README's Rust examples, compiled and run as doc tests of this unpublished
/// crate (which depends on every crate they use), so that they keep working as pasted.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

/// This process's resident set size in bytes, from `/proc/self/statm`.
///
/// Memory figures are differences of two readings around the allocation being measured, so
/// they include every byte that stacks and their bookkeeping actually touch, and nothing that
/// was merely reserved.
pub fn resident_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|err| format!("/proc/self/statm: {err}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| format!("/proc/self/statm has no resident field: {statm:?}"))?;
    Ok(pages * ctxswitch::page_size() as u64)
}

/// This process's page tables in bytes (`VmPTE` in `/proc/self/status`), which the resident set
/// size leaves out: a goroutine's memory is the two together.
pub fn page_table_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|err| format!("/proc/self/status: {err}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmPTE:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "/proc/self/status has no VmPTE line".to_string())
}

#[cfg(test)]
mod tests {
    use super::{page_table_bytes, resident_bytes};

    #[test]
    fn page_tables_are_read() {
        assert!(page_table_bytes().unwrap() > 0);
    }

    #[test]
    fn resident_memory_is_read() {
        let bytes = resident_bytes().unwrap();
        assert!(bytes > 0);
        assert_eq!(bytes % ctxswitch::page_size() as u64, 0);
    }
}
