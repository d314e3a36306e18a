//! Running the experiment programs: each measurement repeated in fresh processes, summarized,
//! with a progress bar per section.

use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};

use crate::stats::{self, Summary, Unit};

/// The result of one configuration: its repetitions, or why there is no number.
pub(crate) enum Outcome {
    Measured(Summary),
    Missing(String),
}

impl Outcome {
    /// The median of the repetitions, if there were any.
    pub(crate) fn median(&self) -> Option<f64> {
        match self {
            Outcome::Measured(summary) => Some(summary.median),
            Outcome::Missing(_) => None,
        }
    }

    /// The worst run, if there were any.
    pub(crate) fn worst(&self) -> Option<f64> {
        match self {
            Outcome::Measured(summary) => Some(summary.worst),
            Outcome::Missing(_) => None,
        }
    }

    /// The table cell: the median and its spread, or a dash with the reason.
    pub(crate) fn cell(&self, unit: Unit) -> String {
        match self {
            Outcome::Measured(summary) => stats::format_summary(summary, unit),
            Outcome::Missing(why) => format!("— ({why})"),
        }
    }
}

/// `ours ÷ theirs` as a table cell, a dash when either is missing.
pub(crate) fn ratio_of(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => {
            stats::format_value(ours / theirs, Unit::Ratio)
        }
        _ => "—".to_string(),
    }
}

/// The medians' `ours ÷ theirs` as a table cell, a dash when either is missing.
pub(crate) fn ratio_cell(ours: &Outcome, theirs: &Outcome) -> String {
    ratio_of(ours.median(), theirs.median())
}

/// Runs our experiment program and the Go twins for one section.
pub(crate) struct Runner {
    ours: PathBuf,
    go: Result<PathBuf, String>,
    repetitions: usize,
    progress: ProgressBar,
}

impl Runner {
    /// A runner for section `name`, which makes `runs` program runs in all.
    pub(crate) fn new(
        ours: &Path,
        go: &Result<PathBuf, String>,
        repetitions: usize,
        name: &str,
        runs: usize,
    ) -> Runner {
        Runner {
            ours: ours.to_path_buf(),
            go: go.clone(),
            repetitions,
            progress: progress_bar(name, runs),
        }
    }

    /// Clears the progress bar, so that the section's tables print where it was.
    pub(crate) fn finish(&self) {
        self.progress.finish_and_clear();
    }

    fn measure(&self, program: &Path, args: &[String], key: &str) -> Outcome {
        self.measure_keys(program, args, &[key])
            .pop()
            .expect("one outcome per key")
    }

    /// Several results of each run: one outcome per key, from the same processes.
    fn measure_keys(&self, program: &Path, args: &[String], keys: &[&str]) -> Vec<Outcome> {
        let missing = |why: String| keys.iter().map(|_| Outcome::Missing(why.clone())).collect();
        let mut samples = vec![Vec::new(); keys.len()];
        for _ in 0..self.repetitions {
            self.progress
                .set_message(format!("{} {}", program_name(program), args.join(" ")));
            let output = match Command::new(program).args(args).output() {
                Ok(output) => output,
                Err(err) => return missing(format!("cannot run: {err}")),
            };
            self.progress.inc(1);
            if !output.status.success() {
                // Ours fails with `experiment NAME: why` or `experiment NAME: skipped: why`.
                let stderr = String::from_utf8_lossy(&output.stderr);
                let reason = stderr.lines().last().unwrap_or("failed").trim();
                let reason = reason.split_once(": ").map_or(reason, |(_, why)| why);
                let reason = reason.split_once(": ").map_or(reason, |(_, why)| why);
                return missing(reason.to_string());
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            for (key, samples) in keys.iter().zip(&mut samples) {
                match stats::parse_value(&stdout, key) {
                    Ok(value) => samples.push(value),
                    Err(err) => return missing(err),
                }
            }
        }
        samples
            .iter()
            .map(|samples| match Summary::of(samples) {
                Some(summary) => Outcome::Measured(summary),
                None => Outcome::Missing("no valid sample".to_string()),
            })
            .collect()
    }

    /// The same runner, repeating each measurement `factor` times as often.
    pub(crate) fn repeating(&self, factor: usize) -> Runner {
        Runner {
            ours: self.ours.clone(),
            go: self.go.clone(),
            repetitions: self.repetitions * factor,
            progress: self.progress.clone(),
        }
    }

    /// Our experiment program's `key` for `args`.
    pub(crate) fn ours(&self, args: &[&str], key: &str) -> Outcome {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        self.measure(&self.ours, &args, key)
    }

    /// Our experiment program's results for `keys`, from the same runs of `args`.
    pub(crate) fn ours_keys(&self, args: &[&str], keys: &[&str]) -> Vec<Outcome> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        self.measure_keys(&self.ours, &args, keys)
    }

    /// The Go twin's results for `keys`, from the same runs of `args`.
    pub(crate) fn go_keys(&self, args: &[&str], keys: &[&str]) -> Vec<Outcome> {
        match &self.go {
            Ok(go) => {
                let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
                self.measure_keys(go, &args, keys)
            }
            Err(why) => {
                self.progress.inc(self.repetitions as u64);
                keys.iter().map(|_| Outcome::Missing(why.clone())).collect()
            }
        }
    }

    /// The Go twin's `key` for `args`, or why there is no Go column.
    pub(crate) fn go(&self, args: &[&str], key: &str) -> Outcome {
        match &self.go {
            Ok(go) => {
                let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
                self.measure(go, &args, key)
            }
            Err(why) => self.skipped(why.clone()),
        }
    }

    /// The Go twins' program, or why there is none.
    pub(crate) fn go_program(&self) -> Result<&Path, &str> {
        self.go.as_deref().map_err(String::as_str)
    }

    /// A configuration not run, for `why`; the progress bar still counts its runs.
    pub(crate) fn skipped(&self, why: String) -> Outcome {
        self.progress.inc(self.repetitions as u64);
        Outcome::Missing(why)
    }
}

fn program_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
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
