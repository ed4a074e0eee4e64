//! docs/operations.md, the runbook, explains every Event reason the code can raise and every alert of
//! deployment/ib-kubernetes-prometheusrule.yaml, each under a heading of its own name, and every alert's
//! runbook link points at its heading.
//!
//! The reasons are the waiting reasons (`PendingReason::LABELS`) plus every literal reason the sources
//! pass to the Event recorder or put in a planner notice, found by reading the sources: a new Event
//! reason fails this test until the runbook explains it.

use std::collections::BTreeSet;
use std::path::Path;

use ib_kubernetes_deployment::{MONITORING, dir, load};

fn runbook() -> String {
    std::fs::read_to_string(dir().join("../docs/operations.md")).expect("docs/operations.md")
}

/// The `### Name` headings of the runbook's `## title` section.
fn headings(text: &str, title: &str) -> BTreeSet<String> {
    let section = text.split(&format!("\n## {title}\n")).nth(1).unwrap_or_else(|| panic!("no section {title}"));
    let section = section.split("\n## ").next().unwrap_or(section);
    section.lines().filter_map(|l| l.strip_prefix("### ")).map(|h| h.trim().to_owned()).collect()
}

/// A CamelCase word in double quotes right after `prefix` (spaces allowed between), for each match.
fn quoted_words_after(text: &str, prefix: &str, into: &mut BTreeSet<String>) {
    for (at, _) in text.match_indices(prefix) {
        let rest = text[at + prefix.len()..].trim_start();
        let Some(rest) = rest.strip_prefix('"') else { continue };
        let Some((word, _)) = rest.split_once('"') else { continue };
        let camel =
            word.starts_with(|c: char| c.is_ascii_uppercase()) && word.chars().all(|c| c.is_ascii_alphanumeric());
        if camel {
            into.insert(word.to_owned());
        }
    }
}

/// Event reasons written as literals in the sources below `root`: `reason: "X"` (planner notices) and
/// `.normal(pod, "X", …)` / `.warning(pod, "X", …)` (the Event recorder).
fn literal_reasons(root: &Path, into: &mut BTreeSet<String>) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).expect("read dir").map(|e| e.expect("entry").path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        quoted_words_after(&text, "reason:", into);
        for call in [".normal(", ".warning("] {
            for (at, _) in text.match_indices(call) {
                // The reason is the second argument.
                let args = &text[at + call.len()..];
                if let Some((_, rest)) = args.split_once(',') {
                    let mut found = BTreeSet::new();
                    quoted_words_after(rest.split(',').next().unwrap_or_default(), "", &mut found);
                    into.extend(found);
                }
            }
        }
    }
}

fn event_reasons() -> BTreeSet<String> {
    let mut reasons: BTreeSet<String> = ib_model::PendingReason::LABELS.iter().map(|s| (*s).to_owned()).collect();
    for crate_dir in ["ib-model/src", "ib-controller/src"] {
        literal_reasons(&dir().join("../crates").join(crate_dir), &mut reasons);
    }
    reasons
}

#[test]
fn the_source_scan_finds_the_literal_reasons() {
    let mut found = BTreeSet::new();
    quoted_words_after(
        r#"Notice { reason: "PartitionKept", message: "x" } reason: "not a reason""#,
        "reason:",
        &mut found,
    );
    assert_eq!(found, BTreeSet::from(["PartitionKept".to_owned()]));
    let reasons = event_reasons();
    // The two Normal Events are literals in the sources, not waiting reasons: the scan must see them.
    for reason in ["Configured", "PartitionKept", "GUIDPoolExhausted", "NetworkNotFound"] {
        assert!(reasons.contains(reason), "{reason} not found: {reasons:?}");
    }
}

#[test]
fn the_runbook_explains_every_event_reason() {
    let documented = headings(&runbook(), "Events");
    let reasons = event_reasons();
    let missing: Vec<&String> = reasons.difference(&documented).collect();
    assert!(missing.is_empty(), "docs/operations.md, ## Events, lacks a ### heading for {missing:?}");
    let stale: Vec<&String> = documented.difference(&reasons).collect();
    assert!(stale.is_empty(), "docs/operations.md explains reasons the code no longer raises: {stale:?}");
}

#[test]
fn the_runbook_explains_every_alert_and_the_links_reach_it() {
    let text = runbook();
    let documented = headings(&text, "Alerts");
    let mut alerts = BTreeSet::new();
    for object in MONITORING.iter().flat_map(|f| load(f).unwrap_or_else(|e| panic!("{e}"))) {
        for group in object.value["spec"]["groups"].as_array().expect("groups") {
            for rule in group["rules"].as_array().expect("rules") {
                let name = rule["alert"].as_str().expect("alert").to_owned();
                let link = rule["annotations"]["runbook"].as_str().unwrap_or_default();
                assert_eq!(link, format!("docs/operations.md#{}", name.to_lowercase()), "{name}: runbook link");
                alerts.insert(name);
            }
        }
    }
    assert!(alerts.len() >= 8, "{alerts:?}");
    assert_eq!(documented, alerts, "## Alerts headings of docs/operations.md vs the PrometheusRule's alerts");
    // Links inside the runbook reach a heading of it (GitHub anchors: the heading in lower case).
    let anchors: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("### ").or(l.strip_prefix("## ")))
        .map(|h| h.trim().to_lowercase().replace(' ', "-"))
        .collect();
    for (at, _) in text.match_indices("](#") {
        let anchor = text[at + 3..].split(')').next().unwrap_or_default();
        assert!(anchors.contains(anchor), "docs/operations.md links to #{anchor}, which no heading makes");
    }
}
