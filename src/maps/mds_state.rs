//! MDS daemon states and the one legal-transition function shared by the monitor
//! (checking a beacon's wanted state) and the MDS (checking a new MDSMap).
//! The edges are Ceph's documented "MDS states" diagram.
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MdsState {
    Boot,
    Standby,
    StandbyReplay,
    Creating,
    Starting,
    Replay,
    Resolve,
    Reconnect,
    Rejoin,
    ClientReplay,
    Active,
    Stopping,
    Stopped,
    Damaged,
}

impl MdsState {
    pub const ALL: [MdsState; 14] = [
        MdsState::Boot,
        MdsState::Standby,
        MdsState::StandbyReplay,
        MdsState::Creating,
        MdsState::Starting,
        MdsState::Replay,
        MdsState::Resolve,
        MdsState::Reconnect,
        MdsState::Rejoin,
        MdsState::ClientReplay,
        MdsState::Active,
        MdsState::Stopping,
        MdsState::Stopped,
        MdsState::Damaged,
    ];

    /// Ceph's spelling: `up:active`, `up:standby`, `down:damaged`, `boot`.
    pub fn name(&self) -> &'static str {
        match self {
            MdsState::Boot => "up:boot",
            MdsState::Standby => "up:standby",
            MdsState::StandbyReplay => "up:standby-replay",
            MdsState::Creating => "up:creating",
            MdsState::Starting => "up:starting",
            MdsState::Replay => "up:replay",
            MdsState::Resolve => "up:resolve",
            MdsState::Reconnect => "up:reconnect",
            MdsState::Rejoin => "up:rejoin",
            MdsState::ClientReplay => "up:clientreplay",
            MdsState::Active => "up:active",
            MdsState::Stopping => "up:stopping",
            MdsState::Stopped => "down:stopped",
            MdsState::Damaged => "down:damaged",
        }
    }

    /// True for the states in which a daemon holds a rank.
    pub fn holds_rank(&self) -> bool {
        matches!(
            self,
            MdsState::Creating
                | MdsState::Starting
                | MdsState::Replay
                | MdsState::Resolve
                | MdsState::Reconnect
                | MdsState::Rejoin
                | MdsState::ClientReplay
                | MdsState::Active
                | MdsState::Stopping
        )
    }
}

impl fmt::Display for MdsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a daemon may move from `from` to `to`. Staying put is always legal.
/// Exhaustive over the source state on purpose: a new state must be placed here.
pub fn state_transition_valid(from: MdsState, to: MdsState) -> bool {
    use MdsState::*;
    if from == to {
        return true;
    }
    let allowed: &[MdsState] = match from {
        Boot => &[Standby],
        Standby => &[Creating, Starting, Replay, StandbyReplay],
        StandbyReplay => &[Replay, Damaged],
        Creating => &[Active, Damaged],
        Starting => &[Active, Damaged],
        Replay => &[Resolve, Reconnect, Damaged],
        Resolve => &[Reconnect, Damaged],
        Reconnect => &[Rejoin, Damaged],
        Rejoin => &[ClientReplay, Active, Damaged],
        ClientReplay => &[Active, Damaged],
        Active => &[Stopping, Damaged],
        Stopping => &[Stopped, Damaged],
        Stopped => &[],
        Damaged => &[],
    };
    allowed.contains(&to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MdsState::*;

    /// The documented diagram, edge by edge (written out independently of the function).
    const LEGAL: &[(MdsState, MdsState)] = &[
        (Boot, Standby),
        (Standby, Creating),
        (Standby, Starting),
        (Standby, Replay),
        (Standby, StandbyReplay),
        (StandbyReplay, Replay),
        (Creating, Active),
        (Starting, Active),
        (Replay, Resolve),
        (Replay, Reconnect),
        (Resolve, Reconnect),
        (Reconnect, Rejoin),
        (Rejoin, ClientReplay),
        (Rejoin, Active),
        (ClientReplay, Active),
        (Active, Stopping),
        (Stopping, Stopped),
        (StandbyReplay, Damaged),
        (Creating, Damaged),
        (Starting, Damaged),
        (Replay, Damaged),
        (Resolve, Damaged),
        (Reconnect, Damaged),
        (Rejoin, Damaged),
        (ClientReplay, Damaged),
        (Active, Damaged),
        (Stopping, Damaged),
    ];

    /// That every one of the 14×14 pairs is legal exactly when it is an edge of the
    /// documented diagram or a non-move.
    #[test]
    fn transition_table_matches_the_diagram() {
        let mut legal = 0;
        for from in MdsState::ALL {
            for to in MdsState::ALL {
                let expect = from == to || LEGAL.contains(&(from, to));
                assert_eq!(state_transition_valid(from, to), expect, "{from} -> {to}");
                legal += expect as usize;
            }
        }
        assert_eq!(legal, 14 + LEGAL.len());
    }

    /// That once in replay a rank only moves forward through the recovery sequence.
    #[test]
    fn recovery_only_moves_forward() {
        let seq = [Replay, Resolve, Reconnect, Rejoin, ClientReplay, Active];
        for (i, a) in seq.iter().enumerate() {
            for b in &seq[..i] {
                assert!(!state_transition_valid(*a, *b), "{a} -> {b} must be illegal");
            }
        }
        assert!(!state_transition_valid(Active, Replay));
        assert!(!state_transition_valid(Standby, Active));
        assert!(!state_transition_valid(Damaged, Standby));
    }
}
