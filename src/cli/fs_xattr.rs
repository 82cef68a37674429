//! `cephr fs setfattr PATH NAME [VALUE | -x]` and `cephr fs getfattr PATH [NAME]`:
//! extended attributes through the client library, like the setfattr/getfattr tools.
//! They also reach the MDS's virtual `ceph.` attributes that are never listed:
//! `ceph.quota.max_bytes`, `ceph.quota.max_files` (set), `ceph.dir.rbytes`,
//! `ceph.dir.rfiles`, `ceph.dir.rsubdirs`, `ceph.dir.rentries` (read).
use cephr::error::CmdError;
use cephr::roles::client::ops::ctx;
use cephr::roles::client::Client;

/// What `setfattr` does with the attribute.
pub enum SetOp<'a> {
    Set(&'a str),
    Remove,
}

/// Sets or removes one attribute of the entry at `path`.
pub async fn setfattr(c: &Client, path: &str, name: &str, op: SetOp<'_>) -> Result<(), CmdError> {
    let st = c.lookup_path(path).await?;
    match op {
        SetOp::Set(v) => c.setxattr(st.ino, name, v.as_bytes(), 0).await.map_err(ctx(format!("setfattr {path} {name}"))),
        SetOp::Remove => c.removexattr(st.ino, name).await.map_err(ctx(format!("setfattr -x {path} {name}"))),
    }
}

/// Prints one attribute's value (`name` given) or every listed attribute as
/// `name="value"` lines; JSON prints an object of name → value.
pub async fn getfattr(c: &Client, path: &str, name: Option<&str>, json: bool) -> Result<(), CmdError> {
    let st = c.lookup_path(path).await?;
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => c.listxattr(st.ino).await.map_err(ctx(format!("getfattr {path}")))?,
    };
    let mut values = Vec::new();
    for n in names {
        let v = c.getxattr(st.ino, &n).await.map_err(ctx(format!("getfattr {path} {n}")))?;
        values.push((n, show(&v)));
    }
    if json {
        let m: serde_json::Map<String, serde_json::Value> =
            values.into_iter().map(|(n, v)| (n, serde_json::Value::String(v))).collect();
        println!("{}", serde_json::Value::Object(m));
    } else if name.is_some() {
        for (_, v) in values {
            println!("{v}");
        }
    } else {
        for (n, v) in values {
            println!("{n}=\"{v}\"");
        }
    }
    Ok(())
}

/// A value as text, or `0x` + hex when it is not printable UTF-8.
pub fn show(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(|c| c.is_control()) => s.to_string(),
        _ => format!("0x{}", v.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That printable values print as they are and others as hex.
    #[test]
    fn values_print_readably() {
        assert_eq!(show(b"1024"), "1024");
        assert_eq!(show(&[0, 0xff]), "0x00ff");
        assert_eq!(show(b"a\nb"), "0x610a62");
        assert_eq!(show(b""), "");
    }
}
