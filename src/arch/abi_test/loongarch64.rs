//! loongarch64 (LP64D): s0-s8, fp (r22), fs0-fs7; FCSR0's control bits.

/// Callee-saved integer registers, in the order the probe stores them. (ra is
/// the return address: the probe returning at all proves it.)
pub const INT_REGS: &[&str] = &["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "fp"];
pub const FP_REGS: &[&str] = &["fs0", "fs1", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7"];
/// FCSR0 bits that are control: the enables (V Z O U I, bits 4-0) and RM
/// (bits 8-9). The flags (16-20) and causes (24-28) are status.
const FCSR_CONTROL: u64 = 0x31F;
/// The probe: round toward zero, invalid-operation and divide-by-zero
/// exceptions enabled, no flag. (No floating-point arithmetic runs while it
/// is loaded, so nothing can trap.)
const A_FCSR: u64 = 0x100 | 0x10 | 0x08;
/// The clobber side: round toward -infinity, the inexact flag raised,
/// nothing enabled.
const B_FCSR: u64 = 0x300 | 0x1_0000;
/// What the probe must see after the round trip: with `fp-control` its own
/// control bits and the thread's flags (the clobber raised one); without it
/// the whole FCSR0 is the thread's, so the clobber's value comes back.
pub const EXPECTED_FP_CONTROL: u64 = if cfg!(feature = "fp-control") {
    (A_FCSR & FCSR_CONTROL) | (B_FCSR & !FCSR_CONTROL)
} else {
    B_FCSR
};
/// Other callee-saved state the probe stores after the FP control slot:
/// none here.
pub const OTHER_STATE: &[(&str, u64)] = &[];

// The probe's frame (176 bytes): the caller's ra, fp, s0-s8 and fs0-fs7 at
// 0-151, its FCSR0 at 152, `out` at 160. `out`: s0-s8 and fp at 0-79,
// fs0-fs7 at 80-143, FCSR0 at 144.
std::arch::global_asm!(
    ".text",
    ".globl greenlet_abi_probe",
    ".p2align 4",
    "greenlet_abi_probe:",
    // a0 = body, a1 = ctx, a2 = out
    "addi.d $sp, $sp, -176",
    "st.d $ra, $sp, 0",
    "st.d $fp, $sp, 8",
    "st.d $s0, $sp, 16",
    "st.d $s1, $sp, 24",
    "st.d $s2, $sp, 32",
    "st.d $s3, $sp, 40",
    "st.d $s4, $sp, 48",
    "st.d $s5, $sp, 56",
    "st.d $s6, $sp, 64",
    "st.d $s7, $sp, 72",
    "st.d $s8, $sp, 80",
    "fst.d $fs0, $sp, 88",
    "fst.d $fs1, $sp, 96",
    "fst.d $fs2, $sp, 104",
    "fst.d $fs3, $sp, 112",
    "fst.d $fs4, $sp, 120",
    "fst.d $fs5, $sp, 128",
    "fst.d $fs6, $sp, 136",
    "fst.d $fs7, $sp, 144",
    "movfcsr2gr $t0, $fcsr0",
    "st.w $t0, $sp, 152",
    "st.d $a2, $sp, 160",
    "li.w $t0, {a_fcsr}",
    "movgr2fcsr $fcsr0, $t0",
    "li.d $s0, 0x5eed000101010101",
    "li.d $s1, 0x5eed000202020202",
    "li.d $s2, 0x5eed000303030303",
    "li.d $s3, 0x5eed000404040404",
    "li.d $s4, 0x5eed000505050505",
    "li.d $s5, 0x5eed000606060606",
    "li.d $s6, 0x5eed000707070707",
    "li.d $s7, 0x5eed000808080808",
    "li.d $s8, 0x5eed000909090909",
    "li.d $fp, 0x5eed000a0a0a0a0a",
    "li.d $t0, 0x3ff0000000001111",
    "movgr2fr.d $fs0, $t0",
    "li.d $t0, 0x3ff0000000002222",
    "movgr2fr.d $fs1, $t0",
    "li.d $t0, 0x3ff0000000003333",
    "movgr2fr.d $fs2, $t0",
    "li.d $t0, 0x3ff0000000004444",
    "movgr2fr.d $fs3, $t0",
    "li.d $t0, 0x3ff0000000005555",
    "movgr2fr.d $fs4, $t0",
    "li.d $t0, 0x3ff0000000006666",
    "movgr2fr.d $fs5, $t0",
    "li.d $t0, 0x3ff0000000007777",
    "movgr2fr.d $fs6, $t0",
    "li.d $t0, 0x3ff0000000008888",
    "movgr2fr.d $fs7, $t0",
    "move $t8, $a0",
    "move $a0, $a1",
    "jirl $ra, $t8, 0",
    "ld.d $t0, $sp, 160",
    "st.d $s0, $t0, 0",
    "st.d $s1, $t0, 8",
    "st.d $s2, $t0, 16",
    "st.d $s3, $t0, 24",
    "st.d $s4, $t0, 32",
    "st.d $s5, $t0, 40",
    "st.d $s6, $t0, 48",
    "st.d $s7, $t0, 56",
    "st.d $s8, $t0, 64",
    "st.d $fp, $t0, 72",
    "fst.d $fs0, $t0, 80",
    "fst.d $fs1, $t0, 88",
    "fst.d $fs2, $t0, 96",
    "fst.d $fs3, $t0, 104",
    "fst.d $fs4, $t0, 112",
    "fst.d $fs5, $t0, 120",
    "fst.d $fs6, $t0, 128",
    "fst.d $fs7, $t0, 136",
    "movfcsr2gr $t1, $fcsr0",
    "bstrpick.d $t1, $t1, 31, 0",
    "st.d $t1, $t0, 144",
    "ld.w $t0, $sp, 152",
    "movgr2fcsr $fcsr0, $t0",
    "ld.d $ra, $sp, 0",
    "ld.d $fp, $sp, 8",
    "ld.d $s0, $sp, 16",
    "ld.d $s1, $sp, 24",
    "ld.d $s2, $sp, 32",
    "ld.d $s3, $sp, 40",
    "ld.d $s4, $sp, 48",
    "ld.d $s5, $sp, 56",
    "ld.d $s6, $sp, 64",
    "ld.d $s7, $sp, 72",
    "ld.d $s8, $sp, 80",
    "fld.d $fs0, $sp, 88",
    "fld.d $fs1, $sp, 96",
    "fld.d $fs2, $sp, 104",
    "fld.d $fs3, $sp, 112",
    "fld.d $fs4, $sp, 120",
    "fld.d $fs5, $sp, 128",
    "fld.d $fs6, $sp, 136",
    "fld.d $fs7, $sp, 144",
    "addi.d $sp, $sp, 176",
    "jr $ra",
    "",
    // a0 = body, a1 = ctx
    ".globl greenlet_abi_clobber",
    ".p2align 4",
    "greenlet_abi_clobber:",
    "move $t8, $a0",
    "move $a0, $a1",
    "li.w $t0, {b_fcsr}",
    "movgr2fcsr $fcsr0, $t0",
    "li.d $s0, 0xbad000010badf00d",
    "li.d $s1, 0xbad000020badf00d",
    "li.d $s2, 0xbad000030badf00d",
    "li.d $s3, 0xbad000040badf00d",
    "li.d $s4, 0xbad000050badf00d",
    "li.d $s5, 0xbad000060badf00d",
    "li.d $s6, 0xbad000070badf00d",
    "li.d $s7, 0xbad000080badf00d",
    "li.d $s8, 0xbad000090badf00d",
    "li.d $fp, 0xbad0000a0badf00d",
    "li.d $t0, -1",
    "movgr2fr.d $fs0, $t0",
    "movgr2fr.d $fs1, $t0",
    "movgr2fr.d $fs2, $t0",
    "movgr2fr.d $fs3, $t0",
    "movgr2fr.d $fs4, $t0",
    "movgr2fr.d $fs5, $t0",
    "movgr2fr.d $fs6, $t0",
    "movgr2fr.d $fs7, $t0",
    "jirl $ra, $t8, 0",
    "break 0",

    a_fcsr = const A_FCSR,
    b_fcsr = const B_FCSR,
);
