//! Legacy discovery documents (`/version`, `/api`, `/apis`, …) for kubectl and other clients.
//!
//! kubectl first asks for aggregated discovery (`as=APIGroupDiscoveryList`); a plain
//! `application/json` answer makes it fall back to these legacy documents, which is what a server
//! without aggregated discovery does.

use crate::resource::Resource;
use serde_json::{Value, json};

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

pub(crate) fn version(git_version: &str) -> Value {
    let numbers: Vec<&str> = git_version.trim_start_matches('v').split('.').collect();
    json!({
        "major": numbers.first().copied().unwrap_or("1"),
        "minor": numbers.get(1).copied().unwrap_or("33"),
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server }],
    })
}

fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&str> = Resource::ALL.iter().map(|r| r.group()).filter(|g| !g.is_empty()).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Whether `group` is served.
pub(crate) fn has_group(group: &str) -> bool {
    groups().contains(&group)
}

/// The group's entry: the one version its resources are served at (`v1`, or `v1alpha1` for the
/// ownership records).
fn group_entry(group: &str) -> Value {
    let version = Resource::ALL.iter().find(|r| r.group() == group).map_or("v1", |r| r.version());
    let gv = json!({ "groupVersion": format!("{group}/{version}"), "version": version });
    json!({ "name": group, "versions": [gv.clone()], "preferredVersion": gv })
}

pub(crate) fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(group_entry).collect::<Vec<_>>(),
    })
}

pub(crate) fn group(group: &str) -> Value {
    let mut entry = group_entry(group);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    entry
}

/// The APIResourceList for `group/version`, or `None` if nothing is served there.
pub(crate) fn resources(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in Resource::ALL.iter().filter(|r| r.group() == group && r.version() == version) {
        let mut entry = json!({
            "name": r.plural(),
            "singularName": r.singular(),
            "namespaced": r.namespaced(),
            "kind": r.kind(),
            "verbs": VERBS,
        });
        if !r.short_names().is_empty() {
            entry["shortNames"] = json!(r.short_names());
        }
        if matches!(r, Resource::Pods | Resource::Deployments | Resource::Services) {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        if r.has_status_subresource() {
            resources.push(json!({
                "name": format!("{}/status", r.plural()),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": r.kind(),
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_pods_status_and_events() {
        let list = resources("", "v1").unwrap();
        let names: Vec<&str> =
            list["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(
            names,
            vec![
                "pods",
                "pods/status",
                "events",
                "configmaps",
                "secrets",
                "serviceaccounts",
                "nodes",
                "nodes/status",
                "services",
                "services/status"
            ]
        );
        assert_eq!(list["groupVersion"], "v1");
    }

    #[test]
    fn groups_are_listed_once() {
        let list = group_list();
        let names: Vec<&str> = list["groups"].as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
        assert_eq!(
            names,
            vec![
                "admissionregistration.k8s.io",
                "apiextensions.k8s.io",
                "apps",
                "coordination.k8s.io",
                "events.k8s.io",
                "ib-kubernetes.mellanox.com",
                "k8s.cni.cncf.io",
                "monitoring.coreos.com",
                "networking.k8s.io",
                "rbac.authorization.k8s.io"
            ]
        );
        assert!(resources("k8s.cni.cncf.io", "v2").is_none());
    }

    #[test]
    fn guidblocks_are_discovered_at_their_version() {
        let entry = group("ib-kubernetes.mellanox.com");
        assert_eq!(entry["preferredVersion"]["groupVersion"], "ib-kubernetes.mellanox.com/v1alpha1");
        assert_eq!(entry["versions"][0]["version"], "v1alpha1");
        assert!(resources("ib-kubernetes.mellanox.com", "v1").is_none());
        let list = resources("ib-kubernetes.mellanox.com", "v1alpha1").unwrap();
        assert_eq!(list["groupVersion"], "ib-kubernetes.mellanox.com/v1alpha1");
        let r = &list["resources"][0];
        assert_eq!(
            (r["name"].as_str(), r["kind"].as_str(), r["namespaced"].as_bool()),
            (Some("guidblocks"), Some("GuidBlock"), Some(false))
        );
        assert_eq!(r["shortNames"], json!(["gb"]));
        assert_eq!(list["resources"].as_array().map(Vec::len), Some(1), "no status subresource");
    }

    #[test]
    fn cluster_rbac_is_not_namespaced() {
        let list = resources("rbac.authorization.k8s.io", "v1").unwrap();
        let scopes: Vec<(&str, bool)> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap(), r["namespaced"].as_bool().unwrap()))
            .collect();
        assert_eq!(
            scopes,
            vec![("roles", true), ("rolebindings", true), ("clusterroles", false), ("clusterrolebindings", false)]
        );
    }

    #[test]
    fn version_splits_git_version() {
        let v = version("v1.32.4");
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
    }
}
