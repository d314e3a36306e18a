//! A pipeline that fans out and back in, with Go's errgroup and a context timeout: one stage
//! produces numbers, four workers square them, the main goroutine sums; the first failure,
//! or the deadline, stops every stage.
//!
//! `cargo run --example pipeline -p goroutines-sync`

use std::time::Duration;

use gsync::{Context, ErrGroup, chan, select};

fn main() {
    let total = gsched::run(|| {
        let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(5));
        let (group, ctx) = ErrGroup::<String>::with_context(&ctx);
        let (numbers_tx, numbers) = chan::<u64>(0);
        let (squares_tx, squares) = chan::<u64>(0);

        let producer_ctx = ctx.clone();
        group.go(move || {
            for n in 1..=100 {
                select! {
                    send(numbers_tx, n) -> sent => sent.map_err(|_| "no workers left".to_string())?,
                    recv(producer_ctx.done()) -> _ => return Err(producer_ctx.err().unwrap().to_string()),
                }
            }
            Ok(())
        });
        for _ in 0..4 {
            let (numbers, squares_tx, ctx) = (numbers.clone(), squares_tx.clone(), ctx.clone());
            group.go(move || {
                for n in numbers.iter() {
                    select! {
                        send(squares_tx, n * n) -> sent => sent.map_err(|_| "no sink".to_string())?,
                        recv(ctx.done()) -> _ => return Err(ctx.err().unwrap().to_string()),
                    }
                }
                Ok(())
            });
        }
        drop((numbers, squares_tx));
        let total: u64 = squares.iter().sum();
        group.wait().map(|()| total)
    });
    println!("sum of squares 1..=100: {total:?}");
    assert_eq!(total, Ok(338_350));
}
