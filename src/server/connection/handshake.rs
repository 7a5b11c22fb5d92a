//! The handshake: the client's `Hello`, its credentials checked by the validator, the claim
//! of a held seat if it presents a resume token, and the relay's `Welcome`, or a refusal with
//! a reason, all within one deadline.

use super::closing::reject;
use super::seats::{Claim, Held, Seats, Token, UNKNOWN_TOKEN};
use crate::auth::{Credentials, Identity, Validator};
use crate::cluster::MovedSeat;
use crate::disconnect::DisconnectReason;
use crate::protocol::{
    decode_frame, encode, hello_version, ClientFrame, FrameError, FrameReader, RejectCode,
    ServerFrame, PROTOCOL_VERSION,
};
use crate::server::config::Config;
use crate::server::Shared;
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tower::ServiceExt;
use uuid::Uuid;

/// Longest wait for a new connection's `Hello` (or `idle_timeout`, if shorter).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a completed handshake let in.
pub(super) enum Admitted {
    /// A new client (`identity`: `None` on an open relay); its seat is open, under the
    /// token its `Welcome` gave, if the relay holds seats.
    Fresh(Option<Identity>, Option<Token>),
    /// A held seat, claimed with its resume token; its `Welcome` is written, with the new
    /// token.
    Resumed(Held, Token),
    /// A seat another relay of the cluster held, handed over here; its `Welcome` is
    /// written, with the new token.
    Moved(MovedSeat, Token, Option<Identity>),
}

/// Reads the client's `Hello`, checks its credentials, claims the seat its resume token
/// names if any, and answers `Welcome`, or refuses with a reason. `None`: the connection
/// ends here.
pub(super) async fn handshake<R, W>(
    shared: &Shared,
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    frames: &FrameReader,
    client_id: Uuid,
    peer: SocketAddr,
) -> Option<Admitted>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT.min(config.idle_timeout);
    let hello = tokio::select! {
        _ = shared.shutdown.cancelled() => {
            shared.counters.refused(RejectCode::ShuttingDown);
            reject(reader, writer, RejectCode::ShuttingDown, "server shutting down").await;
            return None;
        }
        hello = tokio::time::timeout_at(deadline, read_frame(reader, buf, frames)) => hello,
    };
    let mut token = Bytes::new();
    let mut resume_token = Bytes::new();
    let refusal = match hello {
        Err(_) => Some((RejectCode::Protocol, "no hello in time".to_owned())),
        Ok(Err(None)) => return None,
        Ok(Err(Some(err))) => Some((RejectCode::Protocol, err.to_string())),
        Ok(Ok(body)) => match hello_version(&body) {
            // The version first: another version's `Hello` may not decode as this one's.
            Some(version) if version != PROTOCOL_VERSION => Some((
                RejectCode::UnsupportedVersion,
                format!(
                    "protocol version {version} not supported; this relay speaks {PROTOCOL_VERSION}"
                ),
            )),
            _ => match decode_frame::<ClientFrame<'_>>(&body) {
                Ok(ClientFrame::Hello { resume, .. })
                    if !resume.is_empty() && shared.seats.is_none() =>
                {
                    Some((
                        RejectCode::ResumeFailed,
                        "resume is off on this relay".to_owned(),
                    ))
                }
                Ok(ClientFrame::Hello {
                    credentials,
                    resume,
                    ..
                }) => {
                    token = body.slice_ref(credentials);
                    resume_token = body.slice_ref(resume);
                    None
                }
                Ok(_) => Some((
                    RejectCode::Protocol,
                    "the first frame must be a hello".to_owned(),
                )),
                Err(err) => Some((RejectCode::Protocol, err.to_string())),
            },
        },
    };
    // The credentials are checked on a resume too: a held seat does not outlive its auth.
    let (identity, refusal) = match (refusal, &shared.validator) {
        (Some(refusal), _) => (None, Some(refusal)),
        (None, None) => (None, None),
        (None, Some(validator)) => {
            match authenticate(shared, validator.clone(), token, peer, deadline).await {
                Ok(identity) => (Some(identity), None),
                Err(why) => (None, Some((RejectCode::AuthFailed, why))),
            }
        }
    };
    if let Some((code, message)) = refusal {
        tracing::debug!(?code, message, "handshake refused");
        shared.counters.refused(code);
        reject(reader, writer, code, &message).await;
        return None;
    }
    let Some(seats) = &shared.seats else {
        writer
            .write_all(&welcome(config, client_id, &[]))
            .await
            .ok()?;
        return Some(Admitted::Fresh(identity, None));
    };
    // Boxed: a relay that holds seats pays for a claim's state only while it runs, and
    // every handshake's future stays the size of the common path's.
    Box::pin(open_or_claim(
        shared,
        seats,
        reader,
        writer,
        client_id,
        identity,
        resume_token,
        deadline,
    ))
    .await
}

/// The encoded `Welcome` for `client_id`, with its resume token (empty: seats are off).
fn welcome(config: &Config, client_id: Uuid, resume_token: &[u8]) -> Bytes {
    encode(&ServerFrame::Welcome {
        client_id,
        version: PROTOCOL_VERSION,
        max_payload: config.max_payload as u32,
        ping_interval_ms: u32::try_from(config.ping_interval.as_millis()).unwrap_or(u32::MAX),
        resume_token,
    })
}

/// The handshake's end on a relay that holds seats: a new seat under a fresh token, or the
/// seat `resume_token` names, claimed here or (in a cluster) from the relay holding it.
#[allow(clippy::too_many_arguments)]
async fn open_or_claim<R, W>(
    shared: &Shared,
    seats: &Seats,
    reader: &mut R,
    writer: &mut W,
    client_id: Uuid,
    identity: Option<Identity>,
    resume_token: Bytes,
    deadline: Instant,
) -> Option<Admitted>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    if resume_token.is_empty() {
        let token = seats.open(client_id, identity.clone());
        if writer
            .write_all(&welcome(config, client_id, &token))
            .await
            .is_err()
        {
            seats.end(client_id, &DisconnectReason::ClientClosed);
            return None;
        }
        return Some(Admitted::Fresh(identity, Some(token)));
    }
    let claimed = match seats.claim(&resume_token, &identity) {
        Ok((_, fresh, Claim::Held(held))) => Ok((held, fresh)),
        Ok((held_id, fresh, Claim::Live(taken))) => {
            // The seat's connection is still open (half open, likely): it closes, and the
            // seat comes over once it let go.
            if let Some(old) = shared.directory.get(held_id) {
                old.end_with(DisconnectReason::Replaced);
            }
            tokio::select! {
                _ = shared.shutdown.cancelled() => Err("server shutting down".to_owned()),
                taken = tokio::time::timeout_at(deadline, taken) => match taken {
                    Ok(Ok(held)) => Ok((held, fresh)),
                    Ok(Err(_)) => Err(seats.refusal(&resume_token)),
                    Err(_) => Err("seat still held by a connection that did not close in time".to_owned()),
                },
            }
        }
        Err(why) => match shared.cluster() {
            // Not a token of this relay's: perhaps another relay of the cluster holds it.
            Some(cluster) if why == UNKNOWN_TOKEN => {
                let elsewhere = tokio::select! {
                    _ = shared.shutdown.cancelled() => Err("server shutting down".to_owned()),
                    moved = tokio::time::timeout_at(
                        deadline,
                        cluster.claim_elsewhere(&resume_token, &identity),
                    ) => moved.unwrap_or_else(|_| {
                        Err("the relay holding the seat did not answer".to_owned())
                    }),
                };
                match elsewhere {
                    Ok(moved) => {
                        let token = seats.open(moved.client_id, identity.clone());
                        // Not written: a drop like any other, held here now.
                        let _ = writer
                            .write_all(&welcome(config, moved.client_id, &token))
                            .await;
                        return Some(Admitted::Moved(moved, token, identity));
                    }
                    Err(why) => Err(why),
                }
            }
            _ => Err(why),
        },
    };
    let (held, fresh) = match claimed {
        Ok(claimed) => claimed,
        Err(why) => {
            tracing::debug!(message = why, "resume refused");
            shared.counters.refused(RejectCode::ResumeFailed);
            reject(reader, writer, RejectCode::ResumeFailed, &why).await;
            return None;
        }
    };
    // A Welcome that cannot be written is a drop like any other: the next read finds the
    // socket closed and the seat is held again.
    let _ = writer
        .write_all(&welcome(config, held.session.client_id, &fresh))
        .await;
    Some(Admitted::Resumed(held, fresh))
}

/// Runs the validator on a client's token, within the handshake's deadline; the error is the
/// reason the client reads.
async fn authenticate(
    shared: &Shared,
    validator: Validator,
    token: Bytes,
    peer: SocketAddr,
    deadline: Instant,
) -> Result<Identity, String> {
    let check = validator.oneshot(Credentials { token, peer });
    tokio::select! {
        _ = shared.shutdown.cancelled() => Err("server shutting down".to_owned()),
        checked = tokio::time::timeout_at(deadline, check) => match checked {
            Ok(Ok(identity)) => Ok(identity),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("credentials not checked in time".to_owned()),
        },
    }
}

/// Reads until one complete frame is in `buf`. `Err(None)`: the peer left first.
async fn read_frame<R>(
    reader: &mut R,
    buf: &mut BytesMut,
    frames: &FrameReader,
) -> Result<Bytes, Option<FrameError>>
where
    R: AsyncRead + Unpin,
{
    loop {
        if let Some(body) = frames.next_frame(buf).map_err(Some)? {
            return Ok(body);
        }
        buf.reserve(512);
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
    }
}
