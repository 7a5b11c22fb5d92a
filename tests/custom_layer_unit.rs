//! The layers of `examples/custom_layer.rs`, unit-tested alone, as a user tests their own:
//! requests built with `FrameRequest::builder`, a `tower::service_fn` in place of the relay's
//! router, `ServiceBuilder` for the stack, and `Reply::kind` to read what came back. No relay,
//! no socket.

#[allow(dead_code)]
#[path = "../examples/custom_layer.rs"]
mod custom_layer;

use custom_layer::{text_only, BlockWordLayer};
use ghost_sync::auth::Identity;
use ghost_sync::layers::BoxError;
use ghost_sync::pipeline::recover;
use ghost_sync::{ClientMessage, DisconnectReason, FrameRequest, Reply, ReplyKind, Uuid};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tower::filter::FilterLayer;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The router's stand-in: records what reached it and answers as the router does for a
/// relayed broadcast.
fn router(
    seen: Arc<Mutex<Vec<ClientMessage>>>,
) -> impl Service<FrameRequest, Response = Reply, Error = BoxError, Future: Send + 'static> + Clone
{
    service_fn(move |req: FrameRequest| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(req.message().clone());
            Ok::<_, BoxError>(Reply::relayed(req.room_id().unwrap_or_default()))
        }
    })
}

/// One request through `stack`, once it is ready: what the relay's driver does per frame.
async fn call<S>(stack: &mut S, request: FrameRequest) -> Result<Reply, S::Error>
where
    S: Service<FrameRequest, Response = Reply>,
{
    stack.ready().await?.call(request).await
}

fn broadcast(data: &'static [u8]) -> FrameRequest {
    FrameRequest::builder(ClientMessage::broadcast(data))
        .room("chat")
        .build()
}

#[tokio::test]
async fn block_word_passes_clean_messages_to_the_service_below() {
    let seen = Arc::default();
    let mut stack = ServiceBuilder::new()
        .layer(BlockWordLayer {
            word: "cheat",
            strikes: 3,
        })
        .service(router(Arc::clone(&seen)));
    let reply = call(&mut stack, broadcast(b"gg")).await.unwrap();
    assert_eq!(
        reply.kind(),
        &ReplyKind::Relayed {
            room_id: "chat".into()
        }
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [ClientMessage::broadcast(&b"gg"[..])]
    );
}

#[tokio::test]
async fn block_word_refuses_the_word_and_the_client_reads_why() {
    let seen = Arc::default();
    // `recover` maps a layer's error to what the client receives, as in the relay's stack.
    let mut stack = ServiceBuilder::new()
        .map_result(recover)
        .layer(BlockWordLayer {
            word: "cheat",
            strikes: 3,
        })
        .service(router(Arc::clone(&seen)));
    let reply = call(&mut stack, broadcast(b"want to cheat?"))
        .await
        .unwrap();
    assert_eq!(
        reply.error_message(),
        Some("message blocked: contains \"cheat\"")
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "a refused frame must not reach the router"
    );
}

#[tokio::test]
async fn block_word_disconnects_at_the_last_strike_with_a_reason() {
    let seen = Arc::default();
    let mut stack = ServiceBuilder::new()
        .map_result(recover)
        .layer(BlockWordLayer {
            word: "cheat",
            strikes: 2,
        })
        .service(router(Arc::clone(&seen)));
    let first = call(&mut stack, broadcast(b"cheat")).await.unwrap();
    assert!(
        first.error_message().is_some(),
        "the first strike only refuses: {first:?}"
    );
    let second = call(&mut stack, broadcast(b"cheat")).await.unwrap();
    assert_eq!(
        second.disconnect_reason(),
        Some(&DisconnectReason::Policy(
            "said \"cheat\" once too often".into()
        ))
    );
}

#[tokio::test]
async fn block_word_counts_strikes_per_connection() {
    // The layer builds one service per connection: a second connection starts clean.
    let layer = BlockWordLayer {
        word: "cheat",
        strikes: 2,
    };
    let seen: Arc<Mutex<Vec<ClientMessage>>> = Arc::default();
    let mut first = ServiceBuilder::new()
        .layer(layer.clone())
        .service(router(Arc::clone(&seen)));
    let mut second = ServiceBuilder::new()
        .layer(layer)
        .service(router(Arc::clone(&seen)));
    let _ = call(&mut first, broadcast(b"cheat")).await;
    assert!(
        call(&mut second, broadcast(b"cheat")).await.is_err(),
        "the other connection's strike must not count here"
    );
}

#[tokio::test]
async fn block_word_lets_joins_and_leaves_through() {
    let seen = Arc::default();
    let mut stack = ServiceBuilder::new()
        .layer(BlockWordLayer {
            word: "cheat",
            strikes: 1,
        })
        .service(router(Arc::clone(&seen)));
    let join = FrameRequest::builder(ClientMessage::join("cheaters")).build();
    call(&mut stack, join).await.unwrap();
    let leave = FrameRequest::builder(ClientMessage::Leave).build();
    call(&mut stack, leave).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_text_only_filter_refuses_bytes_that_are_not_utf8() {
    let seen = Arc::default();
    let mut stack = ServiceBuilder::new()
        .map_result(recover)
        .layer(FilterLayer::new(text_only))
        .service(router(Arc::clone(&seen)));
    let reply = call(&mut stack, broadcast(&[0xff, 0xfe])).await.unwrap();
    assert_eq!(
        reply.error_message(),
        Some("only text messages are relayed")
    );
    let reply = call(&mut stack, broadcast(b"text")).await.unwrap();
    assert!(
        matches!(reply.kind(), ReplyKind::Relayed { .. }),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_request_carries_what_the_builder_was_given() {
    let id = Uuid::new_v4();
    let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let request = FrameRequest::builder(ClientMessage::join("arena"))
        .client_id(id)
        .peer(peer)
        .identity(Identity::new("alice"))
        .room("lobby")
        .build();
    assert_eq!(request.client_id(), id);
    assert_eq!(request.peer_addr(), peer);
    assert_eq!(request.identity().map(Identity::user_id), Some("alice"));
    assert_eq!(request.room_id().as_deref(), Some("lobby"));
    assert_eq!(request.message(), &ClientMessage::join("arena"));
}

#[tokio::test]
async fn the_relay_s_auth_layer_refuses_an_unauthenticated_request() {
    use ghost_sync::layers::AuthLayer;
    let seen = Arc::default();
    let mut stack = ServiceBuilder::new()
        .map_result(recover)
        .layer(AuthLayer::new())
        .service(router(Arc::clone(&seen)));
    let request = FrameRequest::builder(ClientMessage::broadcast("hi"))
        .unauthenticated()
        .build();
    let reply = call(&mut stack, request).await.unwrap();
    assert!(
        matches!(
            reply.kind(),
            ReplyKind::Disconnect(DisconnectReason::Protocol(_))
        ),
        "{reply:?}"
    );
}
