//! Section 4: spawn and join.

use std::path::Path;

use crate::plot;
use crate::runner::{Runner, ratio_cell};
use crate::stats::{self, Unit, thousands};
use crate::{Section, cpus};

/// Goroutines spawned per run, ours and Go's; quick runs spawn a tenth.
const GOROUTINES: usize = 1_000_000;
/// OS threads spawned per run, far fewer for their cost; quick runs spawn a fifth.
const THREADS: usize = 10_000;

/// Program runs per repetition.
pub(crate) fn planned_runs(_quick: bool) -> usize {
    5
}

/// Measures spawning, running and joining a goroutine: ours on every worker and on one, Go's,
/// and an OS thread's.
pub(crate) fn section(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let (n, threads_n) = if quick {
        (GOROUTINES / 10, THREADS / 5)
    } else {
        (GOROUTINES, THREADS)
    };
    let (n_text, threads_text) = (n.to_string(), threads_n.to_string());
    let all = cpus().to_string();
    // Each pair's processes alternate (see `Runner::against_go`).
    let (ours, go) = runner.against_go(
        &["spawn", "--n", &n_text, "--workers", &all],
        &["spawn", "--n", &n_text],
        "ns_per_goroutine",
    );
    let one_worker = ["spawn", "--n", &n_text, "--workers", "1"];
    let (ours_one, go_one) = runner.against_go(&one_worker, &one_worker, "ns_per_goroutine");
    let threads = runner.ours(
        &["spawn", "--n", &threads_text, "--kind", "threads"],
        "ns_per_goroutine",
    );
    let rows = [
        (format!("ours, {all} workers, N = {}", thousands(n)), &ours),
        (format!("ours, 1 worker, N = {}", thousands(n)), &ours_one),
        (format!("Go, GOMAXPROCS = {all}, N = {}", thousands(n)), &go),
        (format!("Go, GOMAXPROCS = 1, N = {}", thousands(n)), &go_one),
        (
            format!("OS threads, N = {}", thousands(threads_n)),
            &threads,
        ),
    ];
    let header = [
        "spawn, run and join (WaitGroup)",
        "per goroutine",
        "ours ÷ this",
    ]
    .map(String::from);
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(label, outcome)| {
            vec![
                label.clone(),
                outcome.cell(Unit::Nanoseconds),
                ratio_cell(&ours, outcome),
            ]
        })
        .collect();
    let mut body = stats::markdown_table(&header, &table_rows);
    body.push_str(
        "\nThe spawner adds all N to a WaitGroup first (`wg.Add(n)`, as the seed's memory \
         program does), each goroutine calls `done` on it, shared by reference as in Go, and the \
         spawner then waits: the same program in Go and in Rust. The seed gives no time for \
         this, only that millions of goroutines are cheap to create.\n",
    );
    let headlines = vec![format!(
        "Spawn and join: {} Go's time per goroutine ({} on one worker against GOMAXPROCS = 1), \
         {} an OS thread's.",
        ratio_cell(&ours, &go),
        ratio_cell(&ours_one, &go_one),
        ratio_cell(&ours, &threads),
    )];
    let bars: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|(label, outcome)| outcome.median().map(|ns| (label.clone(), ns)))
        .collect();
    let plot = plot::save(out_dir, "spawn.svg", |path| {
        plot::bar_chart(
            path,
            "Spawn, run and join one goroutine",
            "nanoseconds",
            &bars,
        )
    });
    Section {
        title: "4. Spawn and join".to_string(),
        body,
        headlines,
        plot,
    }
}
