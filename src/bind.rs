//! Reusable bound callbacks: [`Snapshot::bind_fn`], [`Snapshot::bind_fn_mut`],
//! their by-reference forms [`Snapshot::bind_fn_ref`],
//! [`Snapshot::bind_fn_mut_ref`], and [`Snapshot::wrap_fn`],
//! [`Snapshot::wrap_fn_mut`].
//!
//! [`Snapshot::bind`] returns an `FnOnce()`. Node's
//! `AsyncLocalStorage.bind(fn)` returns a function that can be called any
//! number of times, with arguments: what an event handler or a callback
//! registered once needs. These are that form.

use crate::Snapshot;

/// Calling many times, with arguments.
impl Snapshot {
    /// Captures the current stores and returns `f` bound to them, callable
    /// any number of times: every call runs `f` with exactly the captured
    /// stores visible, wherever and whenever it is made (Node's
    /// `AsyncLocalStorage.bind(fn)` for a function called repeatedly).
    ///
    /// `f` takes one argument; pass a tuple for several, `()` for none. The
    /// stores of the caller are hidden during each call, as with
    /// [`run`](Snapshot::run); stores installed inside `f` end with the call.
    /// The stores are captured once, here (no allocation while they fit
    /// inline, see [`capture`](Snapshot::capture)); a call allocates nothing.
    ///
    /// The result is `Send` when `f` is, so it can go to another thread. It
    /// is not `Sync` (a [`Snapshot`] is not, since a store need not be): to
    /// call it from several threads at once, bind one per thread, or share
    /// it behind a `Mutex`.
    ///
    /// For a callback that needs `&mut` access to its state, see
    /// [`bind_fn_mut`](Snapshot::bind_fn_mut); to bind to a snapshot you
    /// already have, [`wrap_fn`](Snapshot::wrap_fn).
    ///
    /// `A` is one type for every call: a borrowed argument (`&Event`) gets
    /// one lifetime, which every call's borrow must outlive. For a callback
    /// that receives a fresh borrow at each call (one registered as
    /// `Box<dyn Fn(&Event)>`), use [`bind_fn_ref`](Snapshot::bind_fn_ref).
    ///
    /// # Examples
    ///
    /// An event handler registered once and called for every event, on
    /// another thread, sees the stores of the code that registered it:
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct RequestId(u64);
    ///
    /// let on_event = scope(RequestId(7), || {
    ///     Snapshot::bind_fn(|(name, n): (&str, u32)| {
    ///         format!("{name} #{n} in request {:?}", get::<RequestId>().map(|id| id.0))
    ///     })
    /// });
    ///
    /// let lines = std::thread::spawn(move || {
    ///     (1..=3).map(|n| on_event(("tick", n))).collect::<Vec<_>>()
    /// })
    /// .join()
    /// .unwrap();
    /// assert_eq!(lines[2], "tick #3 in request Some(7)");
    /// ```
    #[must_use = "the bound callback does nothing unless called"]
    pub fn bind_fn<A, R, F>(f: F) -> impl Fn(A) -> R
    where
        F: Fn(A) -> R,
    {
        Snapshot::capture().wrap_fn(f)
    }

    /// Like [`bind_fn`](Snapshot::bind_fn), for a callback that mutates its
    /// own state: captures the current stores and returns an `FnMut` that
    /// runs `f` inside them at every call.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// let mut seen = Vec::new();
    /// let mut record = scope(String::from("job-1"), || {
    ///     Snapshot::bind_fn_mut(|n: u32| seen.push((n, get::<String>())))
    /// });
    /// record(1);
    /// scope(String::from("elsewhere"), || record(2)); // the bound store wins
    /// drop(record);
    ///
    /// let job = Some(String::from("job-1"));
    /// assert_eq!(seen, [(1, job.clone()), (2, job)]);
    /// ```
    #[must_use = "the bound callback does nothing unless called"]
    pub fn bind_fn_mut<A, R, F>(f: F) -> impl FnMut(A) -> R
    where
        F: FnMut(A) -> R,
    {
        Snapshot::capture().wrap_fn_mut(f)
    }

    /// Like [`bind_fn`](Snapshot::bind_fn), for a callback that takes its
    /// argument by reference: the result is an `Fn(&T) -> R` for every
    /// lifetime of the borrow (`for<'a> Fn(&'a T) -> R`), as a callback
    /// registry of `Box<dyn Fn(&Event)>` or a caller lending a fresh value
    /// at each call needs.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// #[derive(Clone)]
    /// struct Tenant(&'static str);
    ///
    /// let mut handlers: Vec<Box<dyn Fn(&str) -> String + Send>> = Vec::new();
    /// scope(Tenant("acme"), || {
    ///     handlers.push(Box::new(Snapshot::bind_fn_ref(|event: &str| {
    ///         format!("{}: {event}", get::<Tenant>().map_or("-", |t| t.0))
    ///     })));
    /// });
    ///
    /// for n in 0..3 {
    ///     let event = format!("event {n}"); // a fresh borrow at each call
    ///     assert_eq!(handlers[0](&event), format!("acme: event {n}"));
    /// }
    /// ```
    #[must_use = "the bound callback does nothing unless called"]
    pub fn bind_fn_ref<T, R, F>(f: F) -> impl Fn(&T) -> R
    where
        T: ?Sized,
        F: Fn(&T) -> R,
    {
        let snapshot = Snapshot::capture();
        move |arg| snapshot.run(|| f(arg))
    }

    /// Like [`bind_fn_mut`](Snapshot::bind_fn_mut), for a callback that takes
    /// its argument by reference: an `FnMut(&T) -> R` for every lifetime of
    /// the borrow (see [`bind_fn_ref`](Snapshot::bind_fn_ref)).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// let mut lines = Vec::new();
    /// let mut on_line = scope(3u8, || {
    ///     Snapshot::bind_fn_mut_ref(|line: &str| lines.push(format!("[{:?}] {line}", get::<u8>())))
    /// });
    /// for line in ["a", "b"].map(String::from) {
    ///     on_line(&line);
    /// }
    /// drop(on_line);
    /// assert_eq!(lines, ["[Some(3)] a", "[Some(3)] b"]);
    /// ```
    #[must_use = "the bound callback does nothing unless called"]
    pub fn bind_fn_mut_ref<T, R, F>(mut f: F) -> impl FnMut(&T) -> R
    where
        T: ?Sized,
        F: FnMut(&T) -> R,
    {
        let snapshot = Snapshot::capture();
        move |arg| snapshot.run(|| f(arg))
    }

    /// Binds `f` to this snapshot: the returned closure runs `f` with
    /// exactly these stores visible at every call. The snapshot moves into
    /// the closure; clone it first to keep using it.
    ///
    /// # Examples
    ///
    /// One snapshot, taken where a request starts, shared by two callbacks:
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// let snapshot = scope(42u64, Snapshot::capture);
    /// let read = snapshot.clone().wrap_fn(|()| get::<u64>());
    /// let add = snapshot.wrap_fn(|x: u64| get::<u64>().unwrap_or(0) + x);
    ///
    /// assert_eq!(read(()), Some(42));
    /// assert_eq!(add(1), 43);
    /// assert_eq!(add(2), 44);
    /// assert_eq!(get::<u64>(), None);
    /// ```
    #[must_use = "the bound callback does nothing unless called"]
    pub fn wrap_fn<A, R, F>(self, f: F) -> impl Fn(A) -> R
    where
        F: Fn(A) -> R,
    {
        move |arg| self.run(|| f(arg))
    }

    /// Binds `f`, an `FnMut`, to this snapshot: see
    /// [`wrap_fn`](Snapshot::wrap_fn) and [`bind_fn_mut`](Snapshot::bind_fn_mut).
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::{get, scope, Snapshot};
    ///
    /// let mut total = 0;
    /// let mut add = scope(10u32, Snapshot::capture)
    ///     .wrap_fn_mut(|x: u32| total += x * get::<u32>().unwrap());
    /// add(1);
    /// add(2);
    /// drop(add);
    /// assert_eq!(total, 30);
    /// ```
    #[must_use = "the bound callback does nothing unless called"]
    pub fn wrap_fn_mut<A, R, F>(self, mut f: F) -> impl FnMut(A) -> R
    where
        F: FnMut(A) -> R,
    {
        move |arg| self.run(|| f(arg))
    }
}
