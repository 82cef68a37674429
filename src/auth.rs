//! Cluster identity: a per-cluster CA, one key+certificate per entity, and the
//! capability strings (`mds=allow rw path=/x`) the monitors record for clients.
//! The entity name lives in the certificate's common name; TLS server names are
//! `EntityName::tls_name()`.
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::ids::EntityName;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("key material {path}: {why}")]
    Io { path: String, why: String },
    #[error("certificate: {0}")]
    Cert(String),
    #[error("bad capability '{input}': {why}")]
    Caps { input: String, why: String },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Io { path: path.display().to_string(), why: e.to_string() }
}

fn cert_err(e: impl std::fmt::Display) -> AuthError {
    AuthError::Cert(e.to_string())
}

/// The cluster's certificate authority, as kept in the key directory.
pub struct ClusterCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca_params(fsid: &str) -> Result<CertificateParams, AuthError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("cephr cluster {fsid}"));
    dn.push(DnType::OrganizationName, "cephr");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(p)
}

impl ClusterCa {
    /// Makes a new CA for the cluster `fsid` and writes `ca.crt`/`ca.key` into `dir`.
    pub fn create(dir: &Path, fsid: &str) -> Result<ClusterCa, AuthError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = ca_params(fsid)?.self_signed(&key).map_err(cert_err)?;
        write_file(&dir.join("ca.crt"), cert.pem().as_bytes(), 0o644)?;
        write_file(&dir.join("ca.key"), key.serialize_pem().as_bytes(), 0o600)?;
        std::fs::write(dir.join("ca.fsid"), fsid).map_err(|e| io_err(dir, e))?;
        Ok(ClusterCa { cert, key })
    }

    /// Loads the CA key from `dir` (only the admin's cluster directory has it).
    /// The certificate object is re-made from the same name and key, so what it signs
    /// verifies against the `ca.crt` every daemon trusts.
    pub fn load(dir: &Path) -> Result<ClusterCa, AuthError> {
        let kp = dir.join("ca.key");
        let pem = std::fs::read_to_string(&kp).map_err(|e| io_err(&kp, e))?;
        let key = KeyPair::from_pem(&pem).map_err(cert_err)?;
        let fp = dir.join("ca.fsid");
        let fsid = std::fs::read_to_string(&fp).map_err(|e| io_err(&fp, e))?;
        let cert = ca_params(fsid.trim())?.self_signed(&key).map_err(cert_err)?;
        Ok(ClusterCa { cert, key })
    }

    /// Issues a key and certificate for `entity`, written as `NAME.key`/`NAME.crt`.
    pub fn issue(&self, dir: &Path, entity: &EntityName) -> Result<(), AuthError> {
        let mut p = CertificateParams::new(vec![entity.tls_name()]).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, entity.to_string());
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = p.signed_by(&key, &self.cert, &self.key).map_err(cert_err)?;
        write_file(&dir.join(format!("{entity}.crt")), cert.pem().as_bytes(), 0o644)?;
        write_file(&dir.join(format!("{entity}.key")), key.serialize_pem().as_bytes(), 0o600)?;
        Ok(())
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(data).map_err(|e| io_err(path, e))
}

/// What one process presents and trusts: its entity, certificate, key and the CA.
#[derive(Debug)]
pub struct Identity {
    pub entity: EntityName,
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub ca: CertificateDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            entity: self.entity.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            ca: self.ca.clone(),
        }
    }
}

impl Identity {
    /// Loads `NAME.crt`, `NAME.key` and `ca.crt` from the key directory.
    pub fn load(dir: &Path, entity: &EntityName) -> Result<Identity, AuthError> {
        Self::load_files(
            &dir.join(format!("{entity}.crt")),
            &dir.join(format!("{entity}.key")),
            &dir.join("ca.crt"),
        )
    }

    /// Loads explicit files; the entity is read from the certificate.
    pub fn load_files(cert: &Path, key: &Path, ca: &Path) -> Result<Identity, AuthError> {
        let c = CertificateDer::from_pem_file(cert).map_err(|e| io_err(cert, e))?;
        let k = PrivateKeyDer::from_pem_file(key).map_err(|e| io_err(key, e))?;
        let a = CertificateDer::from_pem_file(ca).map_err(|e| io_err(ca, e))?;
        let entity = entity_of(&c)?;
        Ok(Identity { entity, cert: c, key: k, ca: a })
    }
}

/// Reads the entity name from a certificate's common name.
pub fn entity_of(cert: &CertificateDer<'_>) -> Result<EntityName, AuthError> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(cert_err)?;
    let cn = x
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| AuthError::Cert("certificate has no common name".into()))?;
    cn.parse().map_err(cert_err)
}

pub fn key_dir_entity_files(dir: &Path, entity: &EntityName) -> (PathBuf, PathBuf) {
    (dir.join(format!("{entity}.crt")), dir.join(format!("{entity}.key")))
}

/// Access bits of one grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perm {
    pub r: bool,
    pub w: bool,
    pub x: bool,
}

/// `allow PERM [path=/p] [pool=name]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub perm: Perm,
    pub path: Option<String>,
    pub pool: Option<String>,
}

/// Parses a capability string of one service: grants separated by commas.
pub fn parse_caps(service: &str, input: &str) -> Result<Vec<Grant>, AuthError> {
    let bad = |why: &str| AuthError::Caps { input: format!("{service}={input}"), why: why.into() };
    if !["mon", "osd", "mds"].contains(&service) {
        return Err(bad("service must be mon, osd or mds"));
    }
    let mut grants = Vec::new();
    for part in input.split(',') {
        let mut words = part.split_whitespace();
        if words.next() != Some("allow") {
            return Err(bad("each grant starts with 'allow'"));
        }
        let perm = match words.next() {
            Some("*") => Perm { r: true, w: true, x: true },
            Some(p) if !p.is_empty() && p.chars().all(|c| "rwx".contains(c)) => {
                Perm { r: p.contains('r'), w: p.contains('w'), x: p.contains('x') }
            }
            _ => return Err(bad("permission must be r, w, x, a combination, or *")),
        };
        let mut g = Grant { perm, path: None, pool: None };
        for w in words {
            match w.split_once('=') {
                Some(("path", p)) if service == "mds" && p.starts_with('/') => {
                    g.path = Some(p.to_string())
                }
                Some(("pool", p)) if service == "osd" && !p.is_empty() => g.pool = Some(p.to_string()),
                _ => return Err(bad(&format!("unexpected '{w}' (mds takes path=/..., osd takes pool=...)"))),
            }
        }
        grants.push(g);
    }
    Ok(grants)
}

/// Whether `caps` (service → string) allow changing monitor state.
pub fn allows_mon_write(caps: &std::collections::BTreeMap<String, String>) -> bool {
    caps.get("mon")
        .and_then(|s| parse_caps("mon", s).ok())
        .is_some_and(|g| g.iter().any(|g| g.perm.w))
}

/// Whether `caps` allow `write` (else read) access to objects of `pool`.
pub fn allows_osd(caps: &std::collections::BTreeMap<String, String>, pool: &str, write: bool) -> bool {
    caps.get("osd").and_then(|s| parse_caps("osd", s).ok()).is_some_and(|g| {
        g.iter().any(|g| g.pool.as_deref().is_none_or(|p| p == pool) && if write { g.perm.w } else { g.perm.r })
    })
}

/// Whether `caps` allow reading monitor state.
pub fn allows_mon_read(caps: &std::collections::BTreeMap<String, String>) -> bool {
    caps.get("mon")
        .and_then(|s| parse_caps("mon", s).ok())
        .is_some_and(|g| g.iter().any(|g| g.perm.r))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That a certificate issued by a reloaded CA names its entity and chains to ca.crt.
    #[test]
    fn issue_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        ClusterCa::create(d.path(), "fsid-1").unwrap();
        let ca = ClusterCa::load(d.path()).unwrap();
        let e: EntityName = "osd.0".parse().unwrap();
        ca.issue(d.path(), &e).unwrap();
        let id = Identity::load(d.path(), &e).unwrap();
        assert_eq!(id.entity, e);
        let (_, leaf) = x509_parser::parse_x509_certificate(id.cert.as_ref()).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(id.ca.as_ref()).unwrap();
        assert_eq!(leaf.issuer(), root.subject());
        leaf.verify_signature(Some(root.public_key())).unwrap();
    }

    /// That capability strings parse into grants and malformed ones are refused.
    #[test]
    fn caps_parse() {
        let g = parse_caps("mds", "allow rw path=/home/a, allow r").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].path.as_deref(), Some("/home/a"));
        assert!(g[0].perm.w && !g[1].perm.w);
        assert!(parse_caps("osd", "allow rw pool=data").unwrap()[0].pool.is_some());
        for (s, c) in [("mds", "deny rw"), ("mds", "allow q"), ("osd", "allow rw path=/x"), ("foo", "allow r")] {
            assert!(parse_caps(s, c).is_err(), "{s}={c}");
        }
        let mut caps = std::collections::BTreeMap::new();
        caps.insert("mon".to_string(), "allow r".to_string());
        assert!(allows_mon_read(&caps) && !allows_mon_write(&caps));
    }
}
