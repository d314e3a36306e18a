//! Section 5: Amdahl's law.

use std::fmt::Write as _;
use std::path::Path;

use crate::plot::{self, Axes, Series};
use crate::runner::{Outcome, Runner};
use crate::stats::{self, Unit};
use crate::{Section, cpus};

/// The workload's serial fractions, one block of rows each.
const SERIAL_FRACTIONS: [f64; 4] = [0.0, 0.1, 0.2, 0.5];

/// Units of work per run (xorshift steps); quick runs do a tenth.
const WORK: u64 = 400_000_000;

/// Program runs per repetition.
pub(crate) fn planned_runs(_quick: bool) -> usize {
    SERIAL_FRACTIONS.len() * cpus()
}

/// Runs the workload at each serial fraction on 1 to all CPUs' workers, against the law.
pub(crate) fn section(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let work = (if quick { WORK / 10 } else { WORK }).to_string();
    let work = work.as_str();
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
    for serial in SERIAL_FRACTIONS {
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
    let plot = plot::save(out_dir, "amdahl.svg", |path| {
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
