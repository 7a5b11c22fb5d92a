//! Presence across relays: `Joined`, the member list of every relay, then each arrival and
//! departure exactly once, wherever the member is.

use crate::broker::{prefix, Broker};
use crate::relays::*;
use ghost_sync::ServerEvent;

#[tokio::test]
async fn joins_list_every_relay_s_members_and_presence_comes_once() {
    let broker = Broker::start();
    let relays = relays(&broker.url(), &prefix("presence"), 3).await;
    relays[0].handle.create_room("lobby").unwrap();
    for relay in &relays {
        eventually("the room is known", || relay.handle.room_exists("lobby")).await;
    }
    let mut a = connect(relays[0].addr).await;
    assert!(join(&mut a, "lobby").await.is_empty());
    let mut b = connect(relays[1].addr).await;
    assert_eq!(join(&mut b, "lobby").await, [a.client_id()]);
    let mut c = connect(relays[2].addr).await;
    let mut listed = join(&mut c, "lobby").await;
    listed.sort();
    let mut expected = vec![a.client_id(), b.client_id()];
    expected.sort();
    assert_eq!(
        listed, expected,
        "the list holds the members of every relay"
    );

    // A relay announces a member when the broker's feed brings it there: once every relay
    // counts three, every announcement is queued, and the markers below come after them.
    for relay in &relays {
        eventually("every relay counts the three", || {
            relay.handle.room_client_count("lobby") == Some(3)
        })
        .await;
    }
    let joined = |id| ServerEvent::PlayerJoined { client_id: id };
    // Once each: waiting for a marker sent after them shows there is no second copy.
    assert_eq!(
        events_until_marker(&mut a, &relays[0].handle).await,
        [joined(b.client_id()), joined(c.client_id())]
    );
    assert_eq!(
        events_until_marker(&mut b, &relays[1].handle).await,
        [joined(c.client_id())]
    );
    assert!(events_until_marker(&mut c, &relays[2].handle)
        .await
        .is_empty());

    let c_id = c.client_id();
    c.leave().await.unwrap();
    assert!(matches!(next_event(&mut c).await, ServerEvent::Left { .. }));
    let left = ServerEvent::PlayerLeft { client_id: c_id };
    for (client, relay) in [(&mut a, &relays[0]), (&mut b, &relays[1])] {
        eventually("the leave is counted", || {
            relay.handle.room_client_count("lobby") == Some(2)
        })
        .await;
        assert_eq!(
            events_until_marker(client, &relay.handle).await,
            std::slice::from_ref(&left)
        );
    }
    stop(relays).await;
}
