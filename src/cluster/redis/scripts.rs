//! The Lua scripts that keep the registry: each runs atomically in Redis, and each change it
//! makes is published on the feed channel from inside the script, numbered by `P:seq`, so
//! that every relay sees the changes in exactly the order they happened.
//!
//! Every script takes the key prefix `P` as `ARGV[1]` and builds its key names from it (see
//! CLUSTER.md for the layout). Because the keys are not declared, the scripts need one Redis
//! (with replicas if wanted), not Redis Cluster. Event fields are written `<len>:<bytes>`
//! one after the other, so that ids may hold any byte.

use redis::Script;
use std::sync::LazyLock;

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local P = ARGV[1]
local function f(s) s = tostring(s) return #s .. ':' .. s end
local function feed(...)
  local seq = redis.call('INCR', P .. ':seq')
  local msg = f(seq)
  for _, v in ipairs({...}) do msg = msg .. f(v) end
  redis.call('PUBLISH', P .. ':feed', msg)
  return seq
end
local function room_key(r) return P .. ':room:' .. r end
local function index_key(relay) return P .. ':relay:' .. relay .. ':clients' end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A room's state (see `cluster/room_state.rs`): `:state` holds key -> owner (36 bytes of
-- its id) followed by the value, `:state_at` key -> the feed number of its first set (the
-- order joiners get the entries in).
local function state_key(r) return room_key(r) .. ':state' end
local function put_state(r, owner, key, value, seq)
  local sk = state_key(r)
  if value == '' then
    redis.call('HDEL', sk, key)
    redis.call('HDEL', sk .. '_at', key)
  else
    redis.call('HSET', sk, key, owner .. value)
    redis.call('HSETNX', sk .. '_at', key, seq)
  end
end
-- A member left room `r`: announced, and the state entries it set last deleted, as every
-- relay deletes them from its copy when it reads the `L`.
local function left(r, c)
  feed('L', r, c)
  local sk = state_key(r)
  local entries = redis.call('HGETALL', sk)
  for i = 1, #entries, 2 do
    if string.sub(entries[i + 1], 1, 36) == c then
      redis.call('HDEL', sk, entries[i])
      redis.call('HDEL', sk .. '_at', entries[i])
    end
  end
end
local function live(relay) return redis.call('ZSCORE', P .. ':relays', relay) end
-- The resume-token lookup of a client (see `cluster/moving.rs`): set, replaced or dropped.
local function set_resume(c, lookup)
  local old = redis.call('HGET', P .. ':resume_of', c)
  if old then redis.call('HDEL', P .. ':resume', old) end
  if lookup == '' then
    redis.call('HDEL', P .. ':resume_of', c)
  else
    redis.call('HSET', P .. ':resume', lookup, c)
    redis.call('HSET', P .. ':resume_of', c, lookup)
  end
end
-- Removes every client of `relay` from the registry, announcing each leave once: only the
-- script whose HDEL removed a member announces it.
local function reap_one(relay)
  local idx = index_key(relay)
  local entries = redis.call('HGETALL', idx)
  for i = 1, #entries, 2 do
    local c, room = entries[i], entries[i + 1]
    if room ~= '' and redis.call('HDEL', room_key(room) .. ':members', c) == 1 then
      left(room, c)
    end
    if redis.call('HDEL', P .. ':clients', c) == 1 then feed('Z', c) end
    set_resume(c, '')
  end
  redis.call('DEL', idx)
  redis.call('ZREM', P .. ':relays', relay)
  redis.call('HDEL', P .. ':incarnations', relay)
  return #entries / 2
end
local function create_room(r, gen, max)
  redis.call('HSET', room_key(r), 'gen', gen, 'max', max)
  redis.call('SADD', P .. ':rooms', r)
  feed('C', r, gen, max)
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// ARGV: P, room, max ('' for none). Returns the new room's generation, or 0 if the id is
/// taken.
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local r, max = ARGV[2], ARGV[3]
if redis.call('EXISTS', room_key(r)) == 1 then return 0 end
local gen = redis.call('INCR', P .. ':gen')
create_room(r, gen, max)
return gen
"#,
    )
});

/// ARGV: P, room. Returns 1 if it was deleted, 0 if there was no such room.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local r = ARGV[2]
local k = room_key(r)
local gen = redis.call('HGET', k, 'gen')
if not gen then return 0 end
local members = redis.call('HGETALL', k .. ':members')
for i = 1, #members, 2 do
  local idx = index_key(members[i + 1])
  if redis.call('HEXISTS', idx, members[i]) == 1 then redis.call('HSET', idx, members[i], '') end
end
redis.call('DEL', k, k .. ':members', k .. ':meta', k .. ':state', k .. ':state_at')
redis.call('SREM', P .. ':rooms', r)
feed('D', r, gen)
return 1
"#,
    )
});

/// ARGV: P, room, key, value. Returns 0 if there is no such room.
pub(crate) static SET_META: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local r, key, value = ARGV[2], ARGV[3], ARGV[4]
local gen = redis.call('HGET', room_key(r), 'gen')
if not gen then return 0 end
redis.call('HSET', room_key(r) .. ':meta', key, value)
feed('M', r, gen, key, value)
return 1
"#,
    )
});

/// ARGV: P, room, origin (the relay run that set it), owner, key, value (empty: a delete).
/// Returns 0 if there is no such room. The relays apply it when they read its `S` on the
/// feed, in the feed's order, so they all end with the value this keeps.
pub(crate) static SET_STATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local r, origin, owner, key, value = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local gen = redis.call('HGET', room_key(r), 'gen')
if not gen then return 0 end
local seq = feed('S', r, gen, origin, owner, key, value)
put_state(r, owner, key, value, seq)
return 1
"#,
    )
});

/// ARGV: P, relay, client, room. Returns 'ok', 'full', 'missing' or 'fenced' (this relay
/// holds no lease: it must resync first). The capacity check and the insert are one step,
/// so concurrent joins on every relay together never overfill a room.
pub(crate) static JOIN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, c, r = ARGV[2], ARGV[3], ARGV[4]
if not live(relay) then return 'fenced' end
local st = redis.call('HMGET', room_key(r), 'gen', 'max')
if not st[1] then return 'missing' end
local mk = room_key(r) .. ':members'
if redis.call('HEXISTS', mk, c) == 1 then return 'ok' end
if st[2] ~= '' and redis.call('HLEN', mk) >= tonumber(st[2]) then return 'full' end
redis.call('HSET', mk, c, relay)
redis.call('HSET', index_key(relay), c, r)
feed('J', r, st[1], c, relay)
return 'ok'
"#,
    )
});

/// ARGV: P, relay, client, room.
pub(crate) static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, c, r = ARGV[2], ARGV[3], ARGV[4]
if redis.call('HDEL', room_key(r) .. ':members', c) == 1 then left(r, c) end
local idx = index_key(relay)
if redis.call('HGET', idx, c) == r then redis.call('HSET', idx, c, '') end
return 1
"#,
    )
});

/// ARGV: P, relay, client, record, resume lookup ('' for none). A client connected to this
/// relay.
pub(crate) static HELLO: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, c, record = ARGV[2], ARGV[3], ARGV[4]
if not live(relay) then return 0 end
redis.call('HSET', P .. ':clients', c, record)
set_resume(c, ARGV[5])
if redis.call('HEXISTS', index_key(relay), c) == 0 then redis.call('HSET', index_key(relay), c, '') end
feed('A', c, record)
return 1
"#,
    )
});

/// ARGV: P, relay, client. A client of this relay disconnected (leaving its room first).
pub(crate) static BYE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, c = ARGV[2], ARGV[3]
local idx = index_key(relay)
local r = redis.call('HGET', idx, c)
if r and r ~= '' and redis.call('HDEL', room_key(r) .. ':members', c) == 1 then left(r, c) end
redis.call('HDEL', idx, c)
if redis.call('HDEL', P .. ':clients', c) == 1 then feed('Z', c) end
set_resume(c, '')
return 1
"#,
    )
});

/// ARGV: P, relay, client, lookup. A resume here gave the client a new token.
pub(crate) static TOKEN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, c = ARGV[2], ARGV[3]
if redis.call('HEXISTS', index_key(relay), c) == 0 then return 0 end
set_resume(c, ARGV[4])
return 1
"#,
    )
});

/// ARGV: P, lookup. Returns `{client, record}` of the seat a resume token's lookup names,
/// or false.
pub(crate) static FIND: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local c = redis.call('HGET', P .. ':resume', ARGV[2])
if not c then return false end
local record = redis.call('HGET', P .. ':clients', c)
if not record then return false end
return {c, record}
"#,
    )
});

/// ARGV: P, relay (the new one), from (the old one), client, record, room ('' for none),
/// lookup. The seat relay `from` handed over is `relay`'s now; nobody leaves or joins, and
/// the feed says `V` so that every relay updates its mirror. Returns 0 if `relay` holds no
/// lease (it must resync first), or the client is gone from the registry.
pub(crate) static MOVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, from, c, record, r = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if not live(relay) then return 0 end
if redis.call('HEXISTS', P .. ':clients', c) == 0 then return 0 end
redis.call('HDEL', index_key(from), c)
redis.call('HSET', index_key(relay), c, r)
if r ~= '' and redis.call('HEXISTS', room_key(r) .. ':members', c) == 1 then
  redis.call('HSET', room_key(r) .. ':members', c, relay)
end
redis.call('HSET', P .. ':clients', c, record)
set_resume(c, ARGV[7])
feed('V', c, r, record)
return 1
"#,
    )
});

/// ARGV: P, room. The number of members across every relay, or -1 if there is no such room.
pub(crate) static COUNT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local r = ARGV[2]
if redis.call('EXISTS', room_key(r)) == 0 then return -1 end
return redis.call('HLEN', room_key(r) .. ':members')
"#,
    )
});

/// ARGV: P, relay, incarnation, ttl_ms. Takes or renews this relay's lease. Returns 1, or 0
/// if this incarnation holds no lease (it was declared dead, or the broker lost its data):
/// the relay must write its state back with RESTORE. A relay starting under the name of a
/// dead incarnation reaps that one first.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, inc, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HGET', P .. ':incarnations', relay) ~= inc or not live(relay) then return 0 end
redis.call('ZADD', P .. ':relays', now_ms() + ttl, relay)
return 1
"#,
    )
});

/// ARGV: P. Reaps every relay whose lease ran out; returns how many clients left.
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local dead = redis.call('ZRANGEBYSCORE', P .. ':relays', '-inf', now_ms())
local n = 0
for _, relay in ipairs(dead) do n = n + reap_one(relay) end
return n
"#,
    )
});

/// ARGV: P, relay, incarnation. A relay shutting down: its clients leave everywhere.
pub(crate) static GOODBYE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, inc = ARGV[2], ARGV[3]
if redis.call('HGET', P .. ':incarnations', relay) ~= inc then return 0 end
return reap_one(relay)
"#,
    )
});

/// ARGV: P, relay, incarnation, ttl_ms, epoch ('' if unknown), origin, n_rooms, then per
/// room: id, gen, max, n_meta, key, value, ..., n_state, key, owner, value, ...; then per
/// client: id, record, room ('' for none).
///
/// Writes one relay's state back after the broker lost it or declared the relay dead:
/// registers the lease (reaping an older incarnation of the same name), re-creates the rooms
/// the broker lost, removes this relay's clients that are gone, and re-adds the ones that
/// are missing. Returns `{epoch, full}`: the registry's epoch, and the clients whose room
/// filled up meanwhile.
///
/// The epoch tells a room the broker lost from one another relay deleted: it is set once,
/// when the registry is first written, so a different (or missing) epoch means the broker
/// lost its data, and only then are missing rooms written back.
pub(crate) static RESTORE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local relay, inc, ttl, known = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local old = redis.call('HGET', P .. ':incarnations', relay)
if old and old ~= inc then reap_one(relay) end
redis.call('HSET', P .. ':incarnations', relay, inc)
redis.call('ZADD', P .. ':relays', now_ms() + ttl, relay)
local epoch = redis.call('GET', P .. ':epoch')
if not epoch then
  epoch = relay .. '/' .. inc .. '/' .. now_ms()
  redis.call('SET', P .. ':epoch', epoch)
end
local lost = known ~= '' and known ~= epoch
local origin = ARGV[6]
local i = 8
for _ = 1, tonumber(ARGV[7]) do
  local r, gen, max, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  -- A room created here while the broker was away has no generation yet.
  local fresh = redis.call('EXISTS', room_key(r)) == 0 and (gen == '0' or lost)
  if fresh then
    if gen == '0' then
      gen = redis.call('INCR', P .. ':gen')
    elseif tonumber(redis.call('GET', P .. ':gen') or '0') < tonumber(gen) then
      redis.call('SET', P .. ':gen', gen)
    end
    create_room(r, gen, max)
  end
  for j = 0, n - 1 do
    local key, value = ARGV[i + 4 + 2 * j], ARGV[i + 5 + 2 * j]
    if fresh then
      redis.call('HSET', room_key(r) .. ':meta', key, value)
      feed('M', r, gen, key, value)
    end
  end
  i = i + 4 + 2 * n
  for _ = 1, tonumber(ARGV[i]) do
    local key, owner, value = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    if fresh then put_state(r, owner, key, value, feed('S', r, gen, origin, owner, key, value)) end
    i = i + 3
  end
  i = i + 1
end
local wanted = {}
local refused = {}
local idx = index_key(relay)
while i <= #ARGV do
  local c, record, r = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  wanted[c] = r
  if redis.call('HEXISTS', P .. ':clients', c) == 0 then
    redis.call('HSET', P .. ':clients', c, record)
    feed('A', c, record)
  end
  local had = redis.call('HGET', idx, c)
  if had and had ~= '' and had ~= r then
    if redis.call('HDEL', room_key(had) .. ':members', c) == 1 then left(had, c) end
  end
  redis.call('HSET', idx, c, '')
  if r ~= '' then
    local mk = room_key(r) .. ':members'
    local st = redis.call('HMGET', room_key(r), 'gen', 'max')
    if redis.call('HEXISTS', mk, c) == 1 then
      redis.call('HSET', idx, c, r)
    elseif not st[1] then
      -- Deleted meanwhile: the member stays in its (soft-deleted) room, as on one relay.
    elseif st[2] ~= '' and redis.call('HLEN', mk) >= tonumber(st[2]) then
      table.insert(refused, c)
    else
      redis.call('HSET', mk, c, relay)
      redis.call('HSET', idx, c, r)
      feed('J', r, st[1], c, relay)
    end
  end
  i = i + 3
end
local entries = redis.call('HGETALL', idx)
for k = 1, #entries, 2 do
  local c, r = entries[k], entries[k + 1]
  if wanted[c] == nil then
    if r ~= '' and redis.call('HDEL', room_key(r) .. ':members', c) == 1 then left(r, c) end
    if redis.call('HDEL', P .. ':clients', c) == 1 then feed('Z', c) end
    set_resume(c, '')
    redis.call('HDEL', idx, c)
  end
end
return {epoch, refused}
"#,
    )
});

/// ARGV: P. Returns `{seq, rooms, clients}`: the feed's last sequence number, then per
/// room `{id, gen, max, meta (flat), members (flat: client, relay), state (flat: key,
/// owner and value), state order (flat: key, feed number)}`, then the clients flat (id,
/// record), all read in one step.
pub(crate) static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local rooms = {}
for _, r in ipairs(redis.call('SMEMBERS', P .. ':rooms')) do
  local st = redis.call('HMGET', room_key(r), 'gen', 'max')
  if st[1] then
    table.insert(rooms, {r, st[1], st[2] or '',
      redis.call('HGETALL', room_key(r) .. ':meta'),
      redis.call('HGETALL', room_key(r) .. ':members'),
      redis.call('HGETALL', state_key(r)),
      redis.call('HGETALL', state_key(r) .. '_at')})
  end
end
return {redis.call('GET', P .. ':seq') or '0', rooms, redis.call('HGETALL', P .. ':clients')}
"#,
    )
});
