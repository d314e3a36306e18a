//! Fork-join: split a sum over 1,024 goroutines that borrow the data, join them all, combine.

fn main() {
    let data: Vec<u64> = (0..10_000_000).collect();
    let mut partial = vec![0u64; 1024];
    let chunk = data.len().div_ceil(partial.len());
    gsched::run(move || {
        gsched::scope(|s| {
            for (part, slice) in partial.iter_mut().zip(data.chunks(chunk)) {
                s.go(move || *part = slice.iter().sum());
            }
        });
        let total: u64 = partial.iter().sum();
        println!("sum = {total}");
        assert_eq!(total, (0..10_000_000u64).sum());
    });
}
