//! The driver that runs a program on the real crate: every greenlet's closure
//! interprets its body, handles live in a table that main and every greenlet
//! share, and the steps themselves (and the tracers that `Trace` steps
//! install) record the trace.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Mutex;

use greenlet::{settrace, Builder, Event, Greenlet, GreenletExit, StackKind, Value, WeakGreenlet};

use super::events::{Boom, Ev, Id, Seen, Val};
use super::program::{Program, Step, CREATE_BUDGET, SLOTS};

struct Ctx {
    program: Program,
    table: RefCell<Vec<Option<Greenlet>>>,
    weak: RefCell<Vec<Option<WeakGreenlet>>>,
    trace: RefCell<Vec<Ev>>,
    /// Greenlet identity (its address, as its `Hash` writes it) to its id.
    ids: RefCell<HashMap<u64, Id>>,
    next_id: Cell<Id>,
    creates: Cell<usize>,
    /// Closures and `run` frames alive (see `BodyAlive`).
    bodies_alive: Cell<usize>,
    /// Every greenlet made, without keeping any alive.
    created: RefCell<Vec<WeakGreenlet>>,
}

/// What programs leak by design (suspended greenlets keeping each other
/// alive) stays reachable from here for the life of the process, so that a
/// leak checker (valgrind in test.sh) sees it held, not lost.
static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Lives in a greenlet's closure and then in its `run` frame.
struct BodyAlive(Rc<Ctx>);

impl Drop for BodyAlive {
    fn drop(&mut self) {
        self.0.bodies_alive.set(self.0.bodies_alive.get() - 1);
    }
}

/// Records that `run`'s frame was left, however it was left.
struct ExitGuard(Rc<Ctx>, Id);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.rec(Ev::BodyExit { g: self.1 });
    }
}

/// A `Hasher` that keeps what `Greenlet`'s identity hash writes.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }
}

fn identity(g: &Greenlet) -> u64 {
    let mut h = Identity::default();
    g.hash(&mut h);
    h.finish()
}

enum Flow {
    Next,
    /// `run` returns this value, with a handle inside it (`ReturnWith`) or
    /// without (`Return`, or the end of the body: `None`).
    Return(i64, Option<Option<Greenlet>>),
}

/// A value with a handle inside (`SwitchWith`, `ReturnWith`): whoever
/// receives it drops the handle on arrival (in [`val`]).
struct With(i64, Option<Greenlet>);

impl Ctx {
    fn rec(&self, ev: Ev) {
        self.trace.borrow_mut().push(ev);
    }

    fn id_of(&self, g: &Greenlet) -> Id {
        *self
            .ids
            .borrow()
            .get(&identity(g))
            .expect("driver: every greenlet is registered")
    }

    fn get(&self, slot: usize) -> Option<Greenlet> {
        self.table.borrow()[slot].clone()
    }

    /// Replaces a slot's handle and returns the old one, to be dropped by the
    /// caller outside the borrow (dropping it may kill, which re-enters).
    fn replace(&self, slot: usize, g: Option<Greenlet>) -> Option<Greenlet> {
        std::mem::replace(&mut self.table.borrow_mut()[slot], g)
    }
}

/// What a value that arrived is, for the trace; a handle inside it is
/// dropped here, before the arrival is recorded.
fn val(ctx: &Ctx, v: Value) -> Val {
    match v.downcast::<i64>() {
        Ok(i) => Val::Int(i),
        Err(v) if v.is::<GreenletExit>() => Val::Exit,
        Err(v) => match v.downcast::<With>() {
            Ok(With(i, handle)) => {
                let id = handle.as_ref().map(|g| ctx.id_of(g));
                drop(handle);
                Val::With(i, id)
            }
            Err(v) => Val::Other(v.type_name().to_string()),
        },
    }
}

/// A tracer that records every call; with `panic_with`, it also panics with
/// that `Boom` at its first call outside a kill (the crate then uninstalls
/// it and raises the panic in the target, S11). Inside a kill it does not:
/// a victim that received a `Boom` instead of `GreenletExit` would run steps
/// in the middle of a drop, and a dropper that received one swallows it with
/// a report on stderr.
fn tracer(ctx: &Rc<Ctx>, panic_with: Option<i64>) -> greenlet::Tracer {
    let ctx = ctx.clone();
    Rc::new(move |event, origin, target| {
        let ev = Ev::Trace {
            throw: event == Event::Throw,
            origin: ctx.id_of(origin),
            target: ctx.id_of(target),
        };
        ctx.rec(ev);
        if let Some(boom) = panic_with {
            if !being_killed(origin) && !being_killed(target) {
                panic::panic_any(Boom(boom));
            }
        }
    })
}

/// Is `g` the victim of a kill in progress? A weak handle does not upgrade
/// then, though strong handles exist (S13; `g` is one).
fn being_killed(g: &Greenlet) -> bool {
    g.downgrade().upgrade().is_none()
}

/// Runs `program` on the crate and returns its trace.
pub fn run(program: &Program) -> Vec<Ev> {
    let ctx = Rc::new(Ctx {
        program: program.clone(),
        table: RefCell::new(vec![None; SLOTS + 1]),
        weak: RefCell::new(vec![None; SLOTS + 1]),
        trace: RefCell::new(Vec::new()),
        ids: RefCell::new(HashMap::new()),
        next_id: Cell::new(1),
        creates: Cell::new(0),
        bodies_alive: Cell::new(0),
        created: RefCell::new(Vec::new()),
    });
    let main = Greenlet::current();
    ctx.ids.borrow_mut().insert(identity(&main), 0);
    ctx.table.borrow_mut()[0] = Some(main);
    // Programs start without a tracer, so that the crate takes its fast
    // paths until a `Trace` step installs one.
    settrace(None);

    for step in &program.main {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            exec(&ctx, 0, std::slice::from_ref(step))
        }));
        match outcome {
            Ok(Flow::Next) => {}
            Ok(Flow::Return(..)) => panic!("driver: main's script cannot return"),
            Err(p) => match p.downcast::<Boom>() {
                Ok(boom) => ctx.rec(Ev::Caught { g: 0, boom: boom.0 }),
                Err(p) if p.is::<GreenletExit>() => ctx.rec(Ev::CaughtExit { g: 0 }),
                Err(p) => panic::resume_unwind(p),
            },
        }
    }

    for slot in 1..=SLOTS {
        let seen = observe(&ctx, slot);
        ctx.rec(seen);
    }
    for slot in 1..=SLOTS {
        drop(ctx.replace(slot, None));
    }
    settrace(None);
    drop(ctx.replace(0, None));
    ctx.rec(Ev::Live {
        count: ctx.bodies_alive.get(),
    });
    let leaked: Vec<Greenlet> = ctx
        .created
        .borrow()
        .iter()
        .filter_map(WeakGreenlet::upgrade)
        .collect();
    if !leaked.is_empty() {
        let mut kept = KEPT.lock().unwrap();
        kept.push(Box::into_raw(Box::new(leaked)) as usize);
        kept.push(Rc::into_raw(ctx.clone()) as usize);
    }
    let trace = ctx.trace.take();
    drop(ctx);
    trace
}

fn observe(ctx: &Ctx, slot: usize) -> Ev {
    let seen = ctx.get(slot).map(|g| Seen {
        id: ctx.id_of(&g),
        started: g.is_started(),
        active: g.is_active(),
        dead: g.is_dead(),
        current: g.is_current(),
        main: g.is_main(),
        parent: g.parent().map(|p| ctx.id_of(&p)),
    });
    Ev::Observe { slot, seen }
}

/// A new greenlet running body `slot`, made by the current greenlet `by`.
fn create(ctx: &Rc<Ctx>, by: Id, slot: usize) {
    if ctx.creates.get() >= CREATE_BUDGET {
        return ctx.rec(Ev::Skipped { g: by });
    }
    ctx.creates.set(ctx.creates.get() + 1);
    let id = ctx.next_id.get();
    ctx.next_id.set(id + 1);
    ctx.bodies_alive.set(ctx.bodies_alive.get() + 1);
    let alive = BodyAlive(ctx.clone());
    let body_ctx = ctx.clone();
    // Both kinds of stack take part: guarded for even ids, slab for odd.
    let kind = if id % 2 == 0 {
        StackKind::Guarded
    } else {
        StackKind::Slab
    };
    let g = Builder::new()
        .stack_size(64 << 10)
        .stack_kind(kind)
        .spawn(move |arg: Value| -> Value {
            let _alive = alive;
            let ctx = body_ctx;
            let _exit = ExitGuard(ctx.clone(), id);
            let arg = val(&ctx, arg);
            ctx.rec(Ev::Started { g: id, arg });
            let (value, with) = match exec(&ctx, id, &ctx.program.bodies[slot]) {
                Flow::Return(v, with) => (v, with),
                Flow::Next => (-(slot as i64), None),
            };
            ctx.rec(Ev::Finished { g: id, value });
            match with {
                None => Value::new(value),
                Some(handle) => Value::new(With(value, handle)),
            }
        })
        .expect("driver: spawn");
    ctx.ids.borrow_mut().insert(identity(&g), id);
    ctx.created.borrow_mut().push(g.downgrade());
    ctx.rec(Ev::Created { g: by, new: id });
    drop(ctx.replace(slot, Some(g)));
}

/// Interprets `steps` as greenlet `who`.
fn exec(ctx: &Rc<Ctx>, who: Id, steps: &[Step]) -> Flow {
    for step in steps {
        match step {
            // The handle lives across the switch and drops right after it
            // returns (or while it unwinds), before anything is recorded.
            Step::Switch(to, v) => received(ctx, who, ctx.get(*to).map(|t| t.switch(*v))),
            Step::Throw(to, b) => received(ctx, who, ctx.get(*to).map(|t| t.throw(Boom(*b)))),
            Step::Exit(to) => received(ctx, who, ctx.get(*to).map(|t| t.throw(GreenletExit))),
            Step::Downgrade(slot) => {
                let weak = ctx.get(*slot).map(|g| g.downgrade());
                ctx.weak.borrow_mut()[*slot] = weak;
            }
            Step::Upgrade(slot) => {
                let weak = ctx.weak.borrow()[*slot].clone();
                let Some(weak) = weak else {
                    ctx.rec(Ev::Skipped { g: who });
                    continue;
                };
                let got = weak.upgrade();
                ctx.rec(Ev::Upgraded {
                    g: who,
                    got: got.as_ref().map(|g| ctx.id_of(g)),
                });
                if let Some(got) = got {
                    drop(ctx.replace(*slot, Some(got)));
                }
            }
            Step::SetParent(c, p) => {
                let result = match (ctx.get(*c), ctx.get(*p)) {
                    (Some(child), Some(parent)) => Some(match child.set_parent(&parent) {
                        Ok(()) => "ok",
                        Err(greenlet::Error::CyclicParent) => "CyclicParent",
                        Err(greenlet::Error::ParentOfMain) => "ParentOfMain",
                        Err(e) => panic!("driver: unexpected error {e:?}"),
                    }),
                    _ => None,
                };
                match result {
                    Some(result) => ctx.rec(Ev::SetParent { g: who, result }),
                    None => ctx.rec(Ev::Skipped { g: who }),
                }
            }
            Step::Create(slot) => create(ctx, who, *slot),
            Step::Drop(slot) => drop(ctx.replace(*slot, None)),
            Step::Observe(slot) => {
                let seen = observe(ctx, *slot);
                ctx.rec(seen);
            }
            Step::Return(v) => return Flow::Return(*v, None),
            Step::ReturnWith(slot, v) => return Flow::Return(*v, Some(ctx.replace(*slot, None))),
            Step::SwitchWith(to, slot, v) => {
                let got = ctx.get(*to).map(|t| {
                    let handle = ctx.replace(*slot, None);
                    t.switch(With(*v, handle))
                });
                received(ctx, who, got);
            }
            Step::Trace(on) => {
                settrace(on.then(|| tracer(ctx, None)));
            }
            Step::TracePanic(boom) => {
                settrace(Some(tracer(ctx, Some(*boom))));
            }
            Step::Backtrace(slot) => match ctx.get(*slot) {
                None => ctx.rec(Ev::Skipped { g: who }),
                Some(of) => {
                    let some = of.backtrace().is_some();
                    ctx.rec(Ev::Backtrace {
                        g: who,
                        of: ctx.id_of(&of),
                        some,
                    });
                }
            },
            Step::Current(slot) => drop(ctx.replace(*slot, Some(Greenlet::current()))),
            Step::Panic(b) => panic::panic_any(Boom(*b)),
            Step::Quit => panic::panic_any(GreenletExit),
            Step::Catch(inner) => {
                match panic::catch_unwind(AssertUnwindSafe(|| exec(ctx, who, inner))) {
                    Ok(Flow::Next) => {}
                    Ok(ret) => return ret,
                    Err(p) => match p.downcast::<Boom>() {
                        Ok(boom) => ctx.rec(Ev::Caught {
                            g: who,
                            boom: boom.0,
                        }),
                        Err(p) => panic::resume_unwind(p), // GreenletExit goes on
                    },
                }
            }
            Step::Nested(inner) => {
                if let ret @ Flow::Return(..) = nested(ctx, who, inner) {
                    return ret;
                }
            }
            Step::Hold(slot, inner) | Step::Take(slot, inner) => {
                // Dropped when this block is left, however it is left.
                let _held = match step {
                    Step::Take(..) => ctx.replace(*slot, None),
                    _ => ctx.get(*slot),
                };
                if let ret @ Flow::Return(..) = exec(ctx, who, inner) {
                    return ret;
                }
            }
        }
    }
    Flow::Next
}

/// Records what a switch or throw of `who` returned, or that its slot was empty.
fn received(ctx: &Ctx, who: Id, got: Option<Value>) {
    let ev = match got {
        None => Ev::Skipped { g: who },
        Some(value) => Ev::Received {
            g: who,
            value: val(ctx, value),
        },
    };
    ctx.rec(ev);
}

/// One frame deeper, with a KiB of locals that must survive the switches
/// made below it.
#[inline(never)]
fn nested(ctx: &Rc<Ctx>, who: Id, steps: &[Step]) -> Flow {
    let pad = std::hint::black_box([who as u8 ^ 0x5a; 1024]);
    let flow = exec(ctx, who, steps);
    assert!(
        pad.iter().all(|b| *b == who as u8 ^ 0x5a),
        "a frame's locals changed across switches"
    );
    flow
}
