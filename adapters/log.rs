//! log: stamp every log record with values from the visible stores.
//!
//! [`StoreLogger`] wraps any [`log::Log`] (env_logger,
//! simple_logger, fern, ...). For each record, it looks up the store types
//! you named and adds each one that is visible as a key-value (log's `kv`
//! API), then hands the record to the wrapped logger. It is the async-aware
//! version of a thread-local MDC: the values follow the request's future
//! from thread to thread, into spawned tasks (through the adapters) and, with
//! [`HttpStoreLayer`](crate::adapters::http::HttpStoreLayer), into the
//! response body.
//!
//! # Examples
//!
//! With env_logger (its `kv` feature prints key-values as `key=value` after
//! the message):
//!
//! ```
//! use std::fmt;
//!
//! use async_local_storage::{adapters::log::StoreLogger, WithStore};
//!
//! #[derive(Clone)]
//! struct RequestId(u64);
//!
//! impl fmt::Display for RequestId {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         write!(f, "{}", self.0)
//!     }
//! }
//!
//! let env_logger = env_logger::Builder::new().filter_level(log::LevelFilter::Info).build();
//! let max_level = env_logger.filter();
//! StoreLogger::new(env_logger)
//!     .field::<RequestId>("request_id")
//!     .install(max_level)
//!     .unwrap();
//!
//! log::info!("starting"); // [... INFO ...] starting
//! futures::executor::block_on(
//!     async { log::info!("handling") } // [... INFO ...] handling request_id=7
//!         .with_store(RequestId(7)),
//! );
//! ```

use core::fmt::{self, Display};

use std::boxed::Box;
use std::vec::Vec;

use ::log::kv::{self, Key, Source, Value, VisitSource};
use ::log::{LevelFilter, Log, Metadata, Record, SetLoggerError};

/// A [`Log`] that adds the visible stores to each record, then forwards it.
///
/// Each [`field::<T>(key)`](Self::field) adds the key-value `key=<T's
/// Display>` to every record logged while a store of type `T` is visible.
/// Fields come first, in the order they were added, then the record's own
/// key-values; a field whose key the record already has is left out (the
/// record's own value is logged once). A record logged where none of the
/// stores is visible is forwarded unchanged.
///
/// Stores are read by reference with [`with`](crate::with), never cloned,
/// and only for records the wrapped logger is [`enabled`](Log::enabled) for;
/// other records are forwarded unchanged (the wrapped logger drops them).
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
///
/// use async_local_storage::{adapters::log::StoreLogger, scope};
/// use log::Log;
///
/// /// Keeps each record as `message key=value ...`.
/// #[derive(Default)]
/// struct Lines(Mutex<Vec<String>>);
///
/// impl Log for Lines {
///     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
///     fn log(&self, record: &log::Record<'_>) {
///         struct Kvs(String);
///         impl<'kvs> log::kv::VisitSource<'kvs> for Kvs {
///             fn visit_pair(&mut self, k: log::kv::Key<'kvs>, v: log::kv::Value<'kvs>) -> Result<(), log::kv::Error> {
///                 self.0 += &format!(" {k}={v}");
///                 Ok(())
///             }
///         }
///         let mut line = Kvs(record.args().to_string());
///         record.key_values().visit(&mut line).unwrap();
///         self.0.lock().unwrap().push(line.0);
///     }
///     fn flush(&self) {}
/// }
///
/// #[derive(Clone)]
/// struct Tenant(&'static str);
/// impl std::fmt::Display for Tenant {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.0) }
/// }
///
/// let logger = StoreLogger::new(Lines::default())
///     .field::<Tenant>("tenant")
///     .field::<u32>("attempt");
/// let log = |message: &str| logger.log(&log::Record::builder().args(format_args!("{message}")).build());
///
/// log("outside");
/// scope(Tenant("acme"), || {
///     log("inside");
///     scope(3u32, || log("retrying"));
/// });
/// assert_eq!(
///     *logger.get_ref().0.lock().unwrap(),
///     ["outside", "inside tenant=acme", "retrying tenant=acme attempt=3"],
/// );
/// ```
pub struct StoreLogger<L> {
    inner: L,
    fields: Vec<Field>,
}

/// One store type to read, and the key to write it under.
struct Field {
    key: &'static str,
    type_name: &'static str,
    /// Calls its argument with the visible store of the field's type.
    read: fn(&mut Visit<'_>),
}

/// What [`Field::read`] calls with the store it finds.
type Visit<'a> = dyn FnMut(Option<&dyn Display>) + 'a;

fn read<T: Display + 'static>(f: &mut Visit<'_>) {
    crate::with(|value: Option<&T>| f(value.map(|value| value as &dyn Display)));
}

impl<L> StoreLogger<L> {
    /// Wraps `inner`. With no [`field`](Self::field) added, records pass
    /// through unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::log::StoreLogger;
    ///
    /// let logger = StoreLogger::new(env_logger::Logger::from_default_env());
    /// # let _ = logger;
    /// ```
    #[must_use]
    pub fn new(inner: L) -> Self {
        StoreLogger {
            inner,
            fields: Vec::new(),
        }
    }

    /// Adds the store of type `T`, when one is visible, to every record as
    /// the key-value `key` = its [`Display`] output. Chainable; add as many
    /// types as you like.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::log::StoreLogger;
    ///
    /// #[derive(Clone)]
    /// struct RequestId(u64);
    /// impl std::fmt::Display for RequestId {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}", self.0) }
    /// }
    ///
    /// let logger = StoreLogger::new(env_logger::Logger::from_default_env())
    ///     .field::<RequestId>("request_id")
    ///     .field::<String>("user");
    /// # let _ = logger;
    /// ```
    #[must_use]
    pub fn field<T: Display + 'static>(mut self, key: &'static str) -> Self {
        self.fields.push(Field {
            key,
            type_name: core::any::type_name::<T>(),
            read: read::<T>,
        });
        self
    }

    /// Borrows the wrapped logger.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::log::StoreLogger;
    ///
    /// let logger = StoreLogger::new(env_logger::Logger::from_default_env());
    /// let _max_level = logger.get_ref().filter();
    /// ```
    pub fn get_ref(&self) -> &L {
        &self.inner
    }

    /// Unwraps the wrapped logger.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::log::StoreLogger;
    ///
    /// let env_logger = StoreLogger::new(env_logger::Logger::from_default_env()).into_inner();
    /// # let _ = env_logger;
    /// ```
    pub fn into_inner(self) -> L {
        self.inner
    }

    /// Makes this the global logger ([`log::set_boxed_logger`])
    /// and sets [`log::set_max_level`] to `max_level`
    /// (for env_logger, pass its `filter()`).
    ///
    /// # Errors
    ///
    /// When a global logger is already set; then nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use async_local_storage::adapters::log::StoreLogger;
    ///
    /// let env_logger = env_logger::Logger::from_default_env();
    /// let max_level = env_logger.filter();
    /// StoreLogger::new(env_logger).field::<u64>("job").install(max_level).unwrap();
    /// ```
    pub fn install(self, max_level: LevelFilter) -> Result<(), SetLoggerError>
    where
        L: Log + 'static,
    {
        ::log::set_boxed_logger(Box::new(self))?;
        ::log::set_max_level(max_level);
        Ok(())
    }
}

impl<L: fmt::Debug> fmt::Debug for StoreLogger<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Fields<'a>(&'a [Field]);
        impl fmt::Debug for Fields<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|field| (field.key, field.type_name)))
                    .finish()
            }
        }
        f.debug_struct("StoreLogger")
            .field("inner", &self.inner)
            .field("fields", &Fields(&self.fields))
            .finish()
    }
}

impl<L: Log> Log for StoreLogger<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.fields.is_empty() || !self.inner.enabled(record.metadata()) {
            return self.inner.log(record);
        }
        collect(&self.fields, None, &mut |found| match found {
            None => self.inner.log(record),
            Some(found) => {
                let kvs = WithFields {
                    found,
                    own: record.key_values(),
                };
                self.inner
                    .log(&record.to_builder().key_values(&kvs).build());
            }
        });
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// The fields found so far, the last one first (a list on the stack, since
/// each value is only borrowed inside its `with` call).
struct Found<'a> {
    key: &'static str,
    value: &'a dyn Display,
    earlier: Option<&'a Found<'a>>,
}

/// Reads each field's store in turn, nesting the `with` calls, and calls
/// `done` innermost with every value found.
fn collect(fields: &[Field], found: Option<&Found<'_>>, done: &mut dyn FnMut(Option<&Found<'_>>)) {
    let Some((field, rest)) = fields.split_first() else {
        return done(found);
    };
    (field.read)(&mut |value| match value {
        Some(value) => {
            let found = Found {
                key: field.key,
                value,
                earlier: found,
            };
            collect(rest, Some(&found), done);
        }
        None => collect(rest, found, done),
    });
}

/// The record's key-values with the fields in front.
struct WithFields<'a> {
    found: &'a Found<'a>,
    own: &'a dyn Source,
}

impl WithFields<'_> {
    /// The fields, the first added first, except those whose key the record
    /// has a value for itself: the record's own value is the one logged.
    fn visit_found<'kvs>(
        found: &'kvs Found<'kvs>,
        own: &dyn Source,
        visitor: &mut dyn VisitSource<'kvs>,
    ) -> Result<(), kv::Error> {
        if let Some(earlier) = found.earlier {
            Self::visit_found(earlier, own, visitor)?;
        }
        let key = Key::from_str(found.key);
        if own.get(key.clone()).is_some() {
            return Ok(());
        }
        visitor.visit_pair(key, Value::from_dyn_display(found.value))
    }
}

impl Source for WithFields<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        Self::visit_found(self.found, self.own, visitor)?;
        self.own.visit(visitor)
    }
}
