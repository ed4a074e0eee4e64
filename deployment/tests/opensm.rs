//! deployment/opensm/opensm.yaml: OpenSM and the controller share the partitions file and the pid file
//! through volumes and one process namespace, and the paths the controller is given are the ones
//! OpenSM uses.

use std::path::Path;

use ib_kubernetes_deployment::load;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};

fn spec() -> PodSpec {
    let objects = load("opensm/opensm.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(objects.len(), 1);
    let d: Deployment = objects[0].to().unwrap_or_else(|e| panic!("{e}"));
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1), "one OpenSM, one writer");
    assert_eq!(spec.strategy.and_then(|s| s.type_).as_deref(), Some("Recreate"));
    spec.template.spec.expect("pod spec")
}

fn container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
    spec.containers.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("container {name}"))
}

fn env(c: &Container, name: &str) -> Option<String> {
    c.env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.clone())
}

/// The volume a container mounts at the directory holding `path`.
fn volume_for(c: &Container, path: &str) -> String {
    let dir = Path::new(path).parent().expect("a directory").to_str().expect("utf-8");
    c.volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("{} mounts nothing at {dir}", c.name))
        .name
        .clone()
}

#[test]
fn opensm_and_the_controller_share_the_file_the_pid_and_the_processes() {
    let spec = spec();
    assert_eq!(spec.share_process_namespace, Some(true), "the SIGHUP must reach OpenSM");
    assert_eq!(spec.service_account_name.as_deref(), Some("ib-kubernetes"));
    let opensm = container(&spec, "opensm");
    let controller = container(&spec, "ib-kubernetes");
    assert_eq!(env(controller, "DAEMON_SM_PLUGIN").as_deref(), Some("opensm"));
    let file = env(controller, "OPENSM_PARTITIONS_FILE").expect("partitions file");
    let pid = env(controller, "OPENSM_PID_FILE").expect("pid file");
    assert_eq!(volume_for(opensm, &file), volume_for(controller, &file));
    assert_eq!(volume_for(opensm, &pid), volume_for(controller, &pid));
    let command = opensm.command.as_ref().expect("command").join(" ");
    assert!(
        command.contains(&format!("echo $$ > {pid}")),
        "OpenSM's pid goes where the controller reads it: {command}"
    );
    assert!(command.contains("exec opensm") && command.contains(&format!("-P {file}")), "{command}");
    let security = controller.security_context.as_ref().expect("security context");
    assert_eq!(security.run_as_user, Some(0), "same user as OpenSM, so the signal is allowed");
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()]),
        "no capability kept"
    );
    assert_eq!(security.read_only_root_filesystem, Some(true));
}
