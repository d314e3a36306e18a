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

/// One configuration to measure: the program (or why there is none), its arguments, and the
/// keys read from its output.
type Config<'a> = (Result<&'a Path, &'a str>, &'a [String], &'a [&'a str]);

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
        self.interleave(&[(Ok(program), args, keys)])
            .pop()
            .expect("one list of outcomes per configuration")
    }

    /// Measures several configurations in rounds, one process of each per round, so that a
    /// change in the machine's load while they run falls on all of them alike: per
    /// configuration, one outcome per key. A configuration whose program is missing (`Err`)
    /// or fails gets its reason instead, and is not run again.
    fn interleave(&self, configs: &[Config<'_>]) -> Vec<Vec<Outcome>> {
        let mut samples: Vec<Vec<Vec<f64>>> = configs
            .iter()
            .map(|(_, _, keys)| vec![Vec::new(); keys.len()])
            .collect();
        let mut failed: Vec<Option<String>> = configs
            .iter()
            .map(|(program, _, _)| program.err().map(str::to_string))
            .collect();
        for _ in 0..self.repetitions {
            for (index, &(program, args, keys)) in configs.iter().enumerate() {
                self.progress.inc(1);
                let Ok(program) = program else { continue };
                if failed[index].is_some() {
                    continue;
                }
                match self.run_once(program, args, keys) {
                    Ok(values) => {
                        for (samples, value) in samples[index].iter_mut().zip(values) {
                            samples.push(value);
                        }
                    }
                    Err(why) => failed[index] = Some(why),
                }
            }
        }
        configs
            .iter()
            .zip(samples.iter().zip(failed))
            .map(|((_, _, keys), (samples, failed))| match failed {
                Some(why) => keys.iter().map(|_| Outcome::Missing(why.clone())).collect(),
                None => samples
                    .iter()
                    .map(|samples| match Summary::of(samples) {
                        Some(summary) => Outcome::Measured(summary),
                        None => Outcome::Missing("no valid sample".to_string()),
                    })
                    .collect(),
            })
            .collect()
    }

    /// One process of `program`: the value of each key, or why there is none.
    fn run_once(&self, program: &Path, args: &[String], keys: &[&str]) -> Result<Vec<f64>, String> {
        self.progress
            .set_message(format!("{} {}", program_name(program), args.join(" ")));
        let output = Command::new(program)
            .args(args)
            .output()
            .map_err(|err| format!("cannot run: {err}"))?;
        if !output.status.success() {
            // Ours fails with `experiment NAME: why` or `experiment NAME: skipped: why`.
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason = stderr.lines().last().unwrap_or("failed").trim();
            let reason = reason.split_once(": ").map_or(reason, |(_, why)| why);
            let reason = reason.split_once(": ").map_or(reason, |(_, why)| why);
            return Err(reason.to_string());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        keys.iter()
            .map(|key| stats::parse_value(&stdout, key))
            .collect()
    }

    /// Our experiment program's `key` for `ours` and the Go twin's for `go`, their processes
    /// alternating: the pair a ratio to Go is taken from.
    pub(crate) fn against_go(&self, ours: &[&str], go: &[&str], key: &str) -> (Outcome, Outcome) {
        let [ours, go] = self
            .against_go_keys(ours, go, &[key])
            .map(|mut outcomes| outcomes.pop().expect("one outcome per key"));
        (ours, go)
    }

    /// As [`Runner::against_go`], with several keys from the same processes.
    pub(crate) fn against_go_keys(
        &self,
        ours: &[&str],
        go: &[&str],
        keys: &[&str],
    ) -> [Vec<Outcome>; 2] {
        let owned = |args: &[&str]| args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
        let (ours_args, go_args) = (owned(ours), owned(go));
        let go_program = self.go.as_deref().map_err(String::as_str);
        let mut outcomes = self.interleave(&[
            (Ok(self.ours.as_path()), &ours_args, keys),
            (go_program, &go_args, keys),
        ]);
        let go = outcomes.pop().expect("two configurations");
        let ours = outcomes.pop().expect("two configurations");
        [ours, go]
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
