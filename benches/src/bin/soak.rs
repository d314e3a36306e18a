//! A soak test of the runtime and its synchronization: round after round of a randomized
//! population of goroutines that mixes every primitive, exact invariants checked after each
//! round, runtimes shut down in mid-flight, and a watchdog that reports a hang.
//!
//! `cargo xtask soak [--minutes N] [--seconds N] [--workers N] [--seed N]`. The seed is printed
//! at the start and with any failure: `--seed` replays the same rounds (the interleavings, which
//! the scheduler decides, differ from run to run). Exit status 0 when every invariant held, 1
//! when one broke or the watchdog saw no progress.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::panic;
use std::process;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, TryLockError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gsched::{Builder, JoinHandle, Runtime, go};
use gsync::{
    Cond, Mutex, Receiver, RecvTimeoutError, RwMutex, SendTimeoutError, Sender, TryRecvError,
    TrySendError, WaitGroup, chan, select,
};

/// With no progress for this long, the watchdog reports a hang.
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// A round normally takes well under a second; one still running after this is stuck even if
/// some goroutines keep polling.
const ROUND_LIMIT: Duration = Duration::from_secs(60);
/// Every this many rounds, a runtime is also shut down in mid-flight.
const SHUTDOWN_EVERY: u64 = 10;
/// Polling loops (try_send, try_recv, select with default) give up and block after this many
/// misses: two sides that only poll an unbuffered channel would never meet.
const POLL_LIMIT: u32 = 64;

// ---------------------------------------------------------------------------------------------
// Command line

struct Options {
    duration: Duration,
    workers: Option<usize>,
    seed: Option<u64>,
}

const USAGE: &str = "usage: soak [--minutes N] [--seconds N] [--workers N] [--seed N]";

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut minutes = None;
    let mut seconds = None;
    let mut options = Options {
        duration: Duration::from_secs(60),
        workers: None,
        seed: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = || -> Result<u64, String> {
            let value = args.next().ok_or(format!("{arg} needs a number"))?;
            value
                .parse()
                .map_err(|_| format!("{arg} needs a number, not {value:?}"))
        };
        match arg.as_str() {
            "--minutes" => minutes = Some(number()?),
            "--seconds" => seconds = Some(number()?),
            "--workers" => match number()? {
                0 => return Err("--workers needs at least 1".to_string()),
                count => options.workers = Some(count as usize),
            },
            "--seed" => options.seed = Some(number()?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if minutes.is_some() || seconds.is_some() {
        let total = minutes
            .unwrap_or(0)
            .saturating_mul(60)
            .saturating_add(seconds.unwrap_or(0));
        options.duration = Duration::from_secs(total);
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// Randomness: SplitMix64, so a seed names the same rounds on every machine.

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection that scatters nearby inputs.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// An independent stream for a goroutine of its own.
    fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }

    fn micros(&mut self, high: u64) -> Duration {
        Duration::from_micros(self.below(high + 1))
    }
}

// ---------------------------------------------------------------------------------------------
// Counters, failures, and the values whose destructors are counted

static OPS: AtomicU64 = AtomicU64::new(0);
static GOROUTINES: AtomicU64 = AtomicU64::new(0);
static MESSAGES: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static PANICS_EXPECTED: AtomicU64 = AtomicU64::new(0);
static PANICS_OBSERVED: AtomicU64 = AtomicU64::new(0);
static INVARIANTS: AtomicU64 = AtomicU64::new(0);
static CREATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

static SEED: AtomicU64 = AtomicU64::new(0);
static ROUND: AtomicU64 = AtomicU64::new(0);

fn fail(message: impl Display) -> ! {
    let seed = SEED.load(Relaxed);
    eprintln!(
        "soak: FAILED in round {} (seed {seed}; replay with --seed {seed}): {message}",
        ROUND.load(Relaxed)
    );
    process::exit(1);
}

fn check(holds: bool, broken: impl FnOnce() -> String) {
    INVARIANTS.fetch_add(1, Relaxed);
    if !holds {
        fail(broken());
    }
}

/// The payload of the panics the soak causes on purpose; anything else is a failure.
struct Deliberate;

fn deliberate_panic() -> ! {
    panic::panic_any(Deliberate)
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text payload".to_string())
}

/// Joins `handle`: its value, or `None` for a deliberate panic (counted); any other panic fails
/// the soak.
fn settle<T>(handle: JoinHandle<T>, what: &str) -> Option<T> {
    match handle.join() {
        Ok(value) => Some(value),
        Err(payload) if payload.is::<Deliberate>() => {
            PANICS_OBSERVED.fetch_add(1, Relaxed);
            None
        }
        Err(payload) => fail(format!(
            "a {what} goroutine panicked: {}",
            payload_text(&*payload)
        )),
    }
}

/// A value whose creation and destruction are counted: at the end of a round, or after a
/// shutdown, every one created must have been dropped.
struct Tracked(());

impl Tracked {
    fn new() -> Self {
        CREATED.fetch_add(1, Relaxed);
        Tracked(())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Relaxed);
    }
}

/// What the channels carry: a value unique in its round, and a counted destructor.
struct Message {
    value: u64,
    _tracked: Tracked,
}

impl Message {
    fn new(value: u64) -> Self {
        Message {
            value,
            _tracked: Tracked::new(),
        }
    }
}

/// Both ends' view of one channel: what went in must come out, each value exactly once.
#[derive(Default)]
struct Ledger {
    sent: AtomicU64,
    sent_sum: AtomicU64,
    received: AtomicU64,
    received_sum: AtomicU64,
}

impl Ledger {
    fn sent(&self, value: u64) {
        self.sent.fetch_add(1, Relaxed);
        self.sent_sum.fetch_add(value, Relaxed);
    }

    fn received(&self, message: Message) {
        self.received.fetch_add(1, Relaxed);
        self.received_sum.fetch_add(message.value, Relaxed);
        MESSAGES.fetch_add(1, Relaxed);
    }

    fn check(&self, what: &str) {
        let (sent, received) = (self.sent.load(Relaxed), self.received.load(Relaxed));
        check(sent == received, || {
            format!("{what}: {sent} messages sent, {received} received")
        });
        let (sent_sum, received_sum) =
            (self.sent_sum.load(Relaxed), self.received_sum.load(Relaxed));
        check(sent_sum == received_sum, || {
            format!(
                "{what}: the {sent} messages received are not those sent \
                 (sums {sent_sum:#x} and {received_sum:#x}): one was lost and another duplicated"
            )
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Progress records and the watchdog

static CLOCK: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    CLOCK.elapsed().as_millis() as u64
}

/// When some goroutine last completed an operation (polling that finds nothing does not count).
static LAST_PROGRESS: AtomicU64 = AtomicU64::new(0);
static ROUND_STARTED: AtomicU64 = AtomicU64::new(0);
static MAIN_PHASE: std::sync::Mutex<&str> = std::sync::Mutex::new("starting");

fn phase(name: &'static str) {
    *MAIN_PHASE.lock().unwrap_or_else(|p| p.into_inner()) = name;
    LAST_PROGRESS.store(now_ms(), Relaxed);
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum Step {
    Start,
    Send,
    Recv,
    Select,
    Lock,
    Read,
    Write,
    WaitGroup,
    CondWait,
    Join,
    Sleep,
    Yield,
    Panic,
    Blocked,
}

impl Step {
    const ALL: [Step; 14] = [
        Step::Start,
        Step::Send,
        Step::Recv,
        Step::Select,
        Step::Lock,
        Step::Read,
        Step::Write,
        Step::WaitGroup,
        Step::CondWait,
        Step::Join,
        Step::Sleep,
        Step::Yield,
        Step::Panic,
        Step::Blocked,
    ];

    fn name(self) -> &'static str {
        match self {
            Step::Start => "start",
            Step::Send => "chan send",
            Step::Recv => "chan receive",
            Step::Select => "select",
            Step::Lock => "Mutex.lock",
            Step::Read => "RwMutex.read",
            Step::Write => "RwMutex.write",
            Step::WaitGroup => "WaitGroup.wait",
            Step::CondWait => "Cond.wait",
            Step::Join => "join",
            Step::Sleep => "sleep",
            Step::Yield => "yield_now",
            Step::Panic => "panic",
            Step::Blocked => "blocked on purpose",
        }
    }
}

struct Record {
    goroutine: u64,
    kind: &'static str,
    step: AtomicU8,
    since_ms: AtomicU64,
}

struct Registry {
    next: AtomicU64,
    records: std::sync::Mutex<HashMap<u64, Arc<Record>>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    next: AtomicU64::new(0),
    records: std::sync::Mutex::new(HashMap::new()),
});

/// A goroutine's entry in the progress table, from its start to its end (or unwinding).
struct Tracker {
    key: u64,
    record: Arc<Record>,
}

impl Tracker {
    fn enter(kind: &'static str) -> Self {
        GOROUTINES.fetch_add(1, Relaxed);
        let record = Arc::new(Record {
            goroutine: gsched::current().map_or(0, |goroutine| goroutine.id()),
            kind,
            step: AtomicU8::new(Step::Start as u8),
            since_ms: AtomicU64::new(now_ms()),
        });
        let key = REGISTRY.next.fetch_add(1, Relaxed);
        REGISTRY
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Arc::clone(&record));
        Tracker { key, record }
    }

    /// The goroutine is about to do `step`, which may wait.
    fn at(&self, step: Step) {
        self.record.step.store(step as u8, Relaxed);
        self.record.since_ms.store(now_ms(), Relaxed);
    }

    /// An operation completed.
    fn progress(&self) {
        let now = now_ms();
        self.record.since_ms.store(now, Relaxed);
        LAST_PROGRESS.store(now, Relaxed);
        OPS.fetch_add(1, Relaxed);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        REGISTRY
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

fn live_records() -> usize {
    REGISTRY
        .records
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len()
}

fn start_watchdog() {
    thread::Builder::new()
        .name("soak-watchdog".into())
        .spawn(|| {
            loop {
                thread::sleep(Duration::from_millis(250));
                let now = now_ms();
                let idle = now.saturating_sub(LAST_PROGRESS.load(Relaxed));
                let round_age = now.saturating_sub(ROUND_STARTED.load(Relaxed));
                if idle >= STALL_LIMIT.as_millis() as u64 {
                    hang(&format!("no progress for {:.1} s", idle as f64 / 1000.0));
                }
                if round_age >= ROUND_LIMIT.as_millis() as u64 {
                    hang(&format!(
                        "the round has run for {:.1} s",
                        round_age as f64 / 1000.0
                    ));
                }
            }
        })
        .expect("soak: cannot start the watchdog thread");
}

/// Prints the soak's goroutines that are still running, and exits.
fn hang(what: &str) -> ! {
    let now = now_ms();
    let seed = SEED.load(Relaxed);
    let main_phase = *MAIN_PHASE.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "soak: HANG in round {} (seed {seed}; replay with --seed {seed}): {what}; the main \
         thread is at: {main_phase}",
        ROUND.load(Relaxed)
    );
    // A worker stuck while holding the table's lock must not hang the report as well.
    let mut records: Vec<Arc<Record>> = Vec::new();
    for attempt in 0.. {
        match REGISTRY.records.try_lock() {
            Ok(table) => {
                records = table.values().cloned().collect();
                break;
            }
            Err(TryLockError::Poisoned(poisoned)) => {
                records = poisoned.into_inner().values().cloned().collect();
                break;
            }
            Err(TryLockError::WouldBlock) if attempt < 100 => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                eprintln!("soak: the progress table stays locked; no goroutine list");
                process::exit(1);
            }
        }
    }
    records.sort_by_key(|record| record.goroutine);
    eprintln!("soak: goroutines still running: {}", records.len());
    eprintln!(
        "{:>10}  {:<16}  {:<20}  {:>8}",
        "goroutine", "kind", "last step", "idle"
    );
    const SHOWN: usize = 200;
    for record in records.iter().take(SHOWN) {
        let step = Step::ALL[usize::from(record.step.load(Relaxed))];
        let idle = now.saturating_sub(record.since_ms.load(Relaxed));
        eprintln!(
            "{:>10}  {:<16}  {:<20}  {:>6.1} s",
            record.goroutine,
            record.kind,
            step.name(),
            idle as f64 / 1000.0
        );
    }
    if records.len() > SHOWN {
        eprintln!("           ... and {} more", records.len() - SHOWN);
    }
    process::exit(1);
}

/// A yield, a short sleep (0 to 2 ms) or nothing, at random.
fn jitter(rng: &mut Rng, tracker: &Tracker) {
    match rng.below(16) {
        0..=2 => {
            tracker.at(Step::Yield);
            gsched::yield_now();
            tracker.progress();
        }
        3 => {
            tracker.at(Step::Sleep);
            gsched::sleep(rng.micros(2000));
            tracker.progress();
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Channels

/// Sends one message, in one of five styles chosen at random.
fn send_one(rng: &mut Rng, tracker: &Tracker, tx: &Sender<Message>, value: u64) {
    let closed = || -> ! { fail("a send found its channel closed while receivers remained") };
    match rng.below(5) {
        0 => {
            tracker.at(Step::Send);
            if tx.send(Message::new(value)).is_err() {
                closed();
            }
        }
        1 => {
            let mut message = Message::new(value);
            loop {
                tracker.at(Step::Send);
                match tx.send_timeout(message, rng.micros(1000)) {
                    Ok(()) => break,
                    Err(SendTimeoutError::Timeout(back)) => {
                        TIMEOUTS.fetch_add(1, Relaxed);
                        message = back;
                    }
                    Err(SendTimeoutError::Closed(_)) => closed(),
                }
            }
        }
        2 => {
            let mut message = Message::new(value);
            let mut misses = 0;
            loop {
                tracker.at(Step::Send);
                match tx.try_send(message) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) if misses < POLL_LIMIT => {
                        misses += 1;
                        message = back;
                        gsched::yield_now();
                    }
                    Err(TrySendError::Full(back)) => {
                        if tx.send(back).is_err() {
                            closed();
                        }
                        break;
                    }
                    Err(TrySendError::Closed(_)) => closed(),
                }
            }
        }
        3 => loop {
            tracker.at(Step::Select);
            // The message of a case not chosen is dropped: each attempt makes a fresh one.
            let sent = select! {
                send(tx, Message::new(value)) -> result => {
                    if result.is_err() {
                        closed();
                    }
                    true
                },
                timeout(rng.micros(1000)) => {
                    TIMEOUTS.fetch_add(1, Relaxed);
                    false
                },
            };
            if sent {
                break;
            }
        },
        _ => {
            let mut misses = 0;
            loop {
                tracker.at(Step::Select);
                let sent = select! {
                    send(tx, Message::new(value)) -> result => {
                        if result.is_err() {
                            closed();
                        }
                        true
                    }
                    default => false,
                };
                if sent {
                    break;
                }
                misses += 1;
                if misses == POLL_LIMIT {
                    tracker.at(Step::Send);
                    if tx.send(Message::new(value)).is_err() {
                        closed();
                    }
                    break;
                }
                gsched::yield_now();
            }
        }
    }
    tracker.progress();
}

/// Receives one message in one of five styles chosen at random; `None` once the channel is
/// closed and drained.
fn recv_one(rng: &mut Rng, tracker: &Tracker, rx: &Receiver<Message>) -> Option<Message> {
    let received = match rng.below(5) {
        0 => {
            tracker.at(Step::Recv);
            rx.recv().ok()
        }
        1 => loop {
            tracker.at(Step::Recv);
            match rx.recv_timeout(rng.micros(1000)) {
                Ok(message) => break Some(message),
                Err(RecvTimeoutError::Timeout) => {
                    TIMEOUTS.fetch_add(1, Relaxed);
                }
                Err(RecvTimeoutError::Closed) => break None,
            }
        },
        2 => {
            let mut misses = 0;
            loop {
                tracker.at(Step::Recv);
                match rx.try_recv() {
                    Ok(message) => break Some(message),
                    Err(TryRecvError::Closed) => break None,
                    Err(TryRecvError::Empty) if misses < POLL_LIMIT => {
                        misses += 1;
                        gsched::yield_now();
                    }
                    Err(TryRecvError::Empty) => break rx.recv().ok(),
                }
            }
        }
        3 => loop {
            tracker.at(Step::Select);
            select! {
                recv(rx) -> result => break result.ok(),
                timeout(rng.micros(1000)) => {
                    TIMEOUTS.fetch_add(1, Relaxed);
                },
            }
        },
        _ => {
            let mut misses = 0;
            loop {
                tracker.at(Step::Select);
                select! {
                    recv(rx) -> result => break result.ok(),
                    default => {},
                }
                misses += 1;
                if misses == POLL_LIMIT {
                    tracker.at(Step::Recv);
                    break rx.recv().ok();
                }
                gsched::yield_now();
            }
        }
    };
    tracker.progress();
    received
}

fn producer(
    mut rng: Rng,
    tx: Sender<Message>,
    ledger: Arc<Ledger>,
    values: Vec<u64>,
    panic_at: Option<usize>,
) {
    let tracker = Tracker::enter("producer");
    let _held = Tracked::new();
    for (index, value) in values.into_iter().enumerate() {
        if panic_at == Some(index) {
            tracker.at(Step::Panic);
            deliberate_panic();
        }
        send_one(&mut rng, &tracker, &tx, value);
        ledger.sent(value);
        jitter(&mut rng, &tracker);
    }
}

fn consumer(mut rng: Rng, rx: Receiver<Message>, ledger: Arc<Ledger>) {
    let tracker = Tracker::enter("consumer");
    while let Some(message) = recv_one(&mut rng, &tracker, &rx) {
        ledger.received(message);
        jitter(&mut rng, &tracker);
    }
}

/// Offers each value to two channels at once; exactly one of them takes it.
fn dual_producer(
    mut rng: Rng,
    (a, a_ledger): (Sender<Message>, Arc<Ledger>),
    (b, b_ledger): (Sender<Message>, Arc<Ledger>),
    values: Vec<u64>,
) {
    let tracker = Tracker::enter("dual producer");
    for value in values {
        loop {
            tracker.at(Step::Select);
            let sent = select! {
                send(a, Message::new(value)) -> result => {
                    if result.is_err() {
                        fail("a select's send found its channel closed while receivers remained");
                    }
                    a_ledger.sent(value);
                    true
                },
                send(b, Message::new(value)) -> result => {
                    if result.is_err() {
                        fail("a select's send found its channel closed while receivers remained");
                    }
                    b_ledger.sent(value);
                    true
                },
                timeout(rng.micros(1000)) => {
                    TIMEOUTS.fetch_add(1, Relaxed);
                    false
                },
            };
            if sent {
                tracker.progress();
                break;
            }
        }
        jitter(&mut rng, &tracker);
    }
}

/// Receives from two channels at once until both are closed.
fn dual_consumer(
    mut rng: Rng,
    (a, a_ledger): (Receiver<Message>, Arc<Ledger>),
    (b, b_ledger): (Receiver<Message>, Arc<Ledger>),
) {
    let tracker = Tracker::enter("dual consumer");
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tracker.at(Step::Select);
        if a_open && b_open {
            select! {
                recv(a) -> result => match result {
                    Ok(message) => a_ledger.received(message),
                    Err(_) => a_open = false,
                },
                recv(b) -> result => match result {
                    Ok(message) => b_ledger.received(message),
                    Err(_) => b_open = false,
                },
                timeout(rng.micros(1000)) => {
                    TIMEOUTS.fetch_add(1, Relaxed);
                    continue;
                },
            }
        } else if a_open {
            match recv_one(&mut rng, &tracker, &a) {
                Some(message) => a_ledger.received(message),
                None => a_open = false,
            }
        } else {
            match recv_one(&mut rng, &tracker, &b) {
                Some(message) => b_ledger.received(message),
                None => b_open = false,
            }
        }
        tracker.progress();
        jitter(&mut rng, &tracker);
    }
}

// ---------------------------------------------------------------------------------------------
// Locks

/// Increments the counter `count` times with a read, a possible yield, and a write under the
/// lock, so a second holder would lose an update; optionally panics holding the lock at the end
/// (after one more increment).
fn mutex_worker(mut rng: Rng, counter: Arc<Mutex<u64>>, count: u64, panic_holding: bool) {
    let tracker = Tracker::enter("mutex");
    let _held = Tracked::new();
    for _ in 0..count {
        tracker.at(Step::Lock);
        let mut guard = match rng.one_in(4) {
            true => {
                let mut misses = 0;
                loop {
                    if let Some(guard) = counter.try_lock() {
                        break guard;
                    }
                    misses += 1;
                    if misses == POLL_LIMIT {
                        break counter.lock();
                    }
                    gsched::yield_now();
                }
            }
            false => counter.lock(),
        };
        let seen = *guard;
        if rng.one_in(10) {
            gsched::yield_now();
        } else if rng.one_in(60) {
            gsched::sleep(rng.micros(1000));
        }
        *guard = seen + 1;
        drop(guard);
        tracker.progress();
        jitter(&mut rng, &tracker);
    }
    if panic_holding {
        tracker.at(Step::Lock);
        let mut guard = counter.lock();
        *guard += 1;
        tracker.at(Step::Panic);
        deliberate_panic();
    }
}

/// Writers move both halves of the pair in two steps with a possible yield between; a reader
/// that sees them differ ran alongside a writer.
fn rw_writer(mut rng: Rng, pair: Arc<RwMutex<(u64, u64)>>, count: u64) {
    let tracker = Tracker::enter("rw writer");
    for _ in 0..count {
        tracker.at(Step::Write);
        let mut guard = match rng.one_in(4) {
            true => loop {
                if let Some(guard) = pair.try_write() {
                    break guard;
                }
                tracker.at(Step::Yield);
                gsched::yield_now();
                tracker.at(Step::Write);
                if rng.one_in(8) {
                    break pair.write();
                }
            },
            false => pair.write(),
        };
        guard.0 += 1;
        if rng.one_in(5) {
            gsched::yield_now();
        }
        guard.1 += 1;
        drop(guard);
        tracker.progress();
        jitter(&mut rng, &tracker);
    }
}

fn rw_reader(mut rng: Rng, pair: Arc<RwMutex<(u64, u64)>>, count: u64, panic_holding: bool) {
    let tracker = Tracker::enter("rw reader");
    let _held = Tracked::new();
    for _ in 0..count {
        tracker.at(Step::Read);
        let guard = match rng.one_in(4) {
            true => match pair.try_read() {
                Some(guard) => guard,
                None => pair.read(),
            },
            false => pair.read(),
        };
        let seen = *guard;
        check(seen.0 == seen.1, || {
            format!("RwMutex: a reader saw a write half done: {seen:?}")
        });
        if rng.one_in(5) {
            gsched::yield_now();
        }
        check(*guard == seen, || {
            format!(
                "RwMutex: the value changed under a read lock: {seen:?}, then {:?}",
                *guard
            )
        });
        drop(guard);
        tracker.progress();
        jitter(&mut rng, &tracker);
    }
    if panic_holding {
        tracker.at(Step::Read);
        let _guard = pair.read();
        tracker.at(Step::Panic);
        deliberate_panic();
    }
}

// ---------------------------------------------------------------------------------------------
// WaitGroup, Cond, spawn trees, panics

/// Starts `children` goroutines with `WaitGroup::go`, some of which add a grandchild; waits
/// (sometimes from a second goroutine too) and checks that every one had finished.
fn fan_out(mut rng: Rng, children: u64) {
    let tracker = Tracker::enter("fan-out");
    let group = WaitGroup::new();
    let done = Arc::new(AtomicU64::new(0));
    let mut expected = 0;
    for _ in 0..children {
        let grandchild = rng.one_in(3);
        expected += 1 + u64::from(grandchild);
        let (inner_group, done) = (group.clone(), Arc::clone(&done));
        let mut child_rng = rng.fork();
        group.go(move || {
            let tracker = Tracker::enter("wg child");
            let _held = Tracked::new();
            jitter(&mut child_rng, &tracker);
            if grandchild {
                inner_group.add(1);
                let done = Arc::clone(&done);
                let mut grandchild_rng = child_rng.fork();
                drop(go(move || {
                    let tracker = Tracker::enter("wg grandchild");
                    let held = Tracked::new();
                    jitter(&mut grandchild_rng, &tracker);
                    drop(held);
                    done.fetch_add(1, Relaxed);
                    inner_group.done();
                }));
            }
            jitter(&mut child_rng, &tracker);
            done.fetch_add(1, Relaxed);
        });
    }
    let second = rng.one_in(2).then(|| {
        let (group, done) = (group.clone(), Arc::clone(&done));
        go(move || {
            let tracker = Tracker::enter("wg waiter");
            tracker.at(Step::WaitGroup);
            group.wait();
            tracker.progress();
            let finished = done.load(Relaxed);
            check(finished == expected, || {
                format!("a second WaitGroup.wait returned with {finished} of {expected} done")
            });
        })
    });
    tracker.at(Step::WaitGroup);
    group.wait();
    tracker.progress();
    let finished = done.load(Relaxed);
    check(finished == expected, || {
        format!("WaitGroup.wait returned with {finished} of {expected} done")
    });
    if let Some(second) = second {
        tracker.at(Step::Join);
        settle(second, "WaitGroup waiter");
        tracker.progress();
    }
}

/// A queue under a Mutex with a Cond: producers push and signal, consumers wait while it is
/// empty and a producer remains.
struct CondQueue {
    state: Mutex<(VecDeque<Message>, usize)>,
    nonempty: Cond,
    ledger: Ledger,
}

fn cond_producer(mut rng: Rng, queue: Arc<CondQueue>, values: Vec<u64>) {
    let tracker = Tracker::enter("cond producer");
    for value in values {
        tracker.at(Step::Lock);
        queue.state.lock().0.push_back(Message::new(value));
        queue.ledger.sent(value);
        if rng.one_in(3) {
            queue.nonempty.broadcast();
        } else {
            queue.nonempty.signal();
        }
        tracker.progress();
        jitter(&mut rng, &tracker);
    }
    tracker.at(Step::Lock);
    let last = {
        let mut state = queue.state.lock();
        state.1 -= 1;
        state.1 == 0
    };
    if last {
        // Every consumer must see that nothing more will come.
        queue.nonempty.broadcast();
    }
    tracker.progress();
}

fn cond_consumer(mut rng: Rng, queue: Arc<CondQueue>) {
    let tracker = Tracker::enter("cond consumer");
    loop {
        tracker.at(Step::CondWait);
        let mut state = queue.state.lock();
        if rng.one_in(2) {
            state = queue.nonempty.wait_while(state, |(items, producers)| {
                items.is_empty() && *producers > 0
            });
        } else {
            while state.0.is_empty() && state.1 > 0 {
                state = queue.nonempty.wait(state);
            }
        }
        let next = state.0.pop_front();
        drop(state);
        tracker.progress();
        match next {
            Some(message) => queue.ledger.received(message),
            None => break,
        }
        jitter(&mut rng, &tracker);
    }
}

/// The shape of one node of a spawn tree: a pure function of its seed, so the expected sum can
/// be computed without running anything.
struct Node {
    value: u64,
    /// Each child's seed, and whether it panics instead.
    children: Vec<(u64, bool)>,
}

fn plan_node(seed: u64, depth: u64) -> Node {
    let mut rng = Rng::new(seed);
    let value = rng.next() >> 16;
    let count = rng.below(4u64.saturating_sub(depth));
    let children = (0..count).map(|_| (rng.next(), rng.one_in(6))).collect();
    Node { value, children }
}

fn expected_tree(seed: u64, depth: u64) -> u64 {
    let node = plan_node(seed, depth);
    node.children
        .iter()
        .filter(|(_, panics)| !panics)
        .fold(node.value, |sum, &(child, _)| {
            sum.wrapping_add(expected_tree(child, depth + 1))
        })
}

fn run_tree(seed: u64, depth: u64) -> u64 {
    let tracker = Tracker::enter("spawn tree");
    let _held = Tracked::new();
    let node = plan_node(seed, depth);
    let mut rng = Rng::new(mix(seed));
    let handles: Vec<_> = node
        .children
        .iter()
        .map(|&(child, panics)| {
            if panics {
                PANICS_EXPECTED.fetch_add(1, Relaxed);
                go(move || -> u64 {
                    let tracker = Tracker::enter("panicking leaf");
                    let _held = Tracked::new();
                    jitter(&mut Rng::new(child), &tracker);
                    tracker.at(Step::Panic);
                    deliberate_panic()
                })
            } else {
                go(move || run_tree(child, depth + 1))
            }
        })
        .collect();
    jitter(&mut rng, &tracker);
    let mut sum = node.value;
    for ((_, panics), handle) in node.children.iter().zip(handles) {
        tracker.at(Step::Join);
        let outcome = settle(handle, "spawn tree");
        tracker.progress();
        match (outcome, panics) {
            (Some(value), false) => sum = sum.wrapping_add(value),
            (None, true) => {}
            (Some(_), true) => fail("a goroutine meant to panic returned"),
            (None, false) => fail("a spawn-tree goroutine panicked that was not meant to"),
        }
    }
    sum
}

fn panicker(mut rng: Rng) {
    let tracker = Tracker::enter("panicker");
    let _held = Tracked::new();
    jitter(&mut rng, &tracker);
    let _also = Message::new(0);
    tracker.at(Step::Panic);
    deliberate_panic();
}

// ---------------------------------------------------------------------------------------------
// A round

type Job = (&'static str, Box<dyn FnOnce() + Send>);

/// One round, run as the main goroutine of the long-lived runtime: spawns the population,
/// joins it, and checks what it did.
fn round(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut jobs: Vec<Job> = Vec::new();
    let mut panics = 0;
    // Unique in the round, so a value received twice and one lost cannot cancel out.
    let mut next_value = {
        let mut counter = 0u64;
        move || {
            counter += 1;
            mix(seed ^ counter)
        }
    };

    // Channels, each with its producers and consumers; some pairs also share a dual producer
    // and a dual consumer.
    let mut channels = Vec::new();
    for _ in 0..rng.range(2, 6) {
        let capacity = [0, 0, 1, 4, 16][rng.below(5) as usize];
        let (tx, rx) = chan::<Message>(capacity);
        channels.push((tx, rx, Arc::new(Ledger::default()), capacity));
    }
    for (tx, rx, ledger, _) in &channels {
        for _ in 0..rng.range(1, 6) {
            let values: Vec<u64> = (0..rng.range(0, 40)).map(|_| next_value()).collect();
            let panic_at = rng
                .one_in(8)
                .then(|| rng.below(values.len() as u64 + 1) as usize);
            let panic_at = panic_at.filter(|&at| at < values.len());
            panics += u64::from(panic_at.is_some());
            let (tx, ledger, rng) = (tx.clone(), Arc::clone(ledger), rng.fork());
            jobs.push((
                "producer",
                Box::new(move || producer(rng, tx, ledger, values, panic_at)),
            ));
        }
        for _ in 0..rng.range(1, 3) {
            let (rx, ledger, rng) = (rx.clone(), Arc::clone(ledger), rng.fork());
            jobs.push(("consumer", Box::new(move || consumer(rng, rx, ledger))));
        }
    }
    for _ in 0..rng.range(0, 2) {
        let a = rng.below(channels.len() as u64) as usize;
        let b = (a + 1 + rng.below(channels.len() as u64 - 1) as usize) % channels.len();
        let (a, b) = (&channels[a], &channels[b]);
        let values: Vec<u64> = (0..rng.range(1, 40)).map(|_| next_value()).collect();
        let ends = (
            (a.0.clone(), Arc::clone(&a.2)),
            (b.0.clone(), Arc::clone(&b.2)),
        );
        let producer_rng = rng.fork();
        jobs.push((
            "dual producer",
            Box::new(move || dual_producer(producer_rng, ends.0, ends.1, values)),
        ));
        let ends = (
            (a.1.clone(), Arc::clone(&a.2)),
            (b.1.clone(), Arc::clone(&b.2)),
        );
        let consumer_rng = rng.fork();
        jobs.push((
            "dual consumer",
            Box::new(move || dual_consumer(consumer_rng, ends.0, ends.1)),
        ));
    }
    // Only the jobs may hold senders, or the channels would never close.
    let ledgers: Vec<(Arc<Ledger>, usize)> = channels
        .into_iter()
        .map(|(_, _, ledger, capacity)| (ledger, capacity))
        .collect();

    let counter = Arc::new(Mutex::new(0u64));
    let mut increments = 0;
    for _ in 0..rng.range(20, 60) {
        let count = rng.range(1, 20);
        let panic_holding = rng.one_in(10);
        increments += count + u64::from(panic_holding);
        panics += u64::from(panic_holding);
        let (counter, rng) = (Arc::clone(&counter), rng.fork());
        jobs.push((
            "mutex",
            Box::new(move || mutex_worker(rng, counter, count, panic_holding)),
        ));
    }

    let pair = Arc::new(RwMutex::new((0u64, 0u64)));
    let mut writes = 0;
    for _ in 0..rng.range(3, 12) {
        let count = rng.range(1, 15);
        writes += count;
        let (pair, rng) = (Arc::clone(&pair), rng.fork());
        jobs.push(("rw writer", Box::new(move || rw_writer(rng, pair, count))));
    }
    for _ in 0..rng.range(10, 40) {
        let count = rng.range(1, 15);
        let panic_holding = rng.one_in(12);
        panics += u64::from(panic_holding);
        let (pair, rng) = (Arc::clone(&pair), rng.fork());
        jobs.push((
            "rw reader",
            Box::new(move || rw_reader(rng, pair, count, panic_holding)),
        ));
    }

    for _ in 0..rng.range(2, 6) {
        let (children, rng) = (rng.range(2, 16), rng.fork());
        jobs.push(("fan-out", Box::new(move || fan_out(rng, children))));
    }

    let producers = rng.range(1, 5) as usize;
    let queue = Arc::new(CondQueue {
        state: Mutex::new((VecDeque::new(), producers)),
        nonempty: Cond::new(),
        ledger: Ledger::default(),
    });
    for _ in 0..producers {
        let values: Vec<u64> = (0..rng.range(0, 30)).map(|_| next_value()).collect();
        let (queue, rng) = (Arc::clone(&queue), rng.fork());
        jobs.push((
            "cond producer",
            Box::new(move || cond_producer(rng, queue, values)),
        ));
    }
    for _ in 0..rng.range(1, 4) {
        let (queue, rng) = (Arc::clone(&queue), rng.fork());
        jobs.push(("cond consumer", Box::new(move || cond_consumer(rng, queue))));
    }

    for _ in 0..rng.range(4, 10) {
        let tree = rng.next();
        jobs.push((
            "spawn tree",
            Box::new(move || {
                let got = run_tree(tree, 0);
                let expected = expected_tree(tree, 0);
                check(got == expected, || {
                    format!("a spawn tree summed to {got:#x}, not {expected:#x}")
                });
            }),
        ));
    }

    for _ in 0..rng.range(3, 15) {
        panics += 1;
        let rng = rng.fork();
        jobs.push(("panicker", Box::new(move || panicker(rng))));
    }

    PANICS_EXPECTED.fetch_add(panics, Relaxed);
    // Fisher-Yates, so each kind meets the others in a different order every round.
    for index in (1..jobs.len()).rev() {
        jobs.swap(index, rng.below(index as u64 + 1) as usize);
    }
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(kind, job)| (kind, spawn_here(job, rng.one_in(4))))
        .collect();
    for (kind, handle) in handles {
        settle(handle, kind);
        LAST_PROGRESS.store(now_ms(), Relaxed);
    }

    for (index, (ledger, capacity)) in ledgers.iter().enumerate() {
        ledger.check(&format!("channel {index} (capacity {capacity})"));
    }
    queue.ledger.check("the Cond queue");
    let total = *counter.lock();
    check(total == increments, || {
        format!("Mutex: the counter reads {total} after {increments} increments")
    });
    let seen = *pair.read();
    check(seen == (writes, writes), || {
        format!("RwMutex: the pair reads {seen:?} after {writes} writes")
    });
}

/// Waits until every goroutine of the process has finished, as each round must leave it.
fn wait_for_no_goroutines(after: &str) {
    let started = Instant::now();
    loop {
        let live = gsched::num_goroutines();
        if live == 0 {
            INVARIANTS.fetch_add(1, Relaxed);
            return;
        }
        if started.elapsed() > Duration::from_secs(5) {
            fail(format!(
                "{live} goroutines still live 5 s after {after} ({} progress records open)",
                live_records()
            ));
        }
        thread::sleep(Duration::from_micros(200));
    }
}

/// Every counted value created so far has been dropped, and every expected panic observed.
fn check_balances(after: &str) {
    let (created, dropped) = (CREATED.load(Relaxed), DROPPED.load(Relaxed));
    check(created == dropped, || {
        format!(
            "{} of {created} counted values never dropped after {after}",
            created.wrapping_sub(dropped)
        )
    });
    let (expected, observed) = (PANICS_EXPECTED.load(Relaxed), PANICS_OBSERVED.load(Relaxed));
    check(expected == observed, || {
        format!("{expected} deliberate panics so far, {observed} seen by joins, after {after}")
    });
    let records = live_records();
    check(records == 0, || {
        format!("{records} goroutines' progress records were never closed after {after}")
    });
}

// ---------------------------------------------------------------------------------------------
// Shutdown in mid-flight

/// What blocked goroutines wait on: nothing here ever becomes ready while the runtime runs.
#[derive(Clone)]
struct Traps {
    /// Its only sender stays with the main thread until after the shutdown.
    never: Receiver<Message>,
    /// Full, and its receiver stays with the main thread.
    full: Sender<Message>,
    /// Held by the holder goroutine.
    mutex: Arc<Mutex<u64>>,
    /// Write-locked by the holder goroutine.
    rw: Arc<RwMutex<u64>>,
    /// Its count stays at one.
    group: WaitGroup,
    /// Never signaled.
    cond: Arc<(Mutex<bool>, Cond)>,
    /// Taken and released in a loop by the churning goroutines.
    churn: Arc<Mutex<u64>>,
    arrived: Arc<AtomicUsize>,
}

/// What the goroutines of a runtime about to shut down do: wait on a trap for good, or keep
/// busy forever, so that the shutdown finds some parked and some running.
const BLOCKING_KINDS: [&str; 18] = [
    "recv",
    "send on full",
    "select",
    "recv_timeout(MAX)",
    "after(MAX)",
    "Mutex.lock",
    "RwMutex.read",
    "RwMutex.write",
    "WaitGroup.wait",
    "Cond.wait",
    "sleep",
    "park",
    "nested",
    "yield loop",
    "sleep loop",
    "lock churn",
    "join",
    "ping-pong",
];

/// Kinds from here on start a second goroutine of their own.
const PAIRED: usize = 16;
const JOINER: usize = 16;
const PING_PONG: usize = 17;

/// Runs as a goroutine that never finishes, doing `BLOCKING_KINDS[kind]`.
fn blocked(kind: usize, traps: Traps) {
    let tracker = Tracker::enter(BLOCKING_KINDS[kind]);
    let _held = Tracked::new();
    let _message = Message::new(kind as u64);
    traps.arrived.fetch_add(1, Relaxed);
    tracker.at(Step::Blocked);
    match kind {
        0 => drop(traps.never.recv()),
        1 => drop(traps.full.send(Message::new(1))),
        2 => select! {
            recv(traps.never) -> _message => {},
            send(traps.full, Message::new(2)) -> _result => {},
        },
        3 => drop(traps.never.recv_timeout(Duration::MAX)),
        4 => drop(gsync::after(Duration::MAX).recv()),
        5 => drop(traps.mutex.lock()),
        6 => drop(traps.rw.read()),
        7 => drop(traps.rw.write()),
        8 => traps.group.wait(),
        9 => {
            let (flag, cond) = &*traps.cond;
            let mut set = flag.lock();
            while !*set {
                set = cond.wait(set);
            }
        }
        10 => gsched::sleep(Duration::from_secs(3600)),
        11 => gsched::park(),
        // Blocked three frames deep, holding more counted values on the way.
        12 => {
            fn deeper(depth: u32, traps: &Traps) {
                let _held = Tracked::new();
                match depth {
                    0 => drop(traps.never.recv()),
                    _ => deeper(depth - 1, traps),
                }
            }
            deeper(3, &traps);
        }
        // Never parked: runnable until the shutdown stops it.
        13 => loop {
            gsched::yield_now();
        },
        14 => loop {
            gsched::sleep(Duration::from_micros(100));
        },
        15 => loop {
            let mut guard = traps.churn.lock();
            *guard += 1;
            gsched::yield_now();
            drop(guard);
        },
        JOINER => {
            let inner = traps.clone();
            drop(go(move || blocked(0, inner)).join());
        }
        // Two goroutines passing a message back and forth until the shutdown unwinds one of
        // them, which closes the other's channels.
        PING_PONG => {
            let (ping_tx, ping_rx) = chan::<Message>(0);
            let (pong_tx, pong_rx) = chan::<Message>(0);
            let arrived = Arc::clone(&traps.arrived);
            drop(go(move || {
                let _tracker = Tracker::enter("ping-pong partner");
                let _held = Tracked::new();
                arrived.fetch_add(1, Relaxed);
                while let Ok(message) = ping_rx.recv() {
                    if pong_tx.send(message).is_err() {
                        break;
                    }
                }
                loop {
                    gsched::park();
                }
            }));
            while ping_tx.send(Message::new(3)).is_ok() && pong_rx.recv().is_ok() {}
        }
        _ => unreachable!("no blocking kind {kind}"),
    }
    // The shutdown may unwind a goroutine that holds a lock or a channel end first, which then
    // wakes one here: it parks again until the shutdown reaches it.
    loop {
        gsched::park();
    }
}

/// Builds a runtime, blocks goroutines on every kind of trap, shuts the runtime down, and
/// checks that each was reported and unwound.
fn shutdown_round(seed: u64, workers: Option<usize>) {
    phase("building a runtime to shut down");
    let runtime = build_runtime(workers);
    let mut rng = Rng::new(seed);
    let (never_tx, never) = chan::<Message>(0);
    let (full, full_rx) = chan::<Message>(1);
    if full.send(Message::new(0)).is_err() {
        fail("a fresh channel refused a send");
    }
    let group = WaitGroup::new();
    group.add(1);
    let traps = Traps {
        never,
        full,
        mutex: Arc::new(Mutex::new(0)),
        rw: Arc::new(RwMutex::new(0)),
        group: group.clone(),
        cond: Arc::new((Mutex::new(false), Cond::new())),
        churn: Arc::new(Mutex::new(0)),
        arrived: Arc::new(AtomicUsize::new(0)),
    };
    let mut handles = Vec::new();
    let mut unfinished = 0;

    // The holder takes the locks first, then blocks too.
    let holder_traps = traps.clone();
    handles.push(spawn_on(
        &runtime,
        Builder::new().name("holder"),
        move || {
            let tracker = Tracker::enter("lock holder");
            let _held = Tracked::new();
            let _mutex = holder_traps.mutex.lock();
            let _rw = holder_traps.rw.write();
            holder_traps.arrived.fetch_add(1, Relaxed);
            tracker.at(Step::Blocked);
            drop(holder_traps.never.recv());
            loop {
                gsched::park();
            }
        },
    ));
    unfinished += 1;
    let mut arrivals = 1;
    phase("waiting for the lock holder to block");
    wait_for_arrivals(&traps.arrived, arrivals);

    // Some finish normally before the shutdown: they must not be reported.
    for _ in 0..rng.range(0, 5) {
        let value = rng.next();
        let handle = spawn_on(&runtime, Builder::new(), move || {
            let _held = Tracked::new();
            gsched::yield_now();
            value
        });
        phase("joining a goroutine before the shutdown");
        if handle.join().ok() != Some(value) {
            fail("a goroutine of the runtime about to shut down returned the wrong value");
        }
    }

    for _ in 0..rng.range(10, 60) {
        let kind = rng.below(BLOCKING_KINDS.len() as u64) as usize;
        let traps = traps.clone();
        handles.push(spawn_on(&runtime, builder(rng.one_in(3)), move || {
            blocked(kind, traps)
        }));
        let goroutines = if kind >= PAIRED { 2 } else { 1 };
        unfinished += goroutines;
        arrivals += goroutines;
    }
    phase("waiting for the goroutines to block");
    wait_for_arrivals(&traps.arrived, arrivals);
    // Give the last ones time to park rather than be caught on their way.
    thread::sleep(rng.micros(2000));

    // Some are spawned at the last moment: they may never run. None of the paired kinds, whose
    // second goroutine would exist only if the first ran.
    for _ in 0..rng.range(0, 8) {
        let kind = rng.below(PAIRED as u64) as usize;
        let traps = traps.clone();
        handles.push(spawn_on(&runtime, builder(rng.one_in(3)), move || {
            blocked(kind, traps)
        }));
        unfinished += 1;
    }

    phase("shutting a runtime down");
    let report = runtime.shutdown();
    LAST_PROGRESS.store(now_ms(), Relaxed);
    check(report.leaked.len() == unfinished, || {
        format!(
            "shutdown reported {} unfinished goroutines, not {unfinished}:\n  {}",
            report.leaked.len(),
            report.leaked.join("\n  ")
        )
    });
    phase("joining the goroutines of a runtime shut down");
    for handle in handles {
        check(handle.join().is_err(), || {
            "a goroutine blocked for good finished before the shutdown".to_string()
        });
    }
    drop((never_tx, full_rx, traps, group));
    phase("after a shutdown");
    wait_for_no_goroutines("a shutdown");
    check_balances("a shutdown");
}

/// A builder for a goroutine that stays on its worker, or one that may resume on any.
fn builder(migratable: bool) -> Builder {
    match migratable {
        // SAFETY: no soak goroutine holds anything tied to its thread across a blocking call:
        // what it holds is `Arc`s, channel halves, counted values and gsync guards, and the
        // progress table's std lock is taken and released within calls that never block.
        true => unsafe { Builder::new().migratable() },
        false => Builder::new(),
    }
}

/// Spawns on the calling goroutine's runtime.
#[track_caller]
fn spawn_here<F, T>(f: F, migratable: bool) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    builder(migratable)
        .spawn(f)
        .unwrap_or_else(|err| fail(format!("cannot spawn a goroutine: {err}")))
}

#[track_caller]
fn spawn_on<F, T>(runtime: &Runtime, builder: Builder, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    builder
        .spawn_on(runtime, f)
        .unwrap_or_else(|err| fail(format!("cannot spawn a goroutine: {err}")))
}

fn wait_for_arrivals(arrived: &AtomicUsize, count: usize) {
    // No progress is recorded here: a goroutine that never arrives is a hang to report.
    while arrived.load(Relaxed) < count {
        thread::sleep(Duration::from_micros(100));
    }
}

fn build_runtime(workers: Option<usize>) -> Runtime {
    let builder = Runtime::builder();
    let builder = match workers {
        Some(count) => builder.workers(count),
        None => builder,
    };
    builder
        .build()
        .unwrap_or_else(|err| fail(format!("cannot build a runtime: {err}")))
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("soak: {message}\n{USAGE}");
            process::exit(2);
        }
    };
    let seed = options.seed.unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        mix(nanos ^ u64::from(process::id()))
    });
    SEED.store(seed, Relaxed);
    LazyLock::force(&CLOCK);

    let runtime = build_runtime(options.workers);
    // The runtime installs its panic hook when the first one is built; deliberate panics then
    // stay quiet, and every other one is still printed.
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<Deliberate>() {
            previous(info);
        }
    }));
    println!(
        "soak: seed {seed} (replay with --seed {seed}), {} workers, {:.0} s",
        runtime.workers(),
        options.duration.as_secs_f64()
    );
    start_watchdog();

    let started = Instant::now();
    let (mut rounds, mut shutdowns) = (0u64, 0u64);
    while started.elapsed() < options.duration {
        rounds += 1;
        ROUND.store(rounds, Relaxed);
        ROUND_STARTED.store(now_ms(), Relaxed);
        phase("running a round");
        let round_seed = mix(seed ^ mix(rounds));
        runtime.block_on(move || round(round_seed));
        phase("after a round");
        wait_for_no_goroutines("a round");
        check_balances("a round");
        if rounds % SHUTDOWN_EVERY == 1 {
            shutdowns += 1;
            shutdown_round(mix(round_seed), options.workers);
        }
    }
    phase("shutting down");
    let report = runtime.shutdown();
    check(report.leaked.is_empty(), || {
        format!("the main runtime had goroutines left: {:?}", report.leaked)
    });
    println!(
        "soak: ok: {} operations, {} messages, {} panics, {} rounds, {} shutdowns, {} \
         invariants checked, {} goroutines, {} timeouts, in {:.1} s (seed {seed})",
        OPS.load(Relaxed),
        MESSAGES.load(Relaxed),
        PANICS_OBSERVED.load(Relaxed),
        rounds,
        shutdowns,
        INVARIANTS.load(Relaxed),
        GOROUTINES.load(Relaxed),
        TIMEOUTS.load(Relaxed),
        started.elapsed().as_secs_f64()
    );
}
