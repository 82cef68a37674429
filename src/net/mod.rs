//! The messenger: QUIC endpoints (quinn + rustls) with mutual TLS against the
//! cluster CA. Outgoing connections are kept per (entity, address) and re-made with
//! exponential back-off; incoming messages from every connection are delivered on
//! one channel as `Incoming`, which carries the connection to reply on.
//! Transport only: no message is interpreted here.
pub mod conn;
pub mod fault;
pub mod frame;
pub mod tls;
pub mod wire_mode;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot, Mutex};

pub use conn::ConnHandle;
pub use fault::FaultRules;
pub use wire_mode::WireMode;

use crate::auth::{entity_of, Identity};
use crate::config::Options;
use crate::ids::{EntityAddr, EntityName};
use crate::msg::Message;

#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    #[error("tls setup: {0}")]
    Tls(String),
    #[error("socket: {0}")]
    Io(String),
    #[error("cannot connect to {peer}: {why}")]
    Connect { peer: String, why: String },
    #[error("connection to {peer} closed: {why}")]
    Closed { peer: String, why: String },
    #[error("timed out waiting for {peer} to answer {what}")]
    Timeout { peer: String, what: String },
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Messenger tunables (from `ms_*` options).
#[derive(Clone, Debug)]
pub struct MsgrOptions {
    pub max_frame: u64,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub udp_buffer: usize,
    /// What protects packets after the handshake on connections this side opens to
    /// anything but a monitor, and whether this side accepts `crc` (`ms_mode`).
    pub mode: WireMode,
}

impl MsgrOptions {
    pub fn from_options(o: &Options) -> Self {
        MsgrOptions {
            max_frame: o.ms_max_frame_bytes,
            connect_timeout: Options::secs(o.ms_connect_timeout),
            idle_timeout: Options::secs(o.ms_idle_timeout),
            keepalive: Options::secs(o.ms_keepalive_interval),
            backoff_min: Options::secs(o.ms_reconnect_backoff_min),
            backoff_max: Options::secs(o.ms_reconnect_backoff_max),
            udp_buffer: o.ms_udp_buffer_bytes as usize,
            // Checked by `Options::validate`; anything else keeps the stronger mode.
            mode: WireMode::parse(&o.ms_mode).unwrap_or(WireMode::Secure),
        }
    }
}

/// The messenger's incoming receiver as a stream (for `ctx.add_stream` in an actor).
pub fn incoming_stream(rx: mpsc::UnboundedReceiver<Incoming>) -> impl futures::Stream<Item = Incoming> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

/// A message that arrived, with the connection it came on.
#[derive(Debug)]
pub struct Incoming {
    /// The authenticated sender (from its certificate).
    pub from: EntityName,
    pub nonce: u64,
    pub tid: u64,
    pub msg: Message,
    pub conn: ConnHandle,
}

impl Incoming {
    pub fn reply(&self, msg: Message) {
        if let Err(e) = self.conn.reply(self.tid, msg) {
            tracing::debug!(peer = %self.from, "reply not sent: {e}");
        }
    }
}

/// Decides whether an authenticated peer may talk to this process at all.
pub type Authorizer = Arc<dyn Fn(&EntityName) -> Result<(), String> + Send + Sync>;

pub(crate) struct MsgrShared {
    me: EntityName,
    nonce: u64,
    opts: MsgrOptions,
    next_tid: AtomicU64,
    #[allow(clippy::type_complexity)]
    pending: DashMap<u64, (usize, oneshot::Sender<Message>)>,
    incoming: mpsc::UnboundedSender<Incoming>,
    faults: RwLock<FaultRules>,
}

#[derive(Default)]
struct Slot {
    conn: Option<ConnHandle>,
    backoff: Duration,
    next_try: Option<Instant>,
}

struct MsgrInner {
    shared: Arc<MsgrShared>,
    endpoint: quinn::Endpoint,
    /// Client configurations by [`cfg_index`]: loopback or not (see `tls::transport`),
    /// `secure` or this side's `ms_mode`.
    client_cfgs: [quinn::ClientConfig; 4],
    slots: Mutex<HashMap<(EntityName, SocketAddr), Arc<Mutex<Slot>>>>,
    authorizer: RwLock<Option<Authorizer>>,
}

/// Handle on this process's endpoint; cheap to clone.
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<MsgrInner>,
}

fn udp_socket(addr: SocketAddr, buf: usize) -> Result<std::net::UdpSocket, NetError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let io = |e: std::io::Error| NetError::Io(format!("{addr}: {e}"));
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
    force_buffer(&s, libc::SO_RCVBUFFORCE, buf).or_else(|_| s.set_recv_buffer_size(buf)).map_err(io)?;
    force_buffer(&s, libc::SO_SNDBUFFORCE, buf).or_else(|_| s.set_send_buffer_size(buf)).map_err(io)?;
    s.bind(&addr.into()).map_err(io)?;
    s.set_nonblocking(true).map_err(io)?;
    Ok(s.into())
}

/// Where a client-only endpoint (CLI, mount, tools) binds, given the monitors'
/// addresses: loopback (of the first monitor's family) when every monitor is on
/// loopback, so a single-machine cluster stays off the network; otherwise the local address the kernel routes to the first other
/// monitor from (port 0), so the client is reachable from the cluster's machines and its
/// own address is the one the daemons see (blocklist entries name it); the unspecified
/// address if no route is found.
pub fn client_bind_addr<'a>(mons: impl IntoIterator<Item = &'a SocketAddr>) -> SocketAddr {
    let mons: Vec<SocketAddr> = mons.into_iter().copied().collect();
    let Some(remote) = mons.iter().find(|a| !a.ip().is_loopback()) else {
        return match mons.first() {
            Some(m) if m.is_ipv6() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            _ => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
    };
    let any: SocketAddr = if remote.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    // Connecting a UDP socket sends nothing: it only picks the route and source address.
    let routed = std::net::UdpSocket::bind(any).and_then(|s| s.connect(remote).and_then(|_| s.local_addr()));
    match routed {
        Ok(local) => SocketAddr::new(local.ip(), 0),
        Err(_) => any,
    }
}

/// Root may raise socket buffers past `net.core.rmem_max`; others fall back.
fn force_buffer(s: &socket2::Socket, opt: libc::c_int, size: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = size as libc::c_int;
    // SAFETY: setsockopt on a valid fd with a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Messenger {
    /// Binds `addr` (port 0 picks one) and accepts peers when `serve` is true.
    /// Must be called inside a running tokio runtime (an actix system is one).
    pub fn bind(
        id: &Identity,
        addr: SocketAddr,
        serve: bool,
        opts: MsgrOptions,
        faults: FaultRules,
    ) -> Result<(Messenger, mpsc::UnboundedReceiver<Incoming>), NetError> {
        let server = if serve { Some(tls::server_config(id, &opts, addr.ip().is_loopback())?) } else { None };
        let mut cfgs = Vec::with_capacity(4);
        for i in 0..4 {
            let mode = if i & 2 == 0 { WireMode::Secure } else { opts.mode };
            cfgs.push(tls::client_config(id, &opts, i & 1 == 1, mode)?);
        }
        let client_cfgs: [quinn::ClientConfig; 4] =
            cfgs.try_into().map_err(|_| NetError::Tls("client configurations".into()))?;
        let sock = udp_socket(addr, opts.udp_buffer)?;
        let runtime = quinn::default_runtime().ok_or_else(|| NetError::Io("no async runtime".into()))?;
        let mut ecfg = quinn::EndpointConfig::default();
        ecfg.max_udp_payload_size(tls::MAX_UDP_PAYLOAD).map_err(|e| NetError::Io(e.to_string()))?;
        let endpoint = quinn::Endpoint::new(ecfg, server, sock, runtime)
            .map_err(|e| NetError::Io(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(MsgrShared {
            me: id.entity.clone(),
            nonce: rand::random::<u64>() | 1,
            opts,
            next_tid: AtomicU64::new(1),
            pending: DashMap::new(),
            incoming: tx,
            faults: RwLock::new(faults),
        });
        let m = Messenger {
            inner: Arc::new(MsgrInner {
                shared,
                endpoint,
                client_cfgs,
                slots: Mutex::new(HashMap::new()),
                authorizer: RwLock::new(None),
            }),
        };
        if serve {
            tokio::spawn(accept_loop(m.clone()));
        }
        Ok((m, rx))
    }

    pub fn me(&self) -> &EntityName {
        &self.inner.shared.me
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.endpoint.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
    /// This instance as blocklists name it.
    pub fn entity_addr(&self) -> EntityAddr {
        EntityAddr { addr: self.local_addr(), nonce: self.inner.shared.nonce }
    }
    /// What protects this side's connections to OSDs, MDSs and clients (`ms_mode`).
    pub fn wire_mode(&self) -> WireMode {
        self.inner.shared.opts.mode
    }
    pub fn set_authorizer(&self, a: Authorizer) {
        if let Ok(mut g) = self.inner.authorizer.write() {
            *g = Some(a);
        }
    }
    pub fn set_faults(&self, f: FaultRules) {
        if let Ok(mut g) = self.inner.shared.faults.write() {
            *g = f;
        }
    }

    /// The live connection to `peer` at `addr`, made if needed. While a peer is in
    /// back-off after a failed attempt, this fails at once unless `wait` is set.
    pub async fn connect(&self, peer: &EntityName, addr: SocketAddr, wait: bool) -> Result<ConnHandle, NetError> {
        let slot = {
            let mut slots = self.inner.slots.lock().await;
            slots.entry((peer.clone(), addr)).or_default().clone()
        };
        let mut s = slot.lock().await;
        if let Some(c) = &s.conn {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        if let Some(t) = s.next_try {
            let now = Instant::now();
            if t > now {
                if !wait {
                    return Err(NetError::Connect { peer: peer.to_string(), why: "in reconnect back-off".into() });
                }
                tokio::time::sleep(t - now).await;
            }
        }
        let o = &self.inner.shared.opts;
        match self.dial(peer, addr).await {
            Ok(c) => {
                *s = Slot { conn: Some(c.clone()), backoff: Duration::ZERO, next_try: None };
                Ok(c)
            }
            Err(e) => {
                s.backoff = (s.backoff * 2).clamp(o.backoff_min, o.backoff_max);
                s.next_try = Some(Instant::now() + s.backoff);
                Err(e)
            }
        }
    }

    async fn dial(&self, peer: &EntityName, addr: SocketAddr) -> Result<ConnHandle, NetError> {
        let err = |why: String| NetError::Connect { peer: format!("{peer}@{addr}"), why };
        let cfg = cfg_index(peer, addr);
        let connecting = self
            .inner
            .endpoint
            .connect_with(self.inner.client_cfgs[cfg].clone(), addr, &peer.tls_name())
            .map_err(|e| err(e.to_string()))?;
        let asks_crc = cfg & 2 != 0 && self.inner.shared.opts.mode == WireMode::Crc;
        let quic = tokio::time::timeout(self.inner.shared.opts.connect_timeout, connecting)
            .await
            .map_err(|_| err("handshake timed out".into()))?
            .map_err(|e| {
                // TLS alert 120 (no_application_protocol): the peer does not accept crc.
                let no_protocol = matches!(&e, quinn::ConnectionError::ConnectionClosed(c)
                    if c.error_code == quinn::TransportErrorCode::crypto(120));
                if asks_crc && no_protocol {
                    err(format!("{e} (the peer accepts only ms_mode = \"secure\"; this side asks for \"crc\")"))
                } else {
                    err(e.to_string())
                }
            })?;
        Ok(ConnHandle::start(quic, peer.clone(), self.inner.shared.clone()))
    }

    /// Drops the cached connection to `peer` at `addr` (e.g. the map shows a new
    /// instance there), so the next message dials afresh.
    pub async fn forget(&self, peer: &EntityName, addr: SocketAddr) {
        let slot = self.inner.slots.lock().await.remove(&(peer.clone(), addr));
        if let Some(slot) = slot {
            if let Some(c) = slot.lock().await.conn.take() {
                c.close("peer restarted");
            }
        }
    }

    /// Sends one message, connecting if needed (no waiting through back-off).
    pub async fn send(&self, peer: &EntityName, addr: SocketAddr, msg: Message) -> Result<(), NetError> {
        self.connect(peer, addr, false).await?.send(msg)
    }

    /// Sends a request and waits for the reply until `timeout`, reconnecting (with
    /// back-off) and re-sending if the connection is lost meanwhile.
    pub async fn request(
        &self,
        peer: &EntityName,
        addr: SocketAddr,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, NetError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = NetError::Timeout { peer: peer.to_string(), what: msg.name().into() };
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(last);
            }
            let attempt = async {
                let c = self.connect(peer, addr, true).await?;
                c.request(msg.clone(), left).await
            };
            match tokio::time::timeout(left, attempt).await {
                Ok(Ok(m)) => return Ok(m),
                // Neither waiting nor another connection helps these.
                Ok(Err(e @ (NetError::Timeout { .. } | NetError::Encode(_)))) => return Err(e),
                Ok(Err(e)) => last = e,
                Err(_) => return Err(last),
            }
        }
    }

    /// Closes the endpoint and every connection.
    pub fn shutdown(&self) {
        self.inner.endpoint.close(quinn::VarInt::from_u32(0), b"shutdown");
    }
}

/// Which client configuration dials `peer` at `addr`: connections to monitors are
/// always `secure` (as Ceph's monitors prefer), others use `ms_mode`.
fn cfg_index(peer: &EntityName, addr: SocketAddr) -> usize {
    let loopback = usize::from(addr.ip().is_loopback());
    let mode = if peer.kind == crate::ids::EntityKind::Mon { 0 } else { 2 };
    loopback | mode
}

async fn accept_loop(m: Messenger) {
    while let Some(incoming) = m.inner.endpoint.accept().await {
        let m = m.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match accept_one(&m, incoming).await {
                Ok(peer) => tracing::debug!(%peer, %remote, "accepted connection"),
                Err(why) => tracing::warn!(%remote, "refused connection: {why}"),
            }
        });
    }
}

async fn accept_one(m: &Messenger, incoming: quinn::Incoming) -> Result<EntityName, String> {
    let quic = tokio::time::timeout(m.inner.shared.opts.connect_timeout, incoming)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let peer = quic
        .peer_identity()
        .and_then(|a| a.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
        .and_then(|certs| certs.first().map(entity_of))
        .ok_or_else(|| "peer presented no certificate".to_string())?
        .map_err(|e| {
            quic.close(quinn::VarInt::from_u32(3), b"bad certificate");
            format!("bad certificate: {e}")
        })?;
    let auth = m.inner.authorizer.read().ok().and_then(|g| g.clone());
    if let Some(auth) = auth {
        if let Err(why) = auth(&peer) {
            quic.close(quinn::VarInt::from_u32(4), why.as_bytes());
            return Err(format!("{peer} not authorized: {why}"));
        }
    }
    ConnHandle::start(quic, peer.clone(), m.inner.shared.clone());
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::client_bind_addr;
    use std::net::SocketAddr;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("literal address")
    }

    /// That a client binds loopback when every monitor is on loopback (in the monitors'
    /// family), and otherwise a port-0 address of the monitors' family that is not
    /// loopback: the source address the kernel would route to them from, or the
    /// unspecified address (192.0.2.1 is a documentation address: a UDP `connect` to it
    /// sends nothing).
    #[test]
    fn client_bind_follows_the_monitors() {
        assert_eq!(client_bind_addr(&[]), a("127.0.0.1:0"));
        assert_eq!(client_bind_addr(&[a("127.0.0.1:6789"), a("127.0.0.2:6790")]), a("127.0.0.1:0"));
        assert_eq!(client_bind_addr(&[a("[::1]:6789")]), a("[::1]:0"));
        let b = client_bind_addr(&[a("127.0.0.1:6789"), a("192.0.2.1:6789")]);
        assert!(b.is_ipv4() && b.port() == 0 && !b.ip().is_loopback(), "{b}");
        // What a client bound there would be reached at: bindable here.
        assert!(std::net::UdpSocket::bind(b).is_ok(), "{b}");
    }
}
