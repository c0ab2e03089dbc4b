//! Model-based property test (issue 7): random programs of nested scopes,
//! hidden types, snapshots, isolation, joins and panics, run against a reference model
//! of what every point must see.
//!
//! The reference model is deliberately naive: a stack of frames (a store, a
//! hidden type, or a jump into a snapshot) that the interpreter pushes as it
//! descends into the program. Because this crate follows *polling*, what a
//! point sees is decided by the lexical nesting of the futures and closures
//! around it, whatever the interleaving; the model is that nesting, and
//! nothing more. At every `Check` (and after every yield, join, catch and
//! scope, and in every block's drop) the interpreter compares `get`, `with`
//! and `is_set` for each store type with the model.
//!
//! Cases: `ALS_MODEL_CASES` (default 2,000; 8 under Miri). A failure is
//! shrunk by proptest and printed as the minimal program.

// The model includes snapshots, which need `alloc`.
#![cfg(feature = "alloc")]

mod common;

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use async_local_storage::{
    exit, get, is_set, isolate, scope, scope_local, with, Snapshot, WithStore,
};
use common::yield_now;
use futures::future::{join, FutureExt, LocalBoxFuture};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

// ---------------------------------------------------------------------------
// Store types: one newtype per `Ty`.

#[derive(Clone, Debug, PartialEq)]
struct A(u32);
#[derive(Clone, Debug, PartialEq)]
struct B(u32);
#[derive(Clone, Debug, PartialEq)]
struct C(u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    A,
    B,
    C,
}

const TYS: [Ty; 3] = [Ty::A, Ty::B, Ty::C];

impl Ty {
    fn index(self) -> usize {
        self as usize
    }
}

/// Evaluates `$body` with `$make` bound to the newtype constructor of `$ty`,
/// and `$T` to the newtype.
macro_rules! by_ty {
    ($ty:expr, |$make:ident: $T:ident| $body:expr) => {
        match $ty {
            Ty::A => {
                #[allow(dead_code)]
                type $T = A;
                #[allow(unused_variables)]
                let $make = A;
                $body
            }
            Ty::B => {
                #[allow(dead_code)]
                type $T = B;
                #[allow(unused_variables)]
                let $make = B;
                $body
            }
            Ty::C => {
                #[allow(dead_code)]
                type $T = C;
                #[allow(unused_variables)]
                let $make = C;
                $body
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Programs.

type Prog = Vec<Op>;

#[derive(Clone, Debug)]
enum Op {
    /// Compare what is visible with the model.
    Check,
    /// Return `Pending` once: lets the other side of a `Join` run.
    Yield,
    /// `prog.with_store(T(v))`.
    WithStore(Ty, u32, Prog),
    /// `prog.with_local_store(T(v))`.
    WithLocalStore(Ty, u32, Prog),
    /// `prog.without_store::<T>()`.
    WithoutStore(Ty, Prog),
    /// `scope(T(v), || drive(prog))`.
    Scope(Ty, u32, Prog),
    /// `scope_local(T(v), || drive(prog))`.
    ScopeLocal(Ty, u32, Prog),
    /// `exit::<T>(|| drive(prog))`.
    Exit(Ty, Prog),
    /// `Snapshot::capture()` into register `r`.
    Capture(u8),
    /// `register[r].run(|| drive(prog))` (an empty snapshot if unset).
    RunSnapshot(u8, Prog),
    /// `prog.with_snapshot(register[r].clone())`.
    WithSnapshot(u8, Prog),
    /// `isolate(|| drive(prog))`.
    Isolate(Prog),
    /// `prog.isolated()`.
    Isolated(Prog),
    /// `join(prog1, prog2)`: two futures in one task, interleaved by yields.
    Join(Prog, Prog),
    /// Runs `prog` then panics, inside `catch_unwind`.
    Catch(Prog),
    /// Panics (caught by the nearest `Catch`, or by the test itself).
    Panic,
}

const REGISTERS: u8 = 3;

// ---------------------------------------------------------------------------
// The reference model.

/// What one point sees: the value of each type's innermost store, or `None`.
type Visible = [Option<u32>; 3];

#[derive(Clone, Debug)]
enum Frame {
    /// A store; `carried` is false for local stores.
    Store { ty: Ty, value: u32, carried: bool },
    /// `without_store` / `exit`.
    Hidden(Ty),
    /// `with_snapshot` / `Snapshot::run`: exactly these stores, nothing
    /// outside; `isolate` / `isolated`: the same with no stores.
    Jump(Visible),
}

type Ctx = Rc<Vec<Frame>>;

fn push(ctx: &Ctx, frame: Frame) -> Ctx {
    let mut frames = Vec::clone(ctx);
    frames.push(frame);
    Rc::new(frames)
}

/// What a point with these frames must see. With `carried_only`, what a
/// snapshot taken there holds: local stores shadow like hidden ones.
fn model(frames: &[Frame], carried_only: bool) -> Visible {
    let mut seen = [None; 3];
    for ty in TYS {
        for frame in frames.iter().rev() {
            match *frame {
                Frame::Store {
                    ty: t,
                    value,
                    carried,
                } if t == ty => {
                    if carried || !carried_only {
                        seen[ty.index()] = Some(value);
                    }
                    break;
                }
                Frame::Hidden(t) if t == ty => break,
                Frame::Jump(snapshot) => {
                    seen[ty.index()] = snapshot[ty.index()];
                    break;
                }
                _ => {}
            }
        }
    }
    seen
}

/// What the crate says is visible, read three ways.
fn observe() -> Result<Visible, String> {
    let a_get = get::<A>().map(|a| a.0);
    let a_with = with(|a: Option<&A>| a.map(|a| a.0));
    let b_get = get::<B>().map(|b| b.0);
    let b_with = with(|b: Option<&B>| b.map(|b| b.0));
    let c_get = get::<C>().map(|c| c.0);
    let c_with = with(|c: Option<&C>| c.map(|c| c.0));
    let set = [is_set::<A>(), is_set::<B>(), is_set::<C>()];
    let seen = [a_get, b_get, c_get];
    if [a_with, b_with, c_with] != seen {
        return Err(format!(
            "get {seen:?} != with {:?}",
            [a_with, b_with, c_with]
        ));
    }
    if set != seen.map(|v| v.is_some()) {
        return Err(format!("get {seen:?} disagrees with is_set {set:?}"));
    }
    Ok(seen)
}

// ---------------------------------------------------------------------------
// The interpreter.

/// A captured snapshot and what the model says it holds.
type Register = Option<(Rc<Snapshot>, Visible)>;

struct Env {
    registers: RefCell<Vec<Register>>,
    failures: RefCell<Vec<String>>,
    checks: Cell<u64>,
}

impl Env {
    fn new() -> Env {
        Env {
            registers: RefCell::new(vec![None; REGISTERS as usize]),
            failures: RefCell::new(Vec::new()),
            checks: Cell::new(0),
        }
    }

    /// Compares what is visible now with the model. Never panics (it also
    /// runs in destructors during unwinding): failures are collected.
    fn check(&self, ctx: &Ctx, at: &str) {
        self.checks.set(self.checks.get() + 1);
        let expected = model(ctx, false);
        match observe() {
            Ok(seen) if seen == expected => {}
            Ok(seen) => self.fail(format!(
                "{at}: saw {seen:?}, model says {expected:?} (frames {ctx:?})"
            )),
            Err(why) => self.fail(format!("{at}: {why}")),
        }
    }

    fn fail(&self, message: String) {
        let mut failures = self.failures.borrow_mut();
        if failures.len() < 8 {
            failures.push(message);
        }
    }

    fn register(&self, r: u8) -> Register {
        self.registers.borrow()[r as usize].clone()
    }
}

/// Checks the model when a program's future is dropped: the crate promises
/// the stores are visible during the drop too (on completion, on
/// cancellation by a sibling's panic, and during unwinding).
struct DropCheck<'a> {
    env: &'a Env,
    ctx: Ctx,
}

impl Drop for DropCheck<'_> {
    fn drop(&mut self) {
        self.env.check(&self.ctx, "drop");
    }
}

/// The payload of the panics this test raises on purpose.
struct ModelPanic;

/// Polls `fut` to completion right here, inside whatever scope is entered:
/// the synchronous half of the program (`scope`, `exit`, `Snapshot::run`)
/// runs async sub-programs this way. Every `Pending` in a program is a yield
/// that is ready on the next poll, so a busy loop is a complete executor.
fn drive<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    for _ in 0..1_000_000 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("sub-program did not finish");
}

fn run<'a>(env: &'a Env, prog: &'a [Op], ctx: Ctx) -> LocalBoxFuture<'a, ()> {
    Box::pin(async move {
        let _drop_check = DropCheck {
            env,
            ctx: ctx.clone(),
        };
        env.check(&ctx, "start");
        for op in prog {
            match op {
                Op::Check => env.check(&ctx, "check"),
                Op::Yield => {
                    yield_now().await;
                    env.check(&ctx, "after yield");
                }
                &Op::WithStore(ty, value, ref body) => {
                    let carried = true;
                    let inner = run(env, body, push(&ctx, Frame::Store { ty, value, carried }));
                    by_ty!(ty, |make: T| inner.with_store(make(value)).await);
                    env.check(&ctx, "after with_store");
                }
                &Op::WithLocalStore(ty, value, ref body) => {
                    let carried = false;
                    let inner = run(env, body, push(&ctx, Frame::Store { ty, value, carried }));
                    by_ty!(ty, |make: T| inner.with_local_store(make(value)).await);
                    env.check(&ctx, "after with_local_store");
                }
                &Op::WithoutStore(ty, ref body) => {
                    let inner = run(env, body, push(&ctx, Frame::Hidden(ty)));
                    by_ty!(ty, |make: T| inner.without_store::<T>().await);
                    env.check(&ctx, "after without_store");
                }
                &Op::Scope(ty, value, ref body) => {
                    let carried = true;
                    let inner = run(env, body, push(&ctx, Frame::Store { ty, value, carried }));
                    by_ty!(ty, |make: T| scope(make(value), || drive(inner)));
                    env.check(&ctx, "after scope");
                }
                &Op::ScopeLocal(ty, value, ref body) => {
                    let carried = false;
                    let inner = run(env, body, push(&ctx, Frame::Store { ty, value, carried }));
                    by_ty!(ty, |make: T| scope_local(make(value), || drive(inner)));
                    env.check(&ctx, "after scope_local");
                }
                &Op::Exit(ty, ref body) => {
                    let inner = run(env, body, push(&ctx, Frame::Hidden(ty)));
                    by_ty!(ty, |make: T| exit::<T, _>(|| drive(inner)));
                    env.check(&ctx, "after exit");
                }
                &Op::Capture(r) => {
                    let snapshot = Snapshot::capture();
                    let carried = model(&ctx, true);
                    let expected_len = carried.iter().filter(|v| v.is_some()).count();
                    if snapshot.len() != expected_len {
                        env.fail(format!(
                            "capture: len {} but model carries {carried:?} (frames {ctx:?})",
                            snapshot.len()
                        ));
                    }
                    env.registers.borrow_mut()[r as usize] = Some((Rc::new(snapshot), carried));
                    env.check(&ctx, "after capture");
                }
                &Op::RunSnapshot(r, ref body) => {
                    let (snapshot, carried) = env
                        .register(r)
                        .unwrap_or_else(|| (Rc::new(Snapshot::empty()), [None; 3]));
                    let inner = run(env, body, push(&ctx, Frame::Jump(carried)));
                    snapshot.run(|| drive(inner));
                    env.check(&ctx, "after Snapshot::run");
                }
                &Op::WithSnapshot(r, ref body) => {
                    let (snapshot, carried) = match env.register(r) {
                        // `Snapshot::clone` re-clones every store: exercise it.
                        Some((snapshot, carried)) => (Snapshot::clone(&snapshot), carried),
                        None => (Snapshot::empty(), [None; 3]),
                    };
                    let inner = run(env, body, push(&ctx, Frame::Jump(carried)));
                    inner.with_snapshot(snapshot).await;
                    env.check(&ctx, "after with_snapshot");
                }
                Op::Isolate(body) => {
                    let inner = run(env, body, push(&ctx, Frame::Jump([None; 3])));
                    isolate(|| drive(inner));
                    env.check(&ctx, "after isolate");
                }
                Op::Isolated(body) => {
                    let inner = run(env, body, push(&ctx, Frame::Jump([None; 3])));
                    inner.isolated().await;
                    env.check(&ctx, "after isolated");
                }
                Op::Join(left, right) => {
                    let left = run(env, left, ctx.clone());
                    let right = run(env, right, ctx.clone());
                    join(left, right).await;
                    env.check(&ctx, "after join");
                }
                Op::Catch(body) => {
                    let inner = run(env, body, ctx.clone())
                        .then(|()| async { std::panic::panic_any(ModelPanic) });
                    let caught = AssertUnwindSafe(inner).catch_unwind().await;
                    if caught.is_ok() {
                        env.fail("catch: the body did not panic".into());
                    }
                    env.check(&ctx, "after catch");
                }
                Op::Panic => std::panic::panic_any(ModelPanic),
            }
        }
        env.check(&ctx, "end");
    })
}

// ---------------------------------------------------------------------------
// Generation.

fn ty() -> impl Strategy<Value = Ty> {
    prop_oneof![Just(Ty::A), Just(Ty::B), Just(Ty::C)]
}

fn value() -> impl Strategy<Value = u32> {
    0u32..1000
}

fn register() -> impl Strategy<Value = u8> {
    0..REGISTERS
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        6 => Just(Op::Check),
        3 => Just(Op::Yield),
        2 => register().prop_map(Op::Capture),
        1 => Just(Op::Panic),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        let prog = || proptest::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            3 => (ty(), value(), prog()).prop_map(|(t, v, p)| Op::WithStore(t, v, p)),
            2 => (ty(), value(), prog()).prop_map(|(t, v, p)| Op::WithLocalStore(t, v, p)),
            2 => (ty(), prog()).prop_map(|(t, p)| Op::WithoutStore(t, p)),
            2 => (ty(), value(), prog()).prop_map(|(t, v, p)| Op::Scope(t, v, p)),
            1 => (ty(), value(), prog()).prop_map(|(t, v, p)| Op::ScopeLocal(t, v, p)),
            2 => (ty(), prog()).prop_map(|(t, p)| Op::Exit(t, p)),
            2 => (register(), prog()).prop_map(|(r, p)| Op::RunSnapshot(r, p)),
            2 => (register(), prog()).prop_map(|(r, p)| Op::WithSnapshot(r, p)),
            1 => prog().prop_map(Op::Isolate),
            1 => prog().prop_map(Op::Isolated),
            3 => (prog(), prog()).prop_map(|(l, r)| Op::Join(l, r)),
            1 => prog().prop_map(Op::Catch),
        ]
    })
}

fn program() -> impl Strategy<Value = Prog> {
    proptest::collection::vec(op(), 1..8)
}

// ---------------------------------------------------------------------------
// The tests.

fn cases() -> u32 {
    if cfg!(miri) {
        return 8;
    }
    std::env::var("ALS_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

/// Runs one program from an empty context; returns the number of checks.
fn execute(prog: &[Op]) -> Result<u64, String> {
    let env = Env::new();
    let top: Ctx = Rc::new(Vec::new());
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(run(&env, prog, top.clone()))
    }));
    if let Err(payload) = outcome {
        if payload.downcast_ref::<ModelPanic>().is_none() {
            std::panic::resume_unwind(payload);
        }
    }
    // After everything (including a stray panic), the thread sees nothing.
    env.check(&top, "after the program");
    let failures = env.failures.into_inner();
    if failures.is_empty() {
        Ok(env.checks.get())
    } else {
        let mut message = String::new();
        for failure in failures {
            let _ = writeln!(message, "  {failure}");
        }
        Err(message)
    }
}

#[test]
fn every_point_sees_what_the_model_says() {
    common::quiet_panics_of::<ModelPanic>();
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let checks = Cell::new(0u64);
    let result = runner.run(&program(), |prog| {
        match execute(&prog) {
            Ok(n) => checks.set(checks.get() + n),
            Err(message) => return Err(TestCaseError::fail(message)),
        }
        Ok(())
    });
    match result {
        Ok(()) => println!(
            "model: {cases} programs, {} checks, all matched the model",
            checks.get()
        ),
        Err(TestError::Fail(why, prog)) => {
            panic!("the crate disagrees with the model:\n{why}\nminimal program: {prog:#?}")
        }
        Err(TestError::Abort(why)) => panic!("proptest aborted: {why}"),
    }
}

/// The checker itself can fail: an expectation that is wrong on purpose must
/// be reported (so the property above is not vacuous).
#[test]
fn the_checker_catches_a_wrong_model() {
    let env = Env::new();
    let lying: Ctx = Rc::new(vec![Frame::Store {
        ty: Ty::B,
        value: 5,
        carried: true,
    }]);
    scope(B(6), || env.check(&lying, "lying"));
    assert_eq!(env.failures.borrow().len(), 1);
    scope(B(5), || env.check(&lying, "honest"));
    assert_eq!(env.failures.borrow().len(), 1);
}

/// A few hand-written programs, so the interesting shapes are always covered.
#[test]
fn hand_written_programs() {
    common::quiet_panics_of::<ModelPanic>();
    use Op::*;
    let programs: Vec<Prog> = vec![
        // Shadowing, then hiding only the inner type.
        vec![WithStore(
            Ty::A,
            1,
            vec![
                WithStore(Ty::A, 2, vec![Check, WithoutStore(Ty::A, vec![Check])]),
                Check,
            ],
        )],
        // A local store blocks the outer carried one from a snapshot.
        vec![WithStore(
            Ty::A,
            1,
            vec![
                WithLocalStore(Ty::A, 2, vec![Capture(0), Check]),
                RunSnapshot(0, vec![Check]),
                WithSnapshot(0, vec![Check, Scope(Ty::B, 3, vec![Check, Capture(1)])]),
                RunSnapshot(1, vec![Check]),
            ],
        )],
        // Two interleaved branches with different stores; one panics.
        vec![Catch(vec![Join(
            vec![WithStore(Ty::C, 7, vec![Yield, Check, Yield, Panic])],
            vec![WithStore(Ty::C, 8, vec![Yield, Check, Yield, Yield, Check])],
        )])],
        // A panic deep inside synchronous scopes inside futures.
        vec![WithStore(
            Ty::A,
            1,
            vec![Catch(vec![Scope(
                Ty::B,
                2,
                vec![Exit(
                    Ty::A,
                    vec![WithLocalStore(Ty::C, 3, vec![Yield, Panic])],
                )],
            )])],
        )],
    ];
    let mut checks = 0;
    for prog in &programs {
        checks += execute(prog).unwrap_or_else(|why| panic!("{why}\nprogram: {prog:#?}"));
    }
    assert!(checks > 20, "only {checks} checks ran");
}
