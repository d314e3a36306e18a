//! Random operation sequences against sequential models.

use std::collections::VecDeque;
use std::sync::Arc;

use gsync::{Mutex, RecvError, SendError, TryRecvError, TrySendError, WaitGroup, chan};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum ChanOp {
    TrySend(u16),
    TryRecv,
    /// A blocking send: the model says when it can complete without waiting.
    Send(u16),
    Recv,
    Close,
    CloneSender,
    DropSender,
}

fn chan_op() -> impl Strategy<Value = ChanOp> {
    prop_oneof![
        4 => any::<u16>().prop_map(ChanOp::TrySend),
        4 => Just(ChanOp::TryRecv),
        2 => any::<u16>().prop_map(ChanOp::Send),
        2 => Just(ChanOp::Recv),
        1 => Just(ChanOp::Close),
        1 => Just(ChanOp::CloneSender),
        1 => Just(ChanOp::DropSender),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One thread drives a channel; every result matches a queue with a capacity and a closed
    /// flag. Blocking calls are made only when the model says they complete at once.
    #[test]
    fn channel_operations_match_a_sequential_model(
        capacity in 0usize..4,
        ops in proptest::collection::vec(chan_op(), 1..64),
    ) {
        let (tx, rx) = chan::<u16>(capacity);
        let mut senders = vec![tx];
        let mut model: VecDeque<u16> = VecDeque::new();
        let mut closed = false;
        for op in ops {
            match op {
                ChanOp::TrySend(value) | ChanOp::Send(value) => {
                    let Some(sender) = senders.last() else { continue };
                    let blocking = matches!(op, ChanOp::Send(_));
                    if closed {
                        if blocking {
                            prop_assert_eq!(sender.send(value), Err(SendError(value)));
                        } else {
                            prop_assert_eq!(sender.try_send(value), Err(TrySendError::Closed(value)));
                        }
                    } else if model.len() < capacity {
                        if blocking { sender.send(value).unwrap() } else { sender.try_send(value).unwrap() }
                        model.push_back(value);
                    } else if !blocking {
                        prop_assert_eq!(sender.try_send(value), Err(TrySendError::Full(value)));
                    }
                }
                ChanOp::TryRecv => {
                    let expected = match model.pop_front() {
                        Some(value) => Ok(value),
                        None if closed => Err(TryRecvError::Closed),
                        None => Err(TryRecvError::Empty),
                    };
                    prop_assert_eq!(rx.try_recv(), expected);
                }
                ChanOp::Recv => match model.pop_front() {
                    Some(value) => prop_assert_eq!(rx.recv(), Ok(value)),
                    None if closed => prop_assert_eq!(rx.recv(), Err(RecvError)),
                    None => {}
                },
                ChanOp::Close => {
                    if let Some(sender) = senders.last()
                        && !closed
                    {
                        sender.close();
                        closed = true;
                    }
                }
                ChanOp::CloneSender => {
                    if let Some(sender) = senders.last() {
                        senders.push(sender.clone());
                    }
                }
                ChanOp::DropSender => {
                    if senders.pop().is_some() && senders.is_empty() {
                        closed = true;
                    }
                }
            }
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(rx.is_closed(), closed);
        }
    }

    /// Random add/done sequences: the counter follows the model, a negative step panics and
    /// changes nothing, and wait returns whenever the model's counter is zero.
    #[test]
    fn waitgroup_counter_follows_add_and_done(deltas in proptest::collection::vec(-3i32..4, 1..40)) {
        let wg = WaitGroup::new();
        let mut model = 0i64;
        for delta in deltas {
            let result = std::panic::catch_unwind(|| wg.add(delta));
            if model + i64::from(delta) < 0 {
                prop_assert!(result.is_err());
            } else {
                prop_assert!(result.is_ok());
                model += i64::from(delta);
            }
            prop_assert_eq!(i64::from(wg.count()), model);
            if model == 0 {
                wg.wait();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// A counter under a Mutex stays exact for random mixes of goroutines and OS threads.
    #[test]
    fn a_mutex_counter_is_exact_for_any_mix(
        goroutines in 0usize..64,
        threads in 0usize..4,
        increments in 1u64..200,
        workers in 1usize..3,
    ) {
        let rt = gsched::Runtime::builder().workers(workers).build().unwrap();
        let count = Arc::new(Mutex::new(0u64));
        let thread_handles: Vec<_> = (0..threads)
            .map(|_| {
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    for _ in 0..increments {
                        *count.lock() += 1;
                    }
                })
            })
            .collect();
        let shared = Arc::clone(&count);
        rt.block_on(move || {
            let wg = WaitGroup::new();
            for _ in 0..goroutines {
                let count = Arc::clone(&shared);
                wg.go(move || {
                    for i in 0..increments {
                        *count.lock() += 1;
                        if i % 16 == 0 {
                            gsched::yield_now();
                        }
                    }
                });
            }
            wg.wait();
        });
        for handle in thread_handles {
            handle.join().unwrap();
        }
        prop_assert_eq!(*count.lock(), (goroutines + threads) as u64 * increments);
    }
}
