//! The benchmark report behind `cargo xtask bench [--quick] [--only SECTION]`: the seed's
//! experiments, run side by side with OS threads and Go, as Markdown tables and SVG plots.
//!
//! Every figure comes from the `experiment` program (`benches/src/bin/experiment/`), found next
//! to this one, or its Go twin in `benches/go`, each run in a fresh process and repeated; a cell
//! is the median, with the spread when it exceeds 1%. Every ratio compares programs run in this
//! same invocation.
//!
//! Tables print as each section ends, and go to `target/bench-report/report.md` with the plots.
//! A full run (neither `--quick` nor `--only`) also rewrites the README's results, between its
//! `<!-- bench-report:start -->` and `<!-- bench-report:end -->` markers, with the plots copied
//! to `docs/bench/`.

mod amdahl;
mod locks;
mod memory;
mod network;
mod plot;
mod runner;
mod scheduling;
mod spawn;
mod stats;
mod switch;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use runner::Runner;

const USAGE: &str = "usage: bench-report [--quick] [--load] [--only memory|switch|locks|spawn|amdahl|scheduling|network]";

/// One section of the report, as it was measured.
struct Section {
    title: String,
    body: String,
    /// One-line findings for the README.
    headlines: Vec<String>,
    plot: Option<String>,
}

/// How a section runs.
struct SectionKind {
    /// What `--only` calls it.
    name: &'static str,
    /// Program runs per repetition, for the progress bar, given `--quick`.
    planned_runs: fn(bool) -> usize,
    /// Measures and writes the section, given `--quick` and the folder for its plot.
    section: fn(&Runner, bool, &Path) -> Section,
}

/// The sections, in report order.
const SECTIONS: [SectionKind; 7] = [
    SectionKind {
        name: "memory",
        planned_runs: memory::planned_runs,
        section: memory::section,
    },
    SectionKind {
        name: "switch",
        planned_runs: switch::planned_runs,
        section: switch::section,
    },
    SectionKind {
        name: "locks",
        planned_runs: locks::planned_runs,
        section: locks::section,
    },
    SectionKind {
        name: "spawn",
        planned_runs: spawn::planned_runs,
        section: spawn::section,
    },
    SectionKind {
        name: "amdahl",
        planned_runs: amdahl::planned_runs,
        section: amdahl::section,
    },
    SectionKind {
        name: "scheduling",
        planned_runs: scheduling::planned_runs,
        section: scheduling::section,
    },
    SectionKind {
        name: "network",
        planned_runs: network::planned_runs,
        section: network::section,
    },
];

#[derive(Debug, PartialEq)]
struct Options {
    quick: bool,
    /// A busy loop on every CPU for the whole run, as a loaded machine has.
    load: bool,
    only: Option<&'static str>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            quick: false,
            load: false,
            only: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--load" => options.load = true,
                "--only" => {
                    let only = args.next().ok_or("--only needs a section name")?;
                    let section = SECTIONS
                        .iter()
                        .find(|section| section.name == only)
                        .ok_or_else(|| {
                            let names: Vec<&str> =
                                SECTIONS.iter().map(|section| section.name).collect();
                            format!(
                                "--only {only}: unknown section; the sections are {}",
                                names.join(", ")
                            )
                        })?;
                    options.only = Some(section.name);
                }
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("bench-report: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&project_root(), &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench-report: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The README, `docs/` and `target/` this report writes to are the workspace's, wherever it is
/// run from.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches lives one level below the project root")
        .to_path_buf()
}

/// Runs the selected sections, printing each as it ends; writes `report.md` and the plots, and
/// for a full run the README's results.
fn run(root: &Path, options: &Options) -> Result<(), String> {
    let ours = experiment_program()?;
    let out_dir = root.join("target/bench-report");
    std::fs::create_dir_all(&out_dir).map_err(|err| format!("{}: {err}", out_dir.display()))?;
    let go = build_go(root, &out_dir);
    if let Err(why) = &go {
        println!("==> Go column: {why}");
    }
    let _load = options.load.then(Load::start);
    let machine = format!(
        "{}{}\nEach cell is the median of several runs, each in a fresh process, with ± half the \
         interquartile range where that exceeds 0.5%, marked \"noisy\" beyond 25%. Where a row \
         is set against Go's, the two programs' processes alternate, so that a change in the \
         machine's load falls on both.{}\n",
        if options.quick {
            "**A quick run** (`--quick`): fewer processes per cell and shorter experiments, \
             a check that the pipeline works; its numbers are not results.\n\n"
        } else {
            ""
        },
        machine_description(go.is_ok()),
        if options.load {
            " Under load: a busy loop ran on every CPU for the whole run, ours and Go's alike."
        } else {
            ""
        }
    );
    println!("\n{machine}");

    let repetitions = if options.quick { 3 } else { 5 };
    let mut sections = Vec::new();
    for kind in SECTIONS
        .iter()
        .filter(|kind| options.only.is_none_or(|only| only == kind.name))
    {
        let runs = (kind.planned_runs)(options.quick) * repetitions;
        let runner = Runner::new(&ours, &go, repetitions, kind.name, runs);
        let section = (kind.section)(&runner, options.quick, &out_dir);
        runner.finish();
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
    remove_stale_plots(&out_dir, &sections);
    let report_path = out_dir.join("report.md");
    std::fs::write(&report_path, &report)
        .map_err(|err| format!("{}: {err}", report_path.display()))?;
    println!("==> wrote {}", report_path.display());

    // A loaded run's numbers describe the load, not the machine: they stay out of the README.
    if !options.quick && !options.load && options.only.is_none() {
        publish(root, &out_dir, &machine, &sections)?;
    }
    Ok(())
}

/// Removes plots that this run did not draw (sections left out with `--only`), so the folder
/// never shows an old plot next to a new report.
fn remove_stale_plots(out_dir: &Path, sections: &[Section]) {
    let Ok(entries) = std::fs::read_dir(out_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let drawn = sections
            .iter()
            .any(|section| section.plot.as_deref() == Some(name.as_str()));
        if name.ends_with(".svg") && !drawn {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A busy loop on every CPU the process may use, until dropped.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start() -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, |cpus| cpus.get());
        let threads = (0..cpus)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The experiment program, which cargo builds into the same folder as this one. Run once with
/// no arguments, so that a missing or broken build fails here rather than as a table of
/// dashes.
fn experiment_program() -> Result<PathBuf, String> {
    let this =
        std::env::current_exe().map_err(|err| format!("cannot locate this program: {err}"))?;
    let dir = this
        .parent()
        .ok_or_else(|| format!("{} has no parent folder", this.display()))?;
    let program = dir.join(format!("experiment{}", std::env::consts::EXE_SUFFIX));
    Command::new(&program).output().map_err(|err| {
        format!(
            "cannot run the experiment program {}: {err}; build it with `cargo build --release \
             --package benches --bin experiment` (`cargo xtask bench` does)",
            program.display()
        )
    })?;
    Ok(program)
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

/// The CPUs this process may run on: the sections' largest worker count.
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
    // Without $HOME, Go finds no default build cache.
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

#[cfg(test)]
mod tests {
    use super::{Options, SECTIONS};

    fn parse(text: &str) -> Result<Options, String> {
        let args: Vec<String> = text.split_whitespace().map(String::from).collect();
        Options::parse(&args)
    }

    #[test]
    fn options_parse() {
        assert_eq!(
            parse(""),
            Ok(Options {
                quick: false,
                load: false,
                only: None
            })
        );
        assert_eq!(
            parse("--load --only scheduling"),
            Ok(Options {
                quick: false,
                load: true,
                only: Some("scheduling")
            })
        );
        assert_eq!(
            parse("--quick --only memory"),
            Ok(Options {
                quick: true,
                load: false,
                only: Some("memory")
            })
        );
        for section in &SECTIONS {
            let only = parse(&format!("--only {}", section.name)).unwrap().only;
            assert_eq!(only, Some(section.name));
        }
        assert!(parse("--only").is_err());
        assert!(
            parse("--only memroy")
                .unwrap_err()
                .contains("memory, switch")
        );
        assert!(parse("--fast").is_err());
    }
}
