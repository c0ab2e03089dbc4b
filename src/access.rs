//! Reading stores ([`get`], [`with`], [`is_set`]) and synchronous scopes
//! ([`scope`], [`scope_local`], [`exit`]).

use crate::frame::{self, Hidden, Isolated, Node};
use crate::markers::Carryable;
use crate::StoreNotFound;

/// Calls `f` with the innermost visible store of type `T`, or `None`
/// (Node's `asyncLocalStorage.getStore()`, by reference).
///
/// Like [`LocalKey::with`](https://doc.rust-lang.org/std/thread/struct.LocalKey.html#method.with), the reference
/// cannot escape the closure. Use it for values that are not `Clone` or are
/// expensive to clone; [`get`] is the shorthand that clones.
///
/// The cost is one slot read plus one `TypeId` comparison per frame between
/// the innermost one and the match: the nearest store is found first, and a
/// type that is not set walks every frame.
///
/// # Examples
///
/// ```
/// use async_local_storage::{scope, with};
///
/// struct Config { name: String }
///
/// let len = scope(std::sync::Arc::new(Config { name: "svc".into() }), || {
///     with(|config: Option<&std::sync::Arc<Config>>| config.map(|c| c.name.len()))
/// });
/// assert_eq!(len, Some(3));
/// assert_eq!(with(|config: Option<&std::sync::Arc<Config>>| config.is_some()), false);
/// ```
pub fn with<T: 'static, R>(f: impl FnOnce(Option<&T>) -> R) -> R {
    frame::with(f)
}

/// Returns a clone of the innermost visible store of type `T`, or `None`
/// (Node's `asyncLocalStorage.getStore()`).
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, WithStore};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct RequestId(u64);
///
/// assert_eq!(get::<RequestId>(), None);
/// let seen = futures::executor::block_on(async { get::<RequestId>() }.with_store(RequestId(7)));
/// assert_eq!(seen, Some(RequestId(7)));
/// ```
#[must_use]
pub fn get<T: Clone + 'static>() -> Option<T> {
    with(|value: Option<&T>| value.cloned())
}

/// Like [`get`], but says why nothing was found: the error names the type
/// asked for and the types of the stores visible instead (or that there are
/// none at all, with the usual causes). Use it where a missing store is a
/// bug, with `?` or `expect`, to get a message that points at the fix.
///
/// It costs what [`get`] costs when the store is there; the error is built
/// only on failure, without allocating.
///
/// # Errors
///
/// [`StoreNotFound`] when no store of type `T` is visible.
///
/// # Examples
///
/// ```
/// use async_local_storage::{scope, try_get};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct RequestId(u64);
///
/// assert_eq!(scope(RequestId(7), try_get::<RequestId>), Ok(RequestId(7)));
///
/// let err = try_get::<RequestId>().unwrap_err();
/// assert!(err.to_string().contains("no store at all is visible here"));
/// ```
pub fn try_get<T: Clone + 'static>() -> Result<T, StoreNotFound> {
    try_with(|value: &T| value.clone())
}

/// Like [`with`], but calls `f` only when the store is there, and says why
/// otherwise (see [`try_get`]).
///
/// # Errors
///
/// [`StoreNotFound`] when no store of type `T` is visible.
///
/// # Examples
///
/// ```
/// use async_local_storage::{scope, try_with};
///
/// let len = scope(String::from("tenant-a"), || try_with(|name: &String| name.len()));
/// assert_eq!(len, Ok(8));
/// ```
pub fn try_with<T: 'static, R>(f: impl FnOnce(&T) -> R) -> Result<R, StoreNotFound> {
    with(|value: Option<&T>| match value {
        Some(value) => Ok(f(value)),
        None => Err(StoreNotFound::here(core::any::type_name::<T>)),
    })
}

/// Returns `true` if a store of type `T` is visible.
///
/// # Examples
///
/// ```
/// use async_local_storage::{is_set, scope};
///
/// assert!(!is_set::<u8>());
/// assert!(scope(1u8, is_set::<u8>));
/// ```
#[must_use]
pub fn is_set<T: 'static>() -> bool {
    with(|value: Option<&T>| value.is_some())
}

/// Calls `f` with `value` installed as a store, then drops `value` (Node's
/// `asyncLocalStorage.run(value, callback)` with a synchronous callback).
///
/// The store is carried by snapshots, like
/// [`with_store`](crate::WithStore::with_store).
///
/// # Panics
///
/// Does not panic itself; if `f` panics, the store is removed before the
/// panic leaves `scope`.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, scope};
///
/// fn current_user() -> Option<String> {
///     get::<String>()
/// }
///
/// assert_eq!(scope(String::from("ada"), current_user).as_deref(), Some("ada"));
/// assert_eq!(current_user(), None);
/// ```
pub fn scope<T: Clone + Carryable + 'static, R>(value: T, f: impl FnOnce() -> R) -> R {
    Node::store(value).enter(f)
}

/// Like [`scope`], for any `'static` value, which snapshots do not carry
/// (see [`with_local_store`](crate::WithStore::with_local_store)).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use async_local_storage::{is_set, scope_local};
///
/// assert!(scope_local(Rc::new(5), is_set::<Rc<i32>>));
/// ```
pub fn scope_local<T: 'static, R>(value: T, f: impl FnOnce() -> R) -> R {
    Node::local(value).enter(f)
}

/// Calls `f` with any store of type `T` hidden, and nothing else (Node's
/// `asyncLocalStorage.exit(callback)`, for one type).
///
/// # Examples
///
/// ```
/// use async_local_storage::{exit, get, scope};
///
/// let seen = scope(1u32, || scope('x', || exit::<u32, _>(|| (get::<u32>(), get::<char>()))));
/// assert_eq!(seen, (None, Some('x')));
/// ```
pub fn exit<T: 'static, R>(f: impl FnOnce() -> R) -> R {
    Node::<Hidden<T>>::hidden().enter(f)
}

/// Calls `f` with no store visible: stores installed inside `f` are visible
/// again, nothing from outside is.
///
/// Use it where code that runs *inside* a scope must not see it: an
/// executor polled from inside another poll, or an interrupt handler that
/// polls futures or reads stores on a no_std target (see the
/// [`slot`](crate::slot) docs). It allocates nothing.
///
/// # Examples
///
/// ```
/// use async_local_storage::{get, isolate, scope};
///
/// let seen = scope(1u8, || isolate(|| (get::<u8>(), scope(2u8, get::<u8>))));
/// assert_eq!(seen, (None, Some(2)));
/// ```
pub fn isolate<R>(f: impl FnOnce() -> R) -> R {
    Node::<Isolated>::isolated().enter(f)
}
