//! What the image's entrypoint does with no configuration at all (a Deployment without its ConfigMap):
//! a clear error naming DAEMON_SM_PLUGIN and a non-zero exit, and the version line the Makefile and
//! the Dockerfile inject. The binary is the one `cargo build` makes for this workspace; building it here
//! reuses the shared target directory, so it costs a link when the workspace is already built.

use std::process::Command;

mod common;

use common::binary;

#[test]
fn an_empty_environment_is_a_clear_configuration_error() {
    let out = Command::new(binary()).env_clear().output().expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(stderr.contains("DAEMON_SM_PLUGIN"), "names the missing variable: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "errors go to stderr");
}

#[test]
fn an_unknown_plugin_names_the_directory_searched() {
    let dir = std::env::temp_dir();
    let out = Command::new(binary())
        .env_clear()
        .env("DAEMON_SM_PLUGIN", "acme-sm")
        .env("DAEMON_SM_PLUGIN_PATH", &dir)
        .env("K8S_NODE", "node-1")
        .env("ADMIN_ADDRESS", "127.0.0.1:0")
        .output()
        .expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert!(stderr.contains("acme-sm") && stderr.contains(&*dir.to_string_lossy()), "{stderr}");
}

#[test]
fn the_version_flag_prints_the_go_format() {
    let out = Command::new(binary()).arg("-version").env_clear().output().expect("binary runs");
    assert_eq!(out.status.code(), Some(0));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with("ib-kubernetes version:") && line.contains(", commit:") && line.contains(", date:"),
        "{line}"
    );
}
