//! The floating-point control state that a switch must preserve, for resumers that preserve it
//! themselves (see [`Coroutine::skip_fp_control`](crate::Coroutine::skip_fp_control)).

/// A thread's floating-point control state that the platform's calling convention makes
/// callee-saved: on x86_64 System V, the control bits of MXCSR (rounding mode, exception masks,
/// flush-to-zero, denormals-are-zero) and the x87 control word. Elsewhere it holds nothing: the
/// portable backend's switch always preserves what that platform's convention requires.
///
/// MXCSR's status flags (bits 0–5) are caller-saved, so two states that differ only there are
/// equal, and [`restore`](Self::restore) leaves the thread's flags as they are.
///
/// ```
/// use ctxswitch::FpControl;
///
/// let before = FpControl::current();
/// let x = std::hint::black_box(1.0_f64) / 3.0;
/// assert_eq!(FpControl::current(), before, "arithmetic only sets status flags");
/// before.restore();
/// assert!(x > 0.33);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpControl {
    /// MXCSR with its status flags cleared.
    #[cfg(target_arch = "x86_64")]
    mxcsr: u32,
    #[cfg(target_arch = "x86_64")]
    x87: u16,
}

/// MXCSR's status flags, which the calling convention leaves to the caller.
#[cfg(target_arch = "x86_64")]
const MXCSR_STATUS: u32 = 0x3f;

impl FpControl {
    /// The calling thread's state now.
    #[inline]
    pub fn current() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let (mxcsr, x87) = read();
            FpControl {
                mxcsr: mxcsr & !MXCSR_STATUS,
                x87,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FpControl {}
    }

    /// Makes this the calling thread's state, keeping its MXCSR status flags.
    ///
    /// A value of this type is only ever read from a thread, so loading it back cannot set a
    /// reserved bit or a mode the thread never had.
    #[inline]
    pub fn restore(self) {
        #[cfg(target_arch = "x86_64")]
        {
            let (mxcsr, _) = read();
            let saved: [u32; 2] = [self.mxcsr | (mxcsr & MXCSR_STATUS), u32::from(self.x87)];
            // SAFETY: both words were read from this processor's registers (`current`), with
            // reserved bits as the processor left them, so loading them cannot fault.
            unsafe {
                core::arch::asm!(
                    "ldmxcsr [{saved}]",
                    "fldcw [{saved} + 4]",
                    saved = in(reg) saved.as_ptr(),
                    options(nostack, readonly, preserves_flags),
                );
            }
        }
    }
}

/// MXCSR and the x87 control word of the calling thread.
#[cfg(target_arch = "x86_64")]
#[inline]
fn read() -> (u32, u16) {
    let mut saved = [0_u32; 2];
    // SAFETY: the two stores write the 4 and 2 bytes at the start of each word of `saved`.
    unsafe {
        core::arch::asm!(
            "stmxcsr [{saved}]",
            "fnstcw [{saved} + 4]",
            saved = in(reg) saved.as_mut_ptr(),
            options(nostack, preserves_flags),
        );
    }
    (saved[0], saved[1] as u16)
}
