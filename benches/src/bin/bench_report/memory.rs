//! Section 1: the seed's memory program.

use std::fmt::Write as _;
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
const PAGE_TABLES_KEY: &str = "page_tables_per_goroutine";
const GO_SYS_KEY: &str = "sys_per_goroutine";

fn sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![10_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    }
}

/// Goroutines in the burst whose memory must come back once they end.
const BURST: usize = 100_000;

/// Program runs per repetition.
pub(crate) fn planned_runs(quick: bool) -> usize {
    sizes(quick).len() * 4 + 1
}

/// Measures memory per parked goroutine (resident set and page tables): our two stack
/// policies, threads and Go; and what stays after a burst.
pub(crate) fn section(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let sizes = sizes(quick);
    let programs: [(&str, &str); 3] = [
        ("ours, guarded stacks (default)", "guarded"),
        ("ours, dense stacks", "dense"),
        ("OS threads", "threads"),
    ];
    let keys = [KEY, PAGE_TABLES_KEY];
    // Per program: the outcome per size, and the page tables per size.
    let mut rows: Vec<(String, Vec<Outcome>, Vec<Outcome>)> = programs
        .iter()
        .map(|(label, policy)| {
            let (totals, tables) = sizes
                .iter()
                .map(|&n| {
                    if *policy == "threads" && n > THREAD_LIMIT {
                        let why = format!("threads only up to {THREAD_LIMIT}");
                        return (runner.skipped(why.clone()), Outcome::Missing(why));
                    }
                    let n = n.to_string();
                    let [total, tables]: [Outcome; 2] = runner
                        .ours_keys(&["memory", "--n", &n, "--policy", policy], &keys)
                        .try_into()
                        .unwrap_or_else(|_| unreachable!("one outcome per key"));
                    (total, tables)
                })
                .unzip();
            (label.to_string(), totals, tables)
        })
        .collect();
    let (go_totals, go_sys): (Vec<Outcome>, Vec<Outcome>) = sizes
        .iter()
        .map(|&n| {
            let [total, sys]: [Outcome; 2] = runner
                .go_keys(&["memory", "--n", &n.to_string()], &[KEY, GO_SYS_KEY])
                .try_into()
                .unwrap_or_else(|_| unreachable!("one outcome per key"));
            (total, sys)
        })
        .unzip();
    let go_tables = sizes
        .iter()
        .map(|_| Outcome::Missing(String::new()))
        .collect();
    rows.push(("Go".to_string(), go_totals, go_tables));
    let burst = runner.ours_keys(
        &["memory", "--n", &BURST.to_string(), "--policy", "burst"],
        &[
            "peak_bytes",
            "after_burst_resident_bytes",
            "after_burst_page_table_bytes",
        ],
    );

    let mut header = vec!["memory per goroutine (resident + page tables)".to_string()];
    header.extend(sizes.iter().map(|n| format!("N = {}", thousands(*n))));
    header.push("the seed (Go, N = 10,000)".to_string());
    let mut table_rows: Vec<Vec<String>> = Vec::new();
    for (label, totals, tables) in &rows {
        let mut row = vec![label.clone()];
        row.extend(totals.iter().map(|outcome| outcome.cell(Unit::Bytes)));
        row.push(if label == "Go" { SEED_GO } else { "—" }.to_string());
        table_rows.push(row);
        if tables.iter().any(|outcome| outcome.median().is_some()) {
            let mut row = vec!["… of which page tables".to_string()];
            row.extend(tables.iter().map(|outcome| outcome.cell(Unit::Bytes)));
            row.push("—".to_string());
            table_rows.push(row);
        }
    }
    let mut row = vec!["Go, `runtime.MemStats.Sys` (the seed's measure)".to_string()];
    row.extend(go_sys.iter().map(|outcome| outcome.cell(Unit::Bytes)));
    row.push(SEED_GO.to_string());
    table_rows.push(row);
    let mut body = stats::markdown_table(&header, &table_rows);
    body.push_str(
        "\nEach program: `VmRSS` plus `VmPTE` (`/proc/self/status`) before the goroutines start and \
         once all have run and parked, divided by N; page tables count because the resident set \
         leaves them out. Go's row is the same measure of its twin; `MemStats.Sys` is the seed's.\n",
    );
    let _ = writeln!(
        body,
        "\nGuarded stacks are {} KiB by default, reserved, not committed: a goroutine parked \
         shallowly holds one stack page, and the kernel a page-table page per 2 MiB of slots \
         (about 140 bytes a goroutine at 64 KiB, 530 at 256 KiB). `experiment memory \
         --stack-size BYTES` measures other sizes.",
        gstack::GOROUTINE_STACK_SIZE / 1024
    );
    let _ = writeln!(
        body,
        "\nAfter a burst: {} goroutines that each touched 8 KiB of stack took {} at their peak; \
         once they had ended, {} stayed resident over the start, and page tables kept {}.",
        thousands(BURST),
        burst[0].cell(Unit::Bytes),
        burst[1].cell(Unit::Bytes),
        burst[2].cell(Unit::Bytes),
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
        .map(|(index, (label, outcomes, _))| Series {
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
