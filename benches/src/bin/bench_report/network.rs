//! Section 7: echo over loopback, a goroutine per connection against Go's and tokio's servers.

use std::path::Path;

use crate::Section;
use crate::plot::{self, Axes, Series};
use crate::runner::{Outcome, Runner, ratio_cell};
use crate::stats::{self, Unit, thousands};

/// Connection counts of the throughput rows; quick runs leave out the largest.
const CONNECTIONS: [usize; 3] = [100, 1_000, 10_000];
/// Connections of the idle-memory row (quick: a tenth).
const IDLE_CONNECTIONS: usize = 10_000;
/// Seconds of load per run (quick: a quarter).
const SECONDS: f64 = 2.0;

const SERVERS: [&str; 3] = ["gnet", "go", "tokio"];
const KEYS: [&str; 4] = ["rps", "p50_ns", "p99_ns", "gen_cpu_ns_per_req"];

/// Program runs per repetition.
pub(crate) fn planned_runs(quick: bool) -> usize {
    let sizes = if quick { 2 } else { CONNECTIONS.len() };
    SERVERS.len() * (sizes + 2)
}

/// One configuration of one server: the throughput keys (or, with `--idle`, the memory key),
/// from the same runs.
fn measure(runner: &Runner, server: &str, extra: &[&str]) -> Vec<Outcome> {
    let keys: &[&str] = if extra.contains(&"--idle") {
        &["idle_bytes_per_conn"]
    } else {
        &KEYS
    };
    let mut args = vec!["echo", "--server", server];
    let go;
    if server == "go" {
        match runner.go_program() {
            Ok(program) => {
                go = program.to_string_lossy().into_owned();
                args.extend(["--go-program", go.as_str()]);
            }
            Err(why) => {
                let why = why.to_string();
                let mut outcomes = vec![runner.skipped(why.clone())];
                outcomes.extend(keys[1..].iter().map(|_| Outcome::Missing(why.clone())));
                return outcomes;
            }
        }
    }
    args.extend(extra);
    runner.ours_keys(&args, keys)
}

fn server_name(server: &str) -> &'static str {
    match server {
        "gnet" => "ours: gnet, goroutine per connection",
        "go" => "Go `net`, goroutine per connection",
        _ => "tokio, task per connection",
    }
}

/// Measures the echo rows (see the module docs of `experiment echo`).
pub(crate) fn section(runner: &Runner, quick: bool, out_dir: &Path) -> Section {
    let sizes: Vec<usize> = if quick {
        CONNECTIONS[..2].to_vec()
    } else {
        CONNECTIONS.to_vec()
    };
    let seconds = (if quick { SECONDS / 4.0 } else { SECONDS }).to_string();
    let header = [
        "connections, server",
        "requests/s",
        "p50",
        "p99",
        "ours ÷ this (req/s)",
        "ours ÷ this (p99)",
    ]
    .map(String::from);
    let mut rows = Vec::new();
    let mut generator_cost = Vec::new();
    let mut headline_1000 = String::new();
    // Per server: (connections, median requests per second) for the plot.
    let mut throughput: Vec<Vec<(f64, f64)>> = vec![Vec::new(); SERVERS.len()];
    let mut table_block = |label: &str, extra: Vec<String>, rows: &mut Vec<Vec<String>>| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let outcomes: Vec<Vec<Outcome>> = SERVERS
            .iter()
            .map(|server| measure(runner, server, &extra))
            .collect();
        let ours = &outcomes[0];
        for (server, outcome) in SERVERS.iter().zip(&outcomes) {
            rows.push(vec![
                format!("{label}, {}", server_name(server)),
                outcome[0].cell(Unit::PerSecond),
                outcome[1].cell(Unit::Nanoseconds),
                outcome[2].cell(Unit::Nanoseconds),
                ratio_cell(&ours[0], &outcome[0]),
                ratio_cell(&ours[2], &outcome[2]),
            ]);
            if let Some(cost) = outcome[3].median() {
                generator_cost.push(cost);
            }
        }
        outcomes
    };
    for &conns in &sizes {
        let label = thousands(conns);
        let outcomes = table_block(
            &label,
            vec![
                "--conns".into(),
                conns.to_string(),
                "--seconds".into(),
                seconds.clone(),
            ],
            &mut rows,
        );
        for (points, outcome) in throughput.iter_mut().zip(&outcomes) {
            if let Some(rps) = outcome[0].median() {
                points.push((conns as f64, rps));
            }
        }
        if conns == 1_000 {
            headline_1000 = format!(
                "Echo at 1,000 connections: {} Go's requests per second and {} tokio's; p99 {} \
                 Go's.",
                ratio_cell(&outcomes[0][0], &outcomes[1][0]),
                ratio_cell(&outcomes[0][0], &outcomes[2][0]),
                ratio_cell(&outcomes[0][2], &outcomes[1][2]),
            );
        }
    }
    let mut body = stats::markdown_table(&header, &rows);

    let mut shared_rows = Vec::new();
    table_block(
        "1,000, 2 workers, shared CPUs",
        vec![
            "--conns".into(),
            "1000".into(),
            "--seconds".into(),
            seconds.clone(),
            "--server-workers".into(),
            "2".into(),
            "--shared-cpus".into(),
            "1".into(),
        ],
        &mut shared_rows,
    );
    body.push_str(
        "\nFor information, the same at 1,000 connections with 2 server workers (GOMAXPROCS = 2, \
         2 tokio workers), server and generator sharing both CPUs:\n\n",
    );
    body.push_str(&stats::markdown_table(&header, &shared_rows));

    let idle = if quick {
        IDLE_CONNECTIONS / 10
    } else {
        IDLE_CONNECTIONS
    };
    let idle_text = idle.to_string();
    let idle_outcomes: Vec<Outcome> = SERVERS
        .iter()
        .map(|server| {
            measure(runner, server, &["--conns", &idle_text, "--idle", "1"])
                .into_iter()
                .next()
                .expect("one key")
        })
        .collect();
    let idle_rows: Vec<Vec<String>> = SERVERS
        .iter()
        .zip(&idle_outcomes)
        .map(|(server, outcome)| {
            vec![
                server_name(server).to_string(),
                outcome.cell(Unit::Bytes),
                ratio_cell(&idle_outcomes[0], outcome),
            ]
        })
        .collect();
    let _ = std::fmt::Write::write_fmt(
        &mut body,
        format_args!(
            "\nMemory per idle connection, {} connections that each did one round trip and wait \
             in `read`: (ΔVmRSS + ΔVmPTE) of the server process, divided by the connections.\n\n",
            thousands(idle)
        ),
    );
    body.push_str(&stats::markdown_table(
        &[
            "server".to_string(),
            "per idle connection".to_string(),
            "ours ÷ this".to_string(),
        ],
        &idle_rows,
    ));
    let cost = if generator_cost.is_empty() {
        "not measured".to_string()
    } else {
        generator_cost.sort_by(f64::total_cmp);
        format!(
            "{} to {} of CPU per request",
            stats::format_value(generator_cost[0], Unit::Nanoseconds),
            stats::format_value(generator_cost[generator_cost.len() - 1], Unit::Nanoseconds)
        )
    };
    let _ = std::fmt::Write::write_fmt(
        &mut body,
        format_args!(
            "\nEach run: the server (1 worker, GOMAXPROCS = 1, or 1 tokio worker) on CPU 0, the \
             load generator on CPU 1 (`sched_setaffinity`), so the two never fight for a core. \
             The generator is the same program for all three servers: ours (`experiment echo`, \
             gnet on one worker), opening every connection once and then sending 64-byte \
             requests on each, one at a time, for {seconds} s; requests per second count the \
             round trips, p50 and p99 their latency. Its own cost was {cost}, so where a \
             server needs less, the generator is what the row measures. At the end it kills \
             the server before closing its connections, so TIME_WAIT falls on the server's \
             side.\n"
        ),
    );
    let headlines = vec![
        headline_1000,
        format!(
            "Memory per idle connection: {} Go's, {} tokio's.",
            ratio_cell(&idle_outcomes[0], &idle_outcomes[1]),
            ratio_cell(&idle_outcomes[0], &idle_outcomes[2]),
        ),
    ];
    let series: Vec<Series> = SERVERS
        .iter()
        .zip(throughput)
        .enumerate()
        .map(|(color, (server, points))| Series {
            name: server_name(server).to_string(),
            points,
            dashed: false,
            color,
        })
        .filter(|series| !series.points.is_empty())
        .collect();
    let plot = plot::save(out_dir, "network.svg", |path| {
        plot::line_chart(
            path,
            &Axes {
                title: "Echo over loopback: requests per second, one server CPU",
                x_label: "connections",
                y_label: "requests per second",
                log_x: true,
                log_y: false,
            },
            &series,
        )
    });
    Section {
        title: "7. Network: echo over loopback".to_string(),
        body,
        headlines,
        plot,
    }
}
