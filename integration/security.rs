//! Hostile and unauthorized peers against real monitors: a client of another
//! cluster's CA, garbage datagrams, malformed and oversized frames, and clients
//! whose caps do not allow what they ask.
mod harness;

use harness::{Cluster, BIN};
use std::process::Command;
use std::time::Duration;

/// That a client whose certificate comes from another cluster's CA is refused, and
/// the monitor logs why.
#[test]
fn t10_foreign_ca_refused() {
    let c = Cluster::start(&["a"]);
    let other = tempfile::tempdir().expect("tmp");
    let out = Command::new(BIN).args(["cluster", "create", "--mons", "a", "--dir"]).arg(other.path()).output().expect("run");
    assert!(out.status.success());
    let keys = other.path().join("keys");
    let r = c.cli(&["--key-dir", keys.to_str().unwrap_or_default(), "--set", "mon_command_timeout=2", "status"]);
    assert_ne!(r.code, 0, "foreign client must be refused: {}", r.stdout);
    let log = std::fs::read_to_string(c.log("mon.a")).unwrap_or_default();
    assert!(log.contains("refused connection"), "monitor logs the refusal:\n{log}");
    assert_eq!(c.cli(&["status"]).code, 0, "own clients still served");
}

/// That garbage datagrams, malformed frames and oversized frames do not crash a
/// monitor: each bad connection is closed with a logged reason.
#[test]
fn t20_garbage_and_malformed_frames() {
    let mut c = Cluster::start(&["a"]);
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
    let mon = cfg.mon["a"].addr;
    eprintln!("--- garbage datagrams");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    for i in 0..5000u32 {
        let len = (i as usize * 7919) % 1400 + 1;
        let buf: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j * 17) as u8).collect();
        let _ = sock.send_to(&buf, mon);
    }
    eprintln!("--- malformed, oversized and lying frames on authenticated connections");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let id = cephr::auth::Identity::load(&cfg.key_dir, &"client.admin".parse().expect("n")).expect("id");
        let opts = cephr::net::MsgrOptions::from_options(&cfg.global);
        let cc = cephr::net::tls::client_config(&id, &opts, true, opts.mode).expect("tls");
        // Datagrams as large as cephr's loopback endpoints send (quinn's default is 1,472).
        let mut ecfg = quinn::EndpointConfig::default();
        ecfg.max_udp_payload_size(cephr::net::tls::MAX_UDP_PAYLOAD).expect("payload size");
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let runtime = quinn::default_runtime().expect("runtime");
        let mut ep = quinn::Endpoint::new(ecfg, None, sock, runtime).expect("ep");
        ep.set_default_client_config(cc);
        let lying = {
            let env = cephr::msg::Envelope {
                v: cephr::msg::PROTOCOL_VERSION,
                src: "mon.a".parse().expect("n"),
                nonce: 1,
                tid: 1,
                reply_to: 0,
                msg: cephr::msg::Message::MMonCommand(cephr::msg::MonCommand::Status),
            };
            cephr::net::frame::encode(&env).expect("encode")
        };
        let mut garbage = 64u32.to_be_bytes().to_vec();
        garbage.extend((0..64u8).map(|b| b.wrapping_mul(37)));
        let oversized = u32::MAX.to_be_bytes().to_vec();
        for (what, bytes) in [("garbage", garbage), ("oversized", oversized), ("lying", lying)] {
            let conn = ep.connect(mon, &"mon.a".parse::<cephr::ids::EntityName>().expect("n").tls_name()).expect("c").await.expect("handshake");
            let mut s = conn.open_uni().await.expect("stream");
            s.write_all(&bytes).await.expect("write");
            let _ = s.finish();
            let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
            assert!(closed.is_ok(), "monitor closes the connection after a {what} frame");
        }
    });
    assert!(c.alive("mon.a"), "monitor survived");
    assert_eq!(c.cli(&["status"]).code, 0, "monitor still answers");
    let log = std::fs::read_to_string(c.log("mon.a")).unwrap_or_default();
    assert!(log.contains("malformed frame"), "logged:\n{log}");
    assert!(log.contains("exceeds the limit"), "logged:\n{log}");
    assert!(log.contains("certificate says client.admin"), "logged:\n{log}");
}

/// That `auth add` issues a working identity whose caps are enforced, and `auth rm`
/// locks it out.
#[test]
fn t30_auth_caps_enforced() {
    let c = Cluster::start(&["a"]);
    let r = c.cli(&["auth", "add", "client.ro", "--caps", "mon=allow r", "--caps", "mds=allow rw path=/home/ro"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ls = c.cli(&["auth", "ls"]).stdout;
    assert!(ls.contains("client.ro") && ls.contains("path=/home/ro"), "{ls}");
    assert_eq!(c.cli(&["-n", "client.ro", "status"]).code, 0, "read allowed");
    let w = c.cli(&["-n", "client.ro", "osd", "pool", "create", "p"]);
    assert!(w.stderr.starts_with("Error EACCES"), "write refused: {}", w.stderr);
    let bad = c.cli(&["auth", "add", "client.bad", "--caps", "mds=allow everything"]);
    assert!(bad.stderr.starts_with("Error EINVAL"), "{}", bad.stderr);
    assert_eq!(c.cli(&["auth", "rm", "client.ro"]).code, 0);
    let r = c.cli(&["-n", "client.ro", "--set", "mon_command_timeout=2", "status"]);
    assert_ne!(r.code, 0, "removed client refused");
    let log = std::fs::read_to_string(c.log("mon.a")).unwrap_or_default();
    assert!(log.contains("client.ro not authorized"), "{log}");
}
