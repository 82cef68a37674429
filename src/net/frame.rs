//! Frame codec: a 4-byte big-endian length, then an rmp-serde `Envelope` with named
//! fields. Input is hostile: lengths are bounded before allocating, and a decode
//! error is returned, never a panic.
use bytes::Bytes;

use crate::msg::payload::{self, SegmentWriter};
use crate::msg::Envelope;
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized { len: u64, max: u64 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("stream: {0}")]
    Stream(String),
}

/// Encodes straight into the frame buffer (length patched in afterwards): the payload of a
/// large message is copied once here and never again on the way out.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&[0u8; 4]);
    rmp_serde::encode::write_named(&mut out, env).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = u32::try_from(out.len() - 4).map_err(|_| FrameError::Oversized { len: out.len() as u64, max: u32::MAX as u64 })?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Encodes a frame as the segments to send, in order (see `msg::payload`): header
/// bytes, with each large payload as a segment of its own, never copied. Returns them
/// with the frame's whole length.
pub fn encode_segments(env: &Envelope) -> Result<(Vec<Bytes>, usize), FrameError> {
    let mut w = SegmentWriter::with_capacity(256);
    w.write_all(&[0u8; 4]).map_err(|e| FrameError::Malformed(e.to_string()))?;
    payload::with_segments(|| rmp_serde::encode::write_named(&mut w, env)).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let total = w.len();
    let len = u32::try_from(total - 4).map_err(|_| FrameError::Oversized { len: total as u64, max: u32::MAX as u64 })?;
    Ok((w.finish(|head| head[..4].copy_from_slice(&len.to_be_bytes())), total))
}

pub fn decode(body: &[u8]) -> Result<Envelope, FrameError> {
    rmp_serde::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Decodes a frame body whose payloads become slices of `body` (no copies).
pub fn decode_shared(body: &Bytes) -> Result<Envelope, FrameError> {
    payload::with_frame(body, decode)
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
    let ended = |got: usize| FrameError::Stream(format!("stream ended {got} bytes into a {len}-byte frame"));
    let first = match len {
        0 => Bytes::new(),
        _ => match recv.read_chunk(len as usize, true).await {
            Ok(Some(chunk)) => chunk.bytes,
            Ok(None) => return Err(ended(0)),
            Err(e) => return Err(FrameError::Stream(e.to_string())),
        },
    };
    // A body within one packet is quinn's own buffer; a longer one is gathered from
    // quinn's buffers (no zero-fill, one copy).
    let body = if first.len() as u64 == len {
        first
    } else {
        let mut body = Vec::with_capacity(len as usize);
        body.extend_from_slice(&first);
        while (body.len() as u64) < len {
            let want = len as usize - body.len();
            match recv.read_chunk(want, true).await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(ended(body.len())),
                Err(e) => return Err(FrameError::Stream(e.to_string())),
            }
        }
        Bytes::from(body)
    };
    decode_shared(&body).map(Some)
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
        let back = decode_shared(&body).unwrap();
        let Message::MOsdOp(r) = back.msg else { panic!("not an op") };
        let OsdOp::WriteFull { data: got } = &r.ops[0] else { panic!("not a write") };
        assert_eq!(got, &data);
        let inside = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(inside.contains(&(got.as_ptr() as usize)), "decoded as a slice of the body");
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
