//! Disabled `select!` cases (Go's nil channels, as in test/chan/select3.go) and the run-time
//! `Select` builder.

use std::time::Duration;

use gsync::{Receiver, Select, Sender, chan, select};

#[test]
fn a_disabled_case_is_never_ready() {
    let nothing: Option<&Receiver<u32>> = None;
    let no_sender: Option<&Sender<u32>> = None;
    // Alone, disabled cases make `default` run, and a timeout expire.
    let ran_default = select! {
        recv(nothing) -> _value => false,
        send(no_sender, 1) -> _sent => false,
        default => true,
    };
    assert!(ran_default);
    let timed_out = select! {
        recv(nothing) -> _value => false,
        timeout(Duration::from_millis(5)) => true,
    };
    assert!(timed_out);
    // Beside a ready case, only the ready one runs.
    let (tx, rx) = chan::<u32>(1);
    tx.send(3).unwrap();
    for _ in 0..20 {
        let got = select! {
            recv(nothing) -> _value => unreachable!("a nil receive never runs"),
            send(no_sender, 9) -> _sent => unreachable!("a nil send never runs"),
            recv(rx) -> value => value.unwrap(),
        };
        assert_eq!(got, 3);
        tx.send(3).unwrap();
    }
}

#[test]
fn merging_streams_disables_each_as_it_closes() {
    // The Go idiom: set a channel to nil once it is closed, until none is left.
    let (a_tx, a_rx) = chan::<u32>(0);
    let (b_tx, b_rx) = chan::<u32>(0);
    gsched::go(move || (0..5).for_each(|i| a_tx.send(i).unwrap()));
    gsched::go(move || (10..13).for_each(|i| b_tx.send(i).unwrap()));
    let (mut a, mut b) = (Some(a_rx), Some(b_rx));
    let mut merged = Vec::new();
    while a.is_some() || b.is_some() {
        select! {
            recv(a) -> value => match value {
                Ok(value) => merged.push(value),
                Err(_closed) => a = None,
            },
            recv(b) -> value => match value {
                Ok(value) => merged.push(value),
                Err(_closed) => b = None,
            },
        }
    }
    merged.sort_unstable();
    assert_eq!(merged, [0, 1, 2, 3, 4, 10, 11, 12]);
}

#[test]
fn a_blocked_send_to_a_disabled_channel_waits_for_the_other_case() {
    let no_sender: Option<Sender<u32>> = None;
    let (tx, rx) = chan::<u32>(0);
    let receiver = gsched::go(move || {
        gsched::sleep(Duration::from_millis(5));
        rx.recv().unwrap()
    });
    select! {
        send(no_sender, 1) -> _sent => unreachable!("a nil send never runs"),
        send(tx, 2) -> sent => sent.unwrap(),
    }
    assert_eq!(receiver.join().unwrap(), 2);
}

#[test]
fn a_select_of_more_than_32_cases_works_in_the_macro_and_the_builder() {
    let channels: Vec<_> = (0..40).map(|_| chan::<usize>(1)).collect();
    channels[37].0.send(37).unwrap();
    let mut select = Select::new();
    let ops: Vec<_> = channels.iter().map(|(_, rx)| select.recv(rx)).collect();
    let selected = select.select();
    assert_eq!(selected.index(), 37);
    let op = ops.into_iter().nth(37).unwrap();
    assert_eq!(selected.recv(op), Ok(37));
}

#[test]
fn the_builder_chooses_uniformly_among_ready_cases() {
    // 100 ready cases, 100,000 rounds: each within 20% of uniform.
    let cases = 100;
    let rounds = 100_000;
    let channels: Vec<_> = (0..cases).map(|_| chan::<usize>(1)).collect();
    for (index, (tx, _)) in channels.iter().enumerate() {
        tx.send(index).unwrap();
    }
    let mut counts = vec![0u32; cases];
    for _ in 0..rounds {
        let mut select = Select::new();
        for (_, rx) in &channels {
            select.recv(rx);
        }
        let index = select.select().index();
        counts[index] += 1;
        channels[index].0.send(index).unwrap();
    }
    let expected = (rounds / cases) as f64;
    for (index, &count) in counts.iter().enumerate() {
        let ratio = f64::from(count) / expected;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "case {index} ran {count} times of {expected} expected"
        );
    }
}

#[test]
fn the_builder_sends_times_out_and_tries() {
    let (tx, rx) = chan::<String>(0);
    let (_idle_tx, idle) = chan::<u8>(0);
    let mut select = Select::new();
    select.recv(&idle);
    assert!(select.try_select().is_none());
    let mut select = Select::new();
    select.recv(&idle);
    assert!(select.select_timeout(Duration::from_millis(5)).is_none());

    let receiver = gsched::go(move || rx.recv().unwrap());
    let mut select = Select::new();
    let quiet = select.recv(&idle);
    let send = select.send(&tx, "hello".to_string());
    let selected = select.select();
    assert_ne!(selected.index(), quiet.index());
    assert_eq!(selected.send(send), Ok(()));
    assert_eq!(receiver.join().unwrap(), "hello");
}
