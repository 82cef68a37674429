//! rustls/quinn configuration: mutual TLS 1.3 against the cluster CA, with QUIC
//! transport sized for storage traffic (large windows, keep-alives, idle timeout).
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::wire_mode::{ModeClientConfig, ModeServerConfig, WireMode, ALPN_CRC, ALPN_SECURE};
use super::{MsgrOptions, NetError};
use crate::auth::Identity;

/// Largest UDP payload quinn may send or receive (the IPv4 limit minus headers).
pub const MAX_UDP_PAYLOAD: u16 = 65_527;

/// ring's provider with AES-128-GCM preferred: every byte a daemon sends or receives
/// passes through the AEAD, and AES-128 (10 rounds) costs less than AES-256 (14) at
/// the same 128-bit security level TLS 1.3 asks of it. The other suites stay allowed.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

fn roots(id: &Identity) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    roots.add(id.ca.clone()).map_err(|e| NetError::Tls(format!("cluster CA: {e}")))?;
    Ok(Arc::new(roots))
}

/// Largest UDP payload of an IPv4 datagram on loopback (its MTU is 64 KiB).
pub const LOOPBACK_PAYLOAD: u16 = 65_507;
/// The floor of the path MTU on loopback: as large as QUIC's Initial packets (padded to
/// it, with a length field below 16 KiB) allow.
pub const LOOPBACK_MIN_MTU: u16 = 16_000;

/// Largest UDP payload that ten segments of one GSO send may carry: quinn batches up to
/// ten datagrams per `sendmsg`, and the kernel refuses (EMSGSIZE, which quinn-udp
/// ignores as a lost packet) a batch above 64 KiB.
const GSO_SAFE_PAYLOAD: u16 = 6_500;

/// Transport settings. `loopback`: every peer is on this host, whose MTU is 64 KiB, so
/// packets start at [`LOOPBACK_MIN_MTU`] (never fall below it) and discovery climbs to
/// [`LOOPBACK_PAYLOAD`], one datagram per send (no segmentation offload: ten such
/// segments would exceed what one send may carry). Elsewhere, discovery stays at or
/// below [`GSO_SAFE_PAYLOAD`] so that batched sends stay legal.
///
/// Before (up to session 6), discovery aimed at 64 KiB with offload on: each probe
/// succeeded, but the batches at the new size were refused by the kernel and silently
/// lost, quinn took that for a black hole and dropped the path to 1,200 bytes for a
/// minute: the messenger test measured 1,200 after 80 MiB, 50 times the packets (each
/// with its own system call share, header, AEAD call and acknowledgement).
fn transport(opts: &MsgrOptions, loopback: bool) -> Result<Arc<quinn::TransportConfig>, NetError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(opts.idle_timeout)
        .map_err(|e| NetError::Tls(format!("ms_idle_timeout: {e}")))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(opts.keepalive));
    t.stream_receive_window(quinn::VarInt::from_u32(16 << 20));
    t.receive_window(quinn::VarInt::from_u32(64 << 20));
    t.send_window(64 << 20);
    t.initial_rtt(Duration::from_millis(1));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    // Losses from congestion are not a black hole: probe again soon.
    mtu.black_hole_cooldown(Duration::from_secs(2));
    if loopback {
        mtu.upper_bound(LOOPBACK_PAYLOAD);
        t.initial_mtu(LOOPBACK_MIN_MTU);
        t.min_mtu(LOOPBACK_MIN_MTU);
        t.enable_segmentation_offload(false);
        // The default initial window (14,720 bytes) would not admit the first padded
        // Initial datagram: start with sixteen full-size datagrams.
        let mut cc = quinn::congestion::CubicConfig::default();
        cc.initial_window(16 * u64::from(LOOPBACK_PAYLOAD));
        t.congestion_controller_factory(Arc::new(cc));
    } else {
        mtu.upper_bound(GSO_SAFE_PAYLOAD);
    }
    t.mtu_discovery_config(Some(mtu));
    Ok(Arc::new(t))
}

/// `loopback`: the endpoint is bound to a loopback address (so are all its peers).
/// It accepts `secure` connections always and `crc` ones when `ms_mode` is `crc`.
pub fn server_config(id: &Identity, opts: &MsgrOptions, loopback: bool) -> Result<quinn::ServerConfig, NetError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(id)?, provider())
        .build()
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = match opts.mode {
        WireMode::Crc => vec![ALPN_CRC.to_vec(), ALPN_SECURE.to_vec()],
        WireMode::Secure => vec![ALPN_SECURE.to_vec()],
    };
    let q = QuicServerConfig::try_from(tls).map_err(|e| NetError::Tls(e.to_string()))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(ModeServerConfig(Arc::new(q))));
    sc.transport_config(transport(opts, loopback)?);
    Ok(sc)
}

/// `loopback`: for peers on a loopback address; `mode`: the protection it asks for.
pub fn client_config(id: &Identity, opts: &MsgrOptions, loopback: bool, mode: WireMode) -> Result<quinn::ClientConfig, NetError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![mode.alpn().to_vec()];
    let q = QuicClientConfig::try_from(tls).map_err(|e| NetError::Tls(e.to_string()))?;
    let mut cc = quinn::ClientConfig::new(Arc::new(ModeClientConfig(Arc::new(q))));
    cc.transport_config(transport(opts, loopback)?);
    Ok(cc)
}

#[cfg(test)]
mod tests {
    /// That AES-128-GCM is offered first and the other TLS 1.3 suites remain.
    #[test]
    fn aes_128_gcm_first() {
        let p = super::provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites.first(), Some(&rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(suites.contains(&rustls::CipherSuite::TLS13_AES_256_GCM_SHA384));
    }
}
