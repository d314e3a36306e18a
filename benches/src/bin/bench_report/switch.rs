//! Section 2: context switches.

use std::fmt::Write as _;
use std::path::Path;

use crate::Section;
use crate::plot;
use crate::runner::{Runner, ratio_cell};
use crate::stats::{self, Unit};

/// Round trips between the two pinned threads (two switches each).
const THREAD_ROUND_TRIPS: u64 = 200_000;
/// Raw coroutine resumes (two switches each).
const RAW_RESUMES: u64 = 10_000_000;
/// Sends over the unbuffered channel, ours and Go's.
const SENDS: u64 = 2_000_000;
/// Quick runs do this fraction of the work: enough to see the orders of magnitude.
const QUICK_DIVISOR: u64 = 10;

/// The seed's figures.
const SEED_THREADS: &str = "1.47 µs";
const SEED_GOROUTINES: &str = "225 ns";

/// Program runs per repetition.
pub(crate) fn planned_runs(_quick: bool) -> usize {
    6
}

/// Measures a switch between OS threads, between raw coroutines and between goroutines (ours
/// and Go's, on one and two workers).
pub(crate) fn section(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let scale = |full: u64| (if quick { full / QUICK_DIVISOR } else { full }).to_string();
    let (threads_n, raw_n, ops) = (scale(THREAD_ROUND_TRIPS), scale(RAW_RESUMES), scale(SENDS));
    let threads = runner.ours(
        &["switch", "--kind", "threads", "--n", &threads_n],
        "ns_per_switch",
    );
    let raw = runner.ours(
        &["switch", "--kind", "ctxswitch", "--n", &raw_n],
        "ns_per_switch",
    );
    // Ours and Go's processes alternate (see `Runner::against_go`).
    let goroutines = |workers: &str| {
        runner.against_go(
            &[
                "switch",
                "--kind",
                "goroutines",
                "--workers",
                workers,
                "--n",
                &ops,
            ],
            &["switch", "--workers", workers, "--n", &ops],
            "ns_per_op",
        )
    };
    let (one, go_one) = goroutines("1");
    let (two, go_two) = goroutines("2");
    let rows = [
        (
            "OS threads pinned to one CPU, over pipes (per switch)",
            &threads,
            SEED_THREADS,
        ),
        ("ctxswitch, the raw switch (per switch)", &raw, "—"),
        (
            "goroutines, unbuffered channel, 1 worker (per send)",
            &one,
            SEED_GOROUTINES,
        ),
        (
            "goroutines, unbuffered channel, 2 workers (per send)",
            &two,
            "—",
        ),
        (
            "Go BenchmarkContextSwitch, -cpu=1 (per send)",
            &go_one,
            SEED_GOROUTINES,
        ),
        ("Go BenchmarkContextSwitch, -cpu=2 (per send)", &go_two, "—"),
    ];
    let header = ["context switch", "time", "the seed"].map(String::from);
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(label, outcome, seed)| {
            vec![
                label.to_string(),
                outcome.cell(Unit::Nanoseconds),
                seed.to_string(),
            ]
        })
        .collect();
    let mut body = stats::markdown_table(&header, &table_rows);
    let _ = writeln!(
        body,
        "\nRatios: goroutines ÷ Go at 1 worker {}, at 2 workers {}; goroutine send ÷ OS-thread \
         switch {}.",
        ratio_cell(&one, &go_one),
        ratio_cell(&two, &go_two),
        ratio_cell(&one, &threads),
    );
    let headlines = vec![format!(
        "Goroutine switch over an unbuffered channel: {} Go's time at 1 worker, {} at 2; {} an \
         OS-thread switch.",
        ratio_cell(&one, &go_one),
        ratio_cell(&two, &go_two),
        ratio_cell(&one, &threads),
    )];
    let bars: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|(label, outcome, _)| {
            outcome
                .median()
                .map(|ns| (label.split(" (").next().unwrap_or(label).to_string(), ns))
        })
        .collect();
    let plot = plot::save(out_dir, "switch.svg", |path| {
        plot::bar_chart(path, "Context switch", "nanoseconds", &bars)
    });
    Section {
        title: "2. Context switch".to_string(),
        body,
        headlines,
        plot,
    }
}
