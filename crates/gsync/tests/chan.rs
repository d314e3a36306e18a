//! Channels and select, from goroutines and threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gsched::{Runtime, go};
use gsync::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError, chan,
    select,
};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn an_unbuffered_send_completes_only_when_a_receiver_takes_the_value() {
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx, rx) = chan::<u32>(0);
        let sent = Arc::new(AtomicBool::new(false));
        let sender = {
            let sent = Arc::clone(&sent);
            go(move || {
                tx.send(7).unwrap();
                sent.store(true, Ordering::SeqCst);
            })
        };
        gsched::sleep(Duration::from_millis(10));
        assert!(
            !sent.load(Ordering::SeqCst),
            "an unbuffered send completed alone"
        );
        assert_eq!(rx.recv(), Ok(7));
        sender.join().unwrap();
        assert!(sent.load(Ordering::SeqCst));
    });
}

#[test]
fn a_buffered_channel_holds_values_up_to_its_capacity() {
    let (tx, rx) = chan(2);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!((tx.len(), tx.capacity()), (2, 2));
    assert_eq!(rx.recv(), Ok(1));
    tx.try_send(3).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn close_lets_receivers_drain_then_reports_closed_and_refuses_sends() {
    let (tx, rx) = chan(4);
    tx.send("a").unwrap();
    tx.send("b").unwrap();
    tx.close();
    assert_eq!(tx.send("c"), Err(SendError("c")));
    assert_eq!(tx.try_send("d"), Err(TrySendError::Closed("d")));
    assert_eq!(rx.recv(), Ok("a"));
    assert_eq!(rx.recv(), Ok("b"));
    assert_eq!(rx.recv(), Err(RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert!(rx.is_closed());
}

#[test]
fn close_of_a_closed_channel_panics_with_gos_message() {
    let (tx, _rx) = chan::<()>(0);
    tx.close();
    let panic = std::panic::catch_unwind(|| tx.close()).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"close of closed channel")
    );
}

#[test]
fn close_wakes_every_blocked_sender_and_receiver() {
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx, rx) = chan::<u32>(0);
        let (tx2, rx2) = chan::<u32>(0);
        let receivers: Vec<_> = (0..10)
            .map(|_| {
                let rx = rx.clone();
                go(move || rx.recv())
            })
            .collect();
        let senders: Vec<_> = (0..10)
            .map(|i| {
                let tx2 = tx2.clone();
                go(move || tx2.send(i))
            })
            .collect();
        gsched::sleep(Duration::from_millis(10));
        tx.close();
        drop(rx2);
        for receiver in receivers {
            assert_eq!(receiver.join().unwrap(), Err(RecvError));
        }
        let mut returned: Vec<_> = senders
            .into_iter()
            .map(|sender| sender.join().unwrap().unwrap_err().into_inner())
            .collect();
        returned.sort();
        assert_eq!(returned, (0..10).collect::<Vec<_>>(), "a value was lost");
    });
}

#[test]
fn dropping_every_sender_closes_and_dropping_every_receiver_refuses_sends() {
    let (tx, rx) = chan::<u8>(1);
    let tx2 = tx.clone();
    drop(tx);
    tx2.send(1).unwrap();
    drop(tx2);
    assert_eq!(rx.iter().collect::<Vec<_>>(), [1]);

    let (tx, rx) = chan::<u8>(1);
    drop(rx);
    assert_eq!(tx.send(9), Err(SendError(9)));
}

#[test]
fn many_producers_and_consumers_lose_and_duplicate_nothing() {
    for capacity in [0, 1, 16] {
        let rt = runtime(2);
        let received = rt.block_on(move || {
            let (tx, rx) = chan::<u64>(capacity);
            let (results_tx, results) = chan::<Vec<u64>>(8);
            for producer in 0..8u64 {
                let tx = tx.clone();
                go(move || {
                    for i in 0..2_000 {
                        tx.send(producer * 1_000_000 + i).unwrap();
                    }
                });
            }
            drop(tx);
            for _ in 0..8 {
                let (rx, results_tx) = (rx.clone(), results_tx.clone());
                go(move || results_tx.send(rx.iter().collect()).unwrap());
            }
            drop(results_tx);
            results.iter().flatten().collect::<Vec<_>>()
        });
        let mut counts = HashMap::new();
        for value in &received {
            *counts.entry(value).or_insert(0) += 1;
        }
        assert_eq!(received.len(), 16_000, "capacity {capacity}");
        assert!(
            counts.values().all(|&count| count == 1),
            "capacity {capacity}"
        );
    }
}

#[test]
fn threads_and_goroutines_share_channels() {
    let rt = runtime(2);
    let (tx, rx) = chan::<u32>(0);
    let (back_tx, back) = chan::<u32>(0);
    let echo = std::thread::spawn(move || {
        for value in rx {
            back_tx.send(value * 2).unwrap();
        }
    });
    let total = rt.block_on(move || {
        (0..1_000)
            .map(|i| {
                tx.send(i).unwrap();
                back.recv().unwrap()
            })
            .sum::<u32>()
    });
    echo.join().unwrap();
    assert_eq!(total, 2 * (0..1_000).sum::<u32>());
}

#[test]
fn timeouts_return_the_value_and_leave_the_channel_usable() {
    let (tx, rx) = chan::<u32>(0);
    let start = Instant::now();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        tx.send_timeout(5, Duration::from_millis(5)),
        Err(SendTimeoutError::Timeout(5))
    );
    let sender = std::thread::spawn(move || tx.send_timeout(6, Duration::from_secs(10)));
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(6));
    sender.join().unwrap().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Err(RecvTimeoutError::Closed)
    );
}

#[test]
fn select_takes_exactly_one_ready_case_chosen_at_random() {
    let (a_tx, a) = chan::<u32>(1000);
    let (b_tx, b) = chan::<u32>(1000);
    for i in 0..1000 {
        a_tx.send(i).unwrap();
        b_tx.send(i).unwrap();
    }
    let (mut from_a, mut from_b) = (0, 0);
    for _ in 0..1000 {
        select! {
            recv(a) -> value => { value.unwrap(); from_a += 1; }
            recv(b) -> value => { value.unwrap(); from_b += 1; }
        }
    }
    assert_eq!(from_a + from_b, 1000);
    assert_eq!(a.len() + b.len(), 1000, "a select took more than one case");
    // Uniform choice: 500 expected of each; 350 is more than 9 standard deviations away.
    assert!(
        from_a > 350 && from_b > 350,
        "biased choice: {from_a} vs {from_b}"
    );
}

#[test]
fn select_blocks_until_one_case_completes_and_leaves_the_others_untouched() {
    let rt = runtime(2);
    rt.block_on(|| {
        let (a_tx, a) = chan::<&str>(0);
        let (out_tx, out) = chan::<&str>(0);
        let (_never_tx, never) = chan::<&str>(0);
        let selector = go(move || {
            let mut picked = Vec::new();
            for _ in 0..2 {
                select! {
                    recv(a) -> value => picked.push(value.unwrap()),
                    send(out_tx, "sent") -> result => { result.unwrap(); picked.push("out"); }
                    recv(never) -> _value => unreachable!(),
                }
            }
            picked
        });
        gsched::sleep(Duration::from_millis(5));
        a_tx.send("received").unwrap();
        gsched::sleep(Duration::from_millis(5));
        assert_eq!(out.recv(), Ok("sent"));
        let mut picked = selector.join().unwrap();
        picked.sort();
        assert_eq!(picked, ["out", "received"]);
        // The losing cases left no trace: nothing else is waiting on these channels.
        assert_eq!(out.try_recv(), Err(TryRecvError::Closed));
    });
}

#[test]
fn select_default_and_timeout() {
    let (tx, rx) = chan::<u32>(0);
    let ran_default = select! {
        recv(rx) -> _value => false,
        default => true,
    };
    assert!(ran_default);
    let start = Instant::now();
    let timed_out = select! {
        recv(rx) -> _value => false,
        send(tx, 1) -> _result => false,
        timeout(Duration::from_millis(15)) => true,
    };
    assert!(timed_out && start.elapsed() >= Duration::from_millis(15));
    tx.close();
    let closed = select! {
        recv(rx) -> value => value,
        timeout(Duration::from_secs(10)) => Ok(0),
    };
    assert_eq!(closed, Err(RecvError));
}

#[test]
fn select_over_the_same_channel_twice_and_over_after() {
    let (tx, rx) = chan::<u32>(1);
    tx.send(3).unwrap();
    let got = select! {
        recv(rx) -> value => value.unwrap(),
        recv(rx) -> value => value.unwrap() + 100,
    };
    assert!(got == 3 || got == 103);
    let start = Instant::now();
    select! {
        recv(rx) -> _value => unreachable!("nothing was sent"),
        recv(gsync::after(Duration::from_millis(10))) -> at => {
            assert!(at.unwrap() >= start + Duration::from_millis(10));
        }
    }
}

#[test]
fn competing_selects_on_both_ends_pair_up_exactly_once() {
    // Selectors send and receive on the same pair of channels until told to stop, once they
    // made 100 exchanges; every completed exchange must be counted once on each side.
    let rt = runtime(2);
    let (sent, received) = rt.block_on(|| {
        let (x_tx, x) = chan::<u32>(0);
        let (y_tx, y) = chan::<u32>(0);
        let (stop_tx, stop) = chan::<()>(0);
        let exchanges = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (x_tx, x, y_tx, y) = (x_tx.clone(), x.clone(), y_tx.clone(), y.clone());
                let stop = stop.clone();
                let exchanges = std::sync::Arc::clone(&exchanges);
                go(move || {
                    let (mut sent, mut received) = (0u32, 0u32);
                    let mut count = || {
                        sent += 1;
                        exchanges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    };
                    loop {
                        select! {
                            send(x_tx, 1) -> result => { result.unwrap(); count(); }
                            recv(x) -> value => received += value.unwrap(),
                            send(y_tx, 1) -> result => { result.unwrap(); count(); }
                            recv(y) -> value => received += value.unwrap(),
                            recv(stop) -> _closed => break,
                        }
                    }
                    (sent, received)
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while exchanges.load(std::sync::atomic::Ordering::Relaxed) < 100 {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than 100 exchanges in 10 s"
            );
            gsched::sleep(Duration::from_millis(1));
        }
        drop(stop_tx);
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .fold((0, 0), |(s, r), (hs, hr)| (s + hs, r + hr))
    });
    assert_eq!(sent, received);
}

#[test]
fn tick_delivers_until_its_receiver_is_dropped() {
    let ticks = gsync::tick(Duration::from_millis(2));
    let mut last = ticks.recv().unwrap();
    for _ in 0..3 {
        let next = ticks.recv().unwrap();
        assert!(next > last);
        last = next;
    }
    drop(ticks);
    let panic = std::panic::catch_unwind(|| gsync::tick(Duration::ZERO)).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"non-positive interval for NewTicker")
    );
}

#[test]
fn an_unrepresentable_timeout_waits_without_a_deadline() {
    let (tx, rx) = chan::<u32>(1);
    tx.send(1).unwrap();
    assert_eq!(rx.recv_timeout(Duration::MAX), Ok(1));
    assert_eq!(tx.send_timeout(2, Duration::MAX), Ok(()));
    assert_eq!(rx.try_recv(), Ok(2));

    let (tx, rx) = chan::<u32>(0);
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(3).unwrap();
        tx
    });
    assert_eq!(rx.recv_timeout(Duration::MAX), Ok(3));
    let tx = sender.join().unwrap();

    let receiver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        rx.recv().unwrap()
    });
    assert_eq!(tx.send_timeout(4, Duration::MAX), Ok(()));
    assert_eq!(receiver.join().unwrap(), 4);
    assert_eq!(
        tx.send_timeout(5, Duration::MAX),
        Err(SendTimeoutError::Closed(5))
    );

    // The same from goroutines, which park rather than block their thread.
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx, rx) = chan::<u32>(0);
        let sender = go(move || {
            gsched::sleep(Duration::from_millis(20));
            tx.send(6).unwrap();
            tx.send_timeout(7, Duration::MAX)
        });
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok(6));
        gsched::sleep(Duration::from_millis(20));
        assert_eq!(rx.recv(), Ok(7));
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(
            rx.recv_timeout(Duration::MAX),
            Err(RecvTimeoutError::Closed)
        );
    });
}

#[test]
fn select_with_an_unrepresentable_timeout_waits_for_a_case() {
    let (tx, rx) = chan::<u32>(1);
    tx.send(1).unwrap();
    let got = select! {
        recv(rx) -> value => value,
        timeout(Duration::MAX) => unreachable!("a case was ready"),
    };
    assert_eq!(got, Ok(1));

    let (tx, rx) = chan::<u32>(0);
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(2).unwrap();
    });
    let got = select! {
        recv(rx) -> value => value,
        timeout(Duration::MAX) => unreachable!("no deadline to pass"),
    };
    assert_eq!(got, Ok(2));
    sender.join().unwrap();
}

#[test]
fn after_and_tick_with_an_unrepresentable_duration_never_fire() {
    let once = gsync::after(Duration::MAX);
    let ticks = gsync::tick(Duration::MAX);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(once.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(ticks.try_recv(), Err(TryRecvError::Empty));
    assert!(!once.is_closed());
    // The timer thread keeps serving the others.
    assert!(gsync::after(Duration::from_millis(1)).recv().is_ok());
}

#[test]
fn select_accepts_a_comma_after_every_kind_of_block_body() {
    let (tx, rx) = chan::<u32>(1);
    let mut log = Vec::new();
    select! {
        send(tx, 1) -> result => { result.unwrap(); log.push("send"); },
        recv(rx) -> _value => { unreachable!("empty"); },
    }
    select! {
        recv(rx) -> value => { log.push("recv"); assert_eq!(value, Ok(1)); },
        default => { unreachable!("a value was ready"); },
    }
    select! {
        recv(rx) -> _value => { unreachable!("empty"); },
        default => { log.push("default"); },
    }
    select! {
        default => { log.push("default first"); },
        recv(rx) -> _value => { unreachable!("empty"); },
    }
    select! {
        timeout(Duration::from_millis(1)) => { log.push("timeout first"); },
        recv(rx) -> _value => { unreachable!("empty"); },
        send(tx, 2) -> result => { result.unwrap(); log.push("send again"); },
    }
    select! {
        recv(rx) -> value => { log.push("recv again"); assert_eq!(value, Ok(2)); },
        timeout(Duration::from_secs(10)) => { unreachable!("a value was ready"); },
    }
    select! {
        recv(rx) -> _value => { unreachable!("empty"); },
        timeout(Duration::from_millis(1)) => { log.push("timeout"); },
    }
    assert_eq!(
        log,
        [
            "send",
            "recv",
            "default",
            "default first",
            "send again",
            "recv again",
            "timeout"
        ]
    );
}

/// Go's `BenchmarkPingPongHog` on one worker: a goroutine spins on `select!` with `default`
/// while two others ping-pong. The spinner yields when its time slice ends, so the ping-pong
/// completes; before, it held the worker for good and this hung.
#[test]
fn a_goroutine_spinning_on_select_default_shares_its_worker() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = runtime(1);
        rt.block_on(|| {
            let (stop_tx, stop) = chan::<()>(0);
            let hog = go(move || {
                loop {
                    select! {
                        recv(stop) -> _closed => return,
                        default => {}
                    }
                }
            });
            let (ping_tx, ping) = chan::<u32>(0);
            let (pong_tx, pong) = chan::<u32>(0);
            let ponger = go(move || {
                while let Ok(value) = ping.recv() {
                    pong_tx.send(value + 1).unwrap();
                }
            });
            for round in 0..200 {
                ping_tx.send(round).unwrap();
                assert_eq!(pong.recv().unwrap(), round + 1);
            }
            drop(ping_tx);
            ponger.join().unwrap();
            gsched::sleep(Duration::from_millis(10));
            stop_tx.close();
            hog.join().unwrap();
        });
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the ping-pong starved behind the spinning goroutine");
}
