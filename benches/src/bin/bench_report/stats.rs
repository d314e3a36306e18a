//! The report's arithmetic and text: parsing a program's `key=value` line, medians with their
//! spread, units, thousands separators, Markdown tables, Amdahl's law and the README splice.
//! Pure functions, unit-tested.

use std::fmt::Write;

/// Reads `key`'s value from a program's output line (`a=1 b=2.5`).
pub(crate) fn parse_value(output: &str, key: &str) -> Result<f64, String> {
    for token in output.split_whitespace() {
        if let Some((name, value)) = token.split_once('=')
            && name == key
        {
            return value
                .parse()
                .map_err(|_| format!("{key}={value} is not a number"));
        }
    }
    Err(format!("no {key}= in the output {:?}", output.trim()))
}

/// Several repetitions of one measurement.
#[derive(Debug, PartialEq)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    /// The first and third quartiles: the middle half of the runs lies between them.
    pub(crate) lower_quartile: f64,
    pub(crate) upper_quartile: f64,
    /// The highest run: what a user meets on a bad day.
    pub(crate) worst: f64,
    pub(crate) runs: usize,
}

impl Summary {
    /// The median (the mean of the middle two for an even count) and the quartiles.
    pub(crate) fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|sample| !sample.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            median: quantile(&sorted, 0.5),
            lower_quartile: quantile(&sorted, 0.25),
            upper_quartile: quantile(&sorted, 0.75),
            worst: sorted[sorted.len() - 1],
            runs: sorted.len(),
        })
    }

    /// The spread as a percentage of the median: the interquartile range, which one outlier
    /// run cannot blow up as it would the full range.
    pub(crate) fn spread_percent(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.upper_quartile - self.lower_quartile) / self.median * 100.0
        }
    }
}

/// The `q` quantile of sorted samples, interpolating between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let weight = position - below as f64;
    sorted[below] * (1.0 - weight) + sorted[above] * weight
}

/// How a quantity prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Nanoseconds,
    Microseconds,
    Seconds,
    Bytes,
    Ratio,
    /// Events per second: `131k/s`.
    PerSecond,
}

/// A value with its unit, scaled to read well: `225 ns`, `1.47 µs`, `3.4 ms`, `2.8 KB`.
pub(crate) fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Nanoseconds => format_duration(value * 1e-9),
        Unit::Microseconds => format_duration(value * 1e-6),
        Unit::Seconds => format_duration(value),
        Unit::Bytes => {
            if value >= 1e6 {
                format!("{} MB", significant(value / 1e6))
            } else if value >= 1e3 {
                format!("{} KB", significant(value / 1e3))
            } else {
                format!("{} B", significant(value))
            }
        }
        Unit::Ratio => format!("{}×", significant(value)),
        Unit::PerSecond => {
            if value >= 1e6 {
                format!("{}M/s", significant(value / 1e6))
            } else if value >= 1e3 {
                format!("{}k/s", significant(value / 1e3))
            } else {
                format!("{}/s", significant(value))
            }
        }
    }
}

fn format_duration(seconds: f64) -> String {
    let (scaled, suffix) = if seconds >= 1.0 {
        (seconds, "s")
    } else if seconds >= 1e-3 {
        (seconds * 1e3, "ms")
    } else if seconds >= 1e-6 {
        (seconds * 1e6, "µs")
    } else {
        (seconds * 1e9, "ns")
    };
    format!("{} {suffix}", significant(scaled))
}

/// Three significant digits, without a trailing `.0`.
fn significant(value: f64) -> String {
    let digits = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Half the interquartile range, in percent of the median, beyond which a cell is marked noisy.
const NOISY_PERCENT: f64 = 25.0;

/// A summary as a table cell: the median, and ± half the interquartile range when that is over
/// half a percent of the median, marked "noisy" beyond `NOISY_PERCENT`.
pub(crate) fn format_summary(summary: &Summary, unit: Unit) -> String {
    let median = format_value(summary.median, unit);
    let half_spread = summary.spread_percent() / 2.0;
    if summary.runs > 1 && half_spread > NOISY_PERCENT {
        format!("{median} ±{half_spread:.0}% (noisy)")
    } else if summary.runs > 1 && summary.spread_percent() >= 1.0 {
        format!("{median} ±{half_spread:.0}%")
    } else {
        median
    }
}

/// `n` with a comma between each group of three digits: `524,288`.
pub(crate) fn thousands(n: usize) -> String {
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

/// A Markdown table; columns after the first are right-aligned.
pub(crate) fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let alignments: Vec<&str> = (0..header.len())
        .map(|column| if column == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "| {} |", alignments.join(" | "));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// Amdahl's predicted speedup on `workers` for a parallel fraction `parallel`.
pub(crate) fn amdahl_speedup(parallel: f64, workers: f64) -> f64 {
    1.0 / ((1.0 - parallel) + parallel / workers)
}

/// The serial fraction implied by a measured `speedup` on `workers` (Karp–Flatt); undefined on
/// one worker.
pub(crate) fn karp_flatt(speedup: f64, workers: f64) -> Option<f64> {
    (workers > 1.0 && speedup > 0.0)
        .then(|| (1.0 / speedup - 1.0 / workers) / (1.0 - 1.0 / workers))
}

const README_START: &str = "<!-- bench-report:start -->";
const README_END: &str = "<!-- bench-report:end -->";

/// Replaces what lies between the README's markers with `generated`.
pub(crate) fn splice_readme(readme: &str, generated: &str) -> Result<String, String> {
    let start = readme
        .find(README_START)
        .ok_or_else(|| format!("README.md has no {README_START} marker"))?;
    let end = readme
        .find(README_END)
        .ok_or_else(|| format!("README.md has no {README_END} marker"))?;
    if end < start {
        return Err("README.md's report markers are out of order".to_string());
    }
    Ok(format!(
        "{}{README_START}\n{}\n{}",
        &readme[..start],
        generated.trim_end(),
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_parsed_by_key() {
        assert_eq!(parse_value("ns_per_op=225.5\n", "ns_per_op"), Ok(225.5));
        assert_eq!(parse_value("a=1 seconds=0.25", "seconds"), Ok(0.25));
        assert!(parse_value("ns_per_op=fast", "ns_per_op").is_err());
        assert!(parse_value("other=1", "ns_per_op").is_err());
        assert!(parse_value("", "ns_per_op").is_err());
    }

    #[test]
    fn medians_and_spreads() {
        let odd = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.runs), (2.0, 3));
        assert_eq!((odd.lower_quartile, odd.upper_quartile), (1.5, 2.5));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(odd.spread_percent(), 50.0);
        // One wild run moves neither the median nor the quartiles much.
        let outlier = Summary::of(&[10.0, 10.0, 10.0, 10.0, 1000.0]).unwrap();
        assert_eq!((outlier.median, outlier.spread_percent()), (10.0, 0.0));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn values_print_in_readable_units() {
        assert_eq!(format_value(225.0, Unit::Nanoseconds), "225 ns");
        assert_eq!(format_value(1470.0, Unit::Nanoseconds), "1.47 µs");
        assert_eq!(format_value(0.0034, Unit::Seconds), "3.4 ms");
        assert_eq!(format_value(2817.0, Unit::Bytes), "2.82 KB");
        assert_eq!(format_value(512.0, Unit::Bytes), "512 B");
        assert_eq!(format_value(1.5, Unit::Ratio), "1.5×");
        assert_eq!(format_value(12.26, Unit::Seconds), "12.3 s");
    }

    #[test]
    fn summaries_show_a_spread_only_when_it_matters() {
        let tight = Summary::of(&[100.0, 100.2, 100.4]).unwrap();
        assert_eq!(format_summary(&tight, Unit::Nanoseconds), "100 ns");
        let loose = Summary::of(&[80.0, 90.0, 100.0, 110.0, 120.0]).unwrap();
        assert_eq!(format_summary(&loose, Unit::Nanoseconds), "100 ns ±10%");
        let noisy = Summary::of(&[20.0, 50.0, 100.0, 150.0, 400.0]).unwrap();
        assert!(
            format_summary(&noisy, Unit::Nanoseconds).ends_with("(noisy)"),
            "{}",
            format_summary(&noisy, Unit::Nanoseconds)
        );
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(1), "1");
        assert_eq!(thousands(1024), "1,024");
        assert_eq!(thousands(524_288), "524,288");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn tables_are_markdown() {
        let table = markdown_table(
            &["what".to_string(), "time".to_string()],
            &[vec!["ours".to_string(), "1 ns".to_string()]],
        );
        assert_eq!(table, "| what | time |\n| --- | ---: |\n| ours | 1 ns |\n");
    }

    #[test]
    fn amdahl_and_karp_flatt_agree() {
        assert_eq!(amdahl_speedup(1.0, 4.0), 4.0);
        assert_eq!(amdahl_speedup(0.0, 4.0), 1.0);
        let speedup = amdahl_speedup(0.9, 2.0);
        assert!((karp_flatt(speedup, 2.0).unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(karp_flatt(1.0, 1.0), None);
    }

    #[test]
    fn the_readme_is_spliced_between_markers() {
        let readme = format!("# T\n\n{README_START}\nold\n{README_END}\nafter\n");
        let spliced = splice_readme(&readme, "new\n").unwrap();
        assert_eq!(
            spliced,
            format!("# T\n\n{README_START}\nnew\n{README_END}\nafter\n")
        );
        assert!(splice_readme("no markers", "x").is_err());
        assert!(splice_readme(&format!("{README_END}{README_START}"), "x").is_err());
    }
}
