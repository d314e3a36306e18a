//! `cargo xtask bench`: the seed's experiments, run side by side with OS threads and Go, as
//! Markdown tables and SVG plots.
//!
//! Every figure comes from `benches/src/bin/report.rs` or its Go twin in `benches/go`, each run
//! in a fresh process and repeated; a cell is the median, with the spread when it exceeds 1%.
//! Every ratio compares programs run in this same invocation.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};

use crate::plot::{self, Axes, Series};
use crate::stats::{self, Summary, Unit};

/// The sections, in report order: `--only` takes one of these names.
pub(crate) const SECTIONS: [&str; 5] = ["memory", "switch", "locks", "spawn", "amdahl"];

pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) only: Option<String>,
}

/// The result of one configuration: its repetitions, or why there is no number.
enum Outcome {
    Measured(Summary),
    Missing(String),
}

impl Outcome {
    fn median(&self) -> Option<f64> {
        match self {
            Outcome::Measured(summary) => Some(summary.median),
            Outcome::Missing(_) => None,
        }
    }

    fn cell(&self, unit: Unit) -> String {
        match self {
            Outcome::Measured(summary) => stats::format_summary(summary, unit),
            Outcome::Missing(why) => format!("— ({why})"),
        }
    }
}

fn ratio_cell(ours: &Outcome, theirs: &Outcome) -> String {
    match (ours.median(), theirs.median()) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => {
            stats::format_value(ours / theirs, Unit::Ratio)
        }
        _ => "—".to_string(),
    }
}

struct Runner {
    ours: PathBuf,
    go: Result<PathBuf, String>,
    repetitions: usize,
    progress: ProgressBar,
}

impl Runner {
    fn measure(&self, program: &Path, args: &[String], key: &str) -> Outcome {
        let mut samples = Vec::new();
        for _ in 0..self.repetitions {
            self.progress
                .set_message(format!("{} {}", program_name(program), args.join(" ")));
            let output = match Command::new(program).args(args).output() {
                Ok(output) => output,
                Err(err) => return Outcome::Missing(format!("cannot run: {err}")),
            };
            self.progress.inc(1);
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let reason = stderr.lines().last().unwrap_or("failed").trim();
                let reason = reason.split_once(": ").map_or(reason, |(_, why)| why);
                let reason = reason.split_once(": ").map_or(reason, |(_, why)| why);
                return Outcome::Missing(reason.to_string());
            }
            match stats::parse_value(&String::from_utf8_lossy(&output.stdout), key) {
                Ok(value) => samples.push(value),
                Err(err) => return Outcome::Missing(err),
            }
        }
        match Summary::of(&samples) {
            Some(summary) => Outcome::Measured(summary),
            None => Outcome::Missing("no valid sample".to_string()),
        }
    }

    /// The same runner, repeating each measurement `repetitions` times.
    fn repeating(&self, repetitions: usize) -> Runner {
        Runner {
            ours: self.ours.clone(),
            go: self.go.clone(),
            repetitions,
            progress: self.progress.clone(),
        }
    }

    fn ours(&self, args: &[&str], key: &str) -> Outcome {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        self.measure(&self.ours, &args, key)
    }

    fn go(&self, args: &[&str], key: &str) -> Outcome {
        match &self.go {
            Ok(go) => {
                let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
                self.measure(go, &args, key)
            }
            Err(why) => {
                self.progress.inc(self.repetitions as u64);
                Outcome::Missing(why.clone())
            }
        }
    }
}

fn program_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One section of the report.
struct Section {
    title: String,
    body: String,
    /// One-line findings for the README.
    headlines: Vec<String>,
    plot: Option<String>,
}

/// Runs the report; returns the Markdown it wrote.
pub(crate) fn run(root: &Path, options: &Options) -> Result<(), String> {
    if let Some(only) = &options.only
        && !SECTIONS.contains(&only.as_str())
    {
        return Err(format!(
            "--only {only}: unknown section; the sections are {}",
            SECTIONS.join(", ")
        ));
    }
    let out_dir = root.join("target/bench-report");
    std::fs::create_dir_all(&out_dir).map_err(|err| format!("{}: {err}", out_dir.display()))?;

    println!("==> building the report programs");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "benches",
            "--bin",
            "report",
        ])
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if !status.success() {
        return Err("building the report program failed".to_string());
    }
    let ours = root.join("target/release/report");
    let go = build_go(root, &out_dir);
    if let Err(why) = &go {
        println!("==> Go column: {why}");
    }
    let machine = format!(
        "{}\nEach cell is the median of several runs, each in a fresh process, with ± half the \
         interquartile range where that exceeds 0.5%.\n",
        machine_description(go.is_ok())
    );
    println!("\n{machine}");

    let selected: Vec<&str> = SECTIONS
        .iter()
        .copied()
        .filter(|name| options.only.as_deref().is_none_or(|only| only == *name))
        .collect();
    let repetitions = if options.quick { 3 } else { 5 };
    let mut sections = Vec::new();
    for name in &selected {
        let runner = Runner {
            ours: ours.clone(),
            go: go.clone(),
            repetitions,
            progress: progress_bar(name, planned_runs(name, options.quick) * repetitions),
        };
        let section = match *name {
            "memory" => memory(&runner, options.quick, &out_dir),
            "switch" => context_switch(&runner, options.quick, &out_dir),
            "locks" => locks(&runner, options.quick, &out_dir),
            "spawn" => spawn(&runner, options.quick, &out_dir),
            _ => amdahl(&runner, options.quick, &out_dir),
        };
        runner.progress.finish_and_clear();
        println!("## {}\n\n{}", section.title, section.body);
        sections.push(section);
    }

    let mut report = format!("# Benchmark report\n\n{machine}\n");
    for section in &sections {
        let _ = write!(report, "\n## {}\n\n{}", section.title, section.body);
        if let Some(plot) = &section.plot {
            let _ = writeln!(report, "\n![{}]({plot})", section.title);
        }
    }
    let report_path = out_dir.join("report.md");
    std::fs::write(&report_path, &report)
        .map_err(|err| format!("{}: {err}", report_path.display()))?;
    println!("==> wrote {}", report_path.display());

    if !options.quick && options.only.is_none() {
        publish(root, &out_dir, &machine, &sections)?;
    }
    Ok(())
}

/// A full run's results go into the README (between its markers), with the plots copied next
/// to it under `docs/bench/`.
fn publish(root: &Path, out_dir: &Path, machine: &str, sections: &[Section]) -> Result<(), String> {
    let docs = root.join("docs/bench");
    std::fs::create_dir_all(&docs).map_err(|err| format!("{}: {err}", docs.display()))?;
    let mut generated = String::new();
    let _ = writeln!(
        generated,
        "Generated by `cargo xtask bench` on {}.\n\n{machine}",
        today()
    );
    let _ = writeln!(
        generated,
        "Headlines (ratios from one invocation; below 1× means we are faster or smaller):\n"
    );
    for section in sections {
        for headline in &section.headlines {
            let _ = writeln!(generated, "- {headline}");
        }
    }
    for section in sections {
        let _ = write!(generated, "\n### {}\n\n{}", section.title, section.body);
        if let Some(plot) = &section.plot {
            std::fs::copy(out_dir.join(plot), docs.join(plot))
                .map_err(|err| format!("copying {plot}: {err}"))?;
            let _ = writeln!(generated, "\n![{}](docs/bench/{plot})", section.title);
        }
    }
    std::fs::copy(out_dir.join("report.md"), docs.join("report.md"))
        .map_err(|err| format!("copying report.md: {err}"))?;
    let readme_path = root.join("README.md");
    let readme =
        std::fs::read_to_string(&readme_path).map_err(|err| format!("README.md: {err}"))?;
    let spliced = stats::splice_readme(&readme, &generated)?;
    std::fs::write(&readme_path, spliced).map_err(|err| format!("README.md: {err}"))?;
    println!("==> README.md results updated; plots in docs/bench/");
    Ok(())
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|date| !date.is_empty())
        .unwrap_or_else(|| "an unknown date".to_string())
}

fn progress_bar(name: &str, runs: usize) -> ProgressBar {
    let bar = ProgressBar::new(runs as u64);
    let style = ProgressStyle::with_template("{prefix:>7} [{bar:30}] {pos}/{len} {wide_msg}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar
}

/// How many program runs a section makes per repetition, for the progress bar.
fn planned_runs(section: &str, quick: bool) -> usize {
    match section {
        "memory" => memory_sizes(quick).len() * 4,
        "switch" => 6,
        "locks" => {
            let small = lock_counts(quick)
                .iter()
                .filter(|&&count| count <= 1024)
                .count();
            (lock_counts(quick).len() + small * (SMALL_ROW_FACTOR - 1)) * 4 + 4
        }
        "spawn" => 4,
        _ => AMDAHL_SERIAL.len() * cpus(),
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Builds the Go twins, if Go is installed.
fn build_go(root: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let missing = "Go not installed: `apt-get install golang-go` on Debian adds this column";
    let version = Command::new("go")
        .arg("version")
        .output()
        .map_err(|_| missing.to_string())?;
    if !version.status.success() {
        return Err(missing.to_string());
    }
    let binary = out_dir.join("go-bench");
    let mut build = Command::new("go");
    build
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(root.join("benches/go"));
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        build.env("GOCACHE", out_dir.join("go-cache"));
    }
    let output = build
        .output()
        .map_err(|err| format!("go build could not start: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "go build failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(binary)
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn machine_description(with_go: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map(|count| count.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let rustc = command_line("rustc", &["--version"]).unwrap_or_else(|| "rustc".to_string());
    let go = if with_go {
        command_line("go", &["version"]).unwrap_or_else(|| "go".to_string())
    } else {
        "Go: not installed".to_string()
    };
    format!(
        "Machine: {cpu}, {} CPUs available, Linux {kernel}, vm.max_map_count = {max_map_count}. \
         Versions: {rustc}; {go}; goroutines crates {}.\n",
        cpus(),
        env!("CARGO_PKG_VERSION")
    )
}

fn memory_sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![10_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    }
}

/// Section 1: the seed's memory program.
fn memory(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let sizes = memory_sizes(quick);
    const THREAD_LIMIT: usize = 10_000;
    let key = "bytes_per_goroutine";
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
                        runner.progress.inc(runner.repetitions as u64);
                        return Outcome::Missing(format!("threads only up to {THREAD_LIMIT}"));
                    }
                    let n = n.to_string();
                    runner.ours(&["memory", "--n", &n, "--policy", policy], key)
                })
                .collect();
            (label.to_string(), outcomes)
        })
        .collect();
    let go_outcomes = sizes
        .iter()
        .map(|&n| runner.go(&["memory", "-n", &n.to_string()], key))
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
            row.push(if label == "Go" {
                "2.82 KB".to_string()
            } else {
                "—".to_string()
            });
            row
        })
        .collect();
    let mut body = stats::markdown_table(&header, &table_rows);
    body.push_str(
        "\nOurs and the threads: resident set size (`/proc/self/statm`) before and after, divided \
         by N. Go: the seed's own measure, `runtime.MemStats.Sys` before and after.\n",
    );
    let mut headlines = Vec::new();
    let ratio_at = |row: usize, column: usize| ratio_cell(&rows[row].1[column], &rows[3].1[column]);
    headlines.push(format!(
        "Memory per goroutine at N = {}: guarded stacks {} Go's, dense stacks {}, OS threads {}.",
        thousands(sizes[0]),
        ratio_at(0, 0),
        ratio_at(1, 0),
        ratio_at(2, 0),
    ));
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
    let plot = save_plot(out_dir, "memory.svg", |path| {
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

/// Section 2: context switches.
fn context_switch(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let scale = |full: u64| (if quick { full / 10 } else { full }).to_string();
    let (threads_n, raw_n, ops) = (scale(200_000), scale(10_000_000), scale(2_000_000));
    let threads = runner.ours(
        &["switch", "--kind", "threads", "--n", &threads_n],
        "ns_per_switch",
    );
    let raw = runner.ours(
        &["switch", "--kind", "ctxswitch", "--n", &raw_n],
        "ns_per_switch",
    );
    let one = runner.ours(
        &[
            "switch",
            "--kind",
            "goroutines",
            "--workers",
            "1",
            "--n",
            &ops,
        ],
        "ns_per_op",
    );
    let two = runner.ours(
        &[
            "switch",
            "--kind",
            "goroutines",
            "--workers",
            "2",
            "--n",
            &ops,
        ],
        "ns_per_op",
    );
    let go_one = runner.go(&["switch", "-procs", "1", "-n", &ops], "ns_per_op");
    let go_two = runner.go(&["switch", "-procs", "2", "-n", &ops], "ns_per_op");
    let rows = [
        (
            "OS threads pinned to one CPU, over pipes (per switch)",
            &threads,
            "1.47 µs",
        ),
        ("ctxswitch, the raw switch (per switch)", &raw, "—"),
        (
            "goroutines, unbuffered channel, 1 worker (per send)",
            &one,
            "225 ns",
        ),
        (
            "goroutines, unbuffered channel, 2 workers (per send)",
            &two,
            "—",
        ),
        (
            "Go BenchmarkContextSwitch, -cpu=1 (per send)",
            &go_one,
            "225 ns",
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
    let plot = save_plot(out_dir, "switch.svg", |path| {
        plot::bar_chart(path, "Context switch", "nanoseconds", &bars)
    });
    Section {
        title: "2. Context switch".to_string(),
        body,
        headlines,
        plot,
    }
}

fn lock_counts(quick: bool) -> Vec<usize> {
    let counts = vec![1, 2, 4, 64, 1024, 8192, 65_536, 524_288];
    if quick {
        counts.into_iter().filter(|&count| count <= 1024).collect()
    } else {
        counts
    }
}

/// How many times more the small rows of the lock table repeat.
const SMALL_ROW_FACTOR: usize = 3;

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

/// Section 3: the seed's Mutex vs RWMutex table.
fn locks(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let counts = lock_counts(quick);
    let mut measured = Vec::new();
    // Small counts finish in tens of microseconds, where scheduling noise is large: they get
    // more repetitions (and cost little).
    let small = runner.repeating(runner.repetitions * SMALL_ROW_FACTOR);
    for &count in &counts {
        let n = count.to_string();
        let runner = if count <= 1024 { &small } else { runner };
        let ours_rw = runner.ours(&["locks", "--n", &n, "--kind", "rwmutex"], "seconds");
        let ours_mutex = runner.ours(&["locks", "--n", &n, "--kind", "mutex"], "seconds");
        let go_rw = runner.go(&["locks", "-n", &n, "-kind", "rwmutex"], "seconds");
        let go_mutex = runner.go(&["locks", "-n", &n, "-kind", "mutex"], "seconds");
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
    let ops = if quick { "5000000" } else { "50000000" };
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
            runner.go(&["uncontended", "-n", ops], "ns_per_op"),
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
    let plot = save_plot(out_dir, "locks.svg", |path| {
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

/// Section 4: spawn and join.
fn spawn(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let n = if quick { 100_000 } else { 1_000_000 };
    let threads_n = if quick { 2_000 } else { 10_000 };
    let (n_text, threads_text) = (n.to_string(), threads_n.to_string());
    let all = cpus().to_string();
    let ours = runner.ours(
        &["spawn", "--n", &n_text, "--workers", &all],
        "ns_per_goroutine",
    );
    let ours_one = runner.ours(
        &["spawn", "--n", &n_text, "--workers", "1"],
        "ns_per_goroutine",
    );
    let go = runner.go(&["spawn", "-n", &n_text], "ns_per_goroutine");
    let threads = runner.ours(
        &["spawn", "--n", &threads_text, "--kind", "threads"],
        "ns_per_goroutine",
    );
    let rows = [
        (format!("ours, {all} workers, N = {}", thousands(n)), &ours),
        (format!("ours, 1 worker, N = {}", thousands(n)), &ours_one),
        (format!("Go, GOMAXPROCS = {all}, N = {}", thousands(n)), &go),
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
        "\nEach goroutine calls `done` on a WaitGroup shared by reference, as in Go; the spawning \
         goroutine then waits. The seed gives no time for this, only that millions of goroutines \
         are cheap to create.\n",
    );
    let headlines = vec![format!(
        "Spawn and join: {} Go's time per goroutine, {} an OS thread's.",
        ratio_cell(&ours, &go),
        ratio_cell(&ours, &threads),
    )];
    let bars: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|(label, outcome)| outcome.median().map(|ns| (label.clone(), ns)))
        .collect();
    let plot = save_plot(out_dir, "spawn.svg", |path| {
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

const AMDAHL_SERIAL: [f64; 4] = [0.0, 0.1, 0.2, 0.5];

/// Section 5: Amdahl's law.
fn amdahl(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let work = if quick { "40000000" } else { "400000000" };
    let cpus = cpus();
    let header = [
        "serial fraction S",
        "workers N",
        "time",
        "speedup",
        "Amdahl 1/((1-P)+P/N)",
        "Karp–Flatt serial fraction",
    ]
    .map(String::from);
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for serial in AMDAHL_SERIAL {
        let serial_text = serial.to_string();
        let times: Vec<Outcome> = (1..=cpus)
            .map(|workers| {
                let workers = workers.to_string();
                runner.ours(
                    &[
                        "amdahl",
                        "--serial",
                        &serial_text,
                        "--workers",
                        &workers,
                        "--work",
                        work,
                    ],
                    "seconds",
                )
            })
            .collect();
        let base = times[0].median();
        let mut measured = Vec::new();
        let mut predicted = Vec::new();
        for (index, time) in times.iter().enumerate() {
            let workers = (index + 1) as f64;
            let speedup = base.zip(time.median()).map(|(base, time)| base / time);
            let prediction = stats::amdahl_speedup(1.0 - serial, workers);
            predicted.push((workers, prediction));
            if let Some(speedup) = speedup {
                measured.push((workers, speedup));
            }
            rows.push(vec![
                format!("{serial}"),
                format!("{}", index + 1),
                time.cell(Unit::Seconds),
                speedup.map_or("—".to_string(), |speedup| format!("{speedup:.2}×")),
                format!("{prediction:.2}×"),
                speedup
                    .and_then(|speedup| stats::karp_flatt(speedup, workers))
                    .map_or("—".to_string(), |fraction| format!("{fraction:.3}")),
            ]);
        }
        let color = series.len() / 2;
        series.push(Series {
            name: format!("measured, S = {serial}"),
            points: measured,
            dashed: false,
            color,
        });
        series.push(Series {
            name: format!("Amdahl, S = {serial}"),
            points: predicted,
            dashed: true,
            color,
        });
    }
    let mut body = stats::markdown_table(&header, &rows);
    let _ = writeln!(
        body,
        "\nA CPU-bound workload whose fraction S runs on one goroutine and the rest over 1,024 \
         goroutines, on 1 to {cpus} workers. Karp–Flatt recovers the serial fraction from the \
         measured speedup: near S means the runtime adds little serial overhead of its own."
    );
    let best = rows
        .iter()
        .filter(|row| row[0] == "0" && row[1] == cpus.to_string())
        .map(|row| row[3].clone())
        .next()
        .unwrap_or_else(|| "—".to_string());
    let headlines = vec![format!(
        "Amdahl: fully parallel work speeds up {best} on {cpus} workers (the law's bound: {cpus}×)."
    )];
    let plot = save_plot(out_dir, "amdahl.svg", |path| {
        plot::line_chart(
            path,
            &Axes {
                title: "Amdahl's law: measured speedup vs prediction",
                x_label: "workers",
                y_label: "speedup",
                log_x: false,
                log_y: false,
            },
            &series,
        )
    });
    Section {
        title: "5. Amdahl's law".to_string(),
        body,
        headlines,
        plot,
    }
}

fn save_plot(
    out_dir: &Path,
    name: &str,
    draw: impl FnOnce(&Path) -> Result<(), String>,
) -> Option<String> {
    match draw(&out_dir.join(name)) {
        Ok(()) => Some(name.to_string()),
        Err(err) => {
            eprintln!("xtask: plot {name} not drawn: {err}");
            None
        }
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(1), "1");
        assert_eq!(thousands(1024), "1,024");
        assert_eq!(thousands(524_288), "524,288");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
