//! The messenger in one process: two endpoints with certificates from a real
//! cluster directory exchange requests, replies and one-way messages under fault
//! rules, across a restart of the serving side.
mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cephr::auth::Identity;
use cephr::ids::EntityName;
use cephr::msg::{CommandReply, Message, MonCommand};
use cephr::net::{FaultRules, Messenger, MsgrOptions, NetError};

fn opts() -> MsgrOptions {
    MsgrOptions::from_options(&cephr::config::Options::for_profile(cephr::config::Profile::Fast))
}

fn ident(c: &harness::Cluster, e: &str) -> Identity {
    Identity::load(&c.key_dir(), &e.parse().expect("name")).expect("identity")
}

/// Serves `addr` as mon.a: answers every MMonCommand with "pong", echoes MMonRaft
/// payloads back as one-way messages.
fn serve(id: &Identity, addr: SocketAddr) -> Messenger {
    let (m, rx) = Messenger::bind(id, addr, true, opts(), FaultRules::default()).expect("bind");
    serve_with(m, rx)
}

/// Serves on a bound messenger (see `serve`).
fn serve_with(m: Messenger, mut rx: tokio::sync::mpsc::UnboundedReceiver<cephr::net::Incoming>) -> Messenger {
    tokio::spawn(async move {
        while let Some(inc) = rx.recv().await {
            match inc.msg {
                Message::MMonCommand(_) => inc.reply(Message::MMonCommandReply(Ok(CommandReply::Done("pong".into())))),
                Message::MMonRaft { data } => {
                    let _ = inc.conn.send(Message::MMonRaft { data });
                }
                _ => {}
            }
        }
    });
    m
}

fn ping() -> Message {
    Message::MMonCommand(MonCommand::Status)
}

/// That requests are answered, faults cut/drop/delay the named link only, messages
/// on one connection arrive in order, oversized messages are refused locally, and a
/// client reconnects by itself after the server restarts on the same address.
#[test]
fn t10_requests_faults_order_and_reconnect() {
    let c = harness::Cluster::create(&["a"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let mon = EntityName::mon("a");
        let server = serve(&ident(&c, "mon.a"), "127.0.0.1:0".parse().expect("a"));
        let addr = server.local_addr();
        let (client, mut inbox) =
            Messenger::bind(&ident(&c, "client.admin"), "127.0.0.1:0".parse().expect("a"), false, opts(), FaultRules::default())
                .expect("client");
        let t = Duration::from_secs(2);

        eprintln!("--- request/reply");
        let r = client.request(&mon, addr, ping(), t).await.expect("reply");
        assert!(matches!(r, Message::MMonCommandReply(Ok(CommandReply::Done(ref s))) if s == "pong"));

        eprintln!("--- cut, then heal");
        client.set_faults(FaultRules::parse("cut client.admin<->mon.a").expect("rule"));
        let e = client.request(&mon, addr, ping(), Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
        client.set_faults(FaultRules::parse("drop 1 mon.*->client.*").expect("rule"));
        assert!(client.request(&mon, addr, ping(), Duration::from_millis(300)).await.is_err(), "replies dropped");
        client.set_faults(FaultRules::parse("cut client.admin->osd.1").expect("rule"));
        client.request(&mon, addr, ping(), t).await.expect("other links unaffected");

        eprintln!("--- delay");
        client.set_faults(FaultRules::parse("delay 150 client.admin->mon.a").expect("rule"));
        let start = Instant::now();
        client.request(&mon, addr, ping(), t).await.expect("delayed reply");
        assert!(start.elapsed() >= Duration::from_millis(150), "delay applied");
        client.set_faults(FaultRules::default());

        eprintln!("--- ordering of one-way messages");
        let conn = client.connect(&mon, addr, true).await.expect("conn");
        for i in 0..500u32 {
            conn.send(Message::MMonRaft { data: i.to_be_bytes().to_vec() }).expect("send");
        }
        for want in 0..500u32 {
            let inc = tokio::time::timeout(t, inbox.recv()).await.expect("in time").expect("msg");
            let Message::MMonRaft { data } = inc.msg else { panic!("unexpected {}", inc.msg.name()) };
            assert_eq!(data, want.to_be_bytes().to_vec(), "in order");
        }

        eprintln!("--- bulk traffic goes in large datagrams");
        for _ in 0..20 {
            conn.send(Message::MMonRaft { data: vec![7u8; 4 << 20] }).expect("send");
            let inc = tokio::time::timeout(t, inbox.recv()).await.expect("in time").expect("echo");
            assert!(matches!(&inc.msg, Message::MMonRaft { data } if data.len() == 4 << 20));
        }
        let st = conn.stats();
        eprintln!("path MTU {}, sent {:?}, lost {}, black holes {}", st.path.current_mtu, st.udp_tx, st.path.lost_packets, st.path.black_holes_detected);
        // 1,200-byte packets (what a path that fell back after losses uses) would average
        // ~1,200; on loopback the floor is 16,000 and discovery climbs to 64 KiB.
        assert!(st.udp_tx.bytes / st.udp_tx.datagrams.max(1) >= 8_000, "datagrams too small: {:?}", st.udp_tx);
        eprintln!("--- frame limit");
        let huge = Message::MMonRaft { data: vec![0u8; 70 << 20] };
        assert!(matches!(conn.send(huge), Err(NetError::Encode(_))));

        eprintln!("--- server restarts on the same address");
        server.shutdown();
        drop(server);
        // The old endpoint's socket closes once its driver has noticed: retry the bind
        // for a while (under load it can take longer than a moment).
        let mut rebound = None;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok((m, rx)) = Messenger::bind(&ident(&c, "mon.a"), addr, true, opts(), FaultRules::default()) {
                rebound = Some(serve_with(m, rx));
                break;
            }
        }
        let server = rebound.expect("the address is free again within 5 s");
        let r = client.request(&mon, addr, ping(), Duration::from_secs(5)).await;
        assert!(r.is_ok(), "reconnected: {r:?}");
        server.shutdown();
    });
}

/// That a client refuses a server whose certificate names another entity than the
/// one it dialled (no impersonation of monitors).
#[test]
fn t20_server_identity_checked() {
    let c = harness::Cluster::create(&["a", "b", "c"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let server = serve(&ident(&c, "mon.b"), "127.0.0.1:0".parse().expect("a"));
        let (client, _rx) =
            Messenger::bind(&ident(&c, "client.admin"), "127.0.0.1:0".parse().expect("a"), false, opts(), FaultRules::default())
                .expect("client");
        let e = client.connect(&EntityName::mon("a"), server.local_addr(), false).await.unwrap_err();
        assert!(matches!(e, NetError::Connect { .. }), "{e}");
        client.connect(&EntityName::mon("b"), server.local_addr(), false).await.expect("right name accepted");
    });
}

/// A UDP relay between one client and `server`: records whether any datagram carried
/// `marker` in the clear and, while `corrupt` is above zero, flips a byte inside the
/// marker of client datagrams that carry it (counting down).
struct Relay {
    addr: SocketAddr,
    saw_marker: std::sync::Arc<std::sync::atomic::AtomicBool>,
    corrupt: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn relay(server: SocketAddr, marker: &'static [u8]) -> Relay {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("relay bind");
    let addr = sock.local_addr().expect("relay addr");
    let saw_marker = Arc::new(AtomicBool::new(false));
    let corrupt = Arc::new(AtomicU32::new(0));
    let (saw, cor) = (saw_marker.clone(), corrupt.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let mut client: Option<SocketAddr> = None;
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let d = &mut buf[..n];
            let at = find(d, marker);
            if at.is_some() {
                saw.store(true, Ordering::Relaxed);
            }
            let to = if from == server {
                match client {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                client = Some(from);
                if let Some(i) = at {
                    if cor.load(Ordering::Relaxed) > 0 {
                        cor.fetch_sub(1, Ordering::Relaxed);
                        d[i + 3] ^= 0x20;
                    }
                }
                server
            };
            let _ = sock.send_to(d, to).await;
        }
    });
    Relay { addr, saw_marker, corrupt }
}

fn opts_mode(mode: &str) -> MsgrOptions {
    let mut o = cephr::config::Options::for_profile(cephr::config::Profile::Fast);
    o.ms_mode = mode.into();
    MsgrOptions::from_options(&o)
}

/// That `ms_mode` decides what protects packets after the authenticated handshake:
/// in `crc` mode the data crosses the wire in the clear and a corrupted datagram is
/// refused (its CRC-32C fails) and sent again, so the message still arrives intact;
/// in `secure` mode nothing readable crosses; a server set to `secure` refuses a `crc`
/// client with a clear error; connections to monitors stay `secure` whatever the mode.
#[test]
fn t30_wire_modes() {
    const MARKER: &[u8] = b"cephr-wire-mode-marker";
    let c = harness::Cluster::create_with(&["a"], 1);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let t = Duration::from_secs(3);
        let any = || "127.0.0.1:0".parse::<SocketAddr>().expect("addr");
        let payload: Vec<u8> = MARKER.iter().copied().cycle().take(200_000).collect();
        let osd = EntityName::osd(0);
        let bind = |who: &str, mode: &str, serve: bool| {
            Messenger::bind(&ident(&c, who), any(), serve, opts_mode(mode), FaultRules::default()).expect("bind")
        };
        // One echo exchange through a relay; returns whether the marker was seen.
        async fn echo(client: &Messenger, inbox: &mut tokio::sync::mpsc::UnboundedReceiver<cephr::net::Incoming>, peer: &EntityName, r: &Relay, data: &[u8], t: Duration) -> bool {
            let conn = client.connect(peer, r.addr, true).await.expect("connect");
            conn.send(Message::MMonRaft { data: data.to_vec() }).expect("send");
            let inc = tokio::time::timeout(t, inbox.recv()).await.expect("echo in time").expect("echo");
            assert!(matches!(&inc.msg, Message::MMonRaft { data: d } if d == data), "echo intact");
            r.saw_marker.load(std::sync::atomic::Ordering::Relaxed)
        }

        eprintln!("--- crc: readable on the wire, corruption detected and repaired");
        let (sm, srx) = bind("osd.0", "crc", true);
        let server = serve_with(sm, srx);
        let r = relay(server.local_addr(), MARKER).await;
        r.corrupt.store(3, std::sync::atomic::Ordering::Relaxed);
        let (client, mut inbox) = bind("client.admin", "crc", false);
        assert_eq!(client.wire_mode(), cephr::net::WireMode::Crc);
        assert!(echo(&client, &mut inbox, &osd, &r, &payload, t).await, "crc mode sends data in the clear");
        assert_eq!(r.corrupt.load(std::sync::atomic::Ordering::Relaxed), 0, "three datagrams were corrupted on the way");

        eprintln!("--- secure client to a crc server: encrypted");
        let r = relay(server.local_addr(), MARKER).await;
        let (client, mut inbox) = bind("client.admin", "secure", false);
        assert!(!echo(&client, &mut inbox, &osd, &r, &payload, t).await, "secure mode hides the data");

        eprintln!("--- monitors: secure whatever ms_mode says");
        let (mm, mrx) = bind("mon.a", "crc", true);
        let mon = serve_with(mm, mrx);
        let r = relay(mon.local_addr(), MARKER).await;
        let (client, mut inbox) = bind("client.admin", "crc", false);
        assert!(!echo(&client, &mut inbox, &EntityName::mon("a"), &r, &payload, t).await, "monitor traffic encrypted");

        eprintln!("--- crc client to a secure server: refused");
        let (sm, srx) = bind("osd.0", "secure", true);
        let strict = serve_with(sm, srx);
        let (client, _inbox) = bind("client.admin", "crc", false);
        let e = client.connect(&osd, strict.local_addr(), false).await.unwrap_err();
        assert!(matches!(e, NetError::Connect { .. }) && e.to_string().contains("accepts only ms_mode = \"secure\""), "{e}");
        eprintln!("refused: {e}");
        let (client, mut inbox) = bind("client.admin", "secure", false);
        let r = relay(strict.local_addr(), MARKER).await;
        assert!(!echo(&client, &mut inbox, &osd, &r, &payload, t).await);
    });
}

/// Byte `i` of test stream `s` (not periodic at any block size).
fn pattern(s: usize, i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 11) ^ s.wrapping_mul(0x9e)) as u8
}

/// That received stream data stays intact while it is held: quinn (vendor/quinn)
/// receives datagrams into shared blocks without copying them and reuses a block only
/// once every slice of it is dropped. The receiver starts reading late (the data waits
/// in quinn's buffers), keeps every chunk it reads until all streams are complete —
/// far more blocks than quinn keeps spare — and only then checks every byte.
#[test]
fn t40_received_chunks_stay_intact() {
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let der = ck.cert.der().clone();
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
        let scfg = quinn::ServerConfig::with_single_cert(vec![der.clone()], key.into()).expect("server config");
        let server = quinn::Endpoint::server(scfg, "127.0.0.1:0".parse().expect("a")).expect("server");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("root");
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().expect("a")).expect("client");
        client.set_default_client_config(quinn::ClientConfig::with_root_certificates(Arc::new(roots)).expect("client config"));
        let addr = server.local_addr().expect("addr");

        const STREAMS: usize = 4;
        const LEN: usize = 12 << 20;
        let sender = tokio::spawn(async move {
            let conn = client.connect(addr, "localhost").expect("connect").await.expect("handshake");
            let mut tasks = Vec::new();
            for s in 0..STREAMS {
                let conn = conn.clone();
                tasks.push(tokio::spawn(async move {
                    let mut send = conn.open_uni().await.expect("open");
                    let data: Vec<u8> = (0..LEN).map(|i| pattern(s, i)).collect();
                    // Writes from one byte to 200 KiB: tiny frames and full datagrams.
                    let (mut at, mut step) = (0usize, 1usize + s);
                    while at < LEN {
                        let n = step.min(LEN - at);
                        send.write_all(&data[at..at + n]).await.expect("write");
                        at += n;
                        step = if step > 200 << 10 { 1 + at % 7 } else { step * 3 + 1 };
                    }
                    send.finish().expect("finish");
                    send.stopped().await.expect("stopped");
                }));
            }
            for t in tasks {
                t.await.expect("sender");
            }
            conn.close(0u32.into(), b"done");
            client.wait_idle().await;
        });

        let conn = server.accept().await.expect("incoming").await.expect("accepted");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut readers = Vec::new();
        for _ in 0..STREAMS {
            let mut recv = conn.accept_uni().await.expect("stream");
            readers.push(tokio::spawn(async move {
                let mut chunks = Vec::new();
                while let Some(c) = recv.read_chunk(usize::MAX, true).await.expect("read") {
                    chunks.push(c.bytes);
                }
                chunks
            }));
        }
        let mut held = Vec::new();
        for r in readers {
            held.push(r.await.expect("reader"));
        }
        tokio::time::timeout(Duration::from_secs(30), sender).await.expect("sent in time").expect("sender");
        // Which stream is which: the first byte of each stream's pattern differs.
        let mut seen = [false; STREAMS];
        for chunks in &held {
            let total: usize = chunks.iter().map(|c| c.len()).sum();
            assert_eq!(total, LEN, "a whole stream");
            let s = (0..STREAMS).find(|&s| chunks[0][0] == pattern(s, 0) && !seen[s]).expect("a known stream");
            seen[s] = true;
            let mut i = 0;
            for c in chunks {
                for &b in c.iter() {
                    assert_eq!(b, pattern(s, i), "stream {s} byte {i}");
                    i += 1;
                }
            }
        }
        eprintln!("{} chunks held and checked", held.iter().map(Vec::len).sum::<usize>());
        server.close(0u32.into(), b"done");
    });
}
