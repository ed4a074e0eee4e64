//! GuidBlocks, the controller's ownership records, through kube-rs as the controller reaches them:
//! a cluster-scoped custom resource at `ib-kubernetes.mellanox.com/v1alpha1`. Create, PUT guarded by
//! the resourceVersion (a stale one is 409 Conflict and changes nothing), patch, list, watch and
//! delete, plus the bodies and paths a confused or hostile client might send.

mod common;

use common::{api_error, start, test_config, within};
use futures::StreamExt;
use kube::api::{DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::core::GroupVersionKind;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use kube_emulator::Resource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

const GROUP: &str = "ib-kubernetes.mellanox.com";
const VERSION: &str = "v1alpha1";
const API_VERSION: &str = "ib-kubernetes.mellanox.com/v1alpha1";

/// The record as the CRD in deployment/ib-kubernetes-crd.yaml describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct GuidBlock {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: GuidBlockSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct GuidBlockSpec {
    start: String,
    #[serde(default)]
    allocations: BTreeMap<String, Allocation>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Allocation {
    pod_uid: String,
    namespace: String,
    pod: String,
    network: String,
    interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkey: Option<String>,
    state: String,
}

impl kube::Resource for GuidBlock {
    type DynamicType = ();
    type Scope = k8s_openapi::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "GuidBlock".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "guidblocks".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn allocation(pod: &str, state: &str) -> Allocation {
    Allocation {
        pod_uid: format!("uid-{pod}"),
        namespace: "tenant-a".into(),
        pod: pod.into(),
        network: "tenant-a/ib".into(),
        interface: "net1".into(),
        pkey: Some("0x0005".into()),
        state: state.into(),
    }
}

/// A block named `name` starting at `start`, with `(guid, pod, state)` allocations.
fn block(name: &str, start: &str, allocations: &[(&str, &str, &str)]) -> GuidBlock {
    GuidBlock {
        api_version: API_VERSION.into(),
        kind: "GuidBlock".into(),
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        spec: GuidBlockSpec {
            start: start.into(),
            allocations: allocations
                .iter()
                .map(|(guid, pod, state)| ((*guid).to_string(), allocation(pod, state)))
                .collect(),
        },
    }
}

#[tokio::test]
async fn guidblocks_create_update_conflict_patch_list_watch_and_delete() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let api: Api<GuidBlock> = Api::all(client.clone());
    // The CRD is applied before the controller starts. Besides being realistic, this keeps the
    // watcher's initial LIST away from resourceVersion "0", which a watch reads as "any state" and
    // answers with current objects instead of the changes since.
    handle
        .create(
            Resource::CustomResourceDefinitions,
            json!({ "metadata": { "name": "guidblocks.ib-kubernetes.mellanox.com" }, "spec": { "group": GROUP } }),
        )
        .unwrap();

    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    within("empty initial list", async {
        loop {
            if let Event::InitDone = stream.next().await.expect("watch open").expect("watch event") {
                return;
            }
        }
    })
    .await;

    let first = "0200000000000100";
    let created = api
        .create(
            &PostParams::default(),
            &block(first, "02:00:00:00:00:00:01:00", &[("02:00:00:00:00:00:01:05", "a", "Reserved")]),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.namespace, None, "cluster-scoped");
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let raw = handle.get(Resource::GuidBlocks, "", first).expect("stored under the empty namespace");
    assert_eq!((raw["apiVersion"].as_str(), raw["kind"].as_str()), (Some(API_VERSION), Some("GuidBlock")));

    // Two writers of the same block: the one that read it first wins, the other gets 409 and the
    // record keeps the winner's state.
    let mut member = created.clone();
    member.spec.allocations.get_mut("02:00:00:00:00:00:01:05").unwrap().state = "Member".into();
    let updated = api.replace(first, &PostParams::default(), &member).await.unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());
    assert_eq!(updated.metadata.generation, Some(2), "a spec change bumps the generation");

    let mut stale = created.clone();
    stale.spec.allocations.insert("02:00:00:00:00:00:01:06".into(), allocation("late", "Reserved"));
    let status = api_error(api.replace(first, &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on guidblocks.ib-kubernetes.mellanox.com \"0200000000000100\": the object \
         has been modified; please apply your changes to the latest version and try again"
    );
    let details = status.details.expect("details");
    assert_eq!((details.group.as_str(), details.kind.as_str(), details.name.as_str()), (GROUP, "guidblocks", first));
    let kept = api.get(first).await.unwrap();
    assert_eq!(kept, updated, "the stale write changed nothing");

    // A patch carrying a stale resourceVersion is refused the same way.
    let stale_rv = created.resource_version().unwrap();
    let patch = json!({ "metadata": { "resourceVersion": stale_rv }, "spec": { "allocations": null } });
    let status = api_error(api.patch(first, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap_err());
    assert_eq!(status.code, 409);

    // Creating a block that exists is AlreadyExists: a second leader cannot overwrite it by POST.
    let status =
        api_error(api.create(&PostParams::default(), &block(first, "02:00:00:00:00:00:01:00", &[])).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (409, "AlreadyExists"));

    let second = "0200000000000000";
    api.create(
        &PostParams::default(),
        &block(second, "02:00:00:00:00:00:00:00", &[("02:00:00:00:00:00:00:00", "b", "Unknown")]),
    )
    .await
    .unwrap();
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|b| b.name_any()).collect::<Vec<_>>(), [second, first]);
    assert_eq!(listed.items[1], kept);
    let paged = api.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(paged.items.len(), 1);
    assert!(paged.metadata.continue_.is_some());

    // The same objects through a DynamicObject of the version kube's discovery reports.
    let discovery = kube::Discovery::new(client.clone()).filter(&[GROUP]).run().await.unwrap();
    let (resource, caps) = discovery.resolve_gvk(&GroupVersionKind::gvk(GROUP, VERSION, "GuidBlock")).unwrap();
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let names: Vec<String> = dynamic.list(&ListParams::default()).await.unwrap().iter().map(|o| o.name_any()).collect();
    assert_eq!(names, [second, first]);

    // Delete guarded by a stale resourceVersion is refused; then deleted, answering the object as
    // the apiserver does for custom resources.
    let guarded = DeleteParams {
        preconditions: Some(Preconditions { resource_version: Some(stale_rv.clone()), uid: None }),
        ..DeleteParams::default()
    };
    assert_eq!(api_error(api.delete(first, &guarded).await.unwrap_err()).code, 409);
    let deleted = api.delete(first, &DeleteParams::default()).await.unwrap();
    assert!(deleted.left().is_some_and(|b| b.name_any() == first), "the deleted object is returned");
    assert_eq!(api_error(api.get(first).await.unwrap_err()).code, 404);

    let seen = within("every committed write on the watch", async {
        let mut seen = Vec::new();
        while seen.len() < 4 {
            match stream.next().await.expect("watch open").expect("watch event") {
                Event::Apply(b) => {
                    let states: Vec<String> = b.spec.allocations.values().map(|a| a.state.clone()).collect();
                    seen.push(format!("apply {} {}", b.name_any(), states.join(",")));
                }
                Event::Delete(b) => seen.push(format!("delete {}", b.name_any())),
                _ => {}
            }
        }
        seen
    })
    .await;
    assert_eq!(
        seen,
        [
            format!("apply {first} Reserved"),
            format!("apply {first} Member"),
            format!("apply {second} Unknown"),
            format!("delete {first}"),
        ],
        "the refused writes emitted nothing"
    );
    emulator.shutdown().await;
}

/// Sends `body` (none when `None`) and answers the status code and the JSON body.
async fn raw(client: &kube::Client, method: &str, uri: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let request =
        http::Request::builder().method(method).uri(uri).header("Content-Type", "application/json").body(body).unwrap();
    match client.request::<Value>(request).await {
        Ok(v) => (200, v),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&*s).unwrap()),
        Err(other) => panic!("transport error {other:?}"),
    }
}

#[tokio::test]
async fn guidblocks_refuse_wrong_paths_kinds_and_versions() {
    let (emulator, client) = start(test_config()).await;
    let base = "/apis/ib-kubernetes.mellanox.com/v1alpha1";
    let good = json!({
        "apiVersion": API_VERSION, "kind": "GuidBlock",
        "metadata": { "name": "0200000000000200", "namespace": "tenant-a" },
        "spec": { "start": "02:00:00:00:00:00:02:00" }
    });
    // A namespace in the body of a cluster-scoped object is dropped, as the apiserver does: a
    // tenant cannot place a record in its own namespace.
    let (code, created) = raw(&client, "POST", &format!("{base}/guidblocks"), Some(&good)).await;
    assert_eq!(code, 200, "{created}");
    assert!(created["metadata"].get("namespace").is_none(), "{created}");
    // No namespaced path, no other version, no other kind in the body.
    let (code, _) = raw(&client, "POST", &format!("{base}/namespaces/tenant-a/guidblocks"), Some(&good)).await;
    assert_eq!(code, 404);
    let (code, _) = raw(&client, "GET", "/apis/ib-kubernetes.mellanox.com/v1/guidblocks", None).await;
    assert_eq!(code, 404);
    let mut pod = good.clone();
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!("0200000000000300");
    let (code, status) = raw(&client, "POST", &format!("{base}/guidblocks"), Some(&pod)).await;
    assert_eq!(code, 400, "{status}");
    let mut other_version = good.clone();
    other_version["apiVersion"] = json!("ib-kubernetes.mellanox.com/v1");
    other_version["metadata"]["name"] = json!("0200000000000300");
    let (code, status) = raw(&client, "POST", &format!("{base}/guidblocks"), Some(&other_version)).await;
    assert_eq!(code, 400, "{status}");
    let mut bad_name = good.clone();
    bad_name["metadata"]["name"] = json!("02:00:00:00:00:00:03:00");
    let (code, status) = raw(&client, "POST", &format!("{base}/guidblocks"), Some(&bad_name)).await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")), "{status}");
    let (_, list) = raw(&client, "GET", &format!("{base}/guidblocks"), None).await;
    assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("GuidBlockList"), Some(API_VERSION)));
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "only the good block was stored: {list}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn crds_and_admission_policies_are_stored_cluster_wide() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    for (path, body, resource) in [
        (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": { "name": "guidblocks.ib-kubernetes.mellanox.com" },
                    "spec": { "group": GROUP, "scope": "Cluster" } }),
            Resource::CustomResourceDefinitions,
        ),
        (
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
            json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                    "metadata": { "name": "guard" }, "spec": { "failurePolicy": "Fail" } }),
            Resource::ValidatingAdmissionPolicies,
        ),
        (
            "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
            json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                    "metadata": { "name": "guard" }, "spec": { "policyName": "guard" } }),
            Resource::ValidatingAdmissionPolicyBindings,
        ),
    ] {
        let (code, created) = raw(&client, "POST", path, Some(&body)).await;
        assert_eq!(code, 200, "{path}: {created}");
        assert_eq!(created["metadata"]["generation"], 1, "{path}");
        let name = body["metadata"]["name"].as_str().unwrap();
        let stored = handle.get(resource, "", name).unwrap_or_else(|| panic!("{path}: not stored"));
        assert_eq!(stored["spec"], body["spec"], "{path}");
        let (code, _) = raw(&client, "GET", &format!("{path}/{name}"), None).await;
        assert_eq!(code, 200, "{path}");
        let (code, status) = raw(&client, "DELETE", &format!("{path}/{name}"), None).await;
        assert_eq!((code, status["status"].as_str()), (200, Some("Success")), "{path}: {status}");
        assert!(handle.get(resource, "", name).is_none(), "{path}");
    }
    emulator.shutdown().await;
}

/// A real API server decodes a custom resource with nothing to take its type from but the body:
/// a POST or PUT that leaves out `kind` or `apiVersion` is refused, while a built-in kind takes
/// them from the URL.
#[tokio::test]
async fn custom_resources_must_name_their_kind_and_api_version() {
    let (emulator, client) = start(test_config()).await;
    let handle = emulator.handle();
    let blocks = "/apis/ib-kubernetes.mellanox.com/v1alpha1/guidblocks";
    let nads = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions";
    let block = json!({ "metadata": { "name": "0200000000000200" }, "spec": { "start": "02:00:00:00:00:00:02:00" } });
    let (code, status) = raw(&client, "POST", blocks, Some(&block)).await;
    assert_eq!(code, 400, "{status}");
    assert!(status["message"].as_str().unwrap().starts_with("Object 'Kind' is missing in '{"), "{status}");
    let mut no_version = block.clone();
    no_version["kind"] = json!("GuidBlock");
    let (code, status) = raw(&client, "POST", blocks, Some(&no_version)).await;
    assert_eq!(code, 400, "{status}");
    assert!(status["message"].as_str().unwrap().starts_with("Object 'apiVersion' is missing in"), "{status}");
    assert!(handle.get(Resource::GuidBlocks, "", "0200000000000200").is_none());
    let nad = json!({ "metadata": { "name": "n" }, "spec": { "config": "x".repeat(10_000) } });
    let (code, status) = raw(&client, "POST", nads, Some(&nad)).await;
    assert_eq!(code, 400, "{status}");
    // The body is quoted, but not all of it.
    assert!(status["message"].as_str().unwrap().len() < 400, "{status}");

    // With both, it is created; a PUT without them is refused the same way.
    let mut typed = no_version.clone();
    typed["apiVersion"] = json!(API_VERSION);
    let (code, created) = raw(&client, "POST", blocks, Some(&typed)).await;
    assert_eq!(code, 200, "{created}");
    let mut untyped = created.clone();
    untyped.as_object_mut().unwrap().remove("kind");
    let (code, status) = raw(&client, "PUT", &format!("{blocks}/0200000000000200"), Some(&untyped)).await;
    assert_eq!(code, 400, "{status}");
    // A built-in kind needs neither.
    let (code, lease) = raw(
        &client,
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        Some(&json!({ "metadata": { "name": "l" } })),
    )
    .await;
    assert_eq!(code, 200, "{lease}");
    emulator.shutdown().await;
}
