//! Frame codec: a 4-byte big-endian length, then an rmp-serde `Envelope` with named
//! fields. Input is hostile: lengths are bounded before allocating, and a decode
//! error is returned, never a panic.
use crate::msg::Envelope;

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

pub fn decode(body: &[u8]) -> Result<Envelope, FrameError> {
    rmp_serde::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
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
    // Gather the body from quinn's own buffers (no zero-fill, one copy).
    let mut body = Vec::with_capacity(len as usize);
    while (body.len() as u64) < len {
        let want = len as usize - body.len();
        match recv.read_chunk(want, true).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(FrameError::Stream(format!("stream ended {} bytes into a {len}-byte frame", body.len()))),
            Err(e) => return Err(FrameError::Stream(e.to_string())),
        }
    }
    decode(&body).map(Some)
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
