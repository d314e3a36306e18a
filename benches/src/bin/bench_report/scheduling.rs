//! Section 6: scheduling behaviour beside Go's: where a new partner runs, a ping-pong between
//! workers at its worst, yielding, a CPU hog beside a ping-pong, and tickers beside a blocking
//! call.

use std::fmt::Write as _;
use std::path::Path;

use crate::Section;
use crate::runner::{Outcome, Runner, ratio_cell, ratio_of};
use crate::stats::{self, Unit};

/// Sends in the ping-pong between two workers, ours and Go's.
const SENDS: u64 = 1_000_000;
/// Rounds of the fresh-partner experiment per process, and messages per round.
const PARTNER_ROUNDS: u64 = 30;
const PARTNER_MESSAGES: u64 = 10_000;
/// Yields per goroutine.
const YIELDS: u64 = 1_000_000;
/// Round trips beside the hog.
const HOG_ROUND_TRIPS: u64 = 100_000;
/// Ticks per ticker.
const TICKS: u64 = 100;
/// Quick runs do this fraction of the work.
const QUICK_DIVISOR: u64 = 10;

/// Program runs per repetition.
pub(crate) fn planned_runs(_quick: bool) -> usize {
    11
}

pub(crate) fn section(runner: &Runner, quick: bool, _out_dir: &Path) -> Section {
    let scale = |full: u64| {
        (if quick { full / QUICK_DIVISOR } else { full })
            .max(1)
            .to_string()
    };
    let (sends, rounds, messages) = (scale(SENDS), scale(PARTNER_ROUNDS), scale(PARTNER_MESSAGES));
    let (yields, round_trips, ticks) = (scale(YIELDS), scale(HOG_ROUND_TRIPS), scale(TICKS));

    // Each row's processes alternate with Go's (see `Runner::against_go`).
    let (ping_pong, go_ping_pong) = runner.against_go(
        &[
            "switch",
            "--kind",
            "goroutines",
            "--workers",
            "2",
            "--n",
            &sends,
        ],
        &["switch", "--workers", "2", "--n", &sends],
        "ns_per_op",
    );

    let partner_args = [
        "scheduling",
        "--kind",
        "fresh-partner",
        "--workers",
        "2",
        "--rounds",
        rounds.as_str(),
        "--n",
        messages.as_str(),
    ];
    let keys = ["p90_ns_per_op", "worst_ns_per_op"];
    let [
        [partner_p90, partner_worst],
        [go_partner_p90, go_partner_worst],
    ]: [[Outcome; 2]; 2] = runner
        .against_go_keys(&partner_args, &partner_args, &keys)
        .map(|outcomes| {
            outcomes
                .try_into()
                .unwrap_or_else(|_| unreachable!("one outcome per key"))
        });

    let yield_args = ["scheduling", "--kind", "yield", "--n", &yields];
    let (yield_ours, yield_go) = runner.against_go(&yield_args, &yield_args, "ns_per_op");
    let hog_args = ["scheduling", "--kind", "hog", "--n", &round_trips];
    let (hog, go_hog) = runner.against_go(&hog_args, &hog_args, "ns_per_op");

    let tickers = |blocker| {
        runner.ours(
            &[
                "scheduling",
                "--kind",
                "tickers",
                "--blocker",
                blocker,
                "--rounds",
                &ticks,
            ],
            "p99_late_us",
        )
    };
    let calm = tickers("none");
    let beside_blocking = tickers("blocking");
    let beside_raw = tickers("raw");

    let worst = |outcome: &Outcome| {
        outcome.worst().map_or("—".to_string(), |worst| {
            stats::format_value(worst, Unit::Nanoseconds)
        })
    };
    let header = ["experiment", "ours", "Go", "ours ÷ Go"].map(String::from);
    let mut rows = vec![
        vec![
            "ping-pong, 2 workers, per send: median".to_string(),
            ping_pong.cell(Unit::Nanoseconds),
            go_ping_pong.cell(Unit::Nanoseconds),
            ratio_cell(&ping_pong, &go_ping_pong),
        ],
        vec![
            "ping-pong, 2 workers, per send: worst process (÷ Go's median)".to_string(),
            worst(&ping_pong),
            go_ping_pong.cell(Unit::Nanoseconds),
            ratio_of(ping_pong.worst(), go_ping_pong.median()),
        ],
        vec![
            "fresh partner, per message: 90th-percentile round (median of processes)".to_string(),
            partner_p90.cell(Unit::Nanoseconds),
            go_partner_p90.cell(Unit::Nanoseconds),
            ratio_cell(&partner_p90, &go_partner_p90),
        ],
        vec![
            "fresh partner, per message: worst round of all processes".to_string(),
            worst(&partner_worst),
            worst(&go_partner_worst),
            ratio_of(partner_worst.worst(), go_partner_worst.worst()),
        ],
        vec![
            "yield, two goroutines on 1 worker, per yield".to_string(),
            yield_ours.cell(Unit::Nanoseconds),
            yield_go.cell(Unit::Nanoseconds),
            ratio_cell(&yield_ours, &yield_go),
        ],
        vec![
            "ping-pong beside a select-default hog, 1 worker, per round trip".to_string(),
            hog.cell(Unit::Nanoseconds),
            go_hog.cell(Unit::Nanoseconds),
            ratio_cell(&hog, &go_hog),
        ],
    ];
    for (label, outcome) in [
        ("11 tickers of 10 ms, p99 lateness: alone", &calm),
        (
            "… beside 200 ms calls through gsched::blocking",
            &beside_blocking,
        ),
        (
            "… beside 200 ms std::thread::sleep on their worker",
            &beside_raw,
        ),
    ] {
        rows.push(vec![
            label.to_string(),
            outcome.cell(Unit::Microseconds),
            "—".to_string(),
            "—".to_string(),
        ]);
    }
    let mut body = stats::markdown_table(&header, &rows);
    let _ = writeln!(
        body,
        "\nTickers beside blocking calls ÷ alone, p99 lateness: {} through `gsched::blocking`, \
         {} with the raw sleep on their worker.",
        ratio_cell(&beside_blocking, &calm),
        ratio_cell(&beside_raw, &calm),
    );
    let headlines = vec![format!(
        "Scheduling: ping-pong on 2 workers {} Go's time (worst process {} Go's median); a fresh \
         partner's 90th-percentile round {} Go's; yield {} Go's; a ping-pong beside a CPU hog {} \
         Go's.",
        ratio_cell(&ping_pong, &go_ping_pong),
        ratio_of(ping_pong.worst(), go_ping_pong.median()),
        ratio_cell(&partner_p90, &go_partner_p90),
        ratio_cell(&yield_ours, &yield_go),
        ratio_cell(&hog, &go_hog),
    )];
    Section {
        title: "6. Scheduling".to_string(),
        body,
        headlines,
        plot: None,
    }
}
