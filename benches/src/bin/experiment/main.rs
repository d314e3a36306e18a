//! The measurement programs behind `cargo xtask bench`: one experiment per run, in a process of
//! its own (so resident memory and runtimes start clean), printing one line of `key=value`
//! results. `benches/go` holds Go twins that print the same keys; `bench-report` runs both and
//! tabulates them.
//!
//! ```text
//! experiment memory  --n N --policy guarded|dense|threads
//! experiment switch  --n N --kind threads|ctxswitch|goroutines|thread-goroutine --workers W
//! experiment locks   --n COUNT --kind mutex|rwmutex
//! experiment uncontended --n OPS --kind gsync|parking_lot|std
//! experiment spawn   --n N --kind goroutines|threads
//! experiment amdahl  --serial S --workers W --work UNITS
//! experiment scheduling --kind fresh-partner|yield|hog|tickers [--n N] [--rounds R]
//!            [--workers W] [--blocker none|blocking|raw]
//! experiment echo    --server gnet|tokio|go [--go-program PATH] [--conns N] [--seconds S]
//!            [--server-workers W] [--shared-cpus 1] [--idle 1]
//! experiment echo-server --kind gnet|tokio [--workers W] [--expect N]
//! ```

mod amdahl;
mod diagnostics;
mod echo;
mod locks;
mod memory;
mod scheduling;
mod select;
mod spawn;
mod switch;
mod uncontended;

use std::collections::HashMap;
use std::process::ExitCode;

const USAGE: &str = "usage: experiment memory|switch|locks|uncontended|spawn|amdahl|scheduling|diagnostics|select|echo|echo-server [--key value]...";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(experiment) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("experiment: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match experiment.as_str() {
        "memory" => memory::run(&options),
        "switch" => switch::run(&options),
        "locks" => locks::run(&options),
        "uncontended" => uncontended::run(&options),
        "spawn" => spawn::run(&options),
        "amdahl" => amdahl::run(&options),
        "scheduling" => scheduling::run(&options),
        "diagnostics" => diagnostics::run(&options),
        "select" => select::run(&options),
        "echo" => echo::run(&options),
        "echo-server" => echo::serve(&options),
        other => Err(format!("unknown experiment {other:?}")),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        // `bench-report` strips this prefix (and a `skipped: ` after it) and shows the rest as
        // the reason for a missing cell.
        Err(err) => {
            eprintln!("experiment {experiment}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// An experiment's `--key value` arguments.
pub(crate) struct Options(HashMap<String, String>);

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = HashMap::new();
        while let Some(key) = args.next() {
            let name = key
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --key, found {key:?}"))?;
            let value = args.next().ok_or_else(|| format!("{key} needs a value"))?;
            options.insert(name.to_string(), value);
        }
        Ok(Options(options))
    }

    /// The value given for `--key`, or `default`.
    pub(crate) fn text<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.0.get(key).map_or(default, String::as_str)
    }

    /// The number given for `--key`, or `default`; an error when the value is not a number.
    pub(crate) fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| format!("--{key}: {value:?} is not a number")),
        }
    }
}

/// A runtime of `workers` workers, its build error as text.
pub(crate) fn runtime(workers: usize) -> Result<gsched::Runtime, String> {
    gsched::Runtime::builder()
        .workers(workers)
        .build()
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::Options;

    fn options(text: &str) -> Result<Options, String> {
        Options::parse(text.split_whitespace().map(String::from))
    }

    #[test]
    fn options_are_key_value_pairs() {
        let parsed = options("--n 10 --kind mutex").unwrap();
        assert_eq!(parsed.number("n", 1), Ok(10));
        assert_eq!(parsed.text("kind", "rwmutex"), "mutex");
        assert_eq!(parsed.text("policy", "guarded"), "guarded");
        assert_eq!(parsed.number("workers", 3), Ok(3));
        assert!(parsed.number::<u64>("kind", 0).is_err());
        assert!(options("n 10").is_err());
        assert!(options("--n").is_err());
    }
}
