//! `select!` and its parser `__select_parse!`: they turn each case into a typed case value, so
//! that one engine that knows no element types ([`super::select_cases`]) runs them all. Being
//! `#[macro_export]`, both live at the crate root (`gsync::select!`) whichever file holds them.

/// Waits on several channel operations at once and runs the one that completes, as Go's
/// `select`.
///
/// Cases, in any order, separated by commas (optional after a block):
/// - `recv(receiver) -> result => body`: `result` is `Result<T, RecvError>` (an error once the
///   channel is closed and drained);
/// - `send(sender, value) -> result => body`: `result` is `Result<(), SendError<T>>`;
/// - `default => body`: runs at once if no case is ready (a non-blocking select);
/// - `timeout(duration) => body`: runs if no case became ready within `duration`.
///
/// When several cases are ready, one is chosen uniformly at random, as in Go. The channel and
/// value expressions are all evaluated once, in order, on entry; a send value whose case is not
/// chosen is dropped. Without `default` or `timeout`, and with no case that can ever complete,
/// `select!` parks forever, like Go's. At most 64 channel cases; [`Select`](crate::Select)
/// builds a select of any number of cases at run time.
///
/// A case's channel may be an `Option` of a receiver or sender (owned or borrowed): `None`
/// disables the case, which is then never ready, as a nil channel in Go. A send case's value
/// is evaluated and dropped all the same.
///
/// ```
/// use std::time::Duration;
/// use gsync::{chan, select};
///
/// let (numbers_tx, numbers) = chan::<u32>(1);
/// let (words_tx, words) = chan::<&str>(1);
/// numbers_tx.send(7).unwrap();
///
/// select! {
///     recv(numbers) -> n => assert_eq!(n, Ok(7)),
///     recv(words) -> w => panic!("nothing was sent: {w:?}"),
/// }
///
/// let sent = select! {
///     send(words_tx, "hi") -> res => res.is_ok(),
///     default => false,
/// };
/// assert!(sent);
///
/// select! {
///     recv(numbers) -> n => panic!("nothing left: {n:?}"),
///     timeout(Duration::from_millis(1)) => {}
/// }
/// ```
#[macro_export]
macro_rules! select {
    ($($cases:tt)*) => {
        $crate::__select_parse!(
            @cases []
            @mode []
            @names [c00 c01 c02 c03 c04 c05 c06 c07 c08 c09 c10 c11 c12 c13 c14 c15
                    c16 c17 c18 c19 c20 c21 c22 c23 c24 c25 c26 c27 c28 c29 c30 c31
                    c32 c33 c34 c35 c36 c37 c38 c39 c40 c41 c42 c43 c44 c45 c46 c47
                    c48 c49 c50 c51 c52 c53 c54 c55 c56 c57 c58 c59 c60 c61 c62 c63]
            $($cases)*
        )
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_parse {
    // recv, with a block body or an expression body. A block's optional comma has a rule of its
    // own: `$(,)?` followed by `$($rest:tt)*` is ambiguous to the macro parser.
    (@cases [$($cases:tt)*] @mode $mode:tt @names [$name:ident $($names:ident)*]
        recv($receiver:expr) -> $result:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_parse!(
            @cases [$($cases)* ($name { $crate::chan::SelectRecv::select_recv_case(&$receiver) } $result => $body)]
            @mode $mode @names [$($names)*] $($rest)*)
    };
    (@cases [$($cases:tt)*] @mode $mode:tt @names [$name:ident $($names:ident)*]
        recv($receiver:expr) -> $result:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(
            @cases [$($cases)* ($name { $crate::chan::SelectRecv::select_recv_case(&$receiver) } $result => $body)]
            @mode $mode @names [$($names)*] $($rest)*)
    };
    (@cases [$($cases:tt)*] @mode $mode:tt @names [$name:ident $($names:ident)*]
        recv($receiver:expr) -> $result:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(
            @cases [$($cases)* ($name { $crate::chan::SelectRecv::select_recv_case(&$receiver) } $result => { $body })]
            @mode $mode @names [$($names)*] $($($rest)*)?)
    };
    // send, likewise.
    (@cases [$($cases:tt)*] @mode $mode:tt @names [$name:ident $($names:ident)*]
        send($sender:expr, $value:expr) -> $result:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_parse!(
            @cases [$($cases)* ($name { $crate::chan::SelectSend::select_send_case(&$sender, $value) } $result => $body)]
            @mode $mode @names [$($names)*] $($rest)*)
    };
    (@cases [$($cases:tt)*] @mode $mode:tt @names [$name:ident $($names:ident)*]
        send($sender:expr, $value:expr) -> $result:pat => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(
            @cases [$($cases)* ($name { $crate::chan::SelectSend::select_send_case(&$sender, $value) } $result => $body)]
            @mode $mode @names [$($names)*] $($rest)*)
    };
    (@cases [$($cases:tt)*] @mode $mode:tt @names [$name:ident $($names:ident)*]
        send($sender:expr, $value:expr) -> $result:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(
            @cases [$($cases)* ($name { $crate::chan::SelectSend::select_send_case(&$sender, $value) } $result => { $body })]
            @mode $mode @names [$($names)*] $($($rest)*)?)
    };
    // default and timeout: at most one of them.
    (@cases $cases:tt @mode [] @names $names:tt default => $body:block, $($rest:tt)*) => {
        $crate::__select_parse!(@cases $cases @mode [default $body] @names $names $($rest)*)
    };
    (@cases $cases:tt @mode [] @names $names:tt default => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(@cases $cases @mode [default $body] @names $names $($rest)*)
    };
    (@cases $cases:tt @mode [] @names $names:tt default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(@cases $cases @mode [default { $body }] @names $names $($($rest)*)?)
    };
    (@cases $cases:tt @mode [] @names $names:tt
        timeout($duration:expr) => $body:block, $($rest:tt)*) => {
        $crate::__select_parse!(@cases $cases @mode [timeout ($duration) $body] @names $names $($rest)*)
    };
    (@cases $cases:tt @mode [] @names $names:tt
        timeout($duration:expr) => $body:block $($rest:tt)*) => {
        $crate::__select_parse!(@cases $cases @mode [timeout ($duration) $body] @names $names $($rest)*)
    };
    (@cases $cases:tt @mode [] @names $names:tt
        timeout($duration:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_parse!(
            @cases $cases @mode [timeout ($duration) { $body }] @names $names $($($rest)*)?)
    };
    (@cases $cases:tt @mode [$($mode:tt)+] @names $names:tt default $($rest:tt)*) => {
        ::core::compile_error!("select!: at most one `default` or `timeout` case")
    };
    (@cases $cases:tt @mode [$($mode:tt)+] @names $names:tt timeout $($rest:tt)*) => {
        ::core::compile_error!("select!: at most one `default` or `timeout` case")
    };
    (@cases $cases:tt @mode $mode:tt @names [] $($rest:tt)+) => {
        ::core::compile_error!(
            "select!: at most 64 channel cases; gsync::Select takes any number"
        )
    };
    // Everything parsed.
    (@cases [$(($name:ident { $($make:tt)* } $result:pat => $body:block))*] @mode $mode:tt
        @names $names:tt) => {
        match ($($($make)*,)*) {
            ($(mut $name,)*) => {
                let fired = $crate::chan::select_cases(
                    &mut [$($name.as_case()),*],
                    $crate::__select_parse!(@mode_value $mode),
                );
                $(
                    if $name.fired() {
                        let $result = $name.into_outcome();
                        $body
                    } else
                )*
                {
                    let _ = fired;
                    $crate::__select_parse!(@fallback $mode)
                }
            }
        }
    };
    (@cases $cases:tt @mode $mode:tt @names $names:tt $($rest:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "select!: expected `recv(rx) -> result => body`, `send(tx, value) -> result => body`, ",
            "`default => body` or `timeout(duration) => body`, found: ",
            ::core::stringify!($($rest)+)
        ))
    };
    (@mode_value []) => { $crate::chan::SelectMode::Block };
    (@mode_value [default $body:block]) => { $crate::chan::SelectMode::NonBlocking };
    (@mode_value [timeout ($duration:expr) $body:block]) => {
        $crate::chan::SelectMode::after($duration)
    };
    (@fallback []) => { ::core::unreachable!("a blocking select returns only with a case") };
    (@fallback [default $body:block]) => { $body };
    (@fallback [timeout ($duration:expr) $body:block]) => { $body };
}
