//! The hand-written switch for x86_64 System V.
//!
//! # What a switch preserves
//!
//! A switch looks like a function call to both sides, so it preserves what the System V ABI
//! makes callee-saved: RBX, RBP, R12–R15, RSP, the control bits of MXCSR and the x87 control
//! word. R12–R15 are declared clobbered on the `asm!` blocks, so the compiler saves only those
//! it actually has live (often none in a tight loop); RBX and RBP are reserved by LLVM and are
//! pushed by hand; MXCSR and the x87 control word are stored and loaded by hand. One word moves
//! each way in RDI.
//!
//! The floating-point control is most of a switch's cost (about 5 of 7 ns on AMD EPYC, 2.4 of
//! 5.2 on Intel Xeon), and it almost never changes. A coroutine whose resumer preserves it
//! across the whole resume instead (`Coroutine::skip_fp_control`) switches without it:
//! `SAVE_FP = false` keeps the slot, so both stacks keep the layout below, and touches neither
//! register. The convention's promise still holds for both sides: the resumer compares the
//! state once after each resume and puts its own back, and gives the coroutine its own back
//! before the next one. Code that never changes the state, the usual case, pays one read.
//!
//! # Linked stacks
//!
//! Entering a coroutine (`switch_and_link`) pushes the resumer's state on the resumer's stack and
//! stores the resulting stack pointer in the link slot near the coroutine's base. Suspending
//! (`switch_yield`) pushes the coroutine's state on its own stack and returns through the link.
//! The resumer enters with `call` and the coroutine leaves with `ret`, so the CPU's return
//! address predictor stays in step. `switch_yield` is `#[inline(always)]` for the same reason.
//!
//! A suspended coroutine's stack:
//!
//! ```text
//! +---------------+ <- base
//! | entry fn      |
//! | link          | -> resumer's stack while running, stale while suspended
//! | ...frames...  |
//! | saved RBP     |
//! | saved RBX     |
//! | MXCSR | x87CW | (4 + 2 bytes, in one 8-byte slot)
//! | resume addr   | <- saved stack pointer: switch_and_link does `call [sp]`
//! +---------------+
//! ```
//!
//! The resumer's stack while the coroutine runs:
//!
//! ```text
//! +---------------+ <- CFA: the resumer's RSP when its asm! block began
//! | saved RBX     |   CFA - 8
//! | MXCSR | x87CW |   CFA - 16
//! | return addr   |   CFA - 24 (pushed by `call`)
//! | saved RBP     |   CFA - 32 <- link points here
//! +---------------+
//! ```
//!
//! The saved RBP and the return address above it form a frame record, so frame-pointer walkers
//! (perf) continue from the coroutine into the resumer, and the entry trampoline's CFI lets DWARF
//! unwinders (debuggers, `std::backtrace`) do the same.

use core::arch::{asm, naked_asm};

use super::{EntryFn, LINK_OFFSET, StackCallFn};

/// Saves MXCSR and the x87 control word in a new 8-byte slot at `[rsp]` (MXCSR in the low four
/// bytes, the control word in the next two) and points RCX at it for the other side's
/// `restore_fp_control!`.
macro_rules! save_fp_control {
    () => {
        concat!(
            "sub rsp, 8\n",
            "stmxcsr [rsp]\n",
            "fnstcw [rsp + 4]\n",
            "mov rcx, rsp\n",
        )
    };
}

/// Restores the MXCSR control bits and the x87 control word saved at `[rsp]`, given in RCX the
/// slot where the side that just switched to us saved them; clobbers RAX and RCX.
///
/// Nothing runs between the other side's save and this restore, so its slot holds the current
/// values and no `stmxcsr` is needed here. Loading either register is slow (`ldmxcsr` alone
/// measured about 70 ns on this project's virtual machines, against 2 ns for the whole switch)
/// and both almost never change, so they are loaded only when the saved control bits differ.
/// MXCSR's status flags (bits 0–5) are caller-saved and left out of the comparison: an inexact
/// result would otherwise force the slow path on almost every switch. MXCSR bits 16–31 are
/// reserved as zero, which leaves room to compare both words at once.
macro_rules! restore_fp_control {
    () => {
        concat!(
            "mov eax, [rcx]\n",
            "xor eax, [rsp]\n",
            "movzx ecx, word ptr [rcx + 4]\n",
            "xor cx, [rsp + 4]\n",
            "shl ecx, 16\n",
            "or eax, ecx\n",
            "test eax, 0xffffffc0\n",
            "jz 5f\n",
            "ldmxcsr [rsp]\n",
            "fldcw [rsp + 4]\n",
            "5:\n",
        )
    };
}

/// Entered by the first `switch_and_link` into a coroutine, through the `call [rdx]` there.
///
/// On entry: RSP is the resumer's stack with the return address on top, RBP is the resumer's,
/// RDX is the coroutine's initial stack pointer (this function's address at `[rdx]`, the closure
/// just above), RSI the stack base and RDI the argument.
///
/// It stays at the root of the coroutine's stack as the frame that links it to the resumer.
#[unsafe(naked)]
unsafe extern "C" fn start_trampoline() {
    naked_asm!(
        ".cfi_startproc",
        // Complete the resumer's frame record and publish it in the link slot.
        "push rbp",
        ".cfi_adjust_cfa_offset 8",
        "mov [rsi - {link}], rsp",
        // RBP = the link slot, for the rest of the coroutine's life. The unwinder's RBP in this
        // frame is therefore the link, and the resumer's frame is found through it:
        //   0x0f DW_CFA_def_cfa_expression, 5 bytes long:
        //   0x76 0x00 DW_OP_breg6 (RBP + 0), 0x06 DW_OP_deref, 0x23 0x20 DW_OP_plus_uconst 32
        // i.e. CFA = *link + 32, the resumer's RSP before its asm! block (see the module docs).
        "lea rbp, [rsi - {link}]",
        ".cfi_escape 0x0f, 5, 0x76, 0x00, 0x06, 0x23, 0x20",
        ".cfi_offset rbx, -8",
        ".cfi_offset rip, -24",
        ".cfi_offset rbp, -32",
        // Move onto the coroutine stack, past this function's address: RSP = the closure.
        "lea rsp, [rdx + 8]",
        // entry(arg = RDI, link = RSI, closure = RDX).
        "mov rsi, rbp",
        "mov rdx, rsp",
        // A return address that lies inside this function, so that unwinding through the entry
        // function lands in the CFI above. Jumping rather than calling keeps the return address
        // predictor in step with the `ret` of the entry's first `switch_yield`.
        "lea rcx, [rip + 2f]",
        "push rcx",
        "jmp [rbp + 8]",
        // The entry function never returns.
        "2:",
        "ud2",
        ".cfi_endproc",
        link = const LINK_OFFSET,
    )
}

/// Calls `f(arg)` on the stack whose base is RSI and comes back.
///
/// On entry: RDI the argument, RSI the new stack's base, RDX the function.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_trampoline() {
    naked_asm!(
        ".cfi_startproc",
        "push rbp",
        ".cfi_adjust_cfa_offset 8",
        ".cfi_rel_offset rbp, 0",
        // The caller's stack is found through RBP from here on, whatever RSP does.
        "mov rbp, rsp",
        ".cfi_def_cfa_register rbp",
        "mov rsp, rsi",
        "call rdx",
        "mov rsp, rbp",
        ".cfi_def_cfa_register rsp",
        "pop rbp",
        ".cfi_adjust_cfa_offset -8",
        ".cfi_restore rbp",
        "ret",
        ".cfi_endproc",
    )
}

/// Prepares a fresh stack; returns its initial stack pointer.
///
/// # Safety
///
/// `base` is the base of a stack that satisfies [`Stack`](crate::Stack), and `obj` is a 16-byte
/// aligned address at least `HEADER_SIZE` bytes below it, with at least 8 free bytes below `obj`.
/// `limit` is unused here: the portable backend needs it.
#[inline]
pub(crate) unsafe fn init_stack(base: usize, obj: usize, entry: EntryFn, _limit: usize) -> usize {
    let sp = obj - 8;
    // SAFETY: both words lie in the stack's free memory as the caller guarantees.
    unsafe {
        ((base - 8) as *mut usize).write(entry as usize);
        (sp as *mut usize).write(start_trampoline as *const () as usize);
    }
    sp
}

/// Enters the coroutine saved at `sp` on the stack with base `base`. With `SAVE_FP` false the
/// floating-point control is neither saved nor restored (see `Coroutine::skip_fp_control`); the
/// slot stays, so that both sides' frames keep the layout above.
///
/// # Safety
///
/// `sp` is the state returned by `init_stack` or by the last switch out of this coroutine, and
/// the coroutine is not running. The coroutine suspends with the same `SAVE_FP`.
#[inline]
pub(crate) unsafe fn switch_and_link<const SAVE_FP: bool>(
    arg: usize,
    sp: usize,
    base: usize,
) -> (usize, Option<usize>) {
    let ret_arg: usize;
    let ret_sp: usize;
    // SAFETY: the caller guarantees `[sp]` holds a resume address of a suspended coroutine on
    // the stack at `base`; the pushes below are popped again before the block ends.
    unsafe {
        if SAVE_FP {
            asm!(
                "push rbx",
                save_fp_control!(),
                // Continues in `start_trampoline` or after `2:` in `switch_yield`; comes back
                // here by `ret` from `switch_yield` or `switch_and_reset`.
                "call [rdx]",
                restore_fp_control!(),
                "add rsp, 8",
                "pop rbx",
                inlateout("rdi") arg => ret_arg,
                inlateout("rsi") base => ret_sp,
                in("rdx") sp,
                lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
                clobber_abi("sysv64"),
            );
        } else {
            asm!(
                "push rbx",
                "sub rsp, 8",
                "call [rdx]",
                "add rsp, 8",
                "pop rbx",
                inlateout("rdi") arg => ret_arg,
                inlateout("rsi") base => ret_sp,
                in("rdx") sp,
                lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
                clobber_abi("sysv64"),
            );
        }
    }
    (ret_arg, (ret_sp != 0).then_some(ret_sp))
}

/// Suspends the running coroutine to its resumer; returns the word of the next resume.
/// `SAVE_FP` as in [`switch_and_link`].
///
/// # Safety
///
/// Called on the coroutine's own stack (or a stack called from it), with `link` its link slot,
/// and `SAVE_FP` as its resumers switch in with.
#[inline(always)]
pub(crate) unsafe fn switch_yield<const SAVE_FP: bool>(arg: usize, link: *mut usize) -> usize {
    let ret_arg: usize;
    // SAFETY: the link holds the resumer's stack pointer saved by `switch_and_link` or
    // `start_trampoline`; what is pushed here is popped after `2:` when resumed.
    unsafe {
        if SAVE_FP {
            asm!(
                "push rbp",
                "push rbx",
                save_fp_control!(),
                "lea rax, [rip + 2f]",
                "push rax",
                // Hand our stack pointer to the resumer and return into it.
                "mov rsi, rsp",
                "mov rsp, [rdx]",
                "pop rbp",
                "ret",
                // Resumed by `call [rdx]` in `switch_and_link`: RSP is the resumer's stack, RDX
                // our saved stack pointer, RSI our stack base, RDI the argument, RCX the
                // resumer's saved floating-point control.
                "2:",
                "push rbp",
                "mov [rsi - {link}], rsp",
                "lea rsp, [rdx + 8]",
                restore_fp_control!(),
                "add rsp, 8",
                "pop rbx",
                "pop rbp",
                link = const LINK_OFFSET,
                inlateout("rdi") arg => ret_arg,
                in("rdx") link,
                lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
                clobber_abi("sysv64"),
            );
        } else {
            asm!(
                "push rbp",
                "push rbx",
                "sub rsp, 8",
                "lea rax, [rip + 2f]",
                "push rax",
                "mov rsi, rsp",
                "mov rsp, [rdx]",
                "pop rbp",
                "ret",
                "2:",
                "push rbp",
                "mov [rsi - {link}], rsp",
                "lea rsp, [rdx + 16]",
                "pop rbx",
                "pop rbp",
                link = const LINK_OFFSET,
                inlateout("rdi") arg => ret_arg,
                in("rdx") link,
                lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
                clobber_abi("sysv64"),
            );
        }
    }
    ret_arg
}

/// Leaves the running coroutine for good; its resumer sees `None` as the new state.
///
/// # Safety
///
/// As [`switch_yield`], and nothing on the coroutine's stack may need to run again: the stack is
/// abandoned as it is.
#[inline(always)]
pub(crate) unsafe fn switch_and_reset(arg: usize, link: *mut usize) -> ! {
    // SAFETY: as in `switch_yield`; the resumer's `call` pushed the return address popped here.
    unsafe {
        asm!(
            // The resumer compares its floating-point control with ours.
            save_fp_control!(),
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            in("rdi") arg,
            in("rsi") 0usize,
            in("rdx") link,
            options(noreturn),
        )
    }
}

/// Calls `f(arg)` with the stack pointer at `base`.
///
/// # Safety
///
/// `base` is the base of a [`Stack`](crate::Stack) that nothing else uses during the call, and
/// `f` does not unwind.
#[inline]
pub(crate) unsafe fn on_stack(arg: *mut u8, base: usize, f: StackCallFn, _limit: usize) {
    // SAFETY: the trampoline restores RSP and RBP before it returns; `f` is a plain C function.
    unsafe {
        asm!(
            "call {trampoline}",
            trampoline = sym stack_call_trampoline,
            in("rdi") arg,
            in("rsi") base,
            in("rdx") f,
            clobber_abi("C"),
        )
    }
}
