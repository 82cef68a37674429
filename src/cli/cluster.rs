//! `cephr cluster create`: a new cluster directory with its fsid, CA, the keys of
//! every daemon and of client.admin, and a `cephr.toml` on 127.0.0.1.
use std::fmt::Write as _;
use std::path::Path;

use super::ClusterCmd;
use cephr::auth::ClusterCa;
use cephr::config::Profile;
use cephr::error::CmdError;
use cephr::ids::EntityName;

pub fn run(c: &ClusterCmd) -> anyhow::Result<()> {
    let ClusterCmd::Create { dir, mons, profile, port_base, osds, mds, fs } = c;
    if let Some(f) = fs {
        if f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(CmdError::einval(format!("--fs '{f}': use letters, digits, '_' and '-'")).into());
        }
        if *mds == 0 {
            return Err(CmdError::einval("--fs needs at least one MDS (--mds N)").into());
        }
    }
    if *mds > 26 {
        return Err(CmdError::einval(format!("--mds {mds}: at most 26 MDS daemons (mds.a .. mds.z)")).into());
    }
    let profile: Profile = profile.parse().map_err(|e: cephr::config::ConfigError| CmdError::einval(e.to_string()))?;
    if ![1, 3, 5].contains(&mons.len()) {
        return Err(CmdError::einval(format!("a monitor quorum has 1, 3 or 5 members, not {}", mons.len())).into());
    }
    let mut names = Vec::new();
    for m in mons {
        names.push(EntityName::new(cephr::ids::EntityKind::Mon, m.as_str()).map_err(|e| CmdError::einval(e.to_string()))?);
    }
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let conf = dir.join("cephr.toml");
    if conf.exists() {
        return Err(CmdError::eexist(format!("a cluster already exists at {}", dir.display())).into());
    }
    let fsid = uuid::Uuid::new_v4().to_string();
    let keys = dir.join("keys");
    let ca = ClusterCa::create(&keys, &fsid)?;
    let osd_names: Vec<EntityName> = (0..*osds).map(EntityName::osd).collect();
    let mds_ids: Vec<String> = (0..*mds as u8).map(|i| char::from(b'a' + i).to_string()).collect();
    let mds_names: Vec<EntityName> = mds_ids.iter().map(|i| EntityName::mds(i)).collect();
    for e in names.iter().chain(&osd_names).chain(&mds_names).chain([&EntityName::client("admin")]) {
        ca.issue(&keys, e)?;
    }
    let ports = pick_ports(names.len() + osd_names.len() + mds_names.len(), *port_base)?;
    let (mon_ports, rest) = ports.split_at(names.len());
    let (osd_ports, mds_ports) = rest.split_at(osd_names.len());
    let mut text = render(&dir, &fsid, profile, fs.as_deref(), mons, mon_ports);
    for (i, port) in osd_ports.iter().enumerate() {
        let _ = write!(
            text,
            "\n[osd.{i}]\naddr = \"127.0.0.1:{port}\"\ndata = \"{}\"\nhost = \"host-{i}\"\n",
            dir.join(format!("osd.{i}")).display()
        );
    }
    for (id, port) in mds_ids.iter().zip(mds_ports) {
        let _ = write!(
            text,
            "\n[mds.{id}]\naddr = \"127.0.0.1:{port}\"\ndata = \"{}\"\n",
            dir.join(format!("mds.{id}")).display()
        );
    }
    text.push_str("\n[global]\n");
    std::fs::write(&conf, text)?;
    println!("created cluster {fsid} in {}", dir.display());
    Ok(())
}

/// Free UDP ports for the daemons, below the kernel's ephemeral range when there is
/// room: a port the system hands out for outgoing connections (every CLI call and
/// client makes some) may be taken by one before the daemon starts and binds it
/// (seen in CI: an MDS started 2 s after `cluster create` found its port in use).
fn pick_ports(n: usize, base: Option<u16>) -> anyhow::Result<Vec<u16>> {
    if let Some(b) = base {
        return Ok((0..n as u16).map(|i| b + i).collect());
    }
    const FLOOR: u32 = 10_000;
    let ephemeral_lo = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse::<u32>().ok()))
        .unwrap_or(32_768);
    let mut socks: Vec<std::net::UdpSocket> = Vec::new();
    if ephemeral_lo > FLOOR + 1_000 {
        let span = ephemeral_lo - FLOOR;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let mut x = u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1;
        for _ in 0..1_000 {
            if socks.len() == n {
                break;
            }
            // xorshift: a different start per call, so clusters made at once differ.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = FLOOR + (x % u64::from(span)) as u32;
            if let Ok(s) = std::net::UdpSocket::bind(("127.0.0.1", port as u16)) {
                socks.push(s);
            }
        }
    }
    while socks.len() < n {
        socks.push(std::net::UdpSocket::bind("127.0.0.1:0")?);
    }
    socks.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

fn render(dir: &Path, fsid: &str, profile: Profile, fs: Option<&str>, mons: &[String], ports: &[u16]) -> String {
    let p = match profile {
        Profile::Default => "default",
        Profile::Fast => "fast",
    };
    let mut s = format!(
        "# cephr cluster configuration, written by `cephr cluster create`.\n\
         # Options go under [global]; see etc/cephr.toml for every option and its default.\n\
         fsid = \"{fsid}\"\nprofile = \"{p}\"\nkey_dir = \"{}\"\nrun_dir = \"{}\"\n\n",
        dir.join("keys").display(),
        dir.display()
    );
    if let Some(f) = fs {
        let _ = writeln!(s, "# The monitors create this file system when the cluster first forms.\nfs = \"{f}\"\n");
    }
    for (m, port) in mons.iter().zip(ports) {
        let _ = writeln!(
            s,
            "[mon.{m}]\naddr = \"127.0.0.1:{port}\"\ndata = \"{}\"\n",
            dir.join(format!("mon.{m}")).display()
        );
    }
    s
}
