//! One QUIC connection to an authenticated peer. Each side sends on a single
//! unidirectional stream, so messages between two instances arrive in order; a
//! writer task drains a queue onto it and a reader task decodes the peer's stream.
//! Replies are matched to requests by transaction id.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::fault::FaultAction;
use super::frame::{self, FrameError};
use super::{Incoming, MsgrShared, NetError};
use crate::ids::EntityName;
use crate::msg::{Envelope, Message, PROTOCOL_VERSION};

struct Outgoing {
    /// The frame's segments (large payloads are their own, see `msg::payload`).
    frame: Vec<bytes::Bytes>,
    delay: Option<Duration>,
}

struct ConnInner {
    peer: EntityName,
    remote: SocketAddr,
    quic: quinn::Connection,
    tx: mpsc::UnboundedSender<Outgoing>,
    shared: Arc<MsgrShared>,
}

/// A handle on a live connection; cheap to clone. Dropping it does not close it.
#[derive(Clone)]
pub struct ConnHandle {
    inner: Arc<ConnInner>,
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({}@{})", self.inner.peer, self.inner.remote)
    }
}

impl ConnHandle {
    /// Starts the reader and writer tasks of an established, authenticated connection.
    pub(super) fn start(quic: quinn::Connection, peer: EntityName, shared: Arc<MsgrShared>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let remote = quic.remote_address();
        let h = ConnHandle { inner: Arc::new(ConnInner { peer, remote, quic, tx, shared }) };
        tokio::spawn(writer(h.inner.quic.clone(), rx, h.inner.peer.clone()));
        tokio::spawn(reader(h.clone()));
        h
    }

    pub fn peer(&self) -> &EntityName {
        &self.inner.peer
    }
    pub fn remote(&self) -> SocketAddr {
        self.inner.remote
    }
    pub fn id(&self) -> usize {
        self.inner.quic.stable_id()
    }
    /// QUIC statistics of this connection (path MTU, packets, losses).
    pub fn stats(&self) -> quinn::ConnectionStats {
        self.inner.quic.stats()
    }
    pub fn is_closed(&self) -> bool {
        self.inner.quic.close_reason().is_some()
    }
    /// Resolves when the connection is gone, for whatever reason.
    pub async fn closed(&self) {
        self.inner.quic.closed().await;
    }
    pub fn close(&self, why: &str) {
        self.inner.quic.close(quinn::VarInt::from_u32(1), why.as_bytes());
    }

    fn enqueue(&self, tid: u64, reply_to: u64, msg: Message) -> Result<(), NetError> {
        let s = &self.inner.shared;
        let delay = match s.faults.read().map(|f| f.decide(&s.me, &self.inner.peer)) {
            Ok(FaultAction::Drop) => return Ok(()),
            Ok(FaultAction::Delay(d)) => Some(d),
            _ => None,
        };
        let env = Envelope { v: PROTOCOL_VERSION, src: s.me.clone(), nonce: s.nonce, tid, reply_to, msg };
        let (frame, len) = frame::encode_segments(&env).map_err(|e| NetError::Encode(e.to_string()))?;
        if len as u64 > s.opts.max_frame {
            return Err(NetError::Encode(format!("message of {len} bytes exceeds ms_max_frame_bytes")));
        }
        self.inner
            .tx
            .send(Outgoing { frame, delay })
            .map_err(|_| NetError::Closed { peer: self.inner.peer.to_string(), why: "writer gone".into() })
    }

    /// Sends a one-way message.
    pub fn send(&self, msg: Message) -> Result<(), NetError> {
        let tid = self.inner.shared.next_tid.fetch_add(1, Ordering::Relaxed);
        self.enqueue(tid, 0, msg)
    }

    /// Answers the request that carried `tid`.
    pub fn reply(&self, tid: u64, msg: Message) -> Result<(), NetError> {
        let my = self.inner.shared.next_tid.fetch_add(1, Ordering::Relaxed);
        self.enqueue(my, tid, msg)
    }

    /// Sends a request and waits for its reply, the connection's end, or `timeout`.
    pub async fn request(&self, msg: Message, timeout: Duration) -> Result<Message, NetError> {
        let s = &self.inner.shared;
        let tid = s.next_tid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        s.pending.insert(tid, (self.id(), tx));
        let what = msg.name();
        if let Err(e) = self.enqueue(tid, 0, msg) {
            s.pending.remove(&tid);
            return Err(e);
        }
        let r = tokio::time::timeout(timeout, rx).await;
        s.pending.remove(&tid);
        match r {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err(NetError::Closed {
                peer: self.inner.peer.to_string(),
                why: self.inner.quic.close_reason().map(|r| r.to_string()).unwrap_or_default(),
            }),
            Err(_) => Err(NetError::Timeout { peer: self.inner.peer.to_string(), what: what.into() }),
        }
    }
}

async fn writer(quic: quinn::Connection, mut rx: mpsc::UnboundedReceiver<Outgoing>, peer: EntityName) {
    let mut stream = match quic.open_uni().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, "cannot open stream: {e}");
            return;
        }
    };
    while let Some(mut out) = rx.recv().await {
        if let Some(d) = out.delay {
            tokio::time::sleep(d).await;
        }
        // Hand the buffers to quinn as they are (write_all would copy them once more).
        if let Err(e) = stream.write_all_chunks(&mut out.frame).await {
            tracing::debug!(%peer, "write failed: {e}");
            quic.close(quinn::VarInt::from_u32(2), b"write failed");
            return;
        }
    }
    let _ = stream.finish();
}

async fn reader(h: ConnHandle) {
    loop {
        let recv = match h.inner.quic.accept_uni().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(peer = %h.inner.peer, "connection ended: {e}");
                break;
            }
        };
        let h2 = h.clone();
        tokio::spawn(async move {
            if let Err(e) = read_stream(&h2, recv).await {
                tracing::warn!(peer = %h2.inner.peer, remote = %h2.inner.remote, "closing connection: {e}");
                h2.close(&e.to_string());
            }
        });
    }
    // Wake every request still waiting on this connection.
    let id = h.id();
    h.inner.shared.pending.retain(|_, (cid, _)| *cid != id);
}

async fn read_stream(h: &ConnHandle, mut recv: quinn::RecvStream) -> Result<(), FrameError> {
    let s = &h.inner.shared;
    while let Some(env) = frame::read_frame(&mut recv, s.opts.max_frame).await? {
        if env.v != PROTOCOL_VERSION {
            return Err(FrameError::Malformed(format!("protocol version {} (want {PROTOCOL_VERSION})", env.v)));
        }
        if env.src != h.inner.peer {
            return Err(FrameError::Malformed(format!(
                "frame claims to be from {} but the certificate says {}",
                env.src, h.inner.peer
            )));
        }
        let action = s.faults.read().map(|f| f.decide(&h.inner.peer, &s.me)).unwrap_or(FaultAction::Pass);
        match action {
            FaultAction::Drop => continue,
            FaultAction::Delay(d) => tokio::time::sleep(d).await,
            FaultAction::Pass => {}
        }
        if env.reply_to != 0 {
            if let Some((_, (_, tx))) = s.pending.remove(&env.reply_to) {
                let _ = tx.send(env.msg);
            }
            continue;
        }
        let inc = Incoming { from: env.src, nonce: env.nonce, tid: env.tid, msg: env.msg, conn: h.clone() };
        if s.incoming.send(inc).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
