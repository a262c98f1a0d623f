//! The FP control patterns of the two x86 probes (x86_64.rs and x86.rs load
//! the same MXCSR and x87 control words, written as literals in their
//! assembly), and what the probe must find after the round trip.

/// The probe: round toward zero, flush-to-zero, denormals-are-zero, all
/// exceptions masked, no status flag; x87: round toward zero, single
/// precision, all exceptions masked.
const A_MXCSR: u64 = 0xFFC0;
const A_FCW: u64 = 0x0C7F;
/// The clobber side: round down and the invalid-operation flag raised;
/// x87: round down.
const B_MXCSR: u64 = 0x3F81;
const B_FCW: u64 = 0x047F;
/// MXCSR's six status flags stay with the thread in both builds.
const MXCSR_FLAGS: u64 = 0x3F;
/// MXCSR (low 32 bits) | x87 control word (bits 32-47). With `fp-control`
/// the control bits are the probe's own and the status flags the thread's
/// (the clobber raised one); without it the whole state is the thread's, so
/// the clobber's values come back.
pub const EXPECTED_FP_CONTROL: u64 = if cfg!(feature = "fp-control") {
    ((A_MXCSR & !MXCSR_FLAGS) | (B_MXCSR & MXCSR_FLAGS)) | (A_FCW << 32)
} else {
    B_MXCSR | (B_FCW << 32)
};
