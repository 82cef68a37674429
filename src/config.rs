//! Configuration: `DIR/cephr.toml` written by `cephr cluster create`, read with the
//! `config` crate in layers: profile defaults → file → `CEPHR_<OPTION>` environment →
//! command-line `--set option=value`. Tunables live in `[global]` under Ceph's names;
//! the cluster's identity (fsid, key dir, daemons and their addresses) at the top.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {why}")]
    Read { path: String, why: String },
    #[error("bad config: {0}")]
    Invalid(String),
}

/// Timing profile: `default` carries Ceph's values, `fast` shrinks them for tests and
/// the dev cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Default,
    Fast,
}

impl std::str::FromStr for Profile {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "default" => Ok(Profile::Default),
            "fast" => Ok(Profile::Fast),
            _ => Err(ConfigError::Invalid(format!("profile '{s}' is neither 'default' nor 'fast'"))),
        }
    }
}

macro_rules! options {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr, $fast:expr ; )*) => {
        /// Every tunable option. Durations are seconds (floats), as in Ceph.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Options {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }
        impl Options {
            pub fn for_profile(p: Profile) -> Options {
                match p {
                    Profile::Default => Options { $( $name: $default, )* },
                    Profile::Fast => Options { $( $name: $fast, )* },
                }
            }
            /// (name, one-line description) of every option, for docs and checks.
            pub fn describe() -> Vec<(&'static str, &'static str)> {
                vec![ $( (stringify!($name), concat!($($doc),*)), )* ]
            }
        }
    };
}

options! {
    /// Seconds between monitor ticks (laggy daemon checks, rank assignment).
    mon_tick_interval: f64 = 5.0, 0.25;
    /// Milliseconds of one consensus tick between monitors.
    mon_raft_tick_ms: u64 = 100, 50;
    /// Consensus ticks without a leader before a monitor calls an election.
    mon_raft_election_ticks: u64 = 10, 10;
    /// Consensus ticks between leader heartbeats.
    mon_raft_heartbeat_ticks: u64 = 2, 2;
    /// Committed entries kept in the monitor log before it is compacted into a snapshot.
    mon_raft_log_keep: u64 = 1000, 200;
    /// Seconds a command waits for the monitors to agree before failing.
    mon_command_timeout: f64 = 30.0, 10.0;
    /// Seconds an MDS keeps between beacons to the monitors.
    mds_beacon_interval: f64 = 4.0, 0.5;
    /// Seconds without a beacon before the monitors fail an MDS.
    mds_beacon_grace: f64 = 15.0, 2.0;
    /// Seconds a recovering MDS waits for clients to reconnect.
    mds_reconnect_timeout: f64 = 45.0, 3.0;
    /// Journal segments kept before the MDS trims.
    mds_log_max_segments: u64 = 128, 32;
    /// Events per journal segment.
    mds_log_events_per_segment: u64 = 1024, 1024;
    /// Bytes the MDS cache may use before it trims and recalls caps.
    mds_cache_memory_limit: u64 = 4 << 30, 1 << 30;
    /// Seconds a client has to answer a cap recall before a health warning.
    mds_recall_state_timeout: f64 = 60.0, 5.0;
    /// Default seconds of client silence before its caps go stale (per fs: session_timeout).
    mds_session_timeout: u32 = 60, 5;
    /// Default seconds of client silence before eviction (per fs: session_autoclose).
    mds_session_autoclose: u32 = 300, 10;
    /// Seconds a blocklist entry made by a failover lasts.
    mon_osd_blocklist_default_expire: f64 = 3600.0, 3600.0;
    /// Seconds between client session renewals.
    client_renew_interval: f64 = 20.0, 1.0;
    /// Directory entries (with their inodes' attributes) a client keeps cached; past
    /// it the oldest are dropped, and a directory that loses an entry is no longer
    /// complete (its creates and negative lookups go to the MDS again).
    client_cache_size: u64 = 131_072, 131_072;
    /// Seconds between OSD heartbeats to peers.
    osd_heartbeat_interval: f64 = 6.0, 0.1;
    /// Seconds without a peer heartbeat before an OSD reports it failed.
    osd_heartbeat_grace: f64 = 20.0, 0.8;
    /// Seconds between OSD beacons to the monitors.
    osd_beacon_report_interval: f64 = 300.0, 1.0;
    /// Seconds between a primary's full PG state reports to the monitors (changes go at once).
    osd_pg_stat_report_interval: f64 = 5.0, 0.5;
    /// Seconds a client op may wait at an OSD before it is logged as a slow request and
    /// counted in the `SLOW_OPS` health warning.
    osd_op_complaint_time: f64 = 30.0, 5.0;
    /// Seconds without an OSD beacon before the monitors mark it down.
    mon_osd_report_timeout: f64 = 900.0, 5.0;
    /// Seconds an OSD stays down before it is marked out.
    mon_osd_down_out_interval: f64 = 600.0, 5.0;
    /// Distinct OSDs that must report a peer failed before it is marked down (never
    /// more than the other up OSDs).
    mon_osd_min_down_reporters: u32 = 2, 2;
    /// Lengthen an OSD's heartbeat grace by its history of wrong mark-downs (Ceph's
    /// laggy adjustment): grace + laggy probability x laggy interval, decaying with
    /// mon_osd_laggy_halflife.
    mon_osd_adjust_heartbeat_grace: bool = true, true;
    /// Seconds over which the laggy adjustment of a failure halves.
    mon_osd_laggy_halflife: f64 = 3600.0, 3600.0;
    /// Weight of the newest wrong mark-down in the laggy averages (0..=1).
    mon_osd_laggy_weight: f64 = 0.3, 0.3;
    /// Longest wrong mark-down (seconds) counted in the laggy interval.
    mon_osd_laggy_max_interval: f64 = 300.0, 300.0;
    /// Replicas of a new pool.
    osd_pool_default_size: u32 = 3, 3;
    /// Replicas a new pool needs to accept writes.
    osd_pool_default_min_size: u32 = 2, 2;
    /// Placement groups of a new pool.
    osd_pool_default_pg_num: u32 = 32, 32;
    /// Disk usage (fraction of the data directory's file system) above which an OSD
    /// refuses writes with ENOSPC; removals are still accepted. The fast profile (tests,
    /// dev clusters, often on a large shared disk) leaves only 1% as the reserve.
    osd_failsafe_full_ratio: f64 = 0.97, 0.99;
    /// Test fault: the fraction (0..=1) of an OSD's replicated-write commits that fail
    /// with an injected store error, as a failing disk would make them fail. 0 is off.
    osd_debug_inject_commit_error: f64 = 0.0, 0.0;
    /// Largest write (payload bytes) an OSD commits on its network thread instead of
    /// its store thread, when that write is the only one in flight at the OSD and the
    /// store thread is idle: it spares two thread wake-ups per copy at one write in
    /// flight. 0 sends every commit to the store thread.
    osd_inline_commit_max_bytes: u64 = 16384, 16384;
    /// Largest frame the messenger accepts, in bytes.
    ms_max_frame_bytes: u64 = 64 << 20, 64 << 20;
    /// Seconds a request waits for its reply.
    ms_request_timeout: f64 = 30.0, 10.0;
    /// Seconds a connection attempt may take.
    ms_connect_timeout: f64 = 5.0, 1.0;
    /// Seconds of silence before QUIC drops a connection.
    ms_idle_timeout: f64 = 15.0, 2.0;
    /// Seconds between QUIC keep-alives on an idle connection.
    ms_keepalive_interval: f64 = 1.0, 0.25;
    /// First reconnect back-off in seconds; doubles up to ms_reconnect_backoff_max.
    ms_reconnect_backoff_min: f64 = 0.05, 0.02;
    /// Longest reconnect back-off in seconds.
    ms_reconnect_backoff_max: f64 = 2.0, 0.5;
    /// What protects a connection's packets after its mutually authenticated handshake
    /// (Ceph's msgr2 modes): "crc" (a CRC-32C per packet, data in the clear: corruption
    /// is detected, eavesdropping is not prevented; Ceph's default for data traffic) or
    /// "secure" (AES-GCM). Applies to connections this process opens to OSDs, MDSs and
    /// clients (those to monitors are always secure); a process set to "secure" also
    /// refuses "crc" connections.
    ms_mode: String = "crc".into(), "crc".into();
    /// UDP socket buffer size in bytes (QUIC drops packets under load when small).
    ms_udp_buffer_bytes: u64 = 4 << 20, 4 << 20;
    /// Test faults, e.g. "cut mon.a<->mon.b; drop 0.5 client.*->osd.1; delay 100 *->mds.a".
    ms_inject_faults: String = String::new(), String::new();
    /// Log filter (tracing env-filter syntax).
    log_level: String = "info".into(), "info".into();
}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0))
}

impl Options {
    pub fn mds_beacon_interval(&self) -> Duration {
        secs(self.mds_beacon_interval)
    }
    pub fn mds_beacon_grace(&self) -> Duration {
        secs(self.mds_beacon_grace)
    }
    pub fn mon_tick(&self) -> Duration {
        secs(self.mon_tick_interval)
    }
    pub fn request_timeout(&self) -> Duration {
        secs(self.ms_request_timeout)
    }
    pub fn command_timeout(&self) -> Duration {
        secs(self.mon_command_timeout)
    }
    pub fn secs(v: f64) -> Duration {
        secs(v)
    }

    /// Rejects combinations that cannot work, naming the options involved.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs: Vec<String> = Vec::new();
        let positive: [(&str, f64); 16] = [
            ("mon_tick_interval", self.mon_tick_interval),
            ("mon_command_timeout", self.mon_command_timeout),
            ("mds_beacon_interval", self.mds_beacon_interval),
            ("mds_beacon_grace", self.mds_beacon_grace),
            ("mds_reconnect_timeout", self.mds_reconnect_timeout),
            ("client_renew_interval", self.client_renew_interval),
            ("osd_heartbeat_interval", self.osd_heartbeat_interval),
            ("osd_heartbeat_grace", self.osd_heartbeat_grace),
            ("osd_beacon_report_interval", self.osd_beacon_report_interval),
            ("osd_op_complaint_time", self.osd_op_complaint_time),
            ("mon_osd_laggy_halflife", self.mon_osd_laggy_halflife),
            ("ms_request_timeout", self.ms_request_timeout),
            ("ms_connect_timeout", self.ms_connect_timeout),
            ("ms_idle_timeout", self.ms_idle_timeout),
            ("ms_keepalive_interval", self.ms_keepalive_interval),
            ("ms_reconnect_backoff_min", self.ms_reconnect_backoff_min),
        ];
        for (n, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                errs.push(format!("{n} must be a positive number of seconds (got {v})"));
            }
        }
        if self.mds_beacon_grace <= self.mds_beacon_interval + self.mon_tick_interval {
            errs.push(format!(
                "mds_beacon_grace ({}) must be larger than mds_beacon_interval ({}) + mon_tick_interval ({})",
                self.mds_beacon_grace, self.mds_beacon_interval, self.mon_tick_interval
            ));
        }
        if self.osd_heartbeat_grace <= self.osd_heartbeat_interval {
            errs.push(format!(
                "osd_heartbeat_grace ({}) must be larger than osd_heartbeat_interval ({})",
                self.osd_heartbeat_grace, self.osd_heartbeat_interval
            ));
        }
        if self.mon_osd_report_timeout <= self.osd_beacon_report_interval {
            errs.push(format!(
                "mon_osd_report_timeout ({}) must be larger than osd_beacon_report_interval ({})",
                self.mon_osd_report_timeout, self.osd_beacon_report_interval
            ));
        }
        if self.ms_idle_timeout <= self.ms_keepalive_interval {
            errs.push(format!(
                "ms_idle_timeout ({}) must be larger than ms_keepalive_interval ({})",
                self.ms_idle_timeout, self.ms_keepalive_interval
            ));
        }
        if !(0.0..=1.0).contains(&self.mon_osd_laggy_weight) {
            errs.push(format!("mon_osd_laggy_weight must be within 0..=1 (got {})", self.mon_osd_laggy_weight));
        }
        if self.mon_osd_laggy_max_interval.is_nan() || self.mon_osd_laggy_max_interval < 0.0 {
            errs.push(format!("mon_osd_laggy_max_interval must be 0 or more seconds (got {})", self.mon_osd_laggy_max_interval));
        }
        if self.client_cache_size == 0 {
            errs.push("client_cache_size must be at least 1 (directory entries)".into());
        }
        if self.ms_reconnect_backoff_max < self.ms_reconnect_backoff_min {
            errs.push("ms_reconnect_backoff_max must be at least ms_reconnect_backoff_min".into());
        }
        if self.mds_session_autoclose < self.mds_session_timeout {
            errs.push(format!(
                "mds_session_autoclose ({}) must be at least mds_session_timeout ({})",
                self.mds_session_autoclose, self.mds_session_timeout
            ));
        }
        let size = self.osd_pool_default_size;
        let min = self.osd_pool_default_min_size;
        if size == 0 || size > 10 || min == 0 || min > size {
            errs.push(format!(
                "osd_pool_default_min_size ({min}) must be within 1..=osd_pool_default_size ({size}), size within 1..=10"
            ));
        }
        if !(0.0..=1.0).contains(&self.osd_debug_inject_commit_error) {
            errs.push(format!(
                "osd_debug_inject_commit_error must be within [0, 1] (got {})",
                self.osd_debug_inject_commit_error
            ));
        }
        if !(self.osd_failsafe_full_ratio > 0.0 && self.osd_failsafe_full_ratio <= 1.0) {
            errs.push(format!("osd_failsafe_full_ratio must be within (0, 1] (got {})", self.osd_failsafe_full_ratio));
        }
        if self.osd_pool_default_pg_num == 0 || self.osd_pool_default_pg_num > 65536 {
            errs.push("osd_pool_default_pg_num must be within 1..=65536".into());
        }
        if self.mon_raft_tick_ms == 0
            || self.mon_raft_election_ticks <= self.mon_raft_heartbeat_ticks
            || self.mon_raft_heartbeat_ticks == 0
        {
            errs.push("mon_raft_election_ticks must exceed mon_raft_heartbeat_ticks (> 0), mon_raft_tick_ms > 0".into());
        }
        if self.ms_max_frame_bytes < 4096 || self.ms_max_frame_bytes > (1 << 30) {
            errs.push("ms_max_frame_bytes must be within 4096..=1 GiB".into());
        }
        if let Err(e) = crate::net::WireMode::parse(&self.ms_mode) {
            errs.push(format!("ms_mode: {e}"));
        }
        if let Err(e) = crate::net::fault::FaultRules::parse(&self.ms_inject_faults) {
            errs.push(format!("ms_inject_faults: {e}"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errs.join("; ")))
        }
    }
}

/// A daemon's entry in the cluster file: where it listens and keeps its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConf {
    pub addr: SocketAddr,
    pub data: PathBuf,
    /// CRUSH host bucket of an OSD (default: one host per OSD, `host-<id>`).
    #[serde(default)]
    pub host: Option<String>,
}

/// The whole configuration of one cluster as a daemon or the CLI sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub fsid: String,
    pub profile: Profile,
    /// Directory with `ca.crt` and each entity's `NAME.crt`/`NAME.key`.
    pub key_dir: PathBuf,
    /// Directory for pid files and logs of `tools/cluster`.
    pub run_dir: PathBuf,
    #[serde(default)]
    pub mon: BTreeMap<String, DaemonConf>,
    #[serde(default)]
    pub osd: BTreeMap<String, DaemonConf>,
    #[serde(default)]
    pub mds: BTreeMap<String, DaemonConf>,
    /// File system the monitors create when the cluster first forms (pools
    /// `<fs>_metadata` and `<fs>_data`), as `cephr cluster create --fs NAME` asks.
    #[serde(default)]
    pub fs: Option<String>,
    pub global: Options,
}

impl ClusterConfig {
    /// Loads `path` with the environment and `overrides` (`option=value`) on top.
    pub fn load(path: &Path, overrides: &[String]) -> Result<ClusterConfig, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, overrides, &env)
    }

    pub fn load_with_env(
        path: &Path,
        overrides: &[String],
        env: &[(String, String)],
    ) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let file_profile = toml::from_str::<toml::Table>(&text)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            .get("profile")
            .and_then(|v| v.as_str().map(str::to_string));
        let env_opts = env_options(env);
        let flag_opts = parse_overrides(overrides)?;
        let profile: Profile = flag_opts
            .iter()
            .chain(env_opts.iter())
            .find(|(k, _)| k == "profile")
            .map(|(_, v)| v.clone())
            .or(file_profile)
            .unwrap_or_else(|| "default".into())
            .parse()?;
        let defaults = config::Config::try_from(&Options::for_profile(profile))
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut b = config::Config::builder()
            .add_source(defaults_under_global(defaults)?)
            .add_source(config::File::from_str(&text, config::FileFormat::Toml));
        for (k, v) in env_opts.iter().chain(flag_opts.iter()) {
            let key = if k == "profile" { k.clone() } else { format!("global.{k}") };
            b = b.set_override(key, v.clone()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let cfg: ClusterConfig = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.global.validate()?;
        Ok(cfg)
    }

    pub fn mon_addrs(&self) -> BTreeMap<String, SocketAddr> {
        self.mon.iter().map(|(k, v)| (k.clone(), v.addr)).collect()
    }
}

/// Wraps the defaults so they sit under `[global]`.
fn defaults_under_global(defaults: config::Config) -> Result<config::Config, ConfigError> {
    let table: config::Map<String, config::Value> =
        defaults.try_deserialize().map_err(|e| ConfigError::Invalid(e.to_string()))?;
    config::Config::builder()
        .set_default("global", table)
        .and_then(|b| b.build())
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// `CEPHR_MDS_BEACON_GRACE=3` → `mds_beacon_grace=3`; only known options (and
/// `CEPHR_PROFILE`) are taken, so `CEPHR_CONF` and friends are left alone.
fn env_options(env: &[(String, String)]) -> Vec<(String, String)> {
    let known: Vec<&str> = Options::describe().iter().map(|(n, _)| *n).collect();
    env.iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("CEPHR_")?.to_ascii_lowercase();
            (name == "profile" || known.contains(&name.as_str())).then(|| (name, v.clone()))
        })
        .collect()
}

fn parse_overrides(overrides: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    let known: Vec<&str> = Options::describe().iter().map(|(n, _)| *n).collect();
    overrides
        .iter()
        .map(|o| {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::Invalid(format!("override '{o}' is not option=value")))?;
            let k = k.trim().replace('-', "_");
            if k != "profile" && !known.contains(&k.as_str()) {
                return Err(ConfigError::Invalid(format!("unknown option '{k}'")));
            }
            Ok((k, v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_conf(dir: &Path, extra: &str) -> PathBuf {
        let p = dir.join("cephr.toml");
        let text = format!(
            "fsid = \"f\"\nprofile = \"fast\"\nkey_dir = \"/k\"\nrun_dir = \"/r\"\n\
             [mon.a]\naddr = \"127.0.0.1:6789\"\ndata = \"/d\"\n[global]\n{extra}\n"
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    /// That layers apply in order: profile defaults, file, environment, flags.
    #[test]
    fn layers_override_in_order() {
        let d = tempfile::tempdir().unwrap();
        let p = write_conf(d.path(), "mds_beacon_grace = 4.0\nmds_reconnect_timeout = 9.0");
        let c = ClusterConfig::load_with_env(&p, &[], &[]).unwrap();
        assert_eq!(c.global.mds_beacon_interval, 0.5, "fast profile default");
        assert_eq!(c.global.mds_beacon_grace, 4.0, "file beats default");
        let env = vec![("CEPHR_MDS_BEACON_GRACE".to_string(), "5".to_string())];
        let c = ClusterConfig::load_with_env(&p, &[], &env).unwrap();
        assert_eq!(c.global.mds_beacon_grace, 5.0, "env beats file");
        let c = ClusterConfig::load_with_env(&p, &["mds_beacon_grace=6".into()], &env).unwrap();
        assert_eq!(c.global.mds_beacon_grace, 6.0, "flag beats env");
        assert_eq!(c.global.mds_reconnect_timeout, 9.0);
        let flags = ["profile=default".to_string(), "mds_beacon_grace=20".to_string()];
        let c = ClusterConfig::load_with_env(&p, &flags, &[]).unwrap();
        assert_eq!(c.global.mds_beacon_interval, 4.0, "profile from a flag");
    }

    /// That nonsense is refused with a message naming the options at fault.
    #[test]
    fn validate_names_the_options() {
        let d = tempfile::tempdir().unwrap();
        let p = write_conf(d.path(), "mds_beacon_grace = 0.6");
        let e = ClusterConfig::load_with_env(&p, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("mds_beacon_grace") && e.contains("mon_tick_interval"), "{e}");
        let p = write_conf(d.path(), "no_such_option = 1");
        let e = ClusterConfig::load_with_env(&p, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("no_such_option"), "{e}");
        let p = write_conf(d.path(), "mds_beacon_grace = \"soon\"");
        let e = ClusterConfig::load_with_env(&p, &[], &[]).unwrap_err().to_string();
        assert!(e.contains("mds_beacon_grace"), "{e}");
        let e = ClusterConfig::load_with_env(&p, &["bogus=1".into()], &[]).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        for bad in ["1.5", "0.0", "-1.0", "nan"] {
            let p = write_conf(d.path(), &format!("osd_failsafe_full_ratio = {bad}"));
            let e = ClusterConfig::load_with_env(&p, &[], &[]).unwrap_err().to_string();
            assert!(e.contains("osd_failsafe_full_ratio"), "{bad}: {e}");
        }
        for prof in [Profile::Default, Profile::Fast] {
            Options::for_profile(prof).validate().unwrap();
        }
    }

    /// That etc/cephr.toml documents every option with its default value.
    #[test]
    fn sample_config_lists_every_option() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/cephr.toml")).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let global = table["global"].as_table().unwrap();
        let defaults = toml::Table::try_from(Options::for_profile(Profile::Default)).unwrap();
        for (name, _) in Options::describe() {
            let v = global.get(name).unwrap_or_else(|| panic!("etc/cephr.toml lacks {name}"));
            assert_eq!(Some(v), defaults.get(name), "default of {name}");
        }
    }
}
