//! [`StoreNotFound`]: why [`try_get`](crate::try_get) found nothing.

use core::fmt;

use crate::frame;

/// How many visible store types a [`StoreNotFound`] names.
const NAMED: usize = 8;

/// The error of [`try_get`](crate::try_get) and
/// [`try_with`](crate::try_with): no store of the requested type is visible.
///
/// Its message names the type that was asked for and the types of the
/// stores that *are* visible here (type names only, never values: a store
/// may hold a secret), or says that none is, with the usual causes. It is
/// built without allocating, and only on failure.
///
/// # Examples
///
/// ```
/// use async_local_storage::{scope, try_get};
///
/// let err = scope(7u32, try_get::<u64>).unwrap_err();
/// assert_eq!(err.requested(), "u64");
/// assert_eq!(err.visible().collect::<Vec<_>>(), ["u32"]);
/// println!("{err}");
/// // no store of type `u64` is visible here; the stores visible are: `u32`.
/// // Stores are found by exact type (`u32` is not `u64`, `String` is not `&str`): ...
/// ```
#[derive(Clone, Copy)]
pub struct StoreNotFound {
    requested: fn() -> &'static str,
    /// `core::any::type_name` of each visible store type, innermost first:
    /// a word each, so the error stays small.
    visible: [fn() -> &'static str; NAMED],
    /// How many stores are visible (may exceed `NAMED`).
    count: usize,
}

impl StoreNotFound {
    /// Describes what is visible now, for a failed read of `requested`.
    #[cold]
    pub(crate) fn here(requested: fn() -> &'static str) -> StoreNotFound {
        let mut err = StoreNotFound {
            requested,
            visible: [nothing; NAMED],
            count: 0,
        };
        frame::visible_type_names(|name| {
            if err.count < NAMED {
                err.visible[err.count] = name;
            }
            err.count += 1;
        });
        err
    }

    /// The type that was asked for, as `core::any::type_name` spells it.
    #[must_use]
    pub fn requested(&self) -> &'static str {
        (self.requested)()
    }

    /// The types of the stores visible where the read was made, innermost
    /// first (at most eight are named; see [`visible_count`](Self::visible_count)).
    pub fn visible(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.visible[..self.count.min(NAMED)]
            .iter()
            .map(|name| name())
    }

    /// How many stores were visible: zero means none at all.
    #[must_use]
    pub fn visible_count(&self) -> usize {
        self.count
    }
}

impl fmt::Display for StoreNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no store of type `{}` is visible here", self.requested())?;
        if self.count == 0 {
            return f.write_str(
                "; no store at all is visible here. Usual causes: the work was started with a \
                 runtime's own `spawn` (use `async_local_storage::adapters::*::spawn`, or \
                 `.with_snapshot(Snapshot::capture())`), runs on another OS thread (use \
                 `async_local_storage::thread::spawn`), or is a future created inside \
                 `scope(value, || ..)` but polled outside it (wrap the future: \
                 `.with_store(value)`), or the code runs inside `isolate` / `.isolated()`",
            );
        }
        f.write_str("; the stores visible are: ")?;
        for (i, name) in self.visible().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        if self.count > NAMED {
            write!(f, " and {} more", self.count - NAMED)?;
        }
        f.write_str(
            ". Stores are found by exact type (`u32` is not `u64`, `String` is not `&str`): \
             read the type that was installed, or give each store a newtype; a type can also be \
             hidden by `exit` / `.without_store()`",
        )
    }
}

impl fmt::Debug for StoreNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreNotFound")
            .field("requested", &self.requested())
            .field("visible", &Names(self))
            .field("visible_count", &self.count)
            .finish()
    }
}

/// Debug-formats the visible names as a list.
struct Names<'a>(&'a StoreNotFound);

impl fmt::Debug for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.visible()).finish()
    }
}

/// Fills the unused entries.
fn nothing() -> &'static str {
    ""
}

impl PartialEq for StoreNotFound {
    fn eq(&self, other: &StoreNotFound) -> bool {
        self.requested() == other.requested()
            && self.count == other.count
            && self.visible().eq(other.visible())
    }
}

impl Eq for StoreNotFound {}

impl core::error::Error for StoreNotFound {}
