//! Arbitrary sequences of inputs and yields round-trip exactly and in order.

use ctxswitch::{Coroutine, CoroutineResult};
use proptest::prelude::*;

proptest! {
    #[test]
    fn inputs_and_yields_round_trip_in_order(
        inputs in proptest::collection::vec(any::<i64>(), 1..64),
        echoes in proptest::collection::vec(0usize..4, 1..64),
    ) {
        // The body yields, for each input, `echoes[i % len]` transformed copies of it, then asks
        // for the next input; it returns the sum of everything it saw.
        let pattern = echoes.clone();
        let mut co = Coroutine::<i64, (usize, i64), i64>::new(move |yielder, mut input| {
            let mut seen = 0i64;
            let mut index = 0;
            loop {
                seen = seen.wrapping_add(input);
                let copies = pattern[index % pattern.len()];
                for copy in 0..copies {
                    yielder.suspend((index, input.wrapping_mul(copy as i64 + 1)));
                }
                index += 1;
                input = yielder.suspend((usize::MAX, 0));
                if input == i64::MIN {
                    return seen;
                }
            }
        });
        let mut expected_sum = 0i64;
        for (index, &input) in inputs.iter().enumerate() {
            let input = if input == i64::MIN { 0 } else { input };
            expected_sum = expected_sum.wrapping_add(input);
            let mut result = co.resume(input);
            for copy in 0..echoes[index % echoes.len()] {
                prop_assert_eq!(result, CoroutineResult::Yield((index, input.wrapping_mul(copy as i64 + 1))));
                result = co.resume(0);
            }
            prop_assert_eq!(result, CoroutineResult::Yield((usize::MAX, 0)));
        }
        prop_assert_eq!(co.resume(i64::MIN), CoroutineResult::Return(expected_sum));
    }
}
