//! `adapters::log::StoreLogger` with a capturing `log::Log`:
//! `cargo test --features log --test log`.
//!
//! Each test builds its own `StoreLogger` and calls `Log::log` on it
//! directly (no global logger), so the tests can run in parallel; the last
//! one goes through the `log!` macros and the global logger.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_local_storage::adapters::log::StoreLogger;
use async_local_storage::{scope, WithStore};
use log::kv::{Error, Key, Value, VisitSource};
use log::{Level, Log, Metadata, Record};

/// One captured record: its message and its key-values, in order.
#[derive(Clone, Debug, PartialEq)]
struct Captured {
    message: String,
    kvs: Vec<(String, String)>,
}

impl Captured {
    fn get(&self, key: &str) -> Option<&str> {
        self.kvs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
    }

    fn log(&self, record: &Record<'_>) {
        struct Kvs(Vec<(String, String)>);
        impl<'kvs> VisitSource<'kvs> for Kvs {
            fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), Error> {
                self.0.push((key.to_string(), value.to_string()));
                Ok(())
            }
        }
        let mut kvs = Kvs(Vec::new());
        record.key_values().visit(&mut kvs).unwrap();
        self.0.lock().unwrap().push(Captured {
            message: record.args().to_string(),
            kvs: kvs.0,
        });
    }

    fn flush(&self) {}
}

#[derive(Clone, Debug)]
struct RequestId(u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req-{}", self.0)
    }
}

#[derive(Clone, Debug)]
struct User(&'static str);

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn logger() -> (StoreLogger<Capture>, Capture) {
    let capture = Capture::default();
    let logger = StoreLogger::new(capture.clone()).field::<RequestId>("request_id");
    (logger, capture)
}

/// Logs `message` at info level, with `kvs` as the record's own key-values.
fn log_to(logger: &impl Log, message: &str, kvs: &[(&str, &str)]) {
    logger.log(
        &Record::builder()
            .level(Level::Info)
            .args(format_args!("{message}"))
            .key_values(&kvs)
            .build(),
    );
}

#[test]
fn the_key_is_present_inside_a_store_with_its_value() {
    let (logger, capture) = logger();
    scope(RequestId(7), || log_to(&logger, "inside", &[]));
    let records = capture.take();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].message, "inside");
    assert_eq!(records[0].kvs, [("request_id".into(), "req-7".into())]);
}

#[test]
fn the_innermost_store_wins_and_futures_carry_it() {
    let (logger, capture) = logger();
    let fut = async {
        log_to(&logger, "outer", &[]);
        async { log_to(&logger, "inner", &[]) }
            .with_store(RequestId(2))
            .await;
    };
    futures::executor::block_on(fut.with_store(RequestId(1)));
    let records = capture.take();
    assert_eq!(records[0].get("request_id"), Some("req-1"));
    assert_eq!(records[1].get("request_id"), Some("req-2"));
}

#[test]
fn outside_any_store_records_pass_through_unchanged() {
    let (logger, capture) = logger();
    log_to(&logger, "outside", &[("own", "1")]);
    // A store of another type is not a field: still unchanged.
    scope(User("ann"), || log_to(&logger, "other store", &[]));
    let records = capture.take();
    assert_eq!(
        records,
        [
            Captured {
                message: "outside".into(),
                kvs: vec![("own".into(), "1".into())],
            },
            Captured {
                message: "other store".into(),
                kvs: vec![],
            },
        ]
    );
}

#[test]
fn the_records_own_key_values_are_kept_after_the_fields() {
    let (logger, capture) = logger();
    scope(RequestId(3), || {
        log_to(&logger, "with own", &[("status", "200"), ("path", "/a")]);
    });
    let records = capture.take();
    assert_eq!(
        records[0].kvs,
        [
            ("request_id".into(), "req-3".into()),
            ("status".into(), "200".into()),
            ("path".into(), "/a".into()),
        ]
    );
}

#[test]
fn a_key_the_record_has_itself_is_logged_once_with_the_records_value() {
    let (logger, capture) = logger();
    scope(RequestId(3), || {
        log_to(
            &logger,
            "override",
            &[("status", "200"), ("request_id", "given")],
        );
    });
    let records = capture.take();
    assert_eq!(
        records[0].kvs,
        [
            ("status".into(), "200".into()),
            ("request_id".into(), "given".into()),
        ]
    );
}

#[test]
fn two_fields_at_once_in_the_order_they_were_added() {
    let capture = Capture::default();
    let logger = StoreLogger::new(capture.clone())
        .field::<RequestId>("request_id")
        .field::<User>("user");
    scope(User("ann"), || {
        // Only one of the two visible: only that key.
        log_to(&logger, "user only", &[]);
        scope(RequestId(9), || log_to(&logger, "both", &[("own", "x")]));
    });
    let records = capture.take();
    assert_eq!(records[0].kvs, [("user".into(), "ann".into())]);
    assert_eq!(
        records[1].kvs,
        [
            ("request_id".into(), "req-9".into()),
            ("user".into(), "ann".into()),
            ("own".into(), "x".into()),
        ]
    );
}

#[test]
fn records_the_inner_logger_is_not_enabled_for_are_forwarded_without_reading_stores() {
    let (logger, capture) = logger();
    scope(RequestId(1), || {
        logger.log(
            &Record::builder()
                .level(Level::Debug)
                .args(format_args!("debug"))
                .build(),
        );
    });
    // `Capture::log` keeps everything: the record came through, unchanged.
    let records = capture.take();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kvs, []);
    assert!(!logger.enabled(&Metadata::builder().level(Level::Debug).build()));
    assert!(logger.enabled(&Metadata::builder().level(Level::Info).build()));
}

#[test]
fn installed_as_the_global_logger_the_macros_get_the_fields() {
    let capture = Capture::default();
    StoreLogger::new(capture.clone())
        .field::<RequestId>("request_id")
        .install(log::LevelFilter::Info)
        .unwrap();
    assert_eq!(log::max_level(), log::LevelFilter::Info);

    scope(
        RequestId(5),
        || log::info!(target: "global", status = 200; "served"),
    );
    log::info!(target: "global", "idle");
    log::debug!(target: "global", "filtered out by max_level");

    let records: Vec<Captured> = capture.take();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].message, "served");
    assert_eq!(
        records[0].kvs,
        [
            ("request_id".into(), "req-5".into()),
            ("status".into(), "200".into()),
        ]
    );
    assert_eq!(records[1].kvs, []);

    // A second install fails: the first logger stays.
    assert!(StoreLogger::new(Capture::default())
        .install(log::LevelFilter::Info)
        .is_err());
}

#[test]
fn debug_names_the_fields() {
    let (logger, _) = logger();
    let logger = logger.field::<User>("user");
    struct Inner;
    impl fmt::Debug for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Inner")
        }
    }
    let debug = format!("{:?}", StoreLogger::new(Inner).field::<User>("user"));
    assert!(debug.contains("\"user\": \"log::User\""), "{debug}");
    drop(logger);
}
