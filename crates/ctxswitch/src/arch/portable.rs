//! The portable backend: boost.context's `jump_fcontext`, through the `context` crate.
//!
//! Each switch hands over a pointer to a small record on the sender's stack: `Handoff` into the
//! coroutine (the argument and the stack base, so the coroutine can find its link slot) and
//! `Handback` out of it (the argument and whether the coroutine finished). The link slot holds
//! the resumer's `context::Context`, refreshed on every entry; the scratch word at `base - 24`
//! holds the closure's address for the first entry. boost.context saves the callee-saved
//! registers, MXCSR and the x87 control word itself.
//!
//! Backtraces taken inside a coroutine on this backend end at the coroutine's entry.

use context::stack::Stack as ContextStack;
use context::{Context, Transfer};

use super::{EntryFn, StackCallFn};

/// What the resumer hands to the coroutine.
struct Handoff {
    arg: usize,
    base: usize,
}

/// What the coroutine hands back.
struct Handback {
    arg: usize,
    finished: bool,
}

/// A `Context` as a plain word, and back.
fn context_to_word(context: Context) -> usize {
    // SAFETY: `Context` is a `repr(C)` wrapper around one non-null pointer.
    unsafe { std::mem::transmute::<Context, usize>(context) }
}

/// # Safety
///
/// `word` came from `context_to_word` and that context has not been resumed since.
unsafe fn word_to_context(word: usize) -> Context {
    // SAFETY: the caller guarantees `word` is a live, non-null context pointer.
    unsafe { std::mem::transmute::<usize, Context>(word) }
}

extern "C" fn start_trampoline(transfer: Transfer) -> ! {
    // SAFETY: `switch_and_link` always passes a live `Handoff`, and `init_stack` wrote the entry
    // function and the closure's address at the base of this stack.
    unsafe {
        let handoff = &*(transfer.data as *const Handoff);
        let (arg, base) = (handoff.arg, handoff.base);
        let link = (base - super::LINK_OFFSET) as *mut usize;
        link.write(context_to_word(transfer.context));
        let entry = *((base - 8) as *const EntryFn);
        let obj = *((base - 24) as *const *mut u8);
        entry(arg, link, obj)
    }
}

/// # Safety
///
/// As the x86_64 backend's `init_stack`; `limit` is the stack's limit.
pub(crate) unsafe fn init_stack(base: usize, obj: usize, entry: EntryFn, limit: usize) -> usize {
    // SAFETY: the header words lie in the stack's free memory, and `limit..obj` is free memory
    // that the stack owns for as long as the context lives.
    unsafe {
        ((base - 8) as *mut usize).write(entry as usize);
        ((base - 24) as *mut usize).write(obj);
        let stack = ContextStack::new(obj as *mut _, limit as *mut _);
        context_to_word(Context::new(&stack, start_trampoline))
    }
}

/// # Safety
///
/// As the x86_64 backend's `switch_and_link`. `SAVE_FP` makes no difference here: the
/// `context` crate's switch always preserves the floating-point control.
pub(crate) unsafe fn switch_and_link<const SAVE_FP: bool>(
    arg: usize,
    sp: usize,
    base: usize,
) -> (usize, Option<usize>) {
    let handoff = Handoff { arg, base };
    // SAFETY: `sp` is the coroutine's suspended context; it answers with a live `Handback`.
    unsafe {
        let transfer = word_to_context(sp).resume(&handoff as *const Handoff as usize);
        let handback = &*(transfer.data as *const Handback);
        let next = context_to_word(transfer.context);
        (handback.arg, (!handback.finished).then_some(next))
    }
}

/// # Safety
///
/// As the x86_64 backend's `switch_yield`; `SAVE_FP` as in `switch_and_link`.
pub(crate) unsafe fn switch_yield<const SAVE_FP: bool>(arg: usize, link: *mut usize) -> usize {
    let handback = Handback {
        arg,
        finished: false,
    };
    // SAFETY: the link holds the resumer's context; the next resume passes a live `Handoff`.
    unsafe {
        let transfer = word_to_context(*link).resume(&handback as *const Handback as usize);
        link.write(context_to_word(transfer.context));
        (*(transfer.data as *const Handoff)).arg
    }
}

/// # Safety
///
/// As the x86_64 backend's `switch_and_reset`.
pub(crate) unsafe fn switch_and_reset(arg: usize, link: *mut usize) -> ! {
    let handback = Handback {
        arg,
        finished: true,
    };
    // SAFETY: the resumer never resumes a finished coroutine, so this resume does not return.
    unsafe {
        word_to_context(*link).resume(&handback as *const Handback as usize);
    }
    unreachable!("a finished coroutine was resumed")
}

struct StackCall {
    arg: *mut u8,
    f: StackCallFn,
}

extern "C" fn stack_call_trampoline(transfer: Transfer) -> ! {
    // SAFETY: `on_stack` passes a live `StackCall` whose function does not unwind, and waits for
    // the resume below before it returns.
    unsafe {
        let call = &*(transfer.data as *const StackCall);
        (call.f)(call.arg);
        transfer.context.resume(0);
    }
    unreachable!("an on_stack context was resumed after it returned")
}

/// # Safety
///
/// As the x86_64 backend's `on_stack`; `limit` is the stack's limit.
pub(crate) unsafe fn on_stack(arg: *mut u8, base: usize, f: StackCallFn, limit: usize) {
    let call = StackCall { arg, f };
    // SAFETY: the caller hands over `limit..base` for the duration of the call.
    unsafe {
        let stack = ContextStack::new(base as *mut _, limit as *mut _);
        Context::new(&stack, stack_call_trampoline).resume(&call as *const StackCall as usize);
    }
}
