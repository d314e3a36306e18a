//! A two-case select with one case ready, through `select!` or the run-time `Select`: time per
//! select, for comparing the two (also under callgrind, where the count is exact).

use std::hint::black_box;
use std::time::Instant;

use crate::Options;

pub(crate) fn run(options: &Options) -> Result<String, String> {
    let n: u64 = options.number("n", 1_000_000)?;
    let (ready_tx, ready) = gsync::chan::<u64>(1);
    let (_idle_tx, idle) = gsync::chan::<u64>(1);
    let start = Instant::now();
    match options.text("kind", "macro") {
        "macro" => {
            for i in 0..n {
                ready_tx.send(i).map_err(|err| err.to_string())?;
                let _ = gsync::select! {
                    recv(idle) -> value => black_box(value),
                    recv(ready) -> value => black_box(value),
                };
            }
        }
        "builder" => {
            for i in 0..n {
                ready_tx.send(i).map_err(|err| err.to_string())?;
                let mut select = gsync::Select::new();
                select.recv(&idle);
                let op = select.recv(&ready);
                let selected = select.select();
                let _ = black_box(selected.recv(op));
            }
        }
        other => return Err(format!("unknown select kind {other:?}")),
    }
    Ok(format!(
        "ns_per_select={:.1}",
        start.elapsed().as_nanos() as f64 / n as f64
    ))
}
