//! The operation language of the switch fuzzer, its proptest strategy, and
//! printing as Rust that rebuilds the program (so a shrunk failure becomes a
//! regression test in one copy).

use std::fmt;

use proptest::prelude::*;

/// A table slot: 0 holds the main greenlet, 1..=SLOTS hold greenlets.
pub type Slot = usize;

/// Number of greenlet slots besides main's.
pub const SLOTS: usize = 4;

/// At most this many greenlets are created per program: bodies may create
/// greenlets that run the same body, so this keeps every program finite.
pub const CREATE_BUDGET: usize = 12;

/// One step of a body (or of main's script).
#[derive(Clone, PartialEq)]
pub enum Step {
    /// `table[to].switch(value)`; records what comes back.
    Switch(Slot, i64),
    /// `table[to].throw(Boom(boom))`; records what comes back.
    Throw(Slot, i64),
    /// `table[to].throw(GreenletExit)`; records what comes back (S6, S7).
    Exit(Slot),
    /// `table[child].set_parent(&table[parent])`; records the result.
    SetParent(Slot, Slot),
    /// `table[slot] = new greenlet running body `slot``, parent = current;
    /// the handle it replaces is dropped.
    Create(Slot),
    /// `table[slot] = None`: drops that handle (maybe the last one: a kill).
    Drop(Slot),
    /// Records `is_started`, `is_active`, `is_dead` and the parent of `table[slot]`.
    Observe(Slot),
    /// Returns from `run` with this value (never in main's script).
    Return(i64),
    /// `panic_any(Boom(boom))`.
    Panic(i64),
    /// `panic_any(GreenletExit)`: a quiet death (S6).
    Quit,
    /// `weak[slot] = table[slot].downgrade()` (or `None` for an empty slot).
    Downgrade(Slot),
    /// `table[slot] = weak[slot].upgrade()` when that gives a handle (S13);
    /// records what it gave. The handle it replaces is dropped.
    Upgrade(Slot),
    /// Runs the steps inside `catch_unwind`; a `Boom` is caught and recorded,
    /// anything else (`GreenletExit`) goes on unwinding.
    Catch(Vec<Step>),
    /// Runs the steps one Rust frame deeper, with a KiB of locals.
    Nested(Vec<Step>),
    /// Runs the steps holding a clone of `table[slot]` in a local, dropped
    /// when the block is left (normally, by unwinding, or by a kill).
    Hold(Slot, Vec<Step>),
    /// Like `Hold`, but the handle is moved out of the table (the slot is
    /// empty meanwhile), so the block's end often drops the last handle.
    Take(Slot, Vec<Step>),
    /// `settrace` of a tracer that records every call (`true`), or of none
    /// (`false`). Without a tracer the crate takes its switch fast path.
    Trace(bool),
    /// `settrace` of a tracer that records every call and panics with
    /// `Boom(boom)` at its first call outside a kill: the crate uninstalls it
    /// and raises the panic in the target instead of what the switch or
    /// throw carried (S11). Inside a kill it lets the call pass, so that a
    /// kill's `GreenletExit` and its death stay what they are.
    TracePanic(i64),
    /// `table[slot].backtrace()`: records whether it gave one (S11's
    /// introspection: it must not resume the greenlet or call the tracer).
    Backtrace(Slot),
    /// `table[slot] = Greenlet::current()`: a handle to the running greenlet,
    /// which may have had none left. The handle it replaces is dropped.
    Current(Slot),
    /// `table[to].switch(With(value, table[slot].take()))`: a handle moved
    /// into the value; whoever receives it drops it on arrival, which may be
    /// the last handle (to the sender, say).
    SwitchWith(Slot, Slot, i64),
    /// Returns from `run` with `With(value, table[slot].take())` (bodies
    /// only): the parent drops that handle when the death arrives, which may
    /// be the last one to the greenlet that just died.
    ReturnWith(Slot, i64),
}

/// Main's script and one body per slot (index 0 is unused: main has no body).
#[derive(Clone, PartialEq)]
pub struct Program {
    pub main: Vec<Step>,
    pub bodies: Vec<Vec<Step>>,
}

impl Program {
    /// `bodies[k]` is the body of greenlets created into slot `k + 1`.
    pub fn new(main: Vec<Step>, bodies: Vec<Vec<Step>>) -> Program {
        assert!(bodies.len() <= SLOTS, "at most {SLOTS} bodies");
        let mut all = vec![Vec::new()];
        all.extend(bodies);
        all.resize(SLOTS + 1, Vec::new());
        Program { main, bodies: all }
    }

    /// Number of steps, nested ones included (for the depth statistics).
    pub fn size(&self) -> usize {
        fn count(steps: &[Step]) -> usize {
            steps
                .iter()
                .map(|s| match s {
                    Step::Catch(inner)
                    | Step::Nested(inner)
                    | Step::Hold(_, inner)
                    | Step::Take(_, inner) => 1 + count(inner),
                    _ => 1,
                })
                .sum()
        }
        count(&self.main) + self.bodies.iter().map(|b| count(b)).sum::<usize>()
    }
}

// ------------------------------------------------------------ simplifying

/// Every program one edit simpler than `steps`: a step removed, or a block
/// replaced by the steps inside it. proptest's shrinking cannot do the
/// second (it shrinks a block into some other step), so a failure is
/// simplified further with these before it is printed.
fn simpler_lists(steps: &[Step]) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let mut without = steps.to_vec();
        without.remove(i);
        out.push(without);
        let inner = match step {
            Step::Catch(inner)
            | Step::Nested(inner)
            | Step::Hold(_, inner)
            | Step::Take(_, inner) => inner,
            _ => continue,
        };
        let mut spliced = steps[..i].to_vec();
        spliced.extend(inner.iter().cloned());
        spliced.extend(steps[i + 1..].iter().cloned());
        out.push(spliced);
        for simpler in simpler_lists(inner) {
            let mut edited = steps.to_vec();
            edited[i] = match step {
                Step::Catch(_) => Step::Catch(simpler),
                Step::Nested(_) => Step::Nested(simpler),
                Step::Hold(slot, _) => Step::Hold(*slot, simpler),
                Step::Take(slot, _) => Step::Take(*slot, simpler),
                _ => unreachable!(),
            };
            out.push(edited);
        }
    }
    out
}

impl Program {
    /// Programs one edit simpler than this one (see `simpler_lists`).
    pub fn simpler(&self) -> Vec<Program> {
        let mut out: Vec<Program> = simpler_lists(&self.main)
            .into_iter()
            .map(|main| Program {
                main,
                bodies: self.bodies.clone(),
            })
            .collect();
        for (k, body) in self.bodies.iter().enumerate() {
            for simpler in simpler_lists(body) {
                let mut bodies = self.bodies.clone();
                bodies[k] = simpler;
                out.push(Program {
                    main: self.main.clone(),
                    bodies,
                });
            }
        }
        out
    }
}

// ------------------------------------------------------------------ printing

fn write_steps(f: &mut fmt::Formatter<'_>, steps: &[Step], indent: usize) -> fmt::Result {
    if steps.is_empty() {
        return write!(f, "vec![]");
    }
    writeln!(f, "vec![")?;
    for step in steps {
        write!(f, "{:width$}", "", width = indent + 4)?;
        write_step(f, step, indent + 4)?;
        writeln!(f, ",")?;
    }
    write!(f, "{:width$}]", "", width = indent)
}

fn write_step(f: &mut fmt::Formatter<'_>, step: &Step, indent: usize) -> fmt::Result {
    match step {
        Step::Switch(to, v) => write!(f, "Switch({to}, {v})"),
        Step::Throw(to, b) => write!(f, "Throw({to}, {b})"),
        Step::Exit(to) => write!(f, "Exit({to})"),
        Step::SetParent(c, p) => write!(f, "SetParent({c}, {p})"),
        Step::Create(s) => write!(f, "Create({s})"),
        Step::Drop(s) => write!(f, "Drop({s})"),
        Step::Observe(s) => write!(f, "Observe({s})"),
        Step::Return(v) => write!(f, "Return({v})"),
        Step::Panic(b) => write!(f, "Panic({b})"),
        Step::Quit => write!(f, "Quit"),
        Step::Downgrade(s) => write!(f, "Downgrade({s})"),
        Step::Upgrade(s) => write!(f, "Upgrade({s})"),
        Step::Catch(inner) => {
            write!(f, "Catch(")?;
            write_steps(f, inner, indent)?;
            write!(f, ")")
        }
        Step::Nested(inner) => {
            write!(f, "Nested(")?;
            write_steps(f, inner, indent)?;
            write!(f, ")")
        }
        Step::Hold(s, inner) => {
            write!(f, "Hold({s}, ")?;
            write_steps(f, inner, indent)?;
            write!(f, ")")
        }
        Step::Take(s, inner) => {
            write!(f, "Take({s}, ")?;
            write_steps(f, inner, indent)?;
            write!(f, ")")
        }
        Step::Trace(on) => write!(f, "Trace({on})"),
        Step::TracePanic(b) => write!(f, "TracePanic({b})"),
        Step::Backtrace(s) => write!(f, "Backtrace({s})"),
        Step::Current(s) => write!(f, "Current({s})"),
        Step::SwitchWith(to, s, v) => write!(f, "SwitchWith({to}, {s}, {v})"),
        Step::ReturnWith(s, v) => write!(f, "ReturnWith({s}, {v})"),
    }
}

/// Prints the program as the Rust expression that rebuilds it.
impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Program::new(")?;
        write!(f, "    /* main */ ")?;
        write_steps(f, &self.main, 4)?;
        writeln!(f, ",")?;
        writeln!(f, "    vec![")?;
        let last = self.bodies.iter().rposition(|b| !b.is_empty()).unwrap_or(0);
        for (slot, body) in self.bodies.iter().enumerate().take(last + 1).skip(1) {
            write!(f, "        /* body {slot} */ ")?;
            write_steps(f, body, 8)?;
            writeln!(f, ",")?;
        }
        writeln!(f, "    ],")?;
        write!(f, ")")
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_step(f, self, 0)
    }
}

// ------------------------------------------------------------------ strategy

fn any_slot() -> impl Strategy<Value = Slot> {
    0..=SLOTS
}

fn greenlet_slot() -> impl Strategy<Value = Slot> {
    1..=SLOTS
}

fn small() -> impl Strategy<Value = i64> {
    -99i64..100
}

/// Steps that are not blocks. `in_main`: no `Return` or `ReturnWith` (main
/// never returns).
fn leaf(in_main: bool) -> BoxedStrategy<Step> {
    let common = prop_oneof![
        6 => (any_slot(), small()).prop_map(|(to, v)| Step::Switch(to, v)),
        2 => (any_slot(), small()).prop_map(|(to, b)| Step::Throw(to, b)),
        2 => (any_slot(), any_slot()).prop_map(|(c, p)| Step::SetParent(c, p)),
        3 => greenlet_slot().prop_map(Step::Create),
        2 => greenlet_slot().prop_map(Step::Drop),
        1 => any_slot().prop_map(Step::Observe),
        1 => small().prop_map(Step::Panic),
        1 => any_slot().prop_map(Step::Exit),
        2 => any_slot().prop_map(Step::Downgrade),
        2 => any_slot().prop_map(Step::Upgrade),
        2 => any::<bool>().prop_map(Step::Trace),
        1 => small().prop_map(Step::TracePanic),
        2 => any_slot().prop_map(Step::Backtrace),
        1 => greenlet_slot().prop_map(Step::Current),
        2 => (any_slot(), greenlet_slot(), small()).prop_map(|(to, s, v)| Step::SwitchWith(to, s, v)),
    ];
    if in_main {
        common.boxed()
    } else {
        prop_oneof![
            29 => common,
            2 => small().prop_map(Step::Return),
            1 => Just(Step::Quit),
            1 => (greenlet_slot(), small()).prop_map(|(s, v)| Step::ReturnWith(s, v)),
        ]
        .boxed()
    }
}

/// A list of steps where blocks nest up to two levels.
fn steps(in_main: bool, max_len: usize) -> BoxedStrategy<Vec<Step>> {
    // proptest calls the closure again for every step it generates: it gets
    // a clone of `leaf` (an `Arc`), not a `leaf()` built anew each time,
    // which made generation most of the fuzzer's time in debug builds.
    let leaf = leaf(in_main);
    let step = leaf.clone().prop_recursive(2, 12, 4, move |inner| {
        prop_oneof![
            4 => leaf.clone(),
            2 => prop::collection::vec(inner.clone(), 1..4).prop_map(Step::Catch),
            1 => prop::collection::vec(inner.clone(), 1..4).prop_map(Step::Nested),
            1 => (any_slot(), prop::collection::vec(inner.clone(), 1..4))
                .prop_map(|(slot, steps)| Step::Hold(slot, steps)),
            2 => (greenlet_slot(), prop::collection::vec(inner, 1..4))
                .prop_map(|(slot, steps)| Step::Take(slot, steps)),
        ]
    });
    prop::collection::vec(step, 0..max_len).boxed()
}

/// Random programs, and one in four shaped to leave a greenlet running
/// with no handle to it (see [`orphan_program`]).
pub fn program() -> impl Strategy<Value = Program> {
    prop_oneof![
        3 => random_program(),
        1 => orphan_program(),
    ]
}

/// Programs with a main script that creates greenlets first, so that most
/// steps have something to act on.
fn random_program() -> impl Strategy<Value = Program> {
    let creates = prop::collection::vec(greenlet_slot().prop_map(Step::Create), 1..4);
    (
        creates,
        steps(true, 36),
        prop::collection::vec(steps(false, 16), SLOTS),
    )
        .prop_map(|(mut main, rest, bodies)| {
            main.extend(rest);
            Program::new(main, bodies)
        })
}

/// Random steps around the skeleton of Python greenlet's
/// `test_dealloc_switch_args_not_lost`: greenlet 1 waits in main; greenlet
/// 2, made with greenlet 1 as its parent, dies into it; greenlet 1 moves
/// greenlet 2 under main and drops its own handle.
///
/// A greenlet that a switch resumed is held by the switcher's handle until
/// the switcher runs again, so random programs almost never leave the
/// running greenlet without a handle: only a death into it can, once the
/// dead child's parent link is moved away. Here greenlet 1 then runs with no
/// handle at all, and whatever it does next (switch away, return, panic,
/// take `Greenlet::current()`, die with a tracer on or off) goes through the
/// crate's paths for a greenlet nobody holds.
fn orphan_program() -> impl Strategy<Value = Program> {
    // Half the time, what it does first is to switch away: to main, or
    // through greenlet 2 (dead: to main again, by the slow path).
    let to = prop_oneof![3 => Just(0), 1 => Just(2)];
    let away = prop::option::of(prop_oneof![
        3 => (to.clone(), small()).prop_map(|(to, v)| Step::Switch(to, v)),
        1 => (to.clone(), greenlet_slot(), small()).prop_map(|(to, s, v)| Step::SwitchWith(to, s, v)),
        1 => (to, small()).prop_map(|(to, b)| Step::Throw(to, b)),
    ]);
    (
        (small(), small()),
        steps(false, 2),
        (away, steps(false, 10)),
        steps(false, 3),
        steps(true, 20),
        prop::collection::vec(steps(false, 14), SLOTS - 2),
    )
        .prop_map(
            |((a, b), before, (away, after), body2, main_rest, others)| {
                let mut main = vec![
                    Step::Create(1),
                    Step::Switch(1, a),
                    Step::Create(2),
                    Step::SetParent(2, 1),
                    Step::Switch(2, b),
                ];
                main.extend(main_rest);
                let mut body1 = before;
                body1.extend([Step::Switch(0, 0), Step::SetParent(2, 0), Step::Drop(1)]);
                body1.extend(away);
                body1.extend(after);
                let mut bodies = vec![body1, body2];
                bodies.extend(others);
                Program::new(main, bodies)
            },
        )
}
