//! The Locker's recovery events: caps a client brings back when it reconnects to a
//! new active MDS (seed 000, `up:reconnect`), the lock states chosen from them once
//! every client has reconnected (`up:rejoin`), and the questions the stray manager
//! asks before it purges an unlinked inode (is it still in use? take back the caps of
//! clients that merely know it).
use super::{Capability, ClientId, Command, InodeInfo, Locker};
use crate::msg::caps::Caps;
use crate::msg::mds::Ino;
use crate::roles::mds::locks::{LockKind, LockState};

/// One cap as a reconnecting client reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reclaimed {
    pub ino: Ino,
    pub info: InodeInfo,
    /// What the old MDS had issued to the client.
    pub issued: Caps,
    /// What its open files want.
    pub wanted: Caps,
    /// The last cap seq the client saw: new grants must be numbered above it.
    pub seq: u64,
    /// Its writable range (max_size), 0 for none.
    pub max_size: u64,
}

impl Locker {
    /// Whether some client still uses `ino`: has it open (wants more than a pin). A
    /// writer reports its size before it stops wanting `Fw` (close flushes first), so
    /// a writable range left behind does not count.
    pub fn in_use(&self, ino: Ino) -> bool {
        self.inodes.get(&ino).is_some_and(|il| il.caps.values().any(|c| c.wanted.intersects(!Caps::PIN)))
    }

    /// Takes back every cap on `ino` at once (revoked to nothing, forgotten): for an
    /// unlinked inode nobody uses any more, before it is purged. Their acks find no
    /// cap and are ignored.
    pub fn drop_idle_caps(&mut self, ino: Ino) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(il) = self.inodes.get_mut(&ino) else { return out };
        for (client, cap) in std::mem::take(&mut il.caps) {
            out.push(Command::Caps {
                client,
                ino,
                revoke: true,
                caps: Caps::NONE,
                wanted: Caps::NONE,
                seq: cap.seq + 1,
                max_size: 0,
            });
        }
        il.loner = None;
        self.eval(ino, &mut out);
        out
    }

    /// A reconnecting client holds this cap: it is taken as issued (the old MDS gave
    /// it), and sorted out by `settle_reconnected` once every client is back.
    pub fn reconnect_cap(&mut self, client: &str, r: Reclaimed) {
        let il = self.entry(r.ino, Some(r.info));
        let issued = r.issued | Caps::PIN;
        let cap = Capability { issued, pending: issued, wanted: r.wanted | Caps::PIN, seq: r.seq, ..Default::default() };
        il.caps.insert(client.to_string(), cap);
        if r.max_size > 0 && issued.contains(Caps::FILE_WR) {
            il.ranges.insert(client.to_string(), r.max_size);
        }
    }

    /// Reconnect is over: each inode's locks start in the state its reclaimed caps
    /// imply (excl for a lone holder of exclusive or buffer caps, mix for writers,
    /// else sync), then are driven as usual, which revokes what no longer fits.
    pub fn settle_reconnected(&mut self) -> Vec<Command> {
        let mut inos: Vec<Ino> = self.inodes.keys().copied().collect();
        inos.sort_unstable();
        let mut out = Vec::new();
        for ino in inos {
            if let Some(il) = self.inodes.get_mut(&ino) {
                let (states, loner) = initial_states(&il.caps);
                il.state = states;
                il.loner = loner;
            }
            self.eval(ino, &mut out);
        }
        out
    }
}

/// Lock states (and loner) that fit the caps clients reclaimed on one inode.
fn initial_states(caps: &std::collections::BTreeMap<ClientId, Capability>) -> ([LockState; 4], Option<ClientId>) {
    let mut states = [LockState::Sync; 4];
    let excl_of = |k: LockKind| {
        let bits = match k {
            LockKind::File => Caps::FILE_EXCL | Caps::FILE_BUFFER,
            _ => Caps::gen(crate::msg::caps::GEXCL, k.shift()),
        };
        caps.iter().filter(|(_, c)| c.issued.intersects(bits)).map(|(id, _)| id.clone()).collect::<Vec<_>>()
    };
    let mut loner = None;
    for k in LockKind::ALL {
        let holders = excl_of(k);
        if let [only] = holders.as_slice() {
            if loner.as_ref().is_none_or(|l| l == only) {
                loner = Some(only.clone());
                states[k.index()] = LockState::Excl;
                continue;
            }
        }
        let writers = caps.values().any(|c| c.issued.contains(Caps::FILE_WR));
        if k == LockKind::File && writers {
            states[k.index()] = LockState::Mix;
        }
    }
    (states, loner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::mds::locker::LockMode;

    fn c(s: &str) -> Caps {
        Caps::parse(s).expect("caps")
    }
    const FILE: InodeInfo = InodeInfo { is_dir: false, size: 10 };

    fn reclaim(ino: Ino, issued: &str, wanted: &str, seq: u64, max_size: u64) -> Reclaimed {
        Reclaimed { ino, info: FILE, issued: c(issued), wanted: c(wanted), seq, max_size }
    }

    /// That a lone writer's reclaimed loner caps survive reconnect without a revoke
    /// (excl for it), and that grants after it are numbered above its old seq.
    #[test]
    fn lone_writer_keeps_its_caps() {
        let mut l = Locker::new();
        let rw = Caps::for_mode(crate::msg::caps::FileMode { read: true, write: true });
        l.reconnect_cap("a", Reclaimed { wanted: rw, ..reclaim(5, "pAsxLsXsxFsxcrwb", "-", 7, 1 << 26) });
        let cmds = l.settle_reconnected();
        assert!(cmds.iter().all(|c| !matches!(c, Command::Caps { revoke: true, .. })), "{cmds:?}");
        assert_eq!(l.state(5, LockKind::File), LockState::Excl);
        assert_eq!(l.loner(5), Some("a"));
        assert!(l.cap("a", 5).is_some_and(|cap| cap.issued.contains(c("Fxwb")) && cap.seq >= 7));
        assert_eq!(l.ranges(5).get("a"), Some(&(1 << 26)));
        let more = l.issue("a", 5, FILE, None);
        for cmd in more {
            if let Command::Caps { seq, .. } = cmd {
                assert!(seq > 7);
            }
        }
    }

    /// That two clients reclaiming shared read caps settle in sync with nothing
    /// revoked, and that two reclaimed writers end in mix, neither caching nor
    /// buffering.
    #[test]
    fn readers_sync_writers_mix() {
        let mut l = Locker::new();
        l.reconnect_cap("a", reclaim(5, "pAsLsXsFscr", "Fscr", 3, 0));
        l.reconnect_cap("b", reclaim(5, "pAsLsXsFscr", "Fscr", 4, 0));
        let cmds = l.settle_reconnected();
        assert!(cmds.iter().all(|c| !matches!(c, Command::Caps { revoke: true, .. })), "{cmds:?}");
        assert_eq!(l.state(5, LockKind::File), LockState::Sync);
        let mut w = Locker::new();
        w.reconnect_cap("a", reclaim(6, "pFrw", "Fscrwb", 3, 1 << 26));
        w.reconnect_cap("b", reclaim(6, "pFrw", "Fscrwb", 3, 1 << 26));
        w.settle_reconnected();
        assert_eq!(w.state(6, LockKind::File), LockState::Mix);
        for who in ["a", "b"] {
            let cap = w.cap(who, 6).expect("cap");
            assert!(cap.pending.contains(c("Frw")) && !cap.pending.intersects(c("Fcb")), "{who}: {cap:?}");
        }
    }

    /// That an inode counts as in use while a client has it open or holds a range,
    /// and that dropping idle caps revokes them to nothing and forgets them.
    #[test]
    fn in_use_and_idle_drop() {
        let mut l = Locker::new();
        l.issue("a", 9, FILE, None);
        assert!(!l.in_use(9), "a lookup only pins it");
        l.issue("b", 9, FILE, Some(crate::msg::caps::FileMode { read: true, write: false }));
        assert!(l.in_use(9));
        l.update_wanted("b", 9, Caps::NONE);
        assert!(!l.in_use(9));
        let cmds = l.drop_idle_caps(9);
        let revoked: Vec<&str> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::Caps { client, revoke: true, caps, .. } if *caps == Caps::NONE => Some(client.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(revoked, vec!["a", "b"]);
        assert_eq!(l.cap_holders(9), 0);
        assert!(l.ack("a", 9, 99, Caps::NONE, None).is_empty(), "a late ack finds no cap");
        let (got, _) = l.acquire(1, "a", &[(9, LockKind::Link, LockMode::X)]);
        assert!(matches!(got, crate::roles::mds::locker::Acquire::Granted(_)));
    }
}
