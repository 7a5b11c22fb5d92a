//! Ending a connection politely: the refusal frame, and the lingering close that keeps the
//! last frame from being destroyed by a reset.

use crate::protocol::{clip_reason, encode, RejectCode, ServerFrame};
use crate::server::writer::FAREWELL_TIMEOUT;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Rejected` frame for a refusal.
pub(crate) fn rejection(code: RejectCode, message: &str) -> Bytes {
    encode(&ServerFrame::Rejected {
        code: code as u8,
        message: clip_reason(message),
    })
}

/// Refuses a connection: the `Rejected` frame, then a lingering close.
pub(crate) async fn reject<R, W>(reader: &mut R, writer: &mut W, code: RejectCode, message: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let frame = rejection(code, message);
    let sent = tokio::time::timeout(FAREWELL_TIMEOUT, async {
        writer.write_all(&frame).await?;
        writer.shutdown().await
    })
    .await;
    if matches!(sent, Ok(Ok(()))) {
        linger(reader, &mut BytesMut::new()).await;
    }
}

/// Discards what the peer still sends until it closes, for at most [`FAREWELL_TIMEOUT`] and
/// a bounded number of bytes.
pub(super) async fn linger<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut) {
    const MAX_DISCARD: usize = 256 * 1024;
    let discard = async {
        let mut total = 0;
        loop {
            buf.clear();
            buf.reserve(4096);
            match reader.read_buf(buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    total += n;
                    if total > MAX_DISCARD {
                        return;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, discard).await;
}
