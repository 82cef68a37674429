//! rustls/quinn configuration: mutual TLS 1.3 against the cluster CA, with QUIC
//! transport sized for storage traffic (large windows, keep-alives, idle timeout).
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::{MsgrOptions, NetError};
use crate::auth::Identity;

pub const ALPN: &[u8] = b"cephr/1";

/// Largest UDP payload quinn may send or receive (the IPv4 limit minus headers).
pub const MAX_UDP_PAYLOAD: u16 = 65_527;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(id: &Identity) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    roots.add(id.ca.clone()).map_err(|e| NetError::Tls(format!("cluster CA: {e}")))?;
    Ok(Arc::new(roots))
}

fn transport(opts: &MsgrOptions) -> Result<Arc<quinn::TransportConfig>, NetError> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(opts.idle_timeout)
        .map_err(|e| NetError::Tls(format!("ms_idle_timeout: {e}")))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(opts.keepalive));
    t.stream_receive_window(quinn::VarInt::from_u32(16 << 20));
    t.receive_window(quinn::VarInt::from_u32(64 << 20));
    t.send_window(64 << 20);
    t.initial_rtt(Duration::from_millis(1));
    // Path MTU discovery up to the largest UDP payload: on loopback (MTU 64 KiB) a 4 MiB
    // message then takes ~65 datagrams instead of ~3,000, which is what makes large ops
    // cheap; on a real network discovery settles on the link's MTU (probes that don't
    // arrive are simply not adopted).
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    Ok(Arc::new(t))
}

pub fn server_config(id: &Identity, opts: &MsgrOptions) -> Result<quinn::ServerConfig, NetError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(id)?, provider())
        .build()
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let q = QuicServerConfig::try_from(tls).map_err(|e| NetError::Tls(e.to_string()))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(q));
    sc.transport_config(transport(opts)?);
    Ok(sc)
}

pub fn client_config(id: &Identity, opts: &MsgrOptions) -> Result<quinn::ClientConfig, NetError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| NetError::Tls(e.to_string()))?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
        .map_err(|e| NetError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let q = QuicClientConfig::try_from(tls).map_err(|e| NetError::Tls(e.to_string()))?;
    let mut cc = quinn::ClientConfig::new(Arc::new(q));
    cc.transport_config(transport(opts)?);
    Ok(cc)
}
