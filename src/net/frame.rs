//! Frame codec. A frame is a 4-byte big-endian length of what follows, a 4-byte
//! big-endian length of the envelope, the envelope (rmp-serde `Envelope` with named
//! fields), then the out-of-band section: the bytes of the envelope's large payloads,
//! in order (`msg::payload`). Input is hostile: lengths are bounded before allocating,
//! and a decode error is returned, never a panic.
use bytes::Bytes;

use crate::msg::payload;
use crate::msg::Envelope;

/// Alignment of a received frame's out-of-band section in memory: a whole-object
/// payload that starts it can be written with `O_DIRECT` without a copy.
pub const OOB_ALIGN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized { len: u64, max: u64 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("stream: {0}")]
    Stream(String),
}

/// Encodes a frame as the segments to send, in order: the two lengths and the
/// envelope, then each large payload from its own buffer (never copied). Returns them
/// with the frame's whole length.
pub fn encode_segments(env: &Envelope) -> Result<(Vec<Bytes>, usize), FrameError> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(&[0u8; 8]);
    let (r, oob) = payload::with_out_of_band(|| rmp_serde::encode::write_named(&mut head, env));
    r.map_err(|e| FrameError::Malformed(e.to_string()))?;
    let total = head.len() + oob.iter().map(Bytes::len).sum::<usize>();
    let too_big = |_| FrameError::Oversized { len: total as u64, max: u32::MAX as u64 };
    let len = u32::try_from(total - 4).map_err(too_big)?;
    let env_len = u32::try_from(head.len() - 8).map_err(too_big)?;
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4..8].copy_from_slice(&env_len.to_be_bytes());
    let mut segs = Vec::with_capacity(1 + oob.len());
    segs.push(Bytes::from(head));
    segs.extend(oob);
    Ok((segs, total))
}

/// The whole frame in one buffer (for tests and tools).
pub fn encode(env: &Envelope) -> Result<Vec<u8>, FrameError> {
    let (segs, total) = encode_segments(env)?;
    let mut out = Vec::with_capacity(total);
    for s in &segs {
        out.extend_from_slice(s);
    }
    Ok(out)
}

/// Decodes a frame body (what follows the first length) held in one buffer.
pub fn decode(body: &[u8]) -> Result<Envelope, FrameError> {
    let body = Bytes::copy_from_slice(body);
    let (env, oob) = split_body(&body)?;
    decode_parts(&env, &oob)
}

/// The envelope and out-of-band section of a frame body.
fn split_body(body: &Bytes) -> Result<(Bytes, Bytes), FrameError> {
    let Some(env_len) = body.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) else {
        return Err(FrameError::Malformed(format!("a {}-byte frame has no envelope length", body.len())));
    };
    if env_len > body.len() - 4 {
        return Err(FrameError::Malformed(format!("envelope of {env_len} bytes in a {}-byte frame", body.len())));
    }
    Ok((body.slice(4..4 + env_len), body.slice(4 + env_len..)))
}

/// Decodes an envelope whose payloads become slices of `env` and `oob` (no copies);
/// every byte of `oob` must belong to a payload.
pub fn decode_parts(env: &Bytes, oob: &Bytes) -> Result<Envelope, FrameError> {
    let (r, taken) = payload::with_frame(env, oob, |b| rmp_serde::from_slice::<Envelope>(b));
    let e = r.map_err(|e| FrameError::Malformed(e.to_string()))?;
    if taken != oob.len() {
        return Err(FrameError::Malformed(format!("{} out-of-band bytes, payloads took {taken}", oob.len())));
    }
    Ok(e)
}

/// Below this many bytes a section is copied out of quinn's buffer even when one
/// chunk holds it: received datagrams are slices of quinn's receive blocks
/// (vendor/quinn), so a small section kept for long (a cached omap value, a small
/// file's data) would otherwise hold a whole block.
const SHARE_FROM: usize = 32 * 1024;

/// Reads `n` bytes of the stream: quinn's own buffer when one chunk holds them (and
/// they are not too few to pin it), else gathered into a buffer whose start is
/// `align`-aligned (no zero-fill, one copy).
async fn read_bytes(recv: &mut quinn::RecvStream, n: usize, align: usize, ended: impl Fn(usize) -> FrameError) -> Result<Bytes, FrameError> {
    if n == 0 {
        return Ok(Bytes::new());
    }
    let first = match recv.read_chunk(n, true).await {
        Ok(Some(chunk)) => chunk.bytes,
        Ok(None) => return Err(ended(0)),
        Err(e) => return Err(FrameError::Stream(e.to_string())),
    };
    if first.len() == n && (align <= 1 || (first.as_ptr() as usize).is_multiple_of(align)) {
        return Ok(if n < SHARE_FROM { Bytes::copy_from_slice(&first) } else { first });
    }
    let mut buf: Vec<u8> = Vec::with_capacity(n + align);
    let pad = buf.as_ptr().align_offset(align.max(1)).min(align);
    buf.resize(pad, 0);
    buf.extend_from_slice(&first);
    while buf.len() - pad < n {
        match recv.read_chunk(n - (buf.len() - pad), true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(ended(buf.len() - pad)),
            Err(e) => return Err(FrameError::Stream(e.to_string())),
        }
    }
    Ok(Bytes::from(buf).slice(pad..))
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    max: u64,
) -> Result<Option<Envelope>, FrameError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(FrameError::Stream(e.to_string())),
    }
    let len = u32::from_be_bytes(len) as u64;
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    if len < 4 {
        return Err(FrameError::Malformed(format!("a {len}-byte frame has no envelope length")));
    }
    let mut env_len = [0u8; 4];
    if let Err(e) = recv.read_exact(&mut env_len).await {
        return Err(FrameError::Stream(e.to_string()));
    }
    let env_len = u32::from_be_bytes(env_len) as u64;
    if env_len > len - 4 {
        return Err(FrameError::Malformed(format!("envelope of {env_len} bytes in a {len}-byte frame")));
    }
    let ended = |got: usize| FrameError::Stream(format!("stream ended {got} bytes into a {len}-byte frame"));
    let env = read_bytes(recv, env_len as usize, 1, ended).await?;
    let oob = read_bytes(recv, (len - 4 - env_len) as usize, OOB_ALIGN, |got| ended(env_len as usize + got)).await?;
    decode_parts(&env, &oob).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Message;
    use proptest::prelude::*;

    fn env() -> Envelope {
        Envelope {
            v: 1,
            src: "mon.a".parse().unwrap(),
            nonce: 7,
            tid: 9,
            reply_to: 0,
            msg: Message::MMonRaft { data: vec![1, 2, 3] },
        }
    }

    /// That an envelope survives encode/decode with every field intact.
    #[test]
    fn round_trip() {
        let f = encode(&env()).unwrap();
        let e = decode(&f[4..]).unwrap();
        assert_eq!((e.tid, e.nonce, e.src.to_string()), (9, 7, "mon.a".into()));
        assert!(matches!(e.msg, Message::MMonRaft { data } if data == vec![1, 2, 3]));
    }

    /// That a frame sent as segments joins into the plain encoding, with the payload
    /// of a large write as a segment of its own, and decodes back sharing the body.
    #[test]
    fn segments_join_into_the_frame() {
        use crate::msg::osd::{OsdOp, OsdOpRequest, ReqId};
        let data = crate::msg::payload::Payload::from(vec![3u8; 100_000]);
        let req = OsdOpRequest {
            reqid: ReqId { client: "client.a".parse().unwrap(), nonce: 1, tid: 2 },
            pg: crate::maps::PgId { pool: 1, seed: 3 },
            oid: "obj".into(),
            ops: vec![OsdOp::WriteFull { data: data.clone() }],
            epoch: 4,
        };
        let env = Envelope { msg: Message::MOsdOp(req), ..env() };
        let (segs, total) = encode_segments(&env).unwrap();
        assert!(segs.iter().any(|s| s.as_ptr() == data.as_ptr()), "the payload is sent from its own buffer");
        let joined: Vec<u8> = segs.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined.len(), total);
        assert_eq!(joined, encode(&env).unwrap());
        let body = Bytes::copy_from_slice(&joined[4..]);
        let (env_part, oob) = split_body(&body).unwrap();
        assert_eq!(oob.len(), data.len(), "the payload went out of band");
        let back = decode_parts(&env_part, &oob).unwrap();
        let Message::MOsdOp(r) = back.msg else { panic!("not an op") };
        let OsdOp::WriteFull { data: got } = &r.ops[0] else { panic!("not a write") };
        assert_eq!(got, &data);
        assert_eq!(got.as_ptr(), oob.as_ptr(), "decoded as a slice of the section");
        // Bytes left over after the payloads, or missing, are malformed.
        let mut extra = joined[4..].to_vec();
        extra.push(0);
        assert!(decode(&extra).is_err());
        assert!(decode(&joined[4..joined.len() - 1]).is_err());
        assert!(decode(&[0, 0, 0, 200, 1]).is_err(), "envelope longer than the frame");
    }

    proptest! {
        /// That arbitrary bytes never panic the decoder.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        /// That a valid frame with bytes flipped decodes or errors, never panics.
        #[test]
        fn corrupted_frames_never_panic(pos in 0usize..64, val in any::<u8>()) {
            let mut f = encode(&env()).unwrap();
            let i = 4 + pos % (f.len() - 4);
            f[i] = val;
            let _ = decode(&f[4..]);
        }
    }
}
