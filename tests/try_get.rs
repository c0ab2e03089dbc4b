//! `try_get` / `try_with` (issue 16): a missing store explains itself.

mod common;

use async_local_storage::{exit, isolate, scope, scope_local, try_get, try_with, StoreNotFound};
use common::{block_on, RequestId, User};

fn message(err: &StoreNotFound) -> String {
    err.to_string()
}

#[test]
fn found_is_the_value() {
    assert_eq!(scope(RequestId(7), try_get::<RequestId>), Ok(RequestId(7)));
    let len = scope(String::from("tenant"), || try_with(|s: &String| s.len()));
    assert_eq!(len, Ok(6));
}

#[test]
fn the_wrong_type_names_both_the_requested_and_the_visible_types() {
    let err = scope(7u32, try_get::<u64>).unwrap_err();
    assert_eq!(err.requested(), "u64");
    assert_eq!(err.visible().collect::<Vec<_>>(), ["u32"]);
    assert_eq!(err.visible_count(), 1);
    let text = message(&err);
    assert!(
        text.contains("no store of type `u64` is visible here"),
        "{text}"
    );
    assert!(text.contains("the stores visible are: `u32`"), "{text}");
    assert!(text.contains("exact type"), "{text}");

    // `String` stored, `&str` asked for: the common newtype/borrow mix-up.
    let err = scope(String::from("ada"), try_get::<&'static str>).unwrap_err();
    assert_eq!(err.requested(), "&str");
    assert_eq!(err.visible().collect::<Vec<_>>(), ["alloc::string::String"]);
}

#[test]
fn several_stores_are_named_innermost_first_each_once() {
    let err = scope(RequestId(1), || {
        scope(User("ada"), || {
            scope(RequestId(2), || scope_local(5u8, try_get::<u64>))
        })
    })
    .unwrap_err();
    let names: Vec<_> = err.visible().collect();
    assert_eq!(
        names,
        ["u8", "try_get::common::RequestId", "try_get::common::User"]
    );
}

#[test]
fn no_store_at_all_says_so_with_the_usual_causes() {
    let err = try_get::<RequestId>().unwrap_err();
    assert_eq!(err.visible_count(), 0);
    let text = message(&err);
    assert!(text.contains("no store at all is visible here"), "{text}");
    assert!(text.contains("runtime's own `spawn`"), "{text}");
    assert!(text.contains("OS thread"), "{text}");
    assert!(
        text.contains("created inside `scope(value, || ..)` but polled outside"),
        "{text}"
    );
}

#[test]
fn a_future_created_inside_scope_but_polled_outside_sees_none() {
    let fut = scope(RequestId(3), || async { try_get::<RequestId>() });
    let err = block_on(fut).unwrap_err();
    assert_eq!(err.visible_count(), 0);
}

#[test]
fn inside_isolate_and_past_exit_nothing_of_the_outside_is_named() {
    let err = scope(RequestId(4), || isolate(try_get::<RequestId>)).unwrap_err();
    assert_eq!(err.visible_count(), 0, "{err}");
    let err = scope(User("x"), || {
        scope(RequestId(4), || exit::<RequestId, _>(try_get::<RequestId>))
    })
    .unwrap_err();
    assert_eq!(err.visible().collect::<Vec<_>>(), ["try_get::common::User"]);
}

#[test]
fn the_error_carries_no_value() {
    #[derive(Clone, Debug)]
    struct ApiKey(#[allow(dead_code)] &'static str);
    let err = scope(ApiKey("s3cr3t"), try_get::<RequestId>).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("s3cr3t"));
    assert!(format!("{err}").contains("ApiKey"));
}

#[cfg(feature = "tokio")]
#[test]
fn inside_a_plain_runtime_spawn_nothing_is_visible() {
    use async_local_storage::WithStore;

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt.block_on(
        async {
            tokio::spawn(async { try_get::<RequestId>() })
                .await
                .unwrap()
        }
        .with_store(RequestId(9)),
    );
    let err = err.unwrap_err();
    assert_eq!(err.visible_count(), 0);
    assert!(message(&err).contains("runtime's own `spawn`"));
}
