//! Shared helpers of the benchmark programs.

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

#[cfg(test)]
mod tests {
    use super::resident_bytes;

    #[test]
    fn resident_memory_is_read() {
        let bytes = resident_bytes().unwrap();
        assert!(bytes > 0);
        assert_eq!(bytes % ctxswitch::page_size() as u64, 0);
    }
}
