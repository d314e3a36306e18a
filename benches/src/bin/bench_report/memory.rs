//! Section 1: the seed's memory program.

use std::path::Path;

use crate::Section;
use crate::plot::{self, Axes, Series};
use crate::runner::{Outcome, Runner, ratio_cell};
use crate::stats::{self, Unit, thousands};

/// OS threads are measured up to this many: the kernel's thread and map limits stop far more.
const THREAD_LIMIT: usize = 10_000;

/// The seed's own figure, for Go at N = 10,000.
const SEED_GO: &str = "2.82 KB";

const KEY: &str = "bytes_per_goroutine";

fn sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![10_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    }
}

/// Program runs per repetition.
pub(crate) fn planned_runs(quick: bool) -> usize {
    sizes(quick).len() * 4
}

/// Measures resident memory per parked goroutine: our two stack policies, threads and Go.
pub(crate) fn section(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let sizes = sizes(quick);
    let programs: [(&str, &str); 3] = [
        ("ours, guarded stacks (default)", "guarded"),
        ("ours, dense stacks", "dense"),
        ("OS threads", "threads"),
    ];
    let mut rows: Vec<(String, Vec<Outcome>)> = programs
        .iter()
        .map(|(label, policy)| {
            let outcomes = sizes
                .iter()
                .map(|&n| {
                    if *policy == "threads" && n > THREAD_LIMIT {
                        return runner.skipped(format!("threads only up to {THREAD_LIMIT}"));
                    }
                    let n = n.to_string();
                    runner.ours(&["memory", "--n", &n, "--policy", policy], KEY)
                })
                .collect();
            (label.to_string(), outcomes)
        })
        .collect();
    let go_outcomes = sizes
        .iter()
        .map(|&n| runner.go(&["memory", "--n", &n.to_string()], KEY))
        .collect();
    rows.push(("Go".to_string(), go_outcomes));

    let mut header = vec!["resident memory per goroutine".to_string()];
    header.extend(sizes.iter().map(|n| format!("N = {}", thousands(*n))));
    header.push("the seed (Go, N = 10,000)".to_string());
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(label, outcomes)| {
            let mut row = vec![label.clone()];
            row.extend(outcomes.iter().map(|outcome| outcome.cell(Unit::Bytes)));
            row.push(if label == "Go" { SEED_GO } else { "—" }.to_string());
            row
        })
        .collect();
    let mut body = stats::markdown_table(&header, &table_rows);
    body.push_str(
        "\nOurs and the threads: resident set size (`/proc/self/statm`) before and after, divided \
         by N. Go: the seed's own measure, `runtime.MemStats.Sys` before and after.\n",
    );
    let ratio_at = |row: usize, column: usize| ratio_cell(&rows[row].1[column], &rows[3].1[column]);
    let headlines = vec![format!(
        "Memory per goroutine at N = {}: guarded stacks {} Go's, dense stacks {}, OS threads {}.",
        thousands(sizes[0]),
        ratio_at(0, 0),
        ratio_at(1, 0),
        ratio_at(2, 0),
    )];
    let series: Vec<Series> = rows
        .iter()
        .enumerate()
        .map(|(index, (label, outcomes))| Series {
            color: index,
            name: label.clone(),
            points: sizes
                .iter()
                .zip(outcomes)
                .filter_map(|(&n, outcome)| outcome.median().map(|bytes| (n as f64, bytes / 1e3)))
                .collect(),
            dashed: false,
        })
        .filter(|series| !series.points.is_empty())
        .collect();
    let plot = plot::save(out_dir, "memory.svg", |path| {
        plot::line_chart(
            path,
            &Axes {
                title: "Memory per goroutine",
                x_label: "goroutines (N)",
                y_label: "KB per goroutine",
                log_x: true,
                log_y: true,
            },
            &series,
        )
    });
    Section {
        title: "1. Memory per goroutine".to_string(),
        body,
        headlines,
        plot,
    }
}
