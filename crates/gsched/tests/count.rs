//! `num_goroutines`, alone in its binary: the count is process-wide.

use std::time::Duration;

use gsched::{Runtime, go};

#[test]
fn num_goroutines_counts_live_ones() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let before = gsched::num_goroutines();
        let parked = go(|| gsched::sleep(Duration::from_millis(30)));
        assert_eq!(gsched::num_goroutines(), before + 1);
        parked.join().unwrap();
        assert_eq!(gsched::num_goroutines(), before);
    });
}
