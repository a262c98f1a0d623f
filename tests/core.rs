//! Core switching behaviour (SPEC S1–S5, S8, S9): starting, values both ways,
//! death into the parent, self and dead switches, parents, the main greenlet,
//! threads, panics, deep stacks, churn, and floating-point state.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use greenlet::{Error, Greenlet, Value};

fn int(v: Value) -> i64 {
    v.downcast::<i64>().expect("an i64")
}

#[test]
fn first_switch_starts_run_with_the_argument() {
    let seen = Rc::new(RefCell::new(None));
    let sink = seen.clone();
    let g = Greenlet::new(move |arg| {
        *sink.borrow_mut() = Some(arg.downcast::<&str>().unwrap());
    });
    assert!(!g.is_started() && !g.is_active() && !g.is_dead());
    assert!(
        seen.borrow().is_none(),
        "run must not be called before the first switch"
    );
    g.switch("hello");
    assert_eq!(*seen.borrow(), Some("hello"));
}

#[test]
fn values_travel_both_ways() {
    let main = Greenlet::current();
    let g = Greenlet::new(move |first| {
        let mut total = int(first);
        for _ in 0..5 {
            total += int(main.switch(total));
        }
        total
    });
    let mut received = Vec::new();
    let mut v = g.switch(1i64);
    for i in 0..5 {
        received.push(int(v));
        v = g.switch(10i64 * (i + 1));
    }
    assert_eq!(received, [1, 11, 31, 61, 101]);
    assert_eq!(int(v), 151);
    assert!(g.is_dead());
}

#[test]
fn large_and_non_copy_values_pass_unchanged() {
    let main = Greenlet::current();
    let g = Greenlet::new(move |v| {
        let s: String = v.downcast().unwrap();
        let back: Vec<u64> = main.switch(s.repeat(2)).downcast().unwrap();
        back.iter().sum::<u64>()
    });
    assert_eq!(
        g.switch(String::from("ab")).downcast::<String>().unwrap(),
        "abab"
    );
    assert_eq!(g.switch(vec![1u64, 2, 3, 4]).downcast::<u64>().unwrap(), 10);
}

#[test]
fn a_value_is_passed_on_without_rewrapping() {
    let g = Greenlet::new(|v: Value| v); // returns its argument as a Value
    let out = g.switch(Value::new(5u8));
    assert!(out.is::<u8>(), "got {out:?}");
}

#[test]
fn return_value_goes_to_the_parent() {
    let g = Greenlet::new(|_| 42i64);
    assert_eq!(int(g.switch(())), 42);
    assert!(g.is_dead() && g.is_started() && !g.is_active());
}

#[test]
fn death_goes_to_the_parent_not_to_whoever_switched_last() {
    // main -> a -> b; b returns. b's parent is main (created in main), so main
    // resumes, while a stays suspended in its switch to b.
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let b = Greenlet::new(move |_| {
        l.borrow_mut().push("b runs");
        "from b"
    });
    let l = log.clone();
    let b2 = b.clone();
    let a = Greenlet::new(move |_| {
        l.borrow_mut().push("a switches to b");
        b2.switch(());
        l.borrow_mut().push("a resumed");
    });
    let out = a.switch(());
    assert_eq!(out.downcast::<&str>().unwrap(), "from b");
    assert_eq!(*log.borrow(), ["a switches to b", "b runs"]);
    assert!(b.is_dead());
    assert!(a.is_active(), "a is still suspended in its switch to b");
}

#[test]
fn death_of_a_child_resumes_its_parent_greenlet() {
    // a creates c (so c's parent is a); c returns into a's pending switch.
    let a = Greenlet::new(|_| {
        let c = Greenlet::new(|v| int(v) * 2);
        let doubled = int(c.switch(21i64));
        assert!(c.is_dead());
        doubled + 1
    });
    assert_eq!(int(a.switch(())), 43);
}

#[test]
fn switching_to_self_returns_the_value_at_once() {
    assert_eq!(int(Greenlet::current().switch(7i64)), 7);
    let g = Greenlet::new(|_| int(Greenlet::current().switch(9i64)) + 1);
    assert_eq!(int(g.switch(())), 10);
}

#[test]
fn switching_to_a_dead_greenlet_goes_to_its_first_live_ancestor() {
    let g = Greenlet::new(|_| ());
    g.switch(());
    assert!(g.is_dead());
    // Its parent is main, which is current: the value comes straight back.
    assert_eq!(int(g.switch(5i64)), 5);

    // A dead greenlet whose parent is a suspended greenlet: the switch resumes that one.
    let main = Greenlet::current();
    let parent = Greenlet::new(move |_| {
        let got = main.switch("parent waiting");
        format!("parent got {}", int(got))
    });
    assert_eq!(
        parent.switch(()).downcast::<&str>().unwrap(),
        "parent waiting"
    );
    let child = Greenlet::builder().parent(&parent).spawn(|_| ()).unwrap();
    child.set_parent(&Greenlet::main()).unwrap();
    child.switch(()); // dies into main
    child.set_parent(&parent).unwrap();
    assert!(child.is_dead());
    assert_eq!(
        child.switch(8i64).downcast::<String>().unwrap(),
        "parent got 8"
    );
}

#[test]
fn switching_to_a_dead_greenlet_with_an_unstarted_parent_starts_it() {
    let parent = Greenlet::new(|v| int(v) + 100);
    let child = Greenlet::builder()
        .parent(&Greenlet::main())
        .spawn(|_| ())
        .unwrap();
    child.switch(());
    child.set_parent(&parent).unwrap();
    assert_eq!(int(child.switch(1i64)), 101);
    assert!(parent.is_dead());
}

#[test]
fn parent_defaults_to_the_creator_and_can_be_changed() {
    let main = Greenlet::main();
    let g = Greenlet::new(|_| Greenlet::new(|_| ()).parent().unwrap());
    assert_eq!(g.parent(), Some(main.clone()));
    let inner_parent = g.switch(()).downcast::<Greenlet>().unwrap();
    assert_eq!(inner_parent, g, "a greenlet made inside g has g as parent");

    let a = Greenlet::new(|_| ());
    let b = Greenlet::new(|_| ());
    b.set_parent(&a).unwrap();
    assert_eq!(b.parent(), Some(a.clone()));
    assert_eq!(a.set_parent(&b), Err(Error::CyclicParent));
    assert_eq!(a.set_parent(&a), Err(Error::CyclicParent));
    assert_eq!(main.set_parent(&a), Err(Error::ParentOfMain));
    assert_eq!(
        a.parent(),
        Some(main.clone()),
        "a refused set_parent changes nothing"
    );
    assert!(Error::CyclicParent.to_string().contains("ancestor"));
    assert!(Error::ParentOfMain.to_string().contains("main"));
}

#[test]
fn a_reparented_greenlet_dies_into_its_new_parent() {
    let main = Greenlet::current();
    let new_parent = Greenlet::new(move |v| {
        let child_result = int(v);
        main.switch(child_result * 10);
    });
    let child = Greenlet::new(|_| 4i64);
    child.set_parent(&new_parent).unwrap();
    assert_eq!(int(child.switch(())), 40);
}

#[test]
fn the_main_greenlet() {
    let main = Greenlet::main();
    assert!(main.is_main() && main.is_started() && main.is_active() && !main.is_dead());
    assert!(main.is_current());
    assert_eq!(main.parent(), None);
    assert_eq!(Greenlet::current(), main);
    let seen = Greenlet::new(|_| (Greenlet::main(), Greenlet::current()));
    let (m, c) = seen.switch(()).downcast::<(Greenlet, Greenlet)>().unwrap();
    assert_eq!(m, main);
    assert_eq!(c, seen);
    assert!(!seen.is_main());
}

#[test]
fn each_thread_has_its_own_main() {
    let here = format!("{:?}", Greenlet::main());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let main = Greenlet::main();
                assert!(main.is_current() && main.parent().is_none());
                let g = Greenlet::new(move |v| int(v) * 2);
                let id = format!("{main:?}");
                (int(g.switch(i as i64)), id)
            })
        })
        .collect();
    let mut ids = vec![here];
    for (i, t) in threads.into_iter().enumerate() {
        let (doubled, id) = t.join().unwrap();
        assert_eq!(doubled, 2 * i as i64);
        ids.push(id);
    }
    // Threads that already exited may reuse an address, but at least the live
    // main thread's main differs from every other thread's.
    assert!(ids[1..].iter().all(|id| *id != ids[0]));
}

#[test]
fn a_panic_reaches_the_parent_with_its_payload() {
    let g = Greenlet::new(|_| -> () { std::panic::panic_any(1234u32) });
    let err = catch_unwind(AssertUnwindSafe(|| g.switch(()))).unwrap_err();
    assert_eq!(err.downcast_ref::<u32>(), Some(&1234));
    assert!(g.is_dead());
}

#[test]
fn a_panic_goes_to_the_parent_not_the_switcher_and_through_unstarted_parents() {
    // child's parent is `unstarted`, whose parent is main. child panics: the
    // unstarted parent dies without running, and the payload reaches main.
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    let unstarted = Greenlet::new(move |_| *r.borrow_mut() = true);
    let child = Greenlet::builder()
        .parent(&unstarted)
        .spawn(|_| -> () { panic!("boom") })
        .unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| child.switch(()))).unwrap_err();
    assert_eq!(*err.downcast::<&str>().unwrap(), "boom");
    assert!(child.is_dead() && unstarted.is_dead());
    assert!(
        !*ran.borrow(),
        "the unstarted parent's run must never be called"
    );
}

#[test]
fn a_panic_can_be_caught_inside_a_greenlet_parent() {
    let outer = Greenlet::new(|_| {
        let inner = Greenlet::new(|_| -> () { panic!("inner failed") });
        let caught = catch_unwind(AssertUnwindSafe(|| inner.switch(())));
        caught
            .unwrap_err()
            .downcast::<&str>()
            .map(|s| *s)
            .unwrap_or("?")
    });
    assert_eq!(outer.switch(()).downcast::<&str>().unwrap(), "inner failed");
}

/// Recursion that cannot be turned into a loop: each frame keeps a 64-byte
/// buffer alive across the call and sums the depths it returns.
fn recurse(depth: u64) -> u64 {
    let buf = std::hint::black_box([depth as u8; 64]);
    if depth == 0 {
        return 0;
    }
    let below = recurse(depth - 1);
    below + 1 + u64::from(std::hint::black_box(buf)[0] == depth as u8) - 1
}

#[test]
fn deep_recursion_on_a_large_stack() {
    let g = Greenlet::builder()
        .stack_size(64 << 20)
        .spawn(|v| recurse(v.downcast::<u64>().unwrap()))
        .unwrap();
    // 100k frames of at least 64 bytes each (a few hundred in debug builds):
    // tens of MiB, far past the default 1 MiB stack.
    assert_eq!(g.switch(100_000u64).downcast::<u64>().unwrap(), 100_000);
}

#[test]
fn thousands_of_short_lived_greenlets() {
    let mut sum = 0i64;
    for i in 0..5_000i64 {
        let g = Greenlet::new(move |v| int(v) + i);
        sum += int(g.switch(1i64));
        assert!(g.is_dead());
    }
    assert_eq!(sum, (0..5_000).map(|i| i + 1).sum::<i64>());
    assert!(
        greenlet::stack::pooled() >= 1,
        "dead greenlets' stacks go back to the pool"
    );
}

#[test]
fn thousands_of_live_greenlets_at_once() {
    let main = Greenlet::current();
    let live: Vec<Greenlet> = (0..2_000i64)
        .map(|i| {
            let main = main.clone();
            Greenlet::new(move |_| {
                let got = int(main.switch(i));
                got + i
            })
        })
        .collect();
    for (i, g) in live.iter().enumerate() {
        assert_eq!(int(g.switch(())), i as i64);
    }
    for (i, g) in live.iter().enumerate() {
        assert_eq!(int(g.switch(1000i64)), 1000 + i as i64);
        assert!(g.is_dead());
    }
}

#[test]
fn floating_point_values_survive_switches() {
    let main = Greenlet::current();
    let g = Greenlet::new(move |v| {
        let mut x = v.downcast::<f64>().unwrap();
        let mut acc = [0.0f64; 8];
        for round in 0..100 {
            for (k, a) in acc.iter_mut().enumerate() {
                *a += x * (k as f64 + 0.5);
            }
            x = main
                .switch(acc.iter().sum::<f64>() + round as f64)
                .downcast::<f64>()
                .unwrap();
        }
        acc.iter().sum::<f64>()
    });
    // Main keeps its own FP values live across the same switches.
    let mut mine = [1.25f64, -2.5, 3.75, 1e300, 1e-300, 0.1, 0.2, 0.3];
    let mut acc_model = [0.0f64; 8];
    let mut v = g.switch(1.5f64);
    for round in 0..100 {
        let x = if round == 0 { 1.5 } else { round as f64 * 0.25 };
        for (k, a) in acc_model.iter_mut().enumerate() {
            *a += x * (k as f64 + 0.5);
        }
        let expected = acc_model.iter().sum::<f64>() + round as f64;
        assert_eq!(v.downcast::<f64>().unwrap(), expected);
        for m in mine.iter_mut() {
            *m = std::hint::black_box(*m * 1.0);
        }
        v = g.switch((round + 1) as f64 * 0.25);
    }
    assert_eq!(mine, [1.25, -2.5, 3.75, 1e300, 1e-300, 0.1, 0.2, 0.3]);
    assert!(v.downcast::<f64>().is_ok());
}

/// Reads and sets the hardware rounding mode through inline assembly.
mod rounding {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    pub fn get() -> u32 {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr only stores the control register into our local.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack)) };
        (csr >> 13) & 3
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    pub fn set(mode: u32) {
        let mut csr: u32 = 0;
        // SAFETY: read-modify-write of MXCSR's rounding field only; any value
        // 0..=3 is a valid rounding mode.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr = (csr & !(3 << 13)) | ((mode & 3) << 13);
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
    }
    #[cfg(target_arch = "aarch64")]
    pub fn get() -> u32 {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effects.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        ((fpcr >> 22) & 3) as u32
    }
    #[cfg(target_arch = "aarch64")]
    pub fn set(mode: u32) {
        // SAFETY: read-modify-write of FPCR's RMode field; 0..=3 are all valid.
        unsafe {
            let mut fpcr: u64;
            std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
            fpcr = (fpcr & !(3 << 22)) | (((mode & 3) as u64) << 22);
            std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack));
        }
    }
    #[cfg(target_arch = "riscv64")]
    pub fn get() -> u32 {
        let frm: u64;
        // SAFETY: reading frm has no side effects.
        unsafe { std::arch::asm!("frrm {}", out(reg) frm, options(nomem, nostack)) };
        frm as u32
    }
    #[cfg(target_arch = "riscv64")]
    pub fn set(mode: u32) {
        // SAFETY: 0..=3 are valid static rounding modes (RNE, RTZ, RDN, RUP).
        unsafe { std::arch::asm!("fsrm {}", in(reg) (mode & 3) as u64, options(nomem, nostack)) };
    }
    #[cfg(target_arch = "s390x")]
    pub fn get() -> u32 {
        let fpc: u64;
        // SAFETY: efpc only copies the FP control register into a GPR.
        unsafe { std::arch::asm!("efpc {}", out(reg) fpc, options(nomem, nostack)) };
        (fpc & 3) as u32
    }
    #[cfg(target_arch = "s390x")]
    pub fn set(mode: u32) {
        // SAFETY: read-modify-write of the BFP rounding-mode field (the low two
        // bits of FPC); 0..=3 are all valid modes.
        unsafe {
            let mut fpc: u64;
            std::arch::asm!("efpc {}", out(reg) fpc, options(nomem, nostack));
            fpc = (fpc & !3) | u64::from(mode & 3);
            std::arch::asm!("sfpc {}", in(reg) fpc, options(nomem, nostack));
        }
    }
    #[cfg(target_arch = "arm")]
    pub fn get() -> u32 {
        let fpscr: u32;
        // SAFETY: vmrs only copies FPSCR into a core register.
        unsafe { std::arch::asm!("vmrs {}, fpscr", out(reg) fpscr, options(nomem, nostack)) };
        (fpscr >> 22) & 3
    }
    #[cfg(target_arch = "arm")]
    pub fn set(mode: u32) {
        // SAFETY: read-modify-write of FPSCR's RMode field (bits 22-23);
        // 0..=3 are all valid modes.
        unsafe {
            let mut fpscr: u32;
            std::arch::asm!("vmrs {}, fpscr", out(reg) fpscr, options(nomem, nostack));
            fpscr = (fpscr & !(3 << 22)) | ((mode & 3) << 22);
            std::arch::asm!("vmsr fpscr, {}", in(reg) fpscr, options(nomem, nostack));
        }
    }
    #[cfg(target_arch = "loongarch64")]
    pub fn get() -> u32 {
        let fcsr3: u64;
        // SAFETY: reading FCSR3 (the rounding-mode field alone) has no side
        // effects.
        unsafe {
            std::arch::asm!("movfcsr2gr {}, $fcsr3", out(reg) fcsr3, options(nomem, nostack))
        };
        ((fcsr3 >> 8) & 3) as u32
    }
    #[cfg(target_arch = "loongarch64")]
    pub fn set(mode: u32) {
        // SAFETY: FCSR3 is the rounding-mode field alone (bits 8-9 of FCSR0);
        // 0..=3 are all valid modes (nearest, zero, +inf, -inf).
        unsafe {
            std::arch::asm!(
                "movgr2fcsr $fcsr3, {}",
                in(reg) u64::from(mode & 3) << 8,
                options(nomem, nostack)
            )
        };
    }
    #[cfg(target_arch = "powerpc64")]
    pub fn get() -> u32 {
        let fpscr: u64;
        // SAFETY: mffs only copies FPSCR into a scratch FP register, which is
        // then moved to a GPR; nothing else changes.
        unsafe {
            std::arch::asm!(
                "mffs {f}",
                "mffprd {r}, {f}",
                f = out(freg) _,
                r = out(reg) fpscr,
                options(nomem, nostack)
            )
        };
        (fpscr & 3) as u32
    }
    #[cfg(target_arch = "powerpc64")]
    pub fn set(mode: u32) {
        // SAFETY: read-modify-write of FPSCR field 7 (XE, NI and RN) keeping
        // XE and NI; 0..=3 are all valid modes (nearest, zero, +inf, -inf).
        unsafe {
            std::arch::asm!(
                "mffs {f}",
                "mffprd {r}, {f}",
                "rldimi {r}, {mode}, 0, 62",
                "mtfprd {f}, {r}",
                "mtfsf 0x01, {f}",
                f = out(freg) _,
                r = out(reg) _,
                mode = in(reg) u64::from(mode & 3),
                options(nomem, nostack)
            )
        };
    }
}

/// The rounding mode a greenlet sees after it set 2 and switched to main and
/// back three times, while main set 1 before each of its switches back; and
/// what main saw after each switch.
fn rounding_across_switches() -> (Vec<u32>, Vec<u32>) {
    let original = rounding::get();
    let main = Greenlet::current();
    let g = Greenlet::new(move |_| {
        let mut seen = Vec::new();
        for _ in 0..3 {
            rounding::set(2);
            main.switch(());
            seen.push(rounding::get());
        }
        seen
    });
    let mut in_main = Vec::new();
    for _ in 0..3 {
        rounding::set(1);
        g.switch(());
        in_main.push(rounding::get());
        rounding::set(1);
    }
    let seen = g.switch(()).downcast::<Vec<u32>>().unwrap();
    rounding::set(original);
    (seen, in_main)
}

#[test]
#[cfg(feature = "fp-control")]
fn with_fp_control_each_greenlet_keeps_its_own_rounding_mode() {
    let (in_greenlet, in_main) = rounding_across_switches();
    assert_eq!(
        in_main,
        [1, 1, 1],
        "main's rounding mode must survive the switch"
    );
    assert_eq!(
        in_greenlet,
        [2, 2, 2],
        "the greenlet's rounding mode must survive the switch"
    );
}

#[test]
#[cfg(not(feature = "fp-control"))]
fn without_fp_control_the_rounding_mode_belongs_to_the_thread() {
    let (in_greenlet, in_main) = rounding_across_switches();
    assert_eq!(
        in_main,
        [2, 2, 2],
        "main sees what the greenlet set: one mode per thread"
    );
    assert_eq!(
        in_greenlet,
        [1, 1, 1],
        "the greenlet sees what main set: one mode per thread"
    );
}

#[test]
fn a_new_greenlet_starts_with_its_creators_rounding_mode() {
    // With fp-control the mode is copied into the new greenlet when it is
    // made (as a new thread inherits its creator's); without, it is the
    // thread's, which is the same here.
    let original = rounding::get();
    rounding::set(3);
    let g = Greenlet::new(|_| rounding::get());
    rounding::set(if cfg!(feature = "fp-control") { 1 } else { 3 });
    let inside = g.switch(()).downcast::<u32>().unwrap();
    let after = rounding::get();
    rounding::set(original);
    assert_eq!(
        inside, 3,
        "a new greenlet starts with the mode current when it was made"
    );
    assert_eq!(after, if cfg!(feature = "fp-control") { 1 } else { 3 });
}

#[test]
fn builder_reports_impossible_stacks_and_rounds_small_ones() {
    let err = Greenlet::builder()
        .stack_size(usize::MAX)
        .spawn(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("greenlet"), "{err}");
    for tiny in [0, 1, 4095] {
        let g = Greenlet::builder()
            .stack_size(tiny)
            .spawn(|v| int(v) + 1)
            .unwrap();
        assert_eq!(int(g.switch(1i64)), 2);
    }
    assert_eq!(
        greenlet::stack::usable_size_for(0).unwrap(),
        greenlet::stack::MIN_STACK_SIZE
    );
}

#[test]
fn handles_compare_and_hash_by_identity() {
    use std::collections::HashSet;
    let a = Greenlet::new(|_| ());
    let b = Greenlet::new(|_| ());
    let set: HashSet<Greenlet> = [a.clone(), a.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert_ne!(a, b);
    assert_eq!(a, a.clone());
    let dbg = format!("{a:?}");
    assert!(dbg.contains("unstarted"), "{dbg}");
}

#[test]
fn dropping_a_long_parent_chain_does_not_recurse() {
    // 20k greenlets, each the parent of the next; dropping the leaf releases
    // the whole chain. On a 256 KiB thread stack, a recursive release (a few
    // frames per level) would overflow long before the end.
    let released = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let witness = Rc::new(());
            let mut leaf = Greenlet::new(|_| ());
            for _ in 0..20_000 {
                let w = witness.clone();
                leaf = Greenlet::builder()
                    .parent(&leaf)
                    .stack_size(16 << 10)
                    .spawn(move |_| drop(w))
                    .unwrap();
            }
            assert_eq!(Rc::strong_count(&witness), 20_001);
            drop(leaf);
            Rc::strong_count(&witness)
        })
        .unwrap()
        .join()
        .expect("the thread must not crash");
    assert_eq!(released, 1, "every closure in the chain was dropped");
}

#[test]
fn handles_can_be_used_in_catch_unwind_without_assert_unwind_safe() {
    let g = Greenlet::new(|_| -> () { panic!("no") });
    let weak = g.downgrade();
    assert!(catch_unwind(|| g.switch(())).is_err());
    assert!(catch_unwind(|| weak.upgrade().map(|h| h.is_dead())).unwrap() == Some(true));
}
