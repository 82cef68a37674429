//! Identities: entity names (`mon.a`, `osd.3`, `mds.b`, `client.admin`) and entity
//! addresses (socket address + per-process nonce, the unit of blocklisting).
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::error::ParseError;

/// Serializes a type as its `Display` text and parses it back with `FromStr`, so it
/// reads naturally in JSON and can key maps in every format.
#[macro_export]
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The four kinds of entity that talk on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    Mon,
    Osd,
    Mds,
    Client,
}

impl EntityKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityKind::Mon => "mon",
            EntityKind::Osd => "osd",
            EntityKind::Mds => "mds",
            EntityKind::Client => "client",
        }
    }
}

/// `kind.id`, e.g. `mon.a`. The id is 1..=64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityName {
    pub kind: EntityKind,
    pub id: String,
}

impl EntityName {
    pub fn new(kind: EntityKind, id: impl Into<String>) -> Result<Self, ParseError> {
        let id = id.into();
        validate_id(&id)?;
        Ok(EntityName { kind, id })
    }
    pub fn mon(id: &str) -> Self {
        EntityName { kind: EntityKind::Mon, id: id.to_string() }
    }
    pub fn osd(id: u32) -> Self {
        EntityName { kind: EntityKind::Osd, id: id.to_string() }
    }
    pub fn mds(id: &str) -> Self {
        EntityName { kind: EntityKind::Mds, id: id.to_string() }
    }
    pub fn client(id: &str) -> Self {
        EntityName { kind: EntityKind::Client, id: id.to_string() }
    }
    pub fn is_daemon(&self) -> bool {
        self.kind != EntityKind::Client
    }
    /// The DNS-style name put in certificates and used as TLS server name.
    /// A suffix keeps names like `osd.0` (numeric last label) valid DNS names.
    pub fn tls_name(&self) -> String {
        format!("{}.{}.cephr", self.id, self.kind.as_str())
    }
}

fn validate_id(id: &str) -> Result<(), ParseError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ParseError::new("entity id", id, "must be 1 to 64 characters"));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(ParseError::new("entity id", id, "may hold only letters, digits, '_' and '-'"));
    }
    Ok(())
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.as_str(), self.id)
    }
}

impl FromStr for EntityName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (kind, id) = s
            .split_once('.')
            .ok_or_else(|| ParseError::new("entity name", s, "expected TYPE.ID, e.g. client.admin"))?;
        let kind = match kind {
            "mon" => EntityKind::Mon,
            "osd" => EntityKind::Osd,
            "mds" => EntityKind::Mds,
            "client" => EntityKind::Client,
            _ => return Err(ParseError::new("entity name", s, "type must be mon, osd, mds or client")),
        };
        if kind == EntityKind::Osd && id.parse::<u32>().is_err() {
            return Err(ParseError::new("entity name", s, "an osd id is a number"));
        }
        EntityName::new(kind, id)
    }
}

serde_as_text!(EntityName);

/// A process instance: where it listens (or connects from) plus a random nonce chosen
/// at start. Blocklisting works on this, so a restarted daemon is a new instance.
/// A nonce of 0 in a blocklist entry matches every instance at that address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityAddr {
    pub addr: SocketAddr,
    pub nonce: u64,
}

impl EntityAddr {
    pub fn matches(&self, other: &EntityAddr) -> bool {
        self.addr == other.addr && (self.nonce == 0 || self.nonce == other.nonce)
    }
}

impl fmt::Display for EntityAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.nonce)
    }
}

impl FromStr for EntityAddr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (a, n) = match s.rsplit_once('/') {
            Some((a, n)) => (a, n),
            None => (s, "0"),
        };
        let addr = a
            .parse()
            .map_err(|_| ParseError::new("address", s, "expected IP:PORT[/NONCE]"))?;
        let nonce = n
            .parse()
            .map_err(|_| ParseError::new("address", s, "the nonce after '/' is a number"))?;
        Ok(EntityAddr { addr, nonce })
    }
}

serde_as_text!(EntityAddr);

pub type OsdId = u32;
pub type PoolId = u64;
pub type Fscid = u64;
pub type Rank = u32;
/// Global id of an MDS daemon instance (new at each start).
pub type Gid = u64;
pub type Epoch = u64;

#[cfg(test)]
mod tests {
    use super::*;

    /// That entity names round-trip through text and bad ones are refused.
    #[test]
    fn entity_names_parse() {
        for s in ["mon.a", "osd.12", "mds.b-1", "client.admin"] {
            assert_eq!(s.parse::<EntityName>().unwrap().to_string(), s);
        }
        for s in ["mon", "foo.a", "osd.x", "client.", "client.a b", "mds.a.b"] {
            assert!(s.parse::<EntityName>().is_err(), "{s}");
        }
    }

    /// That entity addresses parse with and without nonce, and nonce 0 matches all.
    #[test]
    fn entity_addrs_parse_and_match() {
        let a: EntityAddr = "127.0.0.1:6800/42".parse().unwrap();
        let any: EntityAddr = "127.0.0.1:6800".parse().unwrap();
        assert_eq!(a.nonce, 42);
        assert!(any.matches(&a));
        assert!(!a.matches(&"127.0.0.1:6800/43".parse().unwrap()));
        assert!("nonsense".parse::<EntityAddr>().is_err());
    }
}
