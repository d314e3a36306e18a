//! Project automation, in plain Rust so that a fresh clone needs nothing installed but cargo.
//!
//! - `cargo xtask test`: formatting, clippy, packaging of the published crates, every test
//!   (unit, integration, doc, both switch backends, release mode), the docs with warnings as
//!   errors, the loom models and a smoke run of the benchmark report, stopping at the first
//!   failing step.
//! - `cargo xtask bench [--quick] [--load] [--only SECTION]`: the report: the seed's experiments
//!   side by side with OS threads and Go, as tables and plots (the `bench-report` program,
//!   `benches/src/bin/bench_report/`, which runs the `experiment` program); `--load` runs a busy
//!   loop on every CPU meanwhile.
//! - `cargo xtask bench --criterion [FILTER]`: the criterion micro-benchmarks (only those
//!   matching FILTER when given), then the stack-memory program.
//! - `cargo xtask soak [--minutes N] [--seconds N] [--workers N] [--seed N]`: the soak program
//!   (`benches/src/bin/soak.rs`), randomized rounds of goroutines checked for exact invariants,
//!   for a minute unless told otherwise.
//!
//! Every command takes `--help` (exit 0); an unknown command or option is named, with exit
//! status 2.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// One command of a task, with the name printed when it fails.
struct Step {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Step {
    fn cargo(name: &'static str, args: &[&str]) -> Self {
        Step {
            name,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            env: Vec::new(),
        }
    }
}

fn test_steps() -> Vec<Step> {
    vec![
        Step::cargo("format", &["fmt", "--all", "--check"]),
        Step::cargo(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        Step::cargo(
            "clippy (portable switch backend)",
            &[
                "clippy",
                "--package",
                "ctxswitch",
                "--all-targets",
                "--features",
                "portable-backend",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // What crates.io would refuse (metadata, files outside a package, dependencies
        // without versions) fails here. Without verification: building each package again
        // would add minutes, and the tests below build the same code.
        Step::cargo(
            "package the published crates",
            &[
                "package",
                "--workspace",
                "--exclude",
                "benches",
                "--exclude",
                "xtask",
                "--exclude",
                "testkit",
                "--no-verify",
                "--allow-dirty",
            ],
        ),
        Step::cargo("tests", &["test", "--workspace", "--all-targets"]),
        Step::cargo("doc tests", &["test", "--workspace", "--doc"]),
        // The facade's docs and examples with its optional layers left out.
        Step::cargo(
            "doc tests (goroutines without sync and net)",
            &[
                "test",
                "--package",
                "goroutines",
                "--no-default-features",
                "--doc",
            ],
        ),
        // Broken intra-doc links and ambiguous names fail here, not on docs.rs.
        Step {
            name: "docs",
            args: ["doc", "--workspace", "--no-deps"]
                .map(String::from)
                .to_vec(),
            env: vec![("RUSTDOCFLAGS", "-D warnings".to_string())],
        },
        Step::cargo(
            "tests (portable switch backend)",
            &[
                "test",
                "--package",
                "ctxswitch",
                "--features",
                "portable-backend",
            ],
        ),
        Step::cargo(
            "tests (release)",
            &["test", "--workspace", "--release", "--lib", "--tests"],
        ),
        Step::cargo(
            "soak (60 s)",
            &[
                "run",
                "--release",
                "--package",
                "benches",
                "--bin",
                "soak",
                "--",
                "--seconds",
                "60",
                "--workers",
                "2",
            ],
        ),
        // About 2 minutes on 2 cores: the build, then gsync's models (about a minute), gsched's
        // and gnet's (under a second each).
        Step {
            name: "loom models",
            args: [
                "test",
                "--release",
                "--package",
                "gsched",
                "--package",
                "goroutines-sync",
                "--package",
                "gnet",
                "--lib",
            ]
            .map(String::from)
            .to_vec(),
            env: vec![
                (
                    "RUSTFLAGS",
                    "--cfg goroutines_loom -C debug-assertions".to_string(),
                ),
                ("CARGO_TARGET_DIR", "target/loom".to_string()),
                ("LOOM_MAX_PREEMPTIONS", "3".to_string()),
            ],
        },
        // The whole report pipeline on its smallest section: build, run, parse, tables, plot.
        Step::cargo(
            "bench report smoke test",
            &["xtask", "bench", "--quick", "--only", "memory"],
        ),
    ]
}

fn criterion_steps(filter: &[String]) -> Vec<Step> {
    let mut args = vec!["bench", "--package", "benches"];
    if !filter.is_empty() {
        args.push("--");
        args.extend(filter.iter().map(String::as_str));
    }
    let mut steps = vec![Step::cargo("criterion benchmarks", &args)];
    if filter.is_empty() {
        steps.push(Step::cargo(
            "resident memory per parked stack",
            &[
                "run",
                "--release",
                "--quiet",
                "--package",
                "benches",
                "--bin",
                "stack-memory",
            ],
        ));
    }
    steps
}

fn run(steps: &[Step], root: &Path) -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    for (number, step) in steps.iter().enumerate() {
        let counter = format!("[{}/{}]", number + 1, steps.len());
        let shown: Vec<String> = step
            .env
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .chain(std::iter::once("cargo".to_string()))
            .chain(step.args.iter().cloned())
            .collect();
        println!("==> {counter} {}: {}", step.name, shown.join(" "));
        let started = Instant::now();
        let status = Command::new(&cargo)
            .args(&step.args)
            .envs(step.env.iter().map(|(key, value)| (key, value)))
            .current_dir(root)
            .status()
            .map_err(|err| format!("step '{}' could not start cargo: {err}", step.name))?;
        if !status.success() {
            return Err(format!("step {counter} '{}' failed ({status})", step.name));
        }
        println!(
            "==> {counter} {}: ok in {:.1} s",
            step.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the project root")
        .to_path_buf()
}

const USAGE: &str = "usage: cargo xtask test
       cargo xtask bench [--quick] [--load] [--only memory|switch|locks|spawn|amdahl|scheduling|network]
       cargo xtask bench --criterion [FILTER...]
       cargo xtask soak [--minutes N] [--seconds N] [--workers N] [--seed N]

  test    formatting, clippy, packaging, every test (debug and release, both switch backends),
          the loom models, a 60 s soak and a quick run of the report: what CI runs
  bench   the benchmark report (tables, plots, Go beside us when `go` is installed)
  soak    randomized goroutine rounds checked for exact invariants

Every command takes --help.";

/// The report's sections, as `--only` takes them.
const SECTIONS: [&str; 7] = [
    "memory",
    "switch",
    "locks",
    "spawn",
    "amdahl",
    "scheduling",
    "network",
];

/// Whether `args` ask for help.
fn wants_help(args: &[String]) -> bool {
    args.iter()
        .any(|arg| matches!(arg.as_str(), "--help" | "-h" | "help"))
}

/// What `cargo xtask bench` was asked for.
enum BenchCommand {
    /// The report, with the arguments for `bench-report`.
    Report(Vec<String>),
    Criterion(Vec<String>),
}

/// The report's options are checked here so that a typo fails before the release build;
/// `bench-report` checks the section's name.
fn parse_bench(args: &[String]) -> Result<BenchCommand, String> {
    if args.first().map(String::as_str) == Some("--criterion") {
        return Ok(BenchCommand::Criterion(args[1..].to_vec()));
    }
    let mut args = args.iter();
    let mut forwarded = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" | "--load" => forwarded.push(arg.clone()),
            "--only" => {
                let section = args.next().ok_or("--only needs a section name")?;
                if !SECTIONS.contains(&section.as_str()) {
                    return Err(format!(
                        "unknown section {section:?} for --only (one of {})",
                        SECTIONS.join(", ")
                    ));
                }
                forwarded.extend([arg.clone(), section.clone()]);
            }
            other => return Err(format!("unknown bench option {other:?}")),
        }
    }
    Ok(BenchCommand::Report(forwarded))
}

/// The soak program's arguments, checked here so that a typo fails before the release build.
fn parse_soak(args: &[String]) -> Result<Vec<String>, String> {
    let mut args = args.iter();
    let mut forwarded = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" | "--seconds" | "--workers" | "--seed" => {
                let value = args.next().ok_or(format!("{arg} needs a number"))?;
                if value.parse::<u64>().is_err() {
                    return Err(format!("{arg} needs a number, not {value:?}"));
                }
                forwarded.extend([arg.clone(), value.clone()]);
            }
            other => return Err(format!("unknown soak option {other:?}")),
        }
    }
    Ok(forwarded)
}

/// Runs `bin` of the benches package in release mode; its exit status is the command's.
fn run_bin(bin: &str, args: &[String], root: &Path) -> ExitCode {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(&cargo)
        .args([
            "run",
            "--release",
            "--package",
            "benches",
            "--bin",
            bin,
            "--",
        ])
        .args(args)
        .current_dir(root)
        .status();
    match status {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            // Killed by a signal.
            None => {
                eprintln!("xtask: {bin} ended with {status}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("xtask: could not start cargo: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the report's two programs, since `cargo run` would build only `bench-report` and it
/// runs `experiment` from its own folder; then runs `bench-report` with `args`.
fn bench_report(args: &[String], root: &Path) -> ExitCode {
    let build = Step::cargo(
        "report programs",
        &[
            "build",
            "--release",
            "--quiet",
            "--package",
            "benches",
            "--bin",
            "experiment",
            "--bin",
            "bench-report",
        ],
    );
    match run(&[build], root) {
        Ok(()) => run_bin("bench-report", args, root),
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("xtask: no command given\n{USAGE}");
        return ExitCode::from(2);
    }
    if wants_help(&args) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let usage_error = |message: String| {
        eprintln!("xtask: {message}\n{USAGE}");
        ExitCode::from(2)
    };
    let steps = match args[0].as_str() {
        "test" => match args.get(1) {
            None => test_steps(),
            Some(other) => return usage_error(format!("unknown test option {other:?}")),
        },
        "soak" => {
            return match parse_soak(&args[1..]) {
                Ok(forwarded) => run_bin("soak", &forwarded, &project_root()),
                Err(message) => usage_error(message),
            };
        }
        "bench" => match parse_bench(&args[1..]) {
            Ok(BenchCommand::Criterion(filter)) => criterion_steps(&filter),
            Ok(BenchCommand::Report(forwarded)) => {
                return bench_report(&forwarded, &project_root());
            }
            Err(message) => return usage_error(message),
        },
        other => return usage_error(format!("unknown command {other:?}")),
    };
    match run(&steps, &project_root()) {
        Ok(()) => {
            println!("==> all steps passed");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{BenchCommand, parse_bench, parse_soak, wants_help};

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_parse() {
        match parse_bench(&args("--quick --only memory")).unwrap() {
            BenchCommand::Report(forwarded) => assert_eq!(forwarded, args("--quick --only memory")),
            BenchCommand::Criterion(_) => panic!("not criterion"),
        }
        match parse_bench(&[]).unwrap() {
            BenchCommand::Report(forwarded) => assert!(forwarded.is_empty()),
            BenchCommand::Criterion(_) => panic!("not criterion"),
        }
        match parse_bench(&args("--criterion switch")).unwrap() {
            BenchCommand::Criterion(filter) => assert_eq!(filter, ["switch"]),
            BenchCommand::Report(_) => panic!("not the report"),
        }
        assert!(parse_bench(&args("--only")).is_err());
        let bad_section = parse_bench(&args("--only memroy")).err().unwrap();
        assert!(bad_section.contains("\"memroy\""), "{bad_section}");
        assert!(parse_bench(&args("--fast")).is_err());

        assert_eq!(parse_soak(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_soak(&args("--minutes 5 --seconds 30 --workers 2 --seed 42")).unwrap(),
            args("--minutes 5 --seconds 30 --workers 2 --seed 42")
        );
        assert!(parse_soak(&args("--seconds")).is_err());
        assert!(parse_soak(&args("--seconds soon")).is_err());
        assert!(parse_soak(&args("--hours 1")).is_err());
    }

    #[test]
    fn help_is_asked_for_in_any_of_the_usual_ways() {
        assert!(wants_help(&args("--help")));
        assert!(wants_help(&args("--quick -h")));
        assert!(wants_help(&args("help")));
        assert!(!wants_help(&args("--quick --only memory")));
    }
}
