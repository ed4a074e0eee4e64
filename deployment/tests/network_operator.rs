//! NVIDIA network-operator deploys ib-kubernetes from its NicClusterPolicy's `ibKubernetes` section
//! (docs/network-operator.md). The fixtures below are what its ib-kubernetes state renders (operator
//! v26.4 and later) for a policy with the defaults: the Deployment (entrypoint, arguments, environment)
//! and the ClusterRole. The tests check that this image's entrypoint is the command it runs, that its
//! RBAC plus deployment/network-operator/ grants what the controller uses, and that the binary started
//! with exactly that environment (the Secret's keys filled in as a user would) configures a pod and
//! takes the Lease in the operator's namespace.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{DEADLINE, binary};
use ib_kubernetes_deployment::{Scope, dir, grants, load, parse, used};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube_emulator::{EmulatorConfig, KubeEmulator, Resource};
use serde_json::{Value, json};

const OPERATOR_NAMESPACE: &str = "nvidia-network-operator";

/// The operator's rendered Deployment for `ibKubernetes: {image: ib-kubernetes, repository: …,
/// version: …, periodicUpdateSeconds: 5, pKeyGUIDPoolRangeStart/End: the defaults, ufmSecret:
/// ufm-secret}`, trimmed to what reaches the container.
const OPERATOR_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ib-kubernetes
  namespace: nvidia-network-operator
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {name: ib-kubernetes}}
  template:
    metadata: {labels: {name: ib-kubernetes}}
    spec:
      serviceAccountName: ib-kubernetes
      hostNetwork: true
      containers:
        - name: ib-kubernetes
          image: nvcr.io/nvidia/mellanox/ib-kubernetes:network-operator-v26.4.0
          command: ["/ib-kubernetes"]
          env:
            - {name: K8S_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
            - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
            - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
            - {name: DAEMON_SM_PLUGIN, value: ufm}
            - {name: DAEMON_PERIODIC_UPDATE, value: "5"}
            - {name: GUID_POOL_RANGE_START, value: "02:00:00:00:00:00:00:00"}
            - {name: GUID_POOL_RANGE_END, value: "02:FF:FF:FF:FF:FF:FF:FF"}
            - {name: UFM_USERNAME, valueFrom: {secretKeyRef: {name: ufm-secret, key: UFM_USERNAME}}}
            - {name: UFM_PASSWORD, valueFrom: {secretKeyRef: {name: ufm-secret, key: UFM_PASSWORD}}}
            - {name: UFM_ADDRESS, valueFrom: {secretKeyRef: {name: ufm-secret, key: UFM_ADDRESS}}}
            - {name: UFM_HTTP_SCHEMA, valueFrom: {secretKeyRef: {name: ufm-secret, key: UFM_HTTP_SCHEMA, optional: true}}}
            - {name: UFM_PORT, valueFrom: {secretKeyRef: {name: ufm-secret, key: UFM_PORT, optional: true}}}
            - {name: UFM_CERTIFICATE, valueFrom: {secretKeyRef: {name: ufm-secret, key: UFM_CERTIFICATE, optional: true}}}
"#;

/// The operator's ClusterRole for the same state, bound to its ServiceAccount ib-kubernetes.
const OPERATOR_CLUSTER_ROLE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ib-kubernetes}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list, patch, watch]}
  - {apiGroups: [k8s.cni.cncf.io], resources: [network-attachment-definitions], verbs: [get, list, watch]}
  - {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, list, create, update, patch, watch]}
  - {apiGroups: [""], resources: [events], verbs: [create]}
"#;

fn operator_container() -> (Deployment, Container) {
    let objects = parse(OPERATOR_DEPLOYMENT, "operator fixture").unwrap_or_else(|e| panic!("{e}"));
    let deployment: Deployment = objects[0].to().unwrap_or_else(|e| panic!("{e}"));
    let spec = deployment.spec.clone().and_then(|s| s.template.spec).expect("pod spec");
    (deployment, spec.containers.into_iter().next().expect("container"))
}

/// The final stage of the Dockerfile: its ENTRYPOINT and the destinations it copies the binary to.
fn image_entrypoint_and_binaries() -> (Vec<String>, Vec<String>) {
    let dockerfile = std::fs::read_to_string(dir().join("../Dockerfile")).expect("Dockerfile");
    let last_stage = dockerfile.rsplit("\nFROM ").next().expect("a FROM");
    let entrypoint = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .map(|e| serde_json::from_str::<Vec<String>>(e.trim()).expect("exec-form ENTRYPOINT"))
        .expect("ENTRYPOINT");
    let copies = last_stage
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=builder "))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect();
    (entrypoint, copies)
}

#[test]
fn the_operator_runs_the_image_entrypoint_with_no_arguments() {
    let (_, container) = operator_container();
    let (entrypoint, binaries) = image_entrypoint_and_binaries();
    let command = container.command.clone().expect("the operator sets command");
    assert_eq!(command.len(), 1, "{command:?}");
    assert!(binaries.contains(&command[0]), "the image has no {} (it copies the binary to {binaries:?})", command[0]);
    assert_eq!(command, entrypoint);
    // No arguments: the binary's default subcommand is `run`, as the Go daemon had no subcommands.
    assert!(container.args.is_none());
}

#[test]
fn the_operator_rbac_with_ours_grants_what_the_controller_uses() {
    let operator = parse(OPERATOR_CLUSTER_ROLE, "operator fixture").unwrap_or_else(|e| panic!("{e}"));
    let operator: ClusterRole = operator[0].to().unwrap_or_else(|e| panic!("{e}"));
    // The operator's leases rule is cluster-wide, so it covers the Lease in the controller's namespace.
    let cluster = grants(operator.rules.as_deref().unwrap_or_default(), Scope::Cluster);
    let mut granted = cluster.clone();
    granted.extend(grants(operator.rules.as_deref().unwrap_or_default(), Scope::OwnNamespace));
    let missing_alone: Vec<_> = used().difference(&granted).map(|(g, r, v, _)| format!("{g}/{r} {v}")).collect();
    assert!(!missing_alone.is_empty(), "the operator's role alone suffices: deployment/network-operator/ is obsolete");

    let ours = load("network-operator/ib-kubernetes-network-operator-rbac.yaml").unwrap_or_else(|e| panic!("{e}"));
    let role: ClusterRole = ours.iter().find(|o| o.kind() == "ClusterRole").expect("ClusterRole").to().expect("typed");
    let binding: ClusterRoleBinding =
        ours.iter().find(|o| o.kind() == "ClusterRoleBinding").expect("binding").to().expect("typed");
    assert_eq!(Some(binding.role_ref.name.as_str()), role.metadata.name.as_deref());
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("ServiceAccount", "ib-kubernetes", Some(OPERATOR_NAMESPACE))
    );
    let mut extra = grants(role.rules.as_deref().unwrap_or_default(), Scope::Cluster);
    // The partition ledger lives in the controller's namespace: a Role there, bound to the same account.
    let own: Role = ours.iter().find(|o| o.kind() == "Role").expect("Role").to().expect("typed");
    let own_binding: RoleBinding =
        ours.iter().find(|o| o.kind() == "RoleBinding").expect("binding").to().expect("typed");
    assert_eq!(own.metadata.namespace.as_deref(), Some(OPERATOR_NAMESPACE));
    assert_eq!(own_binding.metadata.namespace.as_deref(), Some(OPERATOR_NAMESPACE));
    assert_eq!(Some(own_binding.role_ref.name.as_str()), own.metadata.name.as_deref());
    let own_subjects = own_binding.subjects.unwrap_or_default();
    assert_eq!(
        own_subjects.iter().map(|s| (s.name.as_str(), s.namespace.as_deref())).collect::<Vec<_>>(),
        [("ib-kubernetes", Some(OPERATOR_NAMESPACE))]
    );
    for rule in own.rules.as_deref().unwrap_or_default() {
        if rule.verbs.iter().any(|v| v != "create") {
            assert_eq!(rule.resource_names.as_deref(), Some(&["ib-kubernetes-pkey-allocations".to_owned()][..]));
        }
    }
    extra.extend(grants(own.rules.as_deref().unwrap_or_default(), Scope::OwnNamespace));
    granted.extend(extra.iter().cloned());
    let used = used();
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(missing.is_empty(), "still missing: {missing:?}");
    // Ours adds only what the operator lacks.
    let needed: Vec<_> = extra.iter().filter(|g| !cluster.contains(*g)).collect();
    assert_eq!(needed.len(), extra.len(), "the extra role repeats the operator's grants");
    for (group, resource, verb, _) in &extra {
        assert!(
            used.iter().any(|(g, r, v, _)| g == group && r == resource && v == verb),
            "the extra role grants {group}/{resource} {verb}, which the controller does not use"
        );
    }
}

/// The container's environment as the kubelet would resolve it, with `secret` as the UFM Secret.
fn resolve(container: &Container, pod_uid: &str, secret: &BTreeMap<&str, String>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for e in container.env.iter().flatten() {
        let value = if let Some(value) = &e.value {
            Some(value.clone())
        } else {
            let from = e.value_from.as_ref().expect("value or valueFrom");
            if let Some(field) = &from.field_ref {
                Some(match field.field_path.as_str() {
                    "spec.nodeName" => "node-1".to_owned(),
                    "metadata.namespace" => OPERATOR_NAMESPACE.to_owned(),
                    "metadata.uid" => pod_uid.to_owned(),
                    other => panic!("fieldRef {other}"),
                })
            } else {
                let r = from.secret_key_ref.as_ref().expect("secretKeyRef");
                let value = secret.get(r.key.as_str()).cloned();
                assert!(value.is_some() || r.optional == Some(true), "the kubelet refuses: no key {}", r.key);
                value
            }
        };
        if let Some(value) = value {
            env.push((e.name.clone(), value));
        }
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_configures_a_pod_with_the_operator_environment() {
    let (deployment, container) = operator_container();
    let binary = binary().clone();
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.expect("kube emulator");
    let ufm = ufm_emulator::UfmEmulator::start(ufm_emulator::UfmConfig::https().with_credentials("admin", "pw-8c1"))
        .await
        .expect("ufm emulator");
    let temp = tempfile::tempdir().expect("temp dir");
    let kubeconfig = temp.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    // The UFM Secret as docs/network-operator.md says to write it: UFM's CA in UFM_CERTIFICATE, since
    // the operator passes no UFM_INSECURE_SKIP_VERIFY.
    let secret = BTreeMap::from([
        ("UFM_USERNAME", "admin".to_owned()),
        ("UFM_PASSWORD", "pw-8c1".to_owned()),
        ("UFM_ADDRESS", "127.0.0.1".to_owned()),
        ("UFM_PORT", ufm.addr().port().to_string()),
        ("UFM_CERTIFICATE", ufm.ca_pem().expect("CA").to_owned()),
    ]);
    let pod_uid = "5d1c2a4e-operator-test";
    let mut env = resolve(&container, pod_uid, &secret);
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"DAEMON_SM_PLUGIN") && names.contains(&"POD_NAMESPACE"), "{names:?}");
    // What the test adds: the API server (in a pod, the in-cluster configuration) and a free port
    // instead of 9090 on the host network (the operator sets hostNetwork and no ADMIN_ADDRESS).
    assert_eq!(
        deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|s| s.host_network),
        Some(true)
    );
    assert!(!names.contains(&"ADMIN_ADDRESS"));
    env.push(("KUBECONFIG".to_owned(), kubeconfig.display().to_string()));
    env.push(("ADMIN_ADDRESS".to_owned(), "127.0.0.1:0".to_owned()));

    let api = kube.handle();
    api.create(
        Resource::NetworkAttachmentDefinitions,
        json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
               "metadata": {"name": "ib", "namespace": "default"},
               "spec": {"config": r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"ib","pkey":"0x6","ipam":{}}"#}}),
    )
    .expect("NAD");
    api.create(
        Resource::Pods,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "trainer", "namespace": "default",
                            "annotations": {"k8s.v1.cni.cncf.io/networks": "ib"}},
               "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "busybox"}]},
               "status": {"phase": "Pending"}}),
    )
    .expect("pod");

    let log = temp.path().join("controller.log");
    let mut child = Command::new(&binary)
        .args(container.args.clone().unwrap_or_default())
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("controller starts");
    let started = Instant::now();
    let outcome = loop {
        let lease = api.get(Resource::Leases, OPERATOR_NAMESPACE, "ib-kubernetes-leader");
        let holder = lease.as_ref().and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned));
        let pod = api.get(Resource::Pods, "default", "trainer").expect("pod");
        let networks: Value = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
            .as_str()
            .and_then(|n| serde_json::from_str(n).ok())
            .unwrap_or(Value::Null);
        let configured = networks[0]["cni-args"]["mellanox.infiniband.app"] == "configured";
        if configured && holder.is_some() {
            break Ok((holder, networks));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("the controller exited ({status})"));
        }
        if started.elapsed() > DEADLINE {
            break Err(format!("not configured in time: lease holder {holder:?}, networks {networks}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let (holder, networks) =
        outcome.unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()));
    // The identity is built from the operator's downward-API variables.
    assert_eq!(holder.as_deref(), Some(format!("node-1_{pod_uid}").as_str()));
    let guid = networks[0]["cni-args"]["guid"].as_str().expect("a GUID").to_owned();
    assert!(guid.starts_with("02:"), "{guid} from the pool of GUID_POOL_RANGE_START/END");
    assert_eq!(ufm.handle().members(0x6).len(), 1, "the GUID joined pkey 0x6 in UFM");
    ufm.shutdown().await;
    kube.shutdown().await;
}

#[test]
fn a_zero_periodic_update_from_the_policy_is_refused_naming_the_field() {
    // periodicUpdateSeconds accepts 0 in the NicClusterPolicy schema; this daemon needs at least 1.
    let out = Command::new(binary())
        .env_clear()
        .env("DAEMON_SM_PLUGIN", "noop")
        .env("DAEMON_PERIODIC_UPDATE", "0")
        .env("ADMIN_ADDRESS", "127.0.0.1:0")
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("DAEMON_PERIODIC_UPDATE") && stderr.contains('0'), "{stderr}");
}
