//! The bare switch with no greenlet around it: two contexts bouncing a word
//! back and forth on a scratch stack, main entering by RESUME and the other
//! side returning by YIELD, the pair the greenlet layer uses for parent/child
//! ping-pong. It is the floor under every greenlet switch, which the
//! benchmarks set beside the whole round trip (`benches/switch.rs`), and the
//! ABI test's stack.

use super::{init_stack, resume, yield_to, Transfer};

/// Heap memory used as a stack by the bare switch and the ABI test: no guard,
/// no pool, nothing but 16-aligned bytes that this module owns.
pub(crate) struct ScratchStack {
    memory: Box<[Chunk]>,
}

/// Sixteen bytes, 16-aligned on every CPU (`u128` is only 8-aligned on some
/// 32-bit ones, such as armv7).
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Chunk([u8; 16]);

impl ScratchStack {
    /// A scratch stack of at least `bytes` bytes.
    pub(crate) fn new(bytes: usize) -> ScratchStack {
        ScratchStack {
            memory: vec![Chunk([0; 16]); bytes.div_ceil(16)].into_boxed_slice(),
        }
    }

    /// The 16-aligned exclusive upper end.
    pub(crate) fn top(&mut self) -> *mut u8 {
        self.memory.as_mut_ptr_range().end.cast()
    }
}

/// The two saved stack pointers of a bare ping-pong.
struct Pair {
    main_sp: *mut u8,
    other_sp: *mut u8,
}

unsafe extern "C" fn bounce(a: usize, _: usize, _: usize, arg: usize) -> ! {
    let pair = arg as *mut Pair;
    let mut word = a;
    loop {
        // SAFETY: `pair` outlives the ping-pong (see round_trips); main's
        // stack pointer was stored by the switch that resumed us, and main
        // has not been resumed since. Main waits in a RESUME: YIELD pairs it.
        let got = unsafe { yield_to(&mut (*pair).other_sp, (*pair).main_sp, word, 0, 0) };
        word = word_of(&got);
    }
}

/// The first word of words that a switch handed over.
fn word_of(t: &Transfer) -> usize {
    t.words[0]
}

/// Runs `n` bare round trips (two switches each) and returns the last word
/// that came back, so that the work cannot be optimised away.
pub fn round_trips(n: u64) -> usize {
    let mut stack = ScratchStack::new(64 << 10);
    let mut pair = Pair {
        main_sp: std::ptr::null_mut(),
        other_sp: std::ptr::null_mut(),
    };
    let arg = &mut pair as *mut Pair as usize;
    // SAFETY: the top of scratch memory we own and nothing else runs on; it
    // is far larger than an initial frame.
    pair.other_sp = unsafe { init_stack(stack.top(), bounce, arg, std::ptr::null()) };
    // SAFETY: `other_sp` is the bouncer's initial frame (the first time) or
    // the frame it saved when it switched back to us; either way it is
    // suspended and not resumed since. `pair` and the stack outlive every
    // switch below. This first switch only starts the bouncer.
    let mut word = word_of(&unsafe { resume(&mut pair.main_sp, pair.other_sp, 0, 0, 0) });
    for i in 0..n as usize {
        // SAFETY: as above. The loop is as tight as Rust makes it (no
        // `black_box`: the assembly consumes the word, so nothing can be
        // optimised away), so that what is timed is the pair of switches.
        word = word_of(&unsafe { resume(&mut pair.main_sp, pair.other_sp, i, 0, 0) });
    }
    // The bouncer stays suspended on `stack` for good: it holds nothing that
    // needs dropping, and its memory is simply freed with the stack below.
    drop(stack);
    word
}
