//! Echo over loopback: the load generator, and the two servers of ours (gnet's goroutine per
//! connection, tokio's task per connection). Go's server is the twin in `benches/go`.
//!
//! ```text
//! experiment echo --server gnet|tokio|go [--go-program PATH] [--conns N] [--seconds S]
//!                 [--server-workers W] [--shared-cpus 1] [--idle 1]
//! experiment echo-server --kind gnet|tokio [--workers W] [--expect N]
//! ```
//!
//! The generator starts the server itself, on CPU 0, and runs on CPU 1 (unless `--shared-cpus`),
//! so that the two never fight for a core; its own runtime has one worker. It opens `N`
//! connections once, does one round trip on each, then request/response of 64 bytes on every
//! connection for `S` seconds, and prints requests per second, the 50th and 99th percentile
//! latency, and its own CPU time per request. With `--idle` it instead prints what the server
//! reported: (ΔVmRSS + ΔVmPTE) / N once each connection has done one round trip and waits in
//! `read`. At the end it kills the server before closing its connections, so that TIME_WAIT
//! falls on the server's side (a fresh port per run) rather than on the client's ports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::{page_table_bytes, resident_bytes};

use crate::{Options, runtime};

/// Bytes per request and per response.
const MESSAGE: usize = 64;

/// What each server reads into, as echo servers do (Go's and tokio's the same).
const SERVER_BUFFER: usize = 4096;

/// How long the server lets things settle after the last first round trip before it reads its
/// memory.
const SETTLE: Duration = Duration::from_millis(300);

/// The generator (see the module docs).
pub(crate) fn run(options: &Options) -> Result<String, String> {
    let conns: usize = options.number("conns", 1000)?;
    let seconds: f64 = options.number("seconds", 2.0)?;
    let server_workers: usize = options.number("server-workers", 1)?;
    let shared = options.number::<u8>("shared-cpus", 0)? != 0;
    let idle = options.number::<u8>("idle", 0)? != 0;
    raise_fd_limit(conns + 256)?;
    let cpus = allowed_cpus()?;
    let (server_cpus, own_cpus) = match (shared, cpus.as_slice()) {
        (false, [first, second, ..]) => (vec![*first], vec![*second]),
        (false, _) => {
            return Err("skipped: needs two CPUs to keep server and generator apart".into());
        }
        (true, _) => (cpus.clone(), cpus.clone()),
    };
    let mut server = Server::start(options, server_workers, conns, &server_cpus)?;
    set_affinity(&own_cpus).map_err(|err| format!("sched_setaffinity: {err}"))?;
    let rt = runtime(1)?;
    let addr = server.addr;
    let open = rt.block_on(move || connect_all(addr, conns))?;
    let (result, open) = if idle {
        (server.next_line(Duration::from_secs(60)), open)
    } else {
        rt.block_on(move || load(open, Duration::from_secs_f64(seconds)))
    };
    // The server's side closes first.
    server.stop();
    drop(open);
    result
}

/// Opens `n` connections, one round trip each.
fn connect_all(addr: SocketAddr, n: usize) -> Result<Vec<gnet::TcpStream>, String> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            gsched::go(move || -> Result<gnet::TcpStream, String> {
                let mut conn =
                    gnet::TcpStream::connect(addr).map_err(|err| format!("connect: {err}"))?;
                conn.set_nodelay(true).map_err(|err| err.to_string())?;
                round_trip(&mut conn, &mut [0; MESSAGE])
                    .map_err(|err| format!("first round trip: {err}"))?;
                Ok(conn)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().map_err(|_| "a client panicked".to_string())?)
        .collect()
}

fn round_trip(conn: &mut gnet::TcpStream, buf: &mut [u8; MESSAGE]) -> std::io::Result<()> {
    conn.write_all(buf)?;
    conn.read_exact(buf)
}

/// Request/response on every connection for `time`: the results line, and the connections.
fn load(
    conns: Vec<gnet::TcpStream>,
    time: Duration,
) -> (Result<String, String>, Vec<gnet::TcpStream>) {
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let cpu_before = cpu_time();
    let started = Instant::now();
    let clients: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (stop, failures, latencies) = (stop.clone(), failures.clone(), latencies.clone());
            gsched::go(move || {
                let mut mine = Vec::with_capacity(1024);
                let mut buf = [0; MESSAGE];
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    if round_trip(&mut conn, &mut buf).is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    mine.push(u32::try_from(sent.elapsed().as_nanos()).unwrap_or(u32::MAX));
                }
                latencies.lock().unwrap().extend_from_slice(&mine);
                conn
            })
        })
        .collect();
    gsched::sleep(time);
    stop.store(true, Ordering::Relaxed);
    let conns: Vec<_> = clients
        .into_iter()
        .filter_map(|client| client.join().ok())
        .collect();
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let failed = failures.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    let result = if failed > 0 {
        Err(format!("{failed} connections failed"))
    } else if latencies.is_empty() {
        Err("no request completed".into())
    } else {
        latencies.sort_unstable();
        let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        let requests = latencies.len() as f64;
        Ok(format!(
            "rps={:.0} p50_ns={} p99_ns={} gen_cpu_ns_per_req={:.0}",
            requests / elapsed.as_secs_f64(),
            percentile(0.50),
            percentile(0.99),
            cpu.as_nanos() as f64 / requests,
        ))
    };
    (result, conns)
}

/// The server process under test.
struct Server {
    child: Child,
    addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    fn start(
        options: &Options,
        workers: usize,
        expect: usize,
        cpus: &[usize],
    ) -> Result<Server, String> {
        let (workers, expect) = (workers.to_string(), expect.to_string());
        let mut command = match options.text("server", "gnet") {
            kind @ ("gnet" | "tokio") => {
                let mut command =
                    Command::new(std::env::current_exe().map_err(|err| err.to_string())?);
                command.args([
                    "echo-server",
                    "--kind",
                    kind,
                    "--workers",
                    &workers,
                    "--expect",
                    &expect,
                ]);
                command
            }
            "go" => {
                let mut command = Command::new(options.text("go-program", "bench-go"));
                command.args(["echo-server", "--workers", &workers, "--expect", &expect]);
                command
            }
            other => return Err(format!("--server {other:?}: gnet, tokio or go")),
        };
        let cpus = cpus.to_vec();
        // SAFETY: the closure only builds a CPU set on the stack and calls
        // `sched_setaffinity`, which is async-signal-safe; it allocates nothing.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || set_affinity(&cpus));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start the server: {err}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let first = server.next_line(Duration::from_secs(30))?;
        let port = first
            .strip_prefix("port=")
            .and_then(|port| port.trim().parse::<u16>().ok())
            .ok_or_else(|| format!("the server said {first:?}, not its port"))?;
        server.addr.set_port(port);
        Ok(server)
    }

    /// The server's next line of output, waited for on a plain thread.
    fn next_line(&self, wait: Duration) -> Result<String, String> {
        self.lines
            .recv_timeout(wait)
            .map_err(|_| "the server said nothing in time".to_string())
    }

    /// Kills the server, so that its side of every connection closes first.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One of our echo servers (see the module docs): prints `port=P`, serves, and after `expect`
/// connections have each done a round trip, prints `idle_bytes_per_conn=B`.
pub(crate) fn serve(options: &Options) -> Result<String, String> {
    let workers: usize = options.number("workers", 1)?;
    let expect: usize = options.number("expect", 0)?;
    raise_fd_limit(expect + 256)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|err| err.to_string())?;
    let port = listener.local_addr().map_err(|err| err.to_string())?.port();
    let baseline = resident_bytes()? + page_table_bytes()?;
    let first_trips = Arc::new(FirstTrips::new(expect, baseline));
    match options.text("kind", "gnet") {
        "gnet" => {
            let rt = runtime(workers)?;
            rt.block_on(move || {
                let listener = gnet::TcpListener::from(listener);
                announce(port);
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    let first_trips = Arc::clone(&first_trips);
                    gsched::Builder::new()
                        .round_robin()
                        .spawn(move || {
                            let _ = conn.set_nodelay(true);
                            let mut buf = [0; SERVER_BUFFER];
                            let mut first = true;
                            while let Ok(n @ 1..) = conn.read(&mut buf) {
                                if conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                                if std::mem::take(&mut first) {
                                    first_trips.one_more();
                                }
                            }
                        })
                        .map_err(|err| err.to_string())?;
                }
                Ok(String::new())
            })
        }
        "tokio" => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_io()
                .build()
                .map_err(|err| err.to_string())?;
            rt.block_on(async move {
                listener
                    .set_nonblocking(true)
                    .map_err(|err| err.to_string())?;
                let listener =
                    tokio::net::TcpListener::from_std(listener).map_err(|err| err.to_string())?;
                announce(port);
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let first_trips = Arc::clone(&first_trips);
                    tokio::spawn(async move {
                        let _ = conn.set_nodelay(true);
                        let mut buf = [0; SERVER_BUFFER];
                        let mut first = true;
                        while let Ok(n @ 1..) = conn.read(&mut buf).await {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            if std::mem::take(&mut first) {
                                first_trips.one_more();
                            }
                        }
                    });
                }
            })
        }
        other => Err(format!("--kind {other:?}: gnet or tokio")),
    }
}

fn announce(port: u16) {
    println!("port={port}");
    let _ = std::io::stdout().flush();
}

/// Counts connections that have done their first round trip; at the `expect`th, reads the
/// memory (after `SETTLE`, on a thread of its own) and prints it per connection.
struct FirstTrips {
    expect: usize,
    done: AtomicUsize,
    baseline: u64,
}

impl FirstTrips {
    fn new(expect: usize, baseline: u64) -> FirstTrips {
        FirstTrips {
            expect,
            done: AtomicUsize::new(0),
            baseline,
        }
    }

    fn one_more(&self) {
        if self.done.fetch_add(1, Ordering::Relaxed) + 1 != self.expect {
            return;
        }
        let (expect, baseline) = (self.expect, self.baseline);
        std::thread::spawn(move || {
            std::thread::sleep(SETTLE);
            if let (Ok(rss), Ok(pte)) = (resident_bytes(), page_table_bytes()) {
                println!(
                    "idle_bytes_per_conn={:.0}",
                    (rss + pte).saturating_sub(baseline) as f64 / expect as f64
                );
                let _ = std::io::stdout().flush();
            }
        });
    }
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid out-parameter for `getrusage`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: `getrusage` filled it (it cannot fail with these arguments), and zeroes are valid.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Result<Vec<usize>, String> {
    let mut set = std::mem::MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is a valid, zeroed `cpu_set_t` of the size given.
    let got = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), set.as_mut_ptr()) };
    if got != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: filled by the kernel (or zeroed).
    let set = unsafe { set.assume_init() };
    // SAFETY: `CPU_ISSET` reads the set for indices within its size.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Runs the calling thread, and the threads it creates from now on, on `cpus` only.
fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed `cpu_set_t` is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` is below CPU_SETSIZE, as `allowed_cpus` returned it.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid `cpu_set_t` of the size given; 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft descriptor limit to `wanted` (within the hard one).
fn raise_fd_limit(wanted: usize) -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-parameter, then a limit within the hard one.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err("getrlimit failed".into());
        }
        let wanted = wanted as libc::rlim_t;
        if limit.rlim_max < wanted {
            return Err(format!(
                "skipped: needs {wanted} file descriptors, the hard limit is {}",
                limit.rlim_max
            ));
        }
        limit.rlim_cur = limit.rlim_cur.max(wanted);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err("setrlimit failed".into());
        }
    }
    Ok(())
}
