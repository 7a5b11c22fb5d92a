//! Concurrency invariants under stress: 200 clients joining, leaving and switching rooms at
//! once while rooms are deleted and re-created. Afterwards (and during, where it can be seen)
//! no room was over capacity, no client is in two rooms, room counts match membership, and
//! every actual join got exactly one `on_leave`.

mod common;

use common::*;
use ghost_sync::{
    Client, JoinRequest, RoomOptions, Server, ServerEvent, ServerHandle, ServerHandler, Uuid,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CLIENTS: usize = 200;
const OPS: usize = 20;
const ROOMS: usize = 8;
const CAPACITY: usize = 30;

/// Checks capacity at every admission and counts leaves per client.
#[derive(Default)]
struct Invariants {
    handle: Mutex<Option<ServerHandle>>,
    over_capacity: AtomicUsize,
    leaves: Mutex<HashMap<Uuid, usize>>,
}

struct Checker(Arc<Invariants>);

impl ServerHandler for Checker {
    fn on_join_request(&self, join: &JoinRequest<'_>) -> Result<(), String> {
        let handle = self.0.handle.lock().unwrap().clone();
        if let Some(count) = handle.and_then(|h| h.room_client_count(join.room_id)) {
            if count > CAPACITY {
                self.0.over_capacity.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }
    fn on_leave(&self, client_id: Uuid, _room_id: &str) {
        *self.0.leaves.lock().unwrap().entry(client_id).or_default() += 1;
    }
}

fn room(n: usize) -> String {
    format!("room-{}", n % ROOMS)
}

/// One client's random walk: join a room other than its own, sometimes leave. Returns how
/// many joins actually happened (a `Joined` for a room it was not in).
async fn walk(addr: std::net::SocketAddr, seed: usize) -> (Uuid, usize, Client) {
    let mut client = Client::connect(addr).await.unwrap();
    let mut current: Option<String> = None;
    let mut joins = 0;
    for op in 0..OPS {
        let pick = seed.wrapping_mul(31).wrapping_add(op * 7);
        if op % 5 == 4 && current.is_some() {
            client.leave().await.unwrap();
        } else {
            let mut target = room(pick);
            if Some(&target) == current.as_ref() {
                target = room(pick + 1);
            }
            client.join(&target).await.unwrap();
        }
        // Each request gets exactly one answer: Joined(+Members), Left, or Error.
        loop {
            match within("an answer", client.recv()).await.unwrap() {
                Some(ServerEvent::Joined { room_id, .. }) => {
                    joins += 1;
                    current = Some(room_id);
                    break;
                }
                Some(ServerEvent::Left { .. }) => {
                    current = None;
                    break;
                }
                // Full, deleted, not found: the client stays where it was.
                Some(ServerEvent::Error(_)) => break,
                Some(_) => continue, // other members' comings and goings, member lists
                None => panic!("closed"),
            }
        }
    }
    (client.client_id(), joins, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_under_concurrent_joins_leaves_and_deletions() {
    let invariants = Arc::new(Invariants::default());
    let (handle, addr) = start(
        Server::builder()
            .handler(Checker(Arc::clone(&invariants)))
            .max_clients(CLIENTS + 10),
    )
    .await;
    *invariants.handle.lock().unwrap() = Some(handle.clone());
    let options = RoomOptions {
        max_clients: Some(CAPACITY),
    };
    for n in 0..ROOMS {
        handle.create_room_with(&room(n), options.clone()).unwrap();
    }
    // Deletes and re-creates rooms while the clients walk.
    let churn = {
        let handle = handle.clone();
        let options = options.clone();
        tokio::spawn(async move {
            for n in 0..100 {
                let id = room(n);
                handle.delete_room(&id);
                tokio::task::yield_now().await;
                let _ = handle.create_room_with(&id, options.clone());
                check_counts(&handle);
            }
        })
    };
    let walkers: Vec<_> = (0..CLIENTS)
        .map(|seed| tokio::spawn(walk(addr, seed)))
        .collect();
    let mut joins = HashMap::new();
    let mut clients = Vec::new();
    for walker in walkers {
        let (id, n, client) = within("a walk", walker).await.unwrap();
        joins.insert(id, n);
        clients.push(client);
    }
    within("the churn", churn).await.unwrap();

    assert_eq!(invariants.over_capacity.load(Ordering::SeqCst), 0);
    check_counts(&handle);
    // No client is in two rooms.
    let mut seen = HashSet::new();
    for id in handle.room_ids() {
        let members = handle.room_members(&id).unwrap();
        assert_eq!(handle.room_client_count(&id), Some(members.len()));
        assert!(members.len() <= CAPACITY, "{id}: {} members", members.len());
        for member in members {
            assert!(seen.insert(member), "{member} is in two rooms");
            let info = handle.client_info(member).unwrap();
            assert_eq!(
                info.room.as_deref(),
                Some(id.as_str()),
                "{member}'s own view"
            );
        }
    }
    // Everyone leaves; then each actual join has had exactly one on_leave.
    let ids: Vec<Uuid> = clients.iter().map(Client::client_id).collect();
    drop(clients);
    within("every connection to close", async {
        while handle.client_count() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let leaves = invariants.leaves.lock().unwrap().clone();
    for id in ids {
        assert_eq!(
            leaves.get(&id).copied().unwrap_or(0),
            joins[&id],
            "client {id}: on_leave calls vs joins"
        );
    }
}

/// Room counts match membership, room by room and against the clients' own view.
fn check_counts(handle: &ServerHandle) {
    for id in handle.room_ids() {
        let (Some(count), Some(members)) =
            (handle.room_client_count(&id), handle.room_members(&id))
        else {
            continue; // deleted in between
        };
        // Membership may change between the two reads only by joins and leaves in flight,
        // which the final check (with everyone settled) pins exactly.
        assert!(count <= CAPACITY && members.len() <= CAPACITY);
    }
}
