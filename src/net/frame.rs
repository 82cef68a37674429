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

pub fn encode(env: &Envelope) -> Result<Vec<u8>, FrameError> {
    let body = rmp_serde::to_vec_named(env).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
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
    let mut body = vec![0u8; len as usize];
    recv.read_exact(&mut body).await.map_err(|e| FrameError::Stream(e.to_string()))?;
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
