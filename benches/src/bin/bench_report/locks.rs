//! Section 3: the seed's Mutex vs RWMutex table.

use std::path::Path;

use crate::Section;
use crate::plot::{self, Axes, Series};
use crate::runner::{Outcome, Runner, ratio_cell};
use crate::stats::{self, Unit, thousands};

/// The seed's reader counts: its table's rows.
const COUNTS: [usize; 8] = [1, 2, 4, 64, 1024, 8192, 65_536, 524_288];

/// Rows up to this many readers finish in tens of microseconds, where scheduling noise is
/// large: they repeat `SMALL_ROW_FACTOR` times as often (and cost little). Quick runs measure
/// only these.
const SMALL_ROWS: usize = 1024;

/// How many times more the small rows of the lock table repeat.
const SMALL_ROW_FACTOR: usize = 3;

/// Uncontended lock + unlock pairs per run; quick runs do a tenth.
const UNCONTENDED_OPS: u64 = 50_000_000;

fn counts(quick: bool) -> Vec<usize> {
    COUNTS
        .into_iter()
        .filter(|&count| !quick || count <= SMALL_ROWS)
        .collect()
}

/// Program runs per repetition.
pub(crate) fn planned_runs(quick: bool) -> usize {
    let small = counts(quick)
        .iter()
        .filter(|&&count| count <= SMALL_ROWS)
        .count();
    (counts(quick).len() + small * (SMALL_ROW_FACTOR - 1)) * 4 + 4
}

/// The seed's table: readers, RWMutex, Mutex.
const SEED_LOCKS: [(usize, &str, &str); 8] = [
    (1, "38.3 µs", "15.9 µs"),
    (2, "21.9 µs", "13.2 µs"),
    (4, "31 µs", "31.4 µs"),
    (64, "142 µs", "163 µs"),
    (1024, "459 µs", "851 µs"),
    (8192, "2.17 ms", "4.14 ms"),
    (65_536, "16.8 ms", "30.9 ms"),
    (524_288, "304 ms", "231 ms"),
];

/// Runs the seed's Mutex vs RWMutex table, ours and Go's, then uncontended lock + unlock.
pub(crate) fn section(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let counts = counts(quick);
    let mut measured = Vec::new();
    let small = runner.repeating(SMALL_ROW_FACTOR);
    for &count in &counts {
        let n = count.to_string();
        let runner = if count <= SMALL_ROWS { &small } else { runner };
        // Ours and Go's processes alternate (see `Runner::against_go`).
        let rw = ["locks", "--n", &n, "--kind", "rwmutex"];
        let (ours_rw, go_rw) = runner.against_go(&rw, &rw, "seconds");
        let mutex = ["locks", "--n", &n, "--kind", "mutex"];
        let (ours_mutex, go_mutex) = runner.against_go(&mutex, &mutex, "seconds");
        measured.push((count, ours_rw, ours_mutex, go_rw, go_mutex));
    }
    let header = [
        "readers",
        "ours RwMutex",
        "ours Mutex",
        "Go RWMutex",
        "Go Mutex",
        "ours ÷ Go, RwMutex",
        "ours ÷ Go, Mutex",
        "the seed, RWMutex",
        "the seed, Mutex",
    ]
    .map(String::from);
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|(count, ours_rw, ours_mutex, go_rw, go_mutex)| {
            let seed = SEED_LOCKS.iter().find(|(readers, _, _)| readers == count);
            vec![
                thousands(*count),
                ours_rw.cell(Unit::Seconds),
                ours_mutex.cell(Unit::Seconds),
                go_rw.cell(Unit::Seconds),
                go_mutex.cell(Unit::Seconds),
                ratio_cell(ours_rw, go_rw),
                ratio_cell(ours_mutex, go_mutex),
                seed.map_or("—", |seed| seed.1).to_string(),
                seed.map_or("—", |seed| seed.2).to_string(),
            ]
        })
        .collect();
    let mut body = stats::markdown_table(&header, &rows);
    body.push_str(
        "\nThe seed's program line for line: a producer locks and unlocks five times through the \
         write side, sleeping 1 ns between; each observer goroutine locks and unlocks once \
         through a `Locker` (the read view for RwMutex). All CPUs, one process per run.\n",
    );
    let ops = if quick {
        UNCONTENDED_OPS / 10
    } else {
        UNCONTENDED_OPS
    }
    .to_string();
    let ops = ops.as_str();
    let uncontended: Vec<(&str, Outcome)> = vec![
        (
            "gsync::Mutex",
            runner.ours(&["uncontended", "--n", ops, "--kind", "gsync"], "ns_per_op"),
        ),
        (
            "parking_lot::Mutex",
            runner.ours(
                &["uncontended", "--n", ops, "--kind", "parking_lot"],
                "ns_per_op",
            ),
        ),
        (
            "std::sync::Mutex",
            runner.ours(&["uncontended", "--n", ops, "--kind", "std"], "ns_per_op"),
        ),
        (
            "Go sync.Mutex",
            runner.go(&["uncontended", "--n", ops], "ns_per_op"),
        ),
    ];
    let ours_uncontended = &uncontended[0].1;
    let header = ["uncontended lock + unlock", "time", "gsync ÷ this"].map(String::from);
    let rows: Vec<Vec<String>> = uncontended
        .iter()
        .map(|(label, outcome)| {
            vec![
                label.to_string(),
                outcome.cell(Unit::Nanoseconds),
                ratio_cell(ours_uncontended, outcome),
            ]
        })
        .collect();
    body.push('\n');
    body.push_str(&stats::markdown_table(&header, &rows));
    let faster = measured
        .iter()
        .flat_map(|(_, ours_rw, ours_mutex, go_rw, go_mutex)| {
            [(ours_rw, go_rw), (ours_mutex, go_mutex)]
        })
        .filter_map(|(ours, go)| Some(ours.median()? < go.median()?))
        .collect::<Vec<_>>();
    let headlines = vec![format!(
        "Mutex vs RWMutex table: faster than Go in {} of {} cells measured against Go; largest \
         row ({} readers) {} (RwMutex) and {} (Mutex) Go's time. Uncontended lock + unlock: \
         {} parking_lot's time, {} Go's.",
        faster.iter().filter(|&&faster| faster).count(),
        faster.len(),
        thousands(*counts.last().unwrap_or(&0)),
        measured
            .last()
            .map_or("—".to_string(), |row| ratio_cell(&row.1, &row.3)),
        measured
            .last()
            .map_or("—".to_string(), |row| ratio_cell(&row.2, &row.4)),
        ratio_cell(ours_uncontended, &uncontended[1].1),
        ratio_cell(ours_uncontended, &uncontended[3].1),
    )];
    let series_of =
        |name: &str,
         color: usize,
         pick: fn(&(usize, Outcome, Outcome, Outcome, Outcome)) -> &Outcome| Series {
            color,
            name: name.to_string(),
            points: measured
                .iter()
                .filter_map(|row| {
                    pick(row)
                        .median()
                        .map(|seconds| (row.0 as f64, seconds * 1e3))
                })
                .collect(),
            dashed: name.starts_with("Go"),
        };
    let series: Vec<Series> = [
        series_of("ours RwMutex", 0, |row| &row.1),
        series_of("ours Mutex", 1, |row| &row.2),
        series_of("Go RWMutex", 0, |row| &row.3),
        series_of("Go Mutex", 1, |row| &row.4),
    ]
    .into_iter()
    .filter(|series| !series.points.is_empty())
    .collect();
    let plot = plot::save(out_dir, "locks.svg", |path| {
        plot::line_chart(
            path,
            &Axes {
                title: "Mutex vs RWMutex: producer plus N observers",
                x_label: "observers (readers)",
                y_label: "milliseconds",
                log_x: true,
                log_y: true,
            },
            &series,
        )
    });
    Section {
        title: "3. Mutex vs RWMutex".to_string(),
        body,
        headlines,
        plot,
    }
}
