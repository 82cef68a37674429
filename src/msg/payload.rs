//! `Payload`: the data bytes of object ops and replies (`bytes::Bytes`), moved through
//! the messenger without copies.
//!
//! Outside a frame (any serde format, or rmp used elsewhere) a payload is a MessagePack
//! `bin`, like `serde_bytes::ByteBuf`, copied in and out. Inside a frame
//! (`net::frame`):
//! - encoding ([`with_out_of_band`]) leaves each payload of at least [`OUT_OF_BAND_MIN`]
//!   bytes out of the envelope: the envelope holds its length (an unsigned integer)
//!   and the payload is sent after the envelope, from its own buffer, never copied;
//! - decoding ([`with_frame`]) takes such a payload as a slice of the frame's
//!   out-of-band section, which the reader gathers into a page-aligned buffer (so a
//!   whole-object write can go to disk with `O_DIRECT` straight from it), and makes
//!   each in-envelope `bin` a slice of the envelope's buffer instead of a copy.
use std::cell::RefCell;
use std::fmt;

use bytes::Bytes;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Payloads at least this large travel out of band; smaller ones are cheaper to copy
/// than to send as a separate chunk.
pub const OUT_OF_BAND_MIN: usize = 16 * 1024;

/// Bytes carried by a message; cloning shares them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Payload(pub Bytes);

impl Payload {
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

/// The frame being decoded on this thread: its envelope's buffer, its out-of-band
/// section and how much of that the payloads decoded so far took.
struct Decoding {
    env: Bytes,
    oob: Bytes,
    taken: usize,
}

thread_local! {
    static DECODING: RefCell<Option<Decoding>> = const { RefCell::new(None) };
    /// Large payloads of the frame being encoded on this thread, in order.
    static OUT_OF_BAND: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
}

/// Runs `decode` on the envelope `env` of a frame whose out-of-band section is `oob`:
/// a payload inside `env` becomes a slice of it, and each payload sent out of band a
/// slice of `oob`, in order (no copies). Returns what `decode` returned and how many
/// bytes of `oob` the payloads took (a well-formed frame uses all of them).
pub fn with_frame<T>(env: &Bytes, oob: &Bytes, decode: impl FnOnce(&[u8]) -> T) -> (T, usize) {
    struct Reset(Option<Decoding>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0.take();
            DECODING.with(|f| *f.borrow_mut() = old);
        }
    }
    let mine = Decoding { env: env.clone(), oob: oob.clone(), taken: 0 };
    let reset = Reset(DECODING.with(|f| f.borrow_mut().replace(mine)));
    let out = decode(env);
    let taken = DECODING.with(|f| f.borrow().as_ref().map_or(0, |d| d.taken));
    drop(reset);
    (out, taken)
}

/// Runs `encode` with out-of-band collection on: each payload of at least
/// [`OUT_OF_BAND_MIN`] bytes is left out of the encoding (its length stands in its place)
/// and returned, in order, to be sent after it.
pub fn with_out_of_band<T>(encode: impl FnOnce() -> T) -> (T, Vec<Bytes>) {
    struct Reset(Option<Vec<Bytes>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0.take();
            OUT_OF_BAND.with(|s| *s.borrow_mut() = old);
        }
    }
    let reset = Reset(OUT_OF_BAND.with(|s| s.borrow_mut().replace(Vec::new())));
    let out = encode();
    let oob = OUT_OF_BAND.with(|s| s.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    (out, oob)
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.len() >= OUT_OF_BAND_MIN {
            let out_of_band = OUT_OF_BAND.with(|q| match q.borrow_mut().as_mut() {
                Some(q) => {
                    q.push(self.0.clone());
                    true
                }
                None => false,
            });
            if out_of_band {
                return s.serialize_u64(self.0.len() as u64);
            }
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

    /// A payload sent out of band: the next `n` bytes of the frame's section.
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Payload, E> {
        DECODING.with(|f| {
            let mut f = f.borrow_mut();
            let Some(d) = f.as_mut() else {
                return Err(E::custom("an out-of-band payload outside a frame"));
            };
            let end = usize::try_from(n).ok().and_then(|n| d.taken.checked_add(n)).filter(|end| *end <= d.oob.len());
            let Some(end) = end else {
                return Err(E::custom(format!("an out-of-band payload of {n} bytes past the frame's end")));
            };
            let p = d.oob.slice(d.taken..end);
            d.taken = end;
            Ok(Payload(p))
        })
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Payload, E> {
        let shared = DECODING.with(|f| {
            let f = f.borrow();
            let frame = &f.as_ref()?.env;
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

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        a: u32,
        small: Payload,
        big: Payload,
        tail: String,
    }

    fn msg() -> Msg {
        Msg { a: 7, small: Payload::from(vec![1, 2, 3]), big: Payload::from(vec![9u8; OUT_OF_BAND_MIN + 5]), tail: "end".into() }
    }

    /// That a large payload leaves the encoding (its own buffer, not a copy), the small
    /// one stays in it, and decoding with the out-of-band bytes gives the message back
    /// with both payloads as slices of the frame's buffers.
    #[test]
    fn large_payloads_go_out_of_band() {
        let m = msg();
        let (env, oob) = with_out_of_band(|| rmp_serde::to_vec_named(&m).unwrap());
        assert_eq!(oob.len(), 1);
        assert_eq!(oob[0].as_ptr(), m.big.0.as_ptr(), "the payload's own buffer");
        assert!(env.len() < 100, "the envelope holds only the length");
        let (env, section) = (Bytes::from(env), Bytes::copy_from_slice(&oob[0]));
        let (back, taken) = with_frame(&env, &section, |b| rmp_serde::from_slice::<Msg>(b));
        assert_eq!(back.unwrap(), m);
        assert_eq!(taken, section.len());
        let (back, _) = with_frame(&env, &section, |b| rmp_serde::from_slice::<Msg>(b));
        let back = back.unwrap();
        assert_eq!(back.big.0.as_ptr(), section.as_ptr(), "a slice of the section");
        let inside = env.as_ptr() as usize..env.as_ptr() as usize + env.len();
        assert!(inside.contains(&(back.small.0.as_ptr() as usize)), "a slice of the envelope");
    }

    /// That without collection nothing leaves the encoding, and that an out-of-band
    /// length with no section, or past its end, is an error.
    #[test]
    fn plain_encoding_keeps_payloads_inline() {
        let m = msg();
        let plain = rmp_serde::to_vec_named(&m).unwrap();
        assert!(OUT_OF_BAND.with(|s| s.borrow().is_none()));
        assert_eq!(rmp_serde::from_slice::<Msg>(&plain).unwrap(), m);
        let (env, _) = with_out_of_band(|| rmp_serde::to_vec_named(&m).unwrap());
        assert!(rmp_serde::from_slice::<Msg>(&env).is_err(), "no section outside a frame");
        let short = Bytes::from(vec![0u8; 10]);
        let (r, _) = with_frame(&Bytes::from(env), &short, |b| rmp_serde::from_slice::<Msg>(b));
        assert!(r.is_err(), "past the section's end");
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
