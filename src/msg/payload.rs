//! `Payload`: the data bytes of object ops and replies (`bytes::Bytes`), moved through
//! the messenger without copies.
//!
//! On the wire a payload is a MessagePack `bin`, like `serde_bytes::ByteBuf`. What
//! differs is where its bytes live:
//! - decoding a frame (`net::frame`) makes each payload a slice of the frame's own
//!   buffer ([`with_frame`]) instead of a copy;
//! - encoding a frame hands each large payload to the writer as a segment of its own
//!   ([`with_segments`]): the frame goes out as header bytes and payload buffers, and
//!   the payload is never copied into the frame.
//!
//! Outside those two contexts (any other serde format, or rmp used elsewhere) a
//! payload is an ordinary byte string, copied in and out.
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Payloads at least this large travel as segments of their own; smaller ones are
/// cheaper to copy than to send as a separate chunk.
pub const SEGMENT_MIN: usize = 16 * 1024;

/// Bytes carried by a message; cloning shares them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Payload(pub Bytes);

impl Payload {
    pub fn new(b: Bytes) -> Self {
        Payload(b)
    }
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload(Bytes::from(v))
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload(b)
    }
}

impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Payload(Bytes::copy_from_slice(b))
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        write!(f, "Payload({} bytes", self.0.len())?;
        if !self.0.is_empty() {
            write!(f, ": {:02x?}", &self.0[..self.0.len().min(SHOWN)])?;
            if self.0.len() > SHOWN {
                f.write_str("…")?;
            }
        }
        f.write_str(")")
    }
}

thread_local! {
    /// The buffer of the frame being decoded on this thread.
    static FRAME: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    /// Large payloads of the frame being encoded on this thread, in serialization order,
    /// waiting for the writer to meet their bytes.
    static SEGMENTS: RefCell<Option<VecDeque<Bytes>>> = const { RefCell::new(None) };
}

/// Runs `decode` with `frame` as the buffer payloads may borrow from: a payload whose
/// bytes lie inside it becomes a slice of it (no copy).
pub fn with_frame<T>(frame: &Bytes, decode: impl FnOnce(&[u8]) -> T) -> T {
    struct Reset(Option<Bytes>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0.take();
            FRAME.with(|f| *f.borrow_mut() = old);
        }
    }
    let _reset = Reset(FRAME.with(|f| f.borrow_mut().replace(frame.clone())));
    decode(frame)
}

/// Runs `encode` with segment collection on: each payload of at least [`SEGMENT_MIN`]
/// bytes is announced before its bytes are written, so that a [`SegmentWriter`] can
/// take it as a segment instead of copying it.
pub fn with_segments<T>(encode: impl FnOnce() -> T) -> T {
    struct Reset(Option<VecDeque<Bytes>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0.take();
            SEGMENTS.with(|s| *s.borrow_mut() = old);
        }
    }
    let _reset = Reset(SEGMENTS.with(|s| s.borrow_mut().replace(VecDeque::new())));
    encode()
}

/// The announced payload whose bytes are exactly `buf` (same memory), if it is next.
fn take_announced(buf: &[u8]) -> Option<Bytes> {
    SEGMENTS.with(|s| {
        let mut s = s.borrow_mut();
        let q = s.as_mut()?;
        let same = q.front().is_some_and(|b| b.as_ptr() == buf.as_ptr() && b.len() == buf.len());
        if same {
            q.pop_front()
        } else {
            None
        }
    })
}

/// A piece of a frame being encoded: header bytes written by the encoder, or a payload.
enum Seg {
    Own(Vec<u8>),
    Shared(Bytes),
}

/// An `io::Write` that collects a frame as segments: bytes written are copied into
/// header buffers, except announced payloads, which become segments of their own.
#[derive(Default)]
pub struct SegmentWriter {
    done: Vec<Seg>,
    cur: Vec<u8>,
    len: usize,
}

impl SegmentWriter {
    pub fn with_capacity(n: usize) -> Self {
        SegmentWriter { done: Vec::new(), cur: Vec::with_capacity(n), len: 0 }
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The segments, in order; `patch` may change the first segment's bytes (where a
    /// frame's length prefix is: the writer copies whatever precedes the first payload).
    pub fn finish(mut self, patch: impl FnOnce(&mut Vec<u8>)) -> Vec<Bytes> {
        if !self.cur.is_empty() || self.done.is_empty() {
            self.done.push(Seg::Own(std::mem::take(&mut self.cur)));
        }
        if let Some(first) = self.done.first_mut() {
            let mut own = match std::mem::replace(first, Seg::Own(Vec::new())) {
                Seg::Own(v) => v,
                Seg::Shared(b) => b.to_vec(),
            };
            patch(&mut own);
            *first = Seg::Own(own);
        }
        self.done
            .into_iter()
            .map(|s| match s {
                Seg::Own(v) => Bytes::from(v),
                Seg::Shared(b) => b,
            })
            .collect()
    }
}

impl std::io::Write for SegmentWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.len += buf.len();
        match take_announced(buf) {
            Some(seg) => {
                if !self.cur.is_empty() {
                    self.done.push(Seg::Own(std::mem::take(&mut self.cur)));
                }
                self.done.push(Seg::Shared(seg));
            }
            None => self.cur.extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.len() >= SEGMENT_MIN {
            SEGMENTS.with(|q| {
                if let Some(q) = q.borrow_mut().as_mut() {
                    q.push_back(self.0.clone());
                }
            });
        }
        s.serialize_bytes(&self.0)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Payload, E> {
        let shared = FRAME.with(|f| {
            let f = f.borrow();
            let frame = f.as_ref()?;
            let (base, at) = (frame.as_ptr() as usize, v.as_ptr() as usize);
            let inside = at >= base && at + v.len() <= base + frame.len();
            inside.then(|| frame.slice(at - base..at - base + v.len()))
        });
        Ok(Payload(shared.unwrap_or_else(|| Bytes::copy_from_slice(v))))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Payload, E> {
        Ok(Payload(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
        Ok(Payload(Bytes::from(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(Payload(Bytes::from(v)))
    }

}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        d.deserialize_bytes(PayloadVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        a: u32,
        small: Payload,
        big: Payload,
        tail: String,
    }

    fn msg() -> Msg {
        Msg { a: 7, small: Payload::from(vec![1, 2, 3]), big: Payload::from(vec![9u8; SEGMENT_MIN + 5]), tail: "end".into() }
    }

    fn encode_segments(m: &Msg) -> Vec<Bytes> {
        let mut w = SegmentWriter::with_capacity(64);
        w.write_all(&[0; 4]).unwrap();
        with_segments(|| rmp_serde::encode::write_named(&mut w, m)).unwrap();
        w.finish(|head| head[..4].copy_from_slice(&[1, 2, 3, 4]))
    }

    /// That a large payload becomes a segment of its own (the same buffer, not a copy),
    /// the small one stays in the header bytes, and the joined segments are exactly the
    /// plain encoding.
    #[test]
    fn large_payloads_become_segments() {
        let m = msg();
        let segs = encode_segments(&m);
        assert_eq!(segs.len(), 3, "header, big payload, trailer");
        assert_eq!(segs[1].as_ptr(), m.big.0.as_ptr(), "the payload's own buffer");
        assert_eq!(&segs[0][..4], &[1, 2, 3, 4], "the prefix was patched");
        let joined: Vec<u8> = segs.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(&joined[4..], &rmp_serde::to_vec_named(&m).unwrap()[..]);
    }

    /// That without segment collection nothing is announced (a later frame could not
    /// take a stale announcement).
    #[test]
    fn plain_encoding_announces_nothing() {
        let m = msg();
        let _ = rmp_serde::to_vec_named(&m).unwrap();
        assert!(SEGMENTS.with(|s| s.borrow().is_none()));
        let segs = encode_segments(&m);
        assert_eq!(segs.len(), 3);
    }

    /// That decoding inside `with_frame` shares the frame's buffer, and outside copies.
    #[test]
    fn decoding_in_a_frame_shares_its_buffer() {
        let m = msg();
        let frame = Bytes::from(rmp_serde::to_vec_named(&m).unwrap());
        let back: Msg = with_frame(&frame, |b| rmp_serde::from_slice(b)).unwrap();
        assert_eq!(back, m);
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(range.contains(&(back.big.0.as_ptr() as usize)), "a slice of the frame");
        let copied: Msg = rmp_serde::from_slice(&frame).unwrap();
        assert!(!range.contains(&(copied.big.0.as_ptr() as usize)), "a copy");
        assert_eq!(copied, m);
    }

    /// That payloads read from other formats and other byte layouts still decode.
    #[test]
    fn other_formats() {
        let p: Payload = serde_json::from_str("[1,2,3]").unwrap();
        assert_eq!(&p[..], &[1, 2, 3]);
        let bb = rmp_serde::to_vec(&serde_bytes::ByteBuf::from(vec![5u8; 10])).unwrap();
        let p: Payload = rmp_serde::from_slice(&bb).unwrap();
        assert_eq!(&p[..], &[5u8; 10]);
        assert!(rmp_serde::from_slice::<Payload>(&rmp_serde::to_vec(&7u32).unwrap()).is_err(), "a number is no payload");
    }
}
