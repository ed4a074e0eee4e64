//! Hostile tenants: pods whose authors try, with nothing but the networks annotation, to take what is
//! not theirs or to stop the controller. They live in [`TENANT`] (with NADs of their own), reference
//! NADs of [`OTHER`] and of the honest namespace, and are created directly in the API server's store as
//! a tenant with `create pods` rights would: any annotation, markers included.
//!
//! The attacks, chosen from the seed:
//!
//! | Attack | Annotation |
//! |---|---|
//! | forged claim, missing NAD | `configured` marker, a live honest pod's GUID and some pkey (or none), on a NAD that does not exist |
//! | forged claim, real NAD | the same on a tenant NAD, another namespace's NAD or the victim's own NAD |
//! | forged claim, free GUID | a marker with a GUID nobody holds and a pkey its NAD does not have |
//! | oversized | the short form `a,a,a,…` of a few hundred KB |
//! | many elements | thousands of elements on a non-InfiniBand NAD, one InfiniBand element last |
//! | duplicate interfaces | thousands of elements asking for the same interface |
//! | deep JSON | `cni-args` nested far deeper than any parser's recursion limit |
//! | requested GUID, owned | `cni-args.guid` of a live honest pod |
//! | requested GUID, free | `cni-args.guid` of a GUID nobody holds |
//! | squeeze | one free requested GUID plus more unnamed interfaces than the pool has free (small pools) |
//! | cross-namespace | `otherns/nad` in short and JSON form, to another tenant's and to the honest NADs |
//!
//! Each is scheduled or not at random (an unscheduled pod is never configured, but a controller
//! rebuilding ownership from annotations still reads its markers).

use std::fmt::Write as _;

use ib_model::{Guid, PKey};
use ib_sim::rng::SplitMix64;
use serde_json::json;

/// The hostile tenant's namespace.
pub const TENANT: &str = "chaos-tenant";
/// Another tenant's namespace, referenced across namespaces.
pub const OTHER: &str = "chaos-other";
/// A pkey no NAD has and no controller manages.
const UNMANAGED_PKEY: &str = "0x7ff0";

/// NADs of the two tenant namespaces: (namespace, name, config).
pub fn networks() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (TENANT, "t-ib", r#"{"type":"ib-sriov","cniVersion":"0.3.1","pkey":"0x20"}"#),
        (TENANT, "t-guid", r#"{"type":"ib-sriov","cniVersion":"0.3.1"}"#),
        (TENANT, "plain", r#"{"type":"macvlan","cniVersion":"0.3.1","master":"eth0"}"#),
        (OTHER, "o-ib", r#"{"type":"ib-sriov","cniVersion":"0.3.1","pkey":"0x21"}"#),
        // The same partition as the honest namespace's first NAD: a tenant may share a partition.
        (OTHER, "o-shared", r#"{"type":"ib-sriov","cniVersion":"0.3.1","pkey":"0x10"}"#),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostileOptions {
    /// Hostile pods created during the run.
    pub pods: usize,
    /// Size of the oversized annotations (short form and deep JSON), in bytes.
    pub big_annotation_bytes: usize,
    /// Elements of the many-element and duplicate annotations.
    pub many_elements: usize,
    /// Only these attacks; empty: all of them.
    pub only: Vec<Attack>,
}

impl HostileOptions {
    /// The CI size: every attack at least once, small enough for a few seconds.
    pub fn small() -> Self {
        HostileOptions { pods: 14, big_annotation_bytes: 200 * 1024, many_elements: 2000, only: Vec::new() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    ForgedMissingNad,
    ForgedRealNad,
    ForgedFreeGuid,
    Oversized,
    ManyElements,
    DuplicateInterfaces,
    DeepJson,
    RequestOwnedGuid,
    RequestFreeGuid,
    Squeeze,
    CrossNamespace,
}

impl Attack {
    const ALL: [Attack; 11] = [
        Attack::ForgedMissingNad,
        Attack::ForgedRealNad,
        Attack::ForgedFreeGuid,
        Attack::Oversized,
        Attack::ManyElements,
        Attack::DuplicateInterfaces,
        Attack::DeepJson,
        Attack::RequestOwnedGuid,
        Attack::RequestFreeGuid,
        Attack::Squeeze,
        Attack::CrossNamespace,
    ];

    /// Also part of the pod name, so a DNS-1123 label.
    pub fn label(self) -> &'static str {
        match self {
            Attack::ForgedMissingNad => "forged-missing-nad",
            Attack::ForgedRealNad => "forged-real-nad",
            Attack::ForgedFreeGuid => "forged-free-guid",
            Attack::Oversized => "oversized",
            Attack::ManyElements => "many-elements",
            Attack::DuplicateInterfaces => "duplicate-interfaces",
            Attack::DeepJson => "deep-json",
            Attack::RequestOwnedGuid => "request-owned-guid",
            Attack::RequestFreeGuid => "request-free-guid",
            Attack::Squeeze => "squeeze",
            Attack::CrossNamespace => "cross-namespace",
        }
    }

    /// The attack with this label.
    pub fn from_label(label: &str) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.label() == label)
    }

    /// Every label, for messages.
    pub fn labels() -> String {
        Attack::ALL.map(Attack::label).join(", ")
    }

    fn forged(self) -> bool {
        matches!(self, Attack::ForgedMissingNad | Attack::ForgedRealNad | Attack::ForgedFreeGuid)
    }
}

/// The attacks of a run, in order: the forged claims first (so that leader starts happen with them in
/// place), then every other attack once in a seed-chosen order, then a seed-chosen mix weighted towards
/// forged claims and requested GUIDs (and squeezes, on a `small_pool`). `only`, when not empty, limits
/// the kinds.
pub fn plan(rng: &mut SplitMix64, count: usize, only: &[Attack], small_pool: bool) -> Vec<Attack> {
    let kinds: Vec<Attack> = Attack::ALL.into_iter().filter(|a| only.is_empty() || only.contains(a)).collect();
    let (mut forged, mut rest): (Vec<Attack>, Vec<Attack>) = kinds.iter().partition(|a| a.forged());
    rng.shuffle(&mut forged);
    rng.shuffle(&mut rest);
    let mut attacks: Vec<Attack> = forged.into_iter().chain(rest).collect();
    let weights: Vec<u32> = kinds
        .iter()
        .map(|a| match a {
            a if a.forged() => 4,
            Attack::Squeeze if small_pool => 4,
            Attack::RequestOwnedGuid | Attack::RequestFreeGuid | Attack::CrossNamespace => 2,
            _ => 1,
        })
        .collect();
    while !kinds.is_empty() && attacks.len() < count {
        attacks.push(kinds[rng.weighted(&weights)]);
    }
    attacks.truncate(count);
    attacks
}

/// A live honest interface an attack can aim at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Victim {
    /// The honest pod's uid.
    pub pod: String,
    pub guid: Guid,
    pub pkey: Option<PKey>,
    /// Its NAD's name in the honest namespace.
    pub network: String,
}

/// What the attacker can see of the cluster (a tenant can read pod annotations of others only through
/// side channels, but the soak gives it the worst case: full knowledge).
pub struct Target<'a> {
    pub victims: &'a [Victim],
    /// GUIDs of the pool range nobody holds, a few, in a seed-chosen order.
    pub free: &'a [Guid],
    /// How many GUIDs of the range are free, and how many it has.
    pub free_count: u64,
    pub pool_len: u64,
    /// The honest namespace and its NAD names.
    pub honest_namespace: &'a str,
    pub honest_networks: &'a [String],
    /// The managed pkeys of the honest NADs.
    pub honest_pkeys: &'a [PKey],
}

/// A hostile pod: its annotation, whether it is scheduled, and whose GUID it aims at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostilePod {
    pub annotation: String,
    pub scheduled: bool,
    /// The uid of the honest pod whose GUID the annotation names.
    pub victim: Option<String>,
}

fn pick<'a, T>(rng: &mut SplitMix64, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.below(items.len() as u64) as usize])
}

/// A forged claim's cni-args: the marker, the GUID and a pkey the author chose (the victim's, the one of
/// the NAD the element names, an honest one, an unmanaged one), or none at all (as releases before the
/// pkey was recorded wrote, which a reader then takes from the NAD, if any).
fn forged_args(
    rng: &mut SplitMix64,
    target: &Target<'_>,
    guid: Guid,
    victim_pkey: Option<PKey>,
    nad_pkey: Option<&str>,
) -> serde_json::Value {
    let pkey = match rng.below(6) {
        0 => victim_pkey.map(|p| p.to_string()),
        1 | 2 => nad_pkey.map(str::to_owned),
        3 => pick(rng, target.honest_pkeys).map(|p| p.to_string()),
        4 => Some(UNMANAGED_PKEY.to_owned()),
        _ => None,
    };
    let mut args = json!({"mellanox.infiniband.app": "configured", "guid": guid.to_string()});
    if let Some(pkey) = pkey {
        args["pkey"] = json!(pkey);
    }
    args
}

/// Builds the pod for `attack`. With nothing to aim at yet (no live honest GUID, no free one) the GUID
/// is the zero GUID, outside any pool: still an attack, refused as out of range.
pub fn build(attack: Attack, rng: &mut SplitMix64, target: &Target<'_>, options: &HostileOptions) -> HostilePod {
    // An unscheduled pod is never planned: a squeeze must be scheduled to be felt.
    let scheduled = attack == Attack::Squeeze || rng.below(3) != 0;
    // A victim with a partition, when there is one: a GUID-only interface has no membership to lose.
    let partitioned: Vec<Victim> = target.victims.iter().filter(|v| v.pkey.is_some()).cloned().collect();
    let victim = pick(rng, if partitioned.is_empty() { target.victims } else { &partitioned }).cloned();
    // A GUID to steal: a live honest pod's, or (none yet) a free one, which is still a forged claim.
    let stolen = victim.as_ref().map(|v| v.guid).or_else(|| target.free.first().copied());
    let free = target.free.first().copied().or(stolen);
    let annotation = match attack {
        Attack::ForgedMissingNad => {
            let guid = stolen.unwrap_or(Guid::from_u64(0));
            let args = forged_args(rng, target, guid, victim.as_ref().and_then(|v| v.pkey), None);
            json!([{"name": "no-such-nad", "cni-args": args}]).to_string()
        }
        Attack::ForgedRealNad => {
            let guid = stolen.unwrap_or(Guid::from_u64(0));
            let victim_pkey = victim.as_ref().and_then(|v| v.pkey);
            let victim_pkey_text = victim_pkey.map(|p| p.to_string());
            let (mut element, nad_pkey) = match rng.below(3) {
                0 => (json!({"name": "t-ib"}), Some("0x20")),
                1 => (json!({"name": "o-ib", "namespace": OTHER}), Some("0x21")),
                _ => (
                    json!({"name": victim.as_ref().map_or("ib-0", |v| v.network.as_str()),
                           "namespace": target.honest_namespace}),
                    victim_pkey_text.as_deref(),
                ),
            };
            element["cni-args"] = forged_args(rng, target, guid, victim_pkey, nad_pkey);
            // Half of them also ask for a real interface, so the controller patches the pod and every
            // patch carries the forged element back.
            if rng.below(2) == 0 {
                json!([element, {"name": "t-ib", "interface": "ib9"}]).to_string()
            } else {
                json!([element]).to_string()
            }
        }
        Attack::ForgedFreeGuid => {
            let guid = free.unwrap_or(Guid::from_u64(0));
            // A pkey the NAD (0x20) does not have: the author was never given it.
            let pkey = pick(rng, target.honest_pkeys).map_or(UNMANAGED_PKEY.to_owned(), |p| p.to_string());
            json!([{"name": "t-ib", "cni-args": {"mellanox.infiniband.app": "configured",
                    "guid": guid.to_string(), "pkey": pkey}}])
            .to_string()
        }
        Attack::Oversized => {
            let mut text = String::with_capacity(options.big_annotation_bytes + 2);
            text.push('a');
            while text.len() + 2 <= options.big_annotation_bytes {
                text.push_str(",a");
            }
            text
        }
        Attack::ManyElements => {
            let mut items: Vec<serde_json::Value> =
                (0..options.many_elements).map(|_| json!({"name": "plain"})).collect();
            items.push(json!({"name": "t-ib"}));
            serde_json::Value::Array(items).to_string()
        }
        Attack::DuplicateInterfaces => {
            let items: Vec<serde_json::Value> =
                (0..options.many_elements).map(|_| json!({"name": "t-ib", "interface": "ib0"})).collect();
            serde_json::Value::Array(items).to_string()
        }
        Attack::DeepJson => {
            let depth = (options.big_annotation_bytes / 2).clamp(200, 100_000);
            let mut text = String::with_capacity(2 * depth + 64);
            text.push_str(r#"[{"name":"t-ib","cni-args":{"x":"#);
            text.push_str(&"[".repeat(depth));
            text.push_str(&"]".repeat(depth));
            text.push_str("}}]");
            text
        }
        Attack::RequestOwnedGuid => {
            let guid = stolen.unwrap_or(Guid::from_u64(0));
            let element = if rng.below(2) == 0 {
                json!({"name": "t-ib", "cni-args": {"guid": guid.to_string()}})
            } else {
                // Through the victim's own network, across namespaces: the same partition, the same GUID.
                json!({"name": victim.as_ref().map_or("ib-0", |v| v.network.as_str()),
                       "namespace": target.honest_namespace, "cni-args": {"guid": guid.to_string()}})
            };
            json!([element]).to_string()
        }
        Attack::RequestFreeGuid => {
            let guid = free.unwrap_or(Guid::from_u64(0));
            json!([{"name": "t-ib", "cni-args": {"guid": guid.to_string()}}]).to_string()
        }
        Attack::Squeeze => {
            // One requested free GUID plus one to three more unnamed interfaces than there are free
            // GUIDs: more than the pool can give. The pod waits and is planned again as GUIDs are
            // released, so the free count rises through "exactly the unnamed interfaces" (with the
            // requested one, one short). In a large range: three unnamed interfaces.
            let unnamed = match target.pool_len {
                n if n <= 64 => (target.free_count + 1 + rng.below(3)).min(n - 1).max(1),
                _ => 3,
            };
            let guid = free.unwrap_or(Guid::from_u64(0));
            let mut items = vec![json!({"name": "t-ib", "cni-args": {"guid": guid.to_string()}})];
            items.extend((0..unnamed).map(|_| json!({"name": "t-ib"})));
            serde_json::Value::Array(items).to_string()
        }
        Attack::CrossNamespace => {
            let honest = pick(rng, target.honest_networks).map_or("ib-0", String::as_str);
            match rng.below(4) {
                0 => json!([{"name": "o-ib", "namespace": OTHER}, {"name": "t-ib"}]).to_string(),
                1 => format!("{OTHER}/o-shared@ib1,t-guid"),
                2 => json!([{"name": honest, "namespace": target.honest_namespace}]).to_string(),
                _ => {
                    let mut text = String::new();
                    let _ = write!(text, "{}/{honest},{OTHER}/o-ib", target.honest_namespace);
                    text
                }
            }
        }
    };
    let aims = matches!(attack, Attack::ForgedMissingNad | Attack::ForgedRealNad | Attack::RequestOwnedGuid);
    HostilePod { annotation, scheduled, victim: victim.filter(|_| aims).map(|v| v.pod) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(victims: &'a [Victim], free: &'a [Guid], networks: &'a [String], pkeys: &'a [PKey]) -> Target<'a> {
        Target {
            victims,
            free,
            free_count: 3,
            pool_len: 8,
            honest_namespace: "chaos",
            honest_networks: networks,
            honest_pkeys: pkeys,
        }
    }

    #[test]
    fn every_attack_is_planned_forged_first_and_deterministically() {
        let plan_a = plan(&mut SplitMix64::new(3), 14, &[], false);
        assert_eq!(plan_a, plan(&mut SplitMix64::new(3), 14, &[], false));
        assert!(plan_a[..3].iter().all(|a| a.forged()));
        for attack in Attack::ALL {
            assert!(plan_a.contains(&attack), "{attack:?} planned");
            assert_eq!(Attack::from_label(attack.label()), Some(attack));
        }
        assert_eq!(plan(&mut SplitMix64::new(3), 2, &[], false).len(), 2);
        let only = plan(&mut SplitMix64::new(3), 9, &[Attack::Squeeze, Attack::ForgedMissingNad], true);
        assert_eq!(only.len(), 9);
        assert_eq!(only[0], Attack::ForgedMissingNad);
        assert!(only.iter().all(|a| matches!(a, Attack::Squeeze | Attack::ForgedMissingNad)));
    }

    #[test]
    fn attacks_carry_what_they_claim() {
        let victim = Victim {
            pod: "uid-1".into(),
            guid: Guid::from_u64(0x0200_0000_0000_0005),
            pkey: PKey::new(0x10).ok(),
            network: "ib-0".into(),
        };
        let free = [Guid::from_u64(0x0200_0000_0000_0007)];
        let networks = ["ib-0".to_owned()];
        let pkeys = [PKey::new(0x10).unwrap()];
        let victims = [victim.clone()];
        let t = target(&victims, &free, &networks, &pkeys);
        let options = HostileOptions::small();
        let mut rng = SplitMix64::new(1);
        for attack in Attack::ALL {
            let pod = build(attack, &mut rng, &t, &options);
            let elements = crate::reading::elements(&pod.annotation, TENANT);
            match attack {
                Attack::ForgedMissingNad | Attack::ForgedRealNad => {
                    assert_eq!(pod.victim.as_deref(), Some("uid-1"));
                    let e = &elements.unwrap()[0];
                    assert!(e.configured && e.guid == Some(victim.guid), "{attack:?}: {}", pod.annotation);
                }
                Attack::ForgedFreeGuid => assert_eq!(elements.unwrap()[0].guid, Some(free[0])),
                Attack::Oversized => {
                    assert!(pod.annotation.len() <= options.big_annotation_bytes);
                    assert!(pod.annotation.len() + 2 > options.big_annotation_bytes);
                }
                Attack::ManyElements | Attack::DuplicateInterfaces => {
                    assert!(elements.unwrap().len() >= options.many_elements);
                }
                Attack::DeepJson => assert!(elements.is_none(), "deeper than serde_json's limit"),
                Attack::RequestOwnedGuid => {
                    let e = &elements.unwrap()[0];
                    assert!(!e.configured && e.guid == Some(victim.guid));
                }
                Attack::RequestFreeGuid => assert_eq!(elements.unwrap()[0].guid, Some(free[0])),
                Attack::Squeeze => {
                    let e = elements.unwrap();
                    assert!(pod.scheduled);
                    assert!((5..=7).contains(&e.len()), "one requested and four to six unnamed with 3 free");
                    assert_eq!(e[0].guid, Some(free[0]));
                }
                Attack::CrossNamespace => {
                    assert!(elements.unwrap().iter().any(|e| e.namespace != TENANT), "{}", pod.annotation);
                }
            }
        }
    }
}
