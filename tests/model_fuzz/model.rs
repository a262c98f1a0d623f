//! The reference model: SPEC §4 as an explicit state machine. No stacks are
//! switched and nothing from the crate is used: each greenlet is a stack of
//! block frames with program counters, control is a `current` variable, and
//! strong handles are *counted from where they live* (table slots, parent
//! links, the handle a suspended step holds, `Hold` blocks' locals, the
//! current greenlet, a kill in progress, handles travelling inside values)
//! rather than kept in a counter, so a wrong count cannot hide.

use super::events::{Ev, Id, Seen, Val};
use super::program::{Program, Step, CREATE_BUDGET, SLOTS};

#[derive(Clone, Copy, PartialEq, Debug)]
enum State {
    Unstarted,
    Started,
    Dead,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Body,
    Catch,
    Nested,
    /// A `Hold` or `Take` block: its frame owns a handle.
    Hold,
    /// Main's script: every step is caught separately.
    MainScript,
}

struct Frame {
    steps: Vec<Step>,
    pc: usize,
    kind: Kind,
    /// The handle a `Hold` block's local owns (None elsewhere, or when the
    /// slot it cloned was empty).
    held: Option<Id>,
}

impl Frame {
    fn new(steps: Vec<Step>, kind: Kind, held: Option<Id>) -> Frame {
        Frame {
            steps,
            pc: 0,
            kind,
            held,
        }
    }
}

/// A value handed over by a switch or a death.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Data {
    Int(i64),
    /// `Value::new(GreenletExit)`: what a quiet death hands its parent (S6).
    Exit,
    /// An integer and a handle travelling with it (`SwitchWith`,
    /// `ReturnWith`), dropped by the receiver on arrival.
    With(i64, Option<Id>),
}

impl Data {
    fn val(self) -> Val {
        match self {
            Data::Int(i) => Val::Int(i),
            Data::Exit => Val::Exit,
            Data::With(i, h) => Val::With(i, h),
        }
    }

    /// The handle travelling with the value, if any.
    fn carried(self) -> Option<Id> {
        match self {
            Data::With(_, h) => h,
            _ => None,
        }
    }
}

/// The installed tracer (S11).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Tracer {
    Off,
    /// Records every call.
    Record,
    /// Records every call; panics with `Boom(_)` at its first call outside a
    /// kill.
    Panicky(i64),
}

/// A panic payload.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Payload {
    Boom(i64),
    GreenletExit,
}

/// What a switch carries. A kill's `GreenletExit` runs no step of the
/// program, so it is simulated whole in `Model::kill`, not sent as a `Msg`.
#[derive(Clone, Copy, Debug)]
enum Msg {
    Value(Data),
    /// Raised on arrival.
    Throw(Payload),
}

impl Msg {
    fn is_throw(self) -> bool {
        matches!(self, Msg::Throw(_))
    }
}

struct G {
    body: usize,
    state: State,
    parent: Option<Id>,
    /// All handles gone and everything it owned let go.
    released: bool,
    frames: Vec<Frame>,
    /// The handle the step it is suspended in holds (the switch's target).
    temp: Option<Id>,
    /// Its closure or its `run` frame is alive.
    body_alive: bool,
}

/// How often a run reached the rarer corners of S10, for the generator's
/// depth check.
#[derive(Default, Debug)]
pub struct Stats {
    /// Greenlets killed on drop.
    pub kills: usize,
    /// Kills whose dropper was itself being killed (its unwinding dropped
    /// the last handle to another suspended greenlet).
    pub kills_in_kills: usize,
    /// Kills set off by a `Hold` block letting go of its handle.
    pub kills_by_locals: usize,
    /// Kills set off by the receiver of a value dropping the handle in it.
    pub kills_by_values: usize,
    /// A greenlet left running with no handle switched away (it is then
    /// killed by the side it switched to): the crate's orphan slow path.
    pub orphan_switches: usize,
    /// A greenlet with no handle left died (released by its parent's side).
    pub orphan_deaths: usize,
    /// Switches and throws made with a tracer installed.
    pub traced: usize,
    /// Switches and throws made with none.
    pub untraced: usize,
    /// Throws (kills' included) from one greenlet into another.
    pub throws_between: usize,
    /// Tracers that panicked (and were uninstalled).
    pub tracer_panics: usize,
    /// Backtraces taken of a suspended greenlet (an introspection request).
    pub backtraces_of_suspended: usize,
}

struct Model {
    program: Program,
    gs: Vec<G>,
    table: Vec<Option<Id>>,
    /// Weak handles (S13): they count for nothing.
    weak: Vec<Option<Id>>,
    current: Id,
    /// Handles held by kills in progress (the victim, its old parent).
    held: Vec<Id>,
    creates: usize,
    trace: Vec<Ev>,
    stats: Stats,
    /// A `Hold` block's handle is being dropped.
    in_local_drop: bool,
    /// A handle that came inside a value is being dropped.
    in_value_drop: bool,
    tracer: Tracer,
    /// Handles travelling inside values, between the step that sent them and
    /// the receiver that drops them.
    flight: Vec<Id>,
}

/// Runs `program` on the model and returns its trace.
pub fn run(program: &Program) -> Vec<Ev> {
    run_with_stats(program).0
}

/// Runs `program` on the model and returns its trace and how deep it went.
pub fn run_with_stats(program: &Program) -> (Vec<Ev>, Stats) {
    let main = G {
        body: 0,
        state: State::Started,
        parent: None,
        released: false,
        frames: vec![Frame::new(program.main.clone(), Kind::MainScript, None)],
        temp: None,
        body_alive: false,
    };
    let mut m = Model {
        program: program.clone(),
        gs: vec![main],
        table: vec![None; SLOTS + 1],
        weak: vec![None; SLOTS + 1],
        current: 0,
        held: Vec::new(),
        creates: 0,
        trace: Vec::new(),
        stats: Stats::default(),
        in_local_drop: false,
        in_value_drop: false,
        tracer: Tracer::Off,
        flight: Vec::new(),
    };
    m.table[0] = Some(0);
    while m.step() {}
    // Teardown, as the driver does it: look, then drop every slot's handle.
    for slot in 1..=SLOTS {
        let seen = m.observe(slot);
        m.trace.push(seen);
    }
    for slot in 1..=SLOTS {
        if let Some(old) = m.table[slot].take() {
            m.handle_dropped(old);
        }
    }
    let count = m.gs.iter().filter(|g| g.body_alive).count();
    m.trace.push(Ev::Live { count });
    (m.trace, m.stats)
}

impl Model {
    fn g(&mut self, id: Id) -> &mut G {
        &mut self.gs[id as usize]
    }

    fn rec(&mut self, ev: Ev) {
        self.trace.push(ev);
    }

    /// Strong handles to `id`, counted where they live.
    fn strong(&self, id: Id) -> usize {
        let in_table = self.table.iter().filter(|s| **s == Some(id)).count();
        let links = self
            .gs
            .iter()
            .filter(|g| !g.released && g.parent == Some(id))
            .count();
        let temps = self.gs.iter().filter(|g| g.temp == Some(id)).count();
        let locals = self
            .gs
            .iter()
            .flat_map(|g| &g.frames)
            .filter(|f| f.held == Some(id))
            .count();
        let held = self.held.iter().filter(|h| **h == id).count();
        let flying = self.flight.iter().filter(|h| **h == id).count();
        in_table + links + temps + locals + held + flying + usize::from(self.current == id)
    }

    fn first_live(&self, mut id: Id) -> Id {
        while self.gs[id as usize].state == State::Dead {
            id = self.gs[id as usize]
                .parent
                .expect("model: a dead greenlet keeps its parent");
        }
        id
    }

    fn top(&mut self) -> &mut Frame {
        let cur = self.current;
        self.g(cur)
            .frames
            .last_mut()
            .expect("model: current has a frame")
    }

    /// Executes one step of the current greenlet; false once main's script is done.
    fn step(&mut self) -> bool {
        let cur = self.current;
        let frame = self.top();
        if frame.pc >= frame.steps.len() {
            match frame.kind {
                Kind::MainScript => return false,
                Kind::Body => {
                    let value = -(self.gs[cur as usize].body as i64);
                    self.finish(cur, Data::Int(value));
                }
                Kind::Catch | Kind::Nested | Kind::Hold => {
                    let done = self.g(cur).frames.pop().unwrap();
                    self.local_dropped(done.held);
                    self.top().pc += 1;
                }
            }
            return true;
        }
        let step = frame.steps[frame.pc].clone();
        match step {
            Step::Switch(to, v) => match self.table[to] {
                None => self.skip(),
                Some(target) => self.transfer(target, Msg::Value(Data::Int(v))),
            },
            Step::Throw(to, b) => match self.table[to] {
                None => self.skip(),
                Some(target) => self.transfer(target, Msg::Throw(Payload::Boom(b))),
            },
            Step::Exit(to) => match self.table[to] {
                None => self.skip(),
                Some(target) => self.transfer(target, Msg::Throw(Payload::GreenletExit)),
            },
            Step::Downgrade(slot) => {
                self.weak[slot] = self.table[slot];
                self.top().pc += 1;
            }
            Step::Upgrade(slot) if self.weak[slot].is_none() => self.skip(),
            Step::Upgrade(slot) => {
                let got = self.weak[slot].filter(|id| !self.gs[*id as usize].released);
                self.rec(Ev::Upgraded { g: cur, got });
                if let Some(got) = got {
                    if let Some(old) = self.table[slot].replace(got) {
                        self.handle_dropped(old);
                    }
                }
                self.top().pc += 1;
            }
            Step::SetParent(c, p) => match (self.table[c], self.table[p]) {
                (Some(child), Some(parent)) => {
                    let result = self.set_parent(child, parent);
                    self.rec(Ev::SetParent { g: cur, result });
                    self.top().pc += 1;
                }
                _ => self.skip(),
            },
            Step::Create(slot) => {
                if self.creates >= CREATE_BUDGET {
                    self.skip();
                    return true;
                }
                self.creates += 1;
                let new = self.gs.len() as Id;
                self.gs.push(G {
                    body: slot,
                    state: State::Unstarted,
                    parent: Some(cur),
                    released: false,
                    frames: Vec::new(),
                    temp: None,
                    body_alive: true,
                });
                self.rec(Ev::Created { g: cur, new });
                let old = self.table[slot].replace(new);
                if let Some(old) = old {
                    self.handle_dropped(old);
                }
                self.top().pc += 1;
            }
            Step::Drop(slot) => {
                if let Some(old) = self.table[slot].take() {
                    self.handle_dropped(old);
                }
                self.top().pc += 1;
            }
            Step::Observe(slot) => {
                let seen = self.observe(slot);
                self.rec(seen);
                self.top().pc += 1;
            }
            Step::Return(v) => {
                assert!(cur != 0, "model: main's script cannot return");
                self.finish(cur, Data::Int(v));
            }
            Step::ReturnWith(slot, v) => {
                assert!(cur != 0, "model: main's script cannot return");
                let carried = self.send(slot);
                self.finish(cur, Data::With(v, carried));
            }
            Step::SwitchWith(to, slot, v) => match self.table[to] {
                None => self.skip(),
                Some(target) => {
                    let carried = self.send(slot);
                    self.transfer(target, Msg::Value(Data::With(v, carried)));
                }
            },
            Step::Trace(on) => {
                self.tracer = if on { Tracer::Record } else { Tracer::Off };
                self.top().pc += 1;
            }
            Step::TracePanic(b) => {
                self.tracer = Tracer::Panicky(b);
                self.top().pc += 1;
            }
            Step::Backtrace(slot) => match self.table[slot] {
                None => self.skip(),
                Some(of) => {
                    // Started and not dead: suspended, or running (main
                    // always is one of the two).
                    let some = self.gs[of as usize].state == State::Started;
                    self.stats.backtraces_of_suspended += usize::from(some && of != cur);
                    self.rec(Ev::Backtrace { g: cur, of, some });
                    self.top().pc += 1;
                }
            },
            Step::Current(slot) => {
                if let Some(old) = self.table[slot].replace(cur) {
                    self.handle_dropped(old);
                }
                self.top().pc += 1;
            }
            Step::Panic(b) => self.raise(cur, Payload::Boom(b)),
            Step::Quit => self.raise(cur, Payload::GreenletExit),
            Step::Catch(inner) => self
                .g(cur)
                .frames
                .push(Frame::new(inner, Kind::Catch, None)),
            Step::Nested(inner) => self
                .g(cur)
                .frames
                .push(Frame::new(inner, Kind::Nested, None)),
            Step::Hold(slot, inner) => {
                let held = self.table[slot];
                self.g(cur).frames.push(Frame::new(inner, Kind::Hold, held));
            }
            Step::Take(slot, inner) => {
                let held = self.table[slot].take();
                self.g(cur).frames.push(Frame::new(inner, Kind::Hold, held));
            }
        }
        true
    }

    fn skip(&mut self) {
        let cur = self.current;
        self.rec(Ev::Skipped { g: cur });
        self.top().pc += 1;
    }

    fn observe(&self, slot: usize) -> Ev {
        let seen = self.table[slot].map(|id| {
            let g = &self.gs[id as usize];
            Seen {
                id,
                started: g.state != State::Unstarted,
                active: g.state == State::Started,
                dead: g.state == State::Dead,
                current: self.current == id,
                main: id == 0,
                parent: g.parent,
            }
        });
        Ev::Observe { slot, seen }
    }

    /// S3: refuse main and cycles, else re-link (the old link drops last).
    fn set_parent(&mut self, child: Id, parent: Id) -> &'static str {
        if child == 0 {
            return "ParentOfMain";
        }
        let mut ancestor = Some(parent);
        while let Some(a) = ancestor {
            if a == child {
                return "CyclicParent";
            }
            ancestor = self.gs[a as usize].parent;
        }
        let old = self.g(child).parent.replace(parent);
        if let Some(old) = old {
            self.handle_dropped(old);
        }
        "ok"
    }

    /// A switch or throw from the current greenlet, which is at that step
    /// and holds a handle to `target` across it (S1, S4, S7).
    fn transfer(&mut self, target: Id, msg: Msg) {
        let cur = self.current;
        let live = self.first_live(target);
        // A Boom thrown into a dead greenlet is raised in its first live
        // ancestor (S7); a GreenletExit is handled as the dead greenlet's
        // death would have been: a plain value (S6).
        let msg = match msg {
            Msg::Throw(Payload::GreenletExit) if live != target => Msg::Value(Data::Exit),
            msg => msg,
        };
        self.g(cur).temp = Some(target);
        if live == cur {
            let msg = self.after_trace(msg, cur, cur);
            self.resume(cur, msg);
        } else {
            self.switch_to(cur, live, msg);
        }
    }

    /// Control moves from `from` to `to` with `msg`: traced on arrival, then
    /// `from` loses the handle "current" held on it, then `to` goes on.
    fn switch_to(&mut self, from: Id, to: Id, msg: Msg) {
        let fresh = self.gs[to as usize].state == State::Unstarted;
        if fresh {
            self.g(to).state = State::Started;
        }
        self.current = to;
        if !self.gs[from as usize].released && self.strong(from) == 0 {
            // The crate's running greenlet owns no count: this is the switch
            // (or death) of a greenlet nobody holds any more.
            match self.gs[from as usize].state {
                State::Dead => self.stats.orphan_deaths += 1,
                _ => self.stats.orphan_switches += 1,
            }
        }
        let msg = self.after_trace(msg, from, to);
        self.handle_dropped(from);
        if fresh {
            self.start(to, msg);
        } else {
            self.resume(to, msg);
        }
    }

    /// The first switch into `g`: `run(arg)`, or death without running (S7).
    fn start(&mut self, g: Id, msg: Msg) {
        match msg {
            Msg::Value(v) => {
                let arg = self.arrive(v);
                self.rec(Ev::Started { g, arg });
                let steps = self.program.bodies[self.gs[g as usize].body].clone();
                self.g(g).frames.push(Frame::new(steps, Kind::Body, None));
            }
            Msg::Throw(payload) => {
                self.g(g).body_alive = false; // the closure is dropped unrun
                self.die(g, Msg::Throw(payload));
            }
        }
    }

    /// `g`'s pending switch or throw returns: first its handle on the target
    /// is dropped, then the value is recorded or the payload raised.
    fn resume(&mut self, g: Id, msg: Msg) {
        if let Some(t) = self.g(g).temp.take() {
            self.handle_dropped(t);
        }
        match msg {
            Msg::Value(v) => {
                let value = self.arrive(v);
                self.rec(Ev::Received { g, value });
                self.top().pc += 1;
            }
            Msg::Throw(payload) => self.raise(g, payload),
        }
    }

    /// `payload` raised in `g`: a `Boom` is caught by the innermost `Catch`,
    /// anything by main's script; otherwise it kills `g` and goes on to its
    /// parent (S5, S6). `Hold` blocks let go of their handles on the way.
    fn raise(&mut self, g: Id, payload: Payload) {
        loop {
            let frame = self.g(g).frames.pop().expect("model: a frame to unwind");
            match (frame.kind, payload) {
                (Kind::Catch, Payload::Boom(boom)) => {
                    self.rec(Ev::Caught { g, boom });
                    self.top().pc += 1;
                    return;
                }
                (Kind::MainScript, _) => {
                    self.rec(match payload {
                        Payload::Boom(boom) => Ev::Caught { g, boom },
                        Payload::GreenletExit => Ev::CaughtExit { g },
                    });
                    self.g(g).frames.push(Frame {
                        pc: frame.pc + 1,
                        ..frame
                    });
                    return;
                }
                (Kind::Body, _) => {
                    self.rec(Ev::BodyExit { g });
                    self.g(g).body_alive = false;
                    return self.die(g, Msg::Throw(payload));
                }
                (Kind::Hold, _) => {
                    self.local_dropped(frame.held);
                }
                (Kind::Catch | Kind::Nested, _) => {}
            }
        }
    }

    /// `run` of `g` returns `data`: the blocks it returns through let go of
    /// their handles first.
    fn finish(&mut self, g: Id, data: Data) {
        while self.gs[g as usize].frames.len() > 1 {
            let frame = self.g(g).frames.pop().unwrap();
            self.local_dropped(frame.held);
        }
        let value = match data {
            Data::Int(v) | Data::With(v, _) => v,
            Data::Exit => unreachable!("model: run returns integers"),
        };
        self.rec(Ev::Finished { g, value });
        self.rec(Ev::BodyExit { g });
        self.g(g).body_alive = false;
        self.die(g, Msg::Value(data));
    }

    /// S2: `g` is dead; its first live ancestor resumes with `msg`, where a
    /// `GreenletExit` has become a plain value (S6).
    fn die(&mut self, g: Id, msg: Msg) {
        let msg = match msg {
            Msg::Throw(Payload::GreenletExit) => Msg::Value(Data::Exit),
            msg => msg,
        };
        let me = self.g(g);
        me.state = State::Dead;
        me.frames.clear();
        let parent = me.parent.expect("model: only main has no parent");
        let parent = self.first_live(parent);
        self.switch_to(g, parent, msg);
    }

    /// The handle in `table[slot]` is moved into a value being sent.
    fn send(&mut self, slot: usize) -> Option<Id> {
        let carried = self.table[slot].take();
        self.flight.extend(carried);
        carried
    }

    /// A value arrives: the handle it carries is dropped before anything
    /// else (the driver drops it as it reads the value).
    fn arrive(&mut self, data: Data) -> Val {
        if let Some(h) = data.carried() {
            self.value_dropped(h);
        }
        data.val()
    }

    /// A handle travelling in a value is dropped (on arrival, or with the
    /// value a panicking tracer replaced).
    fn value_dropped(&mut self, h: Id) {
        let at = self
            .flight
            .iter()
            .position(|f| *f == h)
            .expect("model: a carried handle is in flight");
        self.flight.remove(at);
        let outer = std::mem::replace(&mut self.in_value_drop, true);
        self.handle_dropped(h);
        self.in_value_drop = outer;
    }

    /// The tracer's call for control moving from `origin` to `target` (S11),
    /// if one is installed. A tracer that panics is uninstalled and its
    /// payload returned; the driver's never panics in a kill (`in_kill`).
    fn traced(&mut self, throw: bool, origin: Id, target: Id, in_kill: bool) -> Option<Payload> {
        self.stats.throws_between += usize::from(throw && origin != target);
        if self.tracer == Tracer::Off {
            self.stats.untraced += 1;
            return None;
        }
        self.stats.traced += 1;
        self.rec(Ev::Trace {
            throw,
            origin,
            target,
        });
        match self.tracer {
            Tracer::Panicky(boom) if !in_kill => {
                self.tracer = Tracer::Off;
                self.stats.tracer_panics += 1;
                Some(Payload::Boom(boom))
            }
            _ => None,
        }
    }

    /// `msg` after the tracer's call: a panicking tracer's payload takes its
    /// place, raised in the target, and `msg` is dropped (with the handle it
    /// may carry) before anything else happens.
    fn after_trace(&mut self, msg: Msg, origin: Id, target: Id) -> Msg {
        match self.traced(msg.is_throw(), origin, target, false) {
            None => msg,
            Some(payload) => {
                if let Msg::Value(data) = msg {
                    if let Some(h) = data.carried() {
                        self.value_dropped(h);
                    }
                }
                Msg::Throw(payload)
            }
        }
    }

    /// A `Hold` block's local handle (if it had one) went away.
    fn local_dropped(&mut self, held: Option<Id>) {
        if let Some(h) = held {
            let outer = std::mem::replace(&mut self.in_local_drop, true);
            self.handle_dropped(h);
            self.in_local_drop = outer;
        }
    }

    /// One strong handle to `id` went away: if it was the last, kill a
    /// suspended greenlet (S10) and release it, walking up parent links
    /// that were the last handles too.
    fn handle_dropped(&mut self, mut id: Id) {
        if self.gs[id as usize].released || self.strong(id) > 0 {
            return;
        }
        loop {
            if self.gs[id as usize].state == State::Started && id != 0 {
                self.kill(id);
            }
            let g = self.g(id);
            g.released = true;
            if g.state == State::Unstarted {
                g.body_alive = false; // its closure is dropped
            }
            g.state = State::Dead;
            match g.parent.take() {
                Some(parent) if self.strong(parent) == 0 && !self.gs[parent as usize].released => {
                    id = parent
                }
                _ => return,
            }
        }
    }

    /// S10: the current greenlet dropped the last handle to suspended `victim`:
    /// it becomes the victim's parent, `GreenletExit` is thrown in, the
    /// victim's frames unwind (dropping the handle its pending step held) and
    /// it dies back to the dropper. A kill runs no steps, so it is simulated
    /// here in one go.
    fn kill(&mut self, victim: Id) {
        let dropper = self.current;
        self.stats.kills += 1;
        self.stats.kills_in_kills += usize::from(self.held.contains(&dropper));
        self.stats.kills_by_locals += usize::from(std::mem::take(&mut self.in_local_drop));
        self.stats.kills_by_values += usize::from(std::mem::take(&mut self.in_value_drop));
        self.held.push(victim); // resurrected for the kill
        let old = self.g(victim).parent.replace(dropper);
        if let Some(old) = old {
            self.held.push(old);
        }
        // The throw: dropper -> victim.
        self.current = victim;
        self.traced(true, dropper, victim, true);
        self.handle_dropped(dropper);
        // Unwinding: the pending step's handle first, then the `Hold` blocks'
        // handles from the innermost out (each may kill another greenlet, with
        // the victim as the dropper), then run's frame.
        if let Some(t) = self.g(victim).temp.take() {
            self.handle_dropped(t);
        }
        while let Some(frame) = self.g(victim).frames.pop() {
            self.local_dropped(frame.held);
        }
        self.rec(Ev::BodyExit { g: victim });
        self.g(victim).body_alive = false;
        // Death by GreenletExit: a plain value back to the dropper.
        self.g(victim).state = State::Dead;
        let back_to = self.first_live(self.gs[victim as usize].parent.unwrap());
        assert_eq!(back_to, dropper, "model: a kill ends in the dropper");
        self.current = dropper;
        self.traced(false, victim, dropper, true);
        // The old parent goes back (no step ran, so no cycle can have formed).
        if let Some(old) = old {
            let at = self.held.iter().rposition(|h| *h == old).unwrap();
            self.held.remove(at);
            self.g(victim).parent = Some(old);
        }
        let at = self.held.iter().rposition(|h| *h == victim).unwrap();
        self.held.remove(at);
    }
}
