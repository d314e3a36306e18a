//! Helpers shared by the test binaries.

/// Recurses until the stack runs out; the branch only keeps the compiler from proving that.
#[inline(never)]
pub(crate) fn recurse_forever(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = std::hint::black_box([depth; 32]);
    recurse_forever(depth + 1) + frame[3]
}
