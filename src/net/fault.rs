//! Fault injection between named entities, for tests: drop (with a probability),
//! delay, or cut the messages from one entity to another. Rules come from the
//! `ms_inject_faults` option or are set at run time on a `Messenger`.
//!
//! Syntax: rules separated by `;`, each `cut A->B`, `cut A<->B`, `drop P A->B`
//! (P in 0..=1) or `delay MS A->B`; A and B are `*`, `kind.*` or an entity name.
use std::time::Duration;

use crate::ids::EntityName;

#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    Pass,
    Drop,
    Delay(Duration),
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Cut,
    Drop(f64),
    Delay(Duration),
}

#[derive(Clone, Debug, PartialEq)]
struct Rule {
    kind: Kind,
    from: String,
    to: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultRules {
    rules: Vec<Rule>,
}

fn pattern_matches(p: &str, e: &EntityName) -> bool {
    p == "*" || p == e.to_string() || p.strip_suffix(".*") == Some(e.kind.as_str())
}

fn parse_pattern(p: &str) -> Result<String, String> {
    if p == "*" || p.parse::<EntityName>().is_ok() {
        return Ok(p.to_string());
    }
    match p.strip_suffix(".*") {
        Some("mon" | "osd" | "mds" | "client") => Ok(p.to_string()),
        _ => Err(format!("'{p}' is not '*', 'kind.*' or an entity name")),
    }
}

impl FaultRules {
    pub fn parse(s: &str) -> Result<FaultRules, String> {
        let mut rules = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (kind, link) = match words.as_slice() {
                ["cut", link] => (Kind::Cut, *link),
                ["drop", p, link] => {
                    let p: f64 = p.parse().map_err(|_| format!("'{p}' is not a probability"))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(format!("drop probability {p} is outside 0..=1"));
                    }
                    (Kind::Drop(p), *link)
                }
                ["delay", ms, link] => {
                    let ms: u64 = ms.parse().map_err(|_| format!("'{ms}' is not milliseconds"))?;
                    (Kind::Delay(Duration::from_millis(ms)), *link)
                }
                _ => return Err(format!("cannot parse fault rule '{part}'")),
            };
            let (both, (a, b)) = match link.split_once("<->") {
                Some(ab) => (true, ab),
                None => (false, link.split_once("->").ok_or_else(|| format!("'{link}' is not A->B or A<->B"))?),
            };
            let (a, b) = (parse_pattern(a)?, parse_pattern(b)?);
            rules.push(Rule { kind: kind.clone(), from: a.clone(), to: b.clone() });
            if both {
                rules.push(Rule { kind, from: b, to: a });
            }
        }
        Ok(FaultRules { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What to do with one message from `from` to `to`; the first matching rule wins.
    pub fn decide(&self, from: &EntityName, to: &EntityName) -> FaultAction {
        for r in &self.rules {
            if pattern_matches(&r.from, from) && pattern_matches(&r.to, to) {
                return match r.kind {
                    Kind::Cut => FaultAction::Drop,
                    Kind::Drop(p) if rand::random::<f64>() < p => FaultAction::Drop,
                    Kind::Drop(_) => FaultAction::Pass,
                    Kind::Delay(d) => FaultAction::Delay(d),
                };
            }
        }
        FaultAction::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> EntityName {
        s.parse().unwrap()
    }

    /// That cut, drop and delay rules match the links they name and no others.
    #[test]
    fn rules_match_links() {
        let r = FaultRules::parse("cut mon.a<->mon.b; drop 1 client.*->osd.1; delay 50 *->mds.a").unwrap();
        assert_eq!(r.decide(&e("mon.a"), &e("mon.b")), FaultAction::Drop);
        assert_eq!(r.decide(&e("mon.b"), &e("mon.a")), FaultAction::Drop);
        assert_eq!(r.decide(&e("mon.a"), &e("mon.c")), FaultAction::Pass);
        assert_eq!(r.decide(&e("client.x"), &e("osd.1")), FaultAction::Drop);
        assert_eq!(r.decide(&e("osd.2"), &e("osd.1")), FaultAction::Pass);
        assert_eq!(r.decide(&e("osd.2"), &e("mds.a")), FaultAction::Delay(Duration::from_millis(50)));
        let r = FaultRules::parse("drop 0 *->*").unwrap();
        assert_eq!(r.decide(&e("mon.a"), &e("mon.b")), FaultAction::Pass);
    }

    /// That malformed rules are refused with a reason.
    #[test]
    fn bad_rules_refused() {
        for s in ["cut", "drop 2 a->b", "delay x *->*", "cut foo.*->*", "cut mon.a-mon.b"] {
            assert!(FaultRules::parse(s).is_err(), "{s}");
        }
        assert!(FaultRules::parse("").unwrap().is_empty());
    }
}
