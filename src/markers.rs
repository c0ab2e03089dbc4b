//! Marker traits that exist for their compiler errors: each is implemented
//! for every type that meets the bound it stands for, and turns the error a
//! common mistake produces into one that names the fix.
//!
//! You never implement them, and rarely name them: they appear in the
//! bounds of [`with_store`](crate::WithStore::with_store), [`scope`](crate::scope)
//! and [`Scoped`](crate::Scoped)'s `Future` and `Stream` impls.

use core::future::Future;

use futures_core::Stream;

/// A store that can travel into other tasks and threads: every `Send` type.
///
/// [`with_store`](crate::WithStore::with_store) and [`scope`](crate::scope)
/// require it, because snapshots (and so every adapter spawn) move a clone
/// of the store to where the new work runs. A value that is not `Send` (an
/// `Rc`, a `RefCell` shared by reference) can still be a store: install it
/// with [`with_local_store`](crate::WithStore::with_local_store) or
/// [`scope_local`](crate::scope_local), which keep it with the future (or
/// call) that owns it.
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// use async_local_storage::WithStore;
///
/// // error: `Rc<u32>` cannot travel into other tasks and threads ...
/// // note: for a store that stays with this future, use `.with_local_store(value)` ...
/// let fut = async {}.with_store(Rc::new(1u32));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel into other tasks and threads: a store installed with `with_store` or `scope` must be `Send`",
    label = "not `Send`",
    note = "for a store that stays with this future, use `.with_local_store(value)` (or `scope_local(value, || ..)` for synchronous code): it is not carried into spawned work"
)]
pub trait Carryable: Send {}

impl<T: Send> Carryable for T {}

/// A future that [`Scoped`](crate::Scoped) can wrap: every [`Future`].
///
/// `Scoped<F, T>` is a future when `F` is. Calling
/// [`.with_store(..)`](crate::WithStore::with_store) on something that is
/// not a future (nor a stream) compiles, since `WithStore` is implemented for
/// every type, but awaiting the result fails with this trait's message,
/// which points to [`scope`](crate::scope) for synchronous code.
///
/// ```compile_fail,E0277
/// use async_local_storage::WithStore;
///
/// fn load() -> u32 { 1 }
///
/// async fn handler() -> u32 {
///     // error: `u32` is not a future: `.with_store(..)` makes a future or a stream run with a store
///     // note: for synchronous code, use `scope(value, || ..)` ...
///     load().with_store(7u64).await
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a future: `.with_store(..)` makes a future or a stream run with a store",
    label = "`{Self}` is not a future, so this `Scoped` is not one either",
    note = "for synchronous code, use `scope(value, || ..)`; for an async block or an async fn's future, write `async {{ .. }}.with_store(value)` / `call().with_store(value)` on the future itself"
)]
pub trait ScopedFuture: Future {}

#[diagnostic::do_not_recommend]
impl<F: Future> ScopedFuture for F {}

/// A stream that [`Scoped`](crate::Scoped) can wrap: every [`Stream`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stream: `.with_store(..)` makes a future or a stream run with a store",
    label = "`{Self}` is not a stream, so this `Scoped` is not one either",
    note = "for synchronous code, use `scope(value, || ..)`"
)]
pub trait ScopedStream: Stream {}

#[diagnostic::do_not_recommend]
impl<S: Stream> ScopedStream for S {}
