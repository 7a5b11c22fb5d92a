//! `RoomNamePolicyLayer` alone: names that are empty, too long or hold a forbidden character
//! are refused before the inner service, and frames naming no room pass.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ghost_sync_layers::{
    BoxError, InvalidRoomName, InvalidRoomNameReason, RoomName, RoomNamePolicyLayer,
    DEFAULT_MAX_ROOM_NAME_LEN,
};
use tower::{service_fn, Layer, ServiceExt};

struct Frame(Option<String>);

impl RoomName for Frame {
    fn room_name(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

fn named(name: &str) -> Frame {
    Frame(Some(name.to_owned()))
}

/// Sends one frame through a fresh stack, returning the refusal reason if
/// any, and whether the inner service ran.
async fn check(layer: RoomNamePolicyLayer, frame: Frame) -> (Option<InvalidRoomNameReason>, bool) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let svc = layer.layer(service_fn(move |_: Frame| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(()) }
    }));
    let reason = svc.oneshot(frame).await.err().map(|err| reason(&err));
    (reason, calls.load(Ordering::SeqCst) == 1)
}

fn reason(err: &BoxError) -> InvalidRoomNameReason {
    match err.downcast_ref::<InvalidRoomName>() {
        Some(invalid) => invalid.reason,
        None => panic!("not an InvalidRoomName: {err}"),
    }
}

#[tokio::test]
async fn a_frame_naming_no_room_passes() {
    assert_eq!(
        check(RoomNamePolicyLayer::new(), Frame(None)).await,
        (None, true)
    );
}

#[tokio::test]
async fn a_printable_name_passes_by_default_including_non_ascii() {
    for name in ["lobby", "room 42", "salle d'été", "部屋"] {
        assert_eq!(
            check(RoomNamePolicyLayer::default(), named(name)).await,
            (None, true),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_empty_name_is_refused_without_calling_inner() {
    assert_eq!(
        check(RoomNamePolicyLayer::new(), named("")).await,
        (Some(InvalidRoomNameReason::Empty), false)
    );
}

#[tokio::test]
async fn the_default_limit_is_64_bytes() {
    assert_eq!(DEFAULT_MAX_ROOM_NAME_LEN, 64);
    let at_limit = "a".repeat(64);
    let over = "a".repeat(65);

    assert_eq!(
        check(RoomNamePolicyLayer::new(), named(&at_limit)).await,
        (None, true)
    );
    assert_eq!(
        check(RoomNamePolicyLayer::new(), named(&over)).await,
        (
            Some(InvalidRoomNameReason::TooLong { len: 65, max: 64 }),
            false
        )
    );
}

#[tokio::test]
async fn length_is_counted_in_bytes_not_characters() {
    // 33 characters, 66 bytes.
    let name = "é".repeat(33);
    assert_eq!(
        check(RoomNamePolicyLayer::new(), named(&name)).await.0,
        Some(InvalidRoomNameReason::TooLong { len: 66, max: 64 })
    );
}

#[tokio::test]
async fn control_characters_are_refused_by_default() {
    for (name, bad) in [("a\nb", '\n'), ("\u{1b}[31m", '\u{1b}'), ("nul\0", '\0')] {
        assert_eq!(
            check(RoomNamePolicyLayer::new(), named(name)).await,
            (Some(InvalidRoomNameReason::ForbiddenChar(bad)), false)
        );
    }
}

#[tokio::test]
async fn max_len_and_allowed_chars_can_be_set() {
    let layer = RoomNamePolicyLayer::new()
        .max_len(4)
        .allowed_chars(|c| c.is_ascii_lowercase());

    assert_eq!(check(layer, named("abcd")).await, (None, true));
    assert_eq!(
        check(layer, named("abcde")).await.0,
        Some(InvalidRoomNameReason::TooLong { len: 5, max: 4 })
    );
    assert_eq!(
        check(layer, named("abC")).await.0,
        Some(InvalidRoomNameReason::ForbiddenChar('C'))
    );
}

#[tokio::test]
async fn ascii_identifiers_allows_letters_digits_and_four_separators_only() {
    let layer = RoomNamePolicyLayer::ascii_identifiers();

    assert_eq!(check(layer, named("Lobby-1:eu_west.2")).await, (None, true));
    for (name, bad) in [("a b", ' '), ("été", 'é'), ("a/b", '/')] {
        assert_eq!(
            check(layer, named(name)).await.0,
            Some(InvalidRoomNameReason::ForbiddenChar(bad))
        );
    }
    assert_eq!(
        check(layer, named(&"a".repeat(65))).await.0,
        Some(InvalidRoomNameReason::TooLong { len: 65, max: 64 })
    );
}

#[tokio::test]
async fn a_huge_name_is_reported_too_long_before_any_character_is_judged() {
    let huge = "\n".repeat(1_000_000);
    assert_eq!(
        check(RoomNamePolicyLayer::new(), named(&huge)).await.0,
        Some(InvalidRoomNameReason::TooLong {
            len: 1_000_000,
            max: 64
        })
    );
}

#[tokio::test]
async fn refusals_explain_themselves_without_echoing_the_name() {
    let messages = [
        (InvalidRoomNameReason::Empty, "invalid room name: empty"),
        (
            InvalidRoomNameReason::TooLong { len: 70, max: 64 },
            "invalid room name: too long (70 bytes, max 64)",
        ),
        (
            InvalidRoomNameReason::ForbiddenChar('\n'),
            r"invalid room name: character '\n' not allowed",
        ),
    ];
    for (reason, message) in messages {
        assert_eq!(InvalidRoomName { reason }.to_string(), message);
    }

    let svc =
        RoomNamePolicyLayer::new().layer(service_fn(|_: Frame| async { Ok::<_, Infallible>(()) }));
    let huge = "x".repeat(10_000);
    let err = svc.oneshot(named(&huge)).await.expect_err("too long");
    assert!(!err.to_string().contains("xxxx"), "echoed the name: {err}");
}

#[tokio::test]
async fn inner_errors_pass_through_boxed() {
    let svc = RoomNamePolicyLayer::new()
        .layer(service_fn(|_: Frame| async { Err::<(), _>("room closed") }));

    let err = svc.oneshot(named("lobby")).await.expect_err("inner error");
    assert_eq!(err.to_string(), "room closed");
    assert!(err.downcast_ref::<InvalidRoomName>().is_none());
}

#[tokio::test]
async fn any_accepts_every_name_and_a_builder_method_turns_checking_back_on() {
    for name in ["", "\n", &"x".repeat(10_000)] {
        let (refused, called) = check(RoomNamePolicyLayer::any(), named(name)).await;
        assert_eq!((refused, called), (None, true), "{name:?}");
    }
    let (refused, called) = check(RoomNamePolicyLayer::any().max_len(4), named("toolong")).await;
    assert!(refused.is_some() && !called);
}
