//! The saved frame of a suspended context, described for debuggers and
//! profilers (SPEC §10): where, relative to a saved stack pointer, the `.S`
//! file keeps the resume address and each register it saves, and how far
//! above the saved stack pointer the suspended code's own stack pointer is.
//! The core copies this table into the exported debug symbol
//! (src/greenlet/registry.rs); the gdb script turns it into the registers of
//! the suspended greenlet's innermost frame.
//!
//! Registers are named by their DWARF numbers (the psABI's), so that one
//! table format serves every CPU. A CPU whose `.S` frame is not described
//! here yet has `KNOWN == false`: tools can then list greenlets, but not
//! unwind suspended ones.

/// One register saved in the frame: its DWARF number and its offset from the
/// saved stack pointer.
#[derive(Clone, Copy)]
pub(crate) struct SavedRegister {
    pub(crate) dwarf: u16,
    pub(crate) offset: u16,
}

/// The most registers a frame description lists.
pub(crate) const MAX_SAVED: usize = 4;

#[cfg(target_arch = "x86_64")]
mod cpu {
    use super::{SavedRegister, MAX_SAVED};

    /// The fp-control slot below rbx (asm/x86_64.S: `F`).
    const F: u16 = if cfg!(feature = "fp-control") { 8 } else { 0 };
    pub(crate) const KNOWN: bool = true;
    /// The CPU's name as gdb's `show architecture` spells it.
    pub(crate) const NAME: &str = "i386:x86-64";
    /// DWARF numbers of the stack pointer and of the return address column.
    pub(crate) const SP_DWARF: u16 = 7;
    pub(crate) const PC_DWARF: u16 = 16;
    /// Offset of the resume address.
    pub(crate) const PC_OFFSET: u16 = F + 16;
    /// The suspended code's stack pointer is the saved one plus this.
    pub(crate) const FRAME_BYTES: u16 = F + 24;
    /// rbx (3) and rbp (6).
    pub(crate) const SAVED: [SavedRegister; MAX_SAVED] = [
        SavedRegister {
            dwarf: 3,
            offset: F,
        },
        SavedRegister {
            dwarf: 6,
            offset: F + 8,
        },
        SavedRegister {
            dwarf: 0,
            offset: 0,
        },
        SavedRegister {
            dwarf: 0,
            offset: 0,
        },
    ];
    pub(crate) const SAVED_COUNT: usize = 2;
    /// In a frame made by `init_stack` (not started yet), the slot that
    /// holds the entry function (GREENLET_INIT stores it where rbx goes).
    pub(crate) const INIT_ENTRY_OFFSET: u16 = F;
}

// Other CPUs: their `.S` frames are not described here yet; describing one
// adds its arm here (see docs/backtraces.md, "Other CPUs").
#[cfg(not(target_arch = "x86_64"))]
mod cpu {
    use super::{SavedRegister, MAX_SAVED};

    pub(crate) const KNOWN: bool = false;
    pub(crate) const NAME: &str = "";
    pub(crate) const SP_DWARF: u16 = 0;
    pub(crate) const PC_DWARF: u16 = 0;
    pub(crate) const PC_OFFSET: u16 = 0;
    pub(crate) const FRAME_BYTES: u16 = 0;
    pub(crate) const SAVED: [SavedRegister; MAX_SAVED] = [SavedRegister {
        dwarf: 0,
        offset: 0,
    }; MAX_SAVED];
    pub(crate) const SAVED_COUNT: usize = 0;
    pub(crate) const INIT_ENTRY_OFFSET: u16 = 0;
}

pub(crate) use cpu::*;
