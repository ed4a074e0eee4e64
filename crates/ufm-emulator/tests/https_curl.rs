//! A client nobody here wrote: `curl --cacert <ca>` succeeds against the HTTPS emulator and
//! plain `curl` (system roots only) fails verification.

mod common;

use std::process::Command;

use common::{PASSWORD, USER, start};
use ufm_emulator::{Endpoint, UfmConfig};

fn curl_available() -> bool {
    Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn curl_trusts_the_emulator_only_with_its_ca() {
    if !curl_available() {
        println!("SKIP: curl not on PATH");
        return;
    }
    let ufm = start(UfmConfig::https()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ufm-ca.pem");
    std::fs::write(&ca_path, ufm.ca_pem().unwrap()).unwrap();
    let url = format!("{}/ufmRest/resources/pkeys/", ufm.base_url());
    let body = r#"{"pkey": "0x0005", "index0": true, "ip_over_ib": true, "membership": "full", "guids": ["0200000000000000"]}"#;
    let user = format!("{USER}:{PASSWORD}");

    let with_ca = {
        let (ca, url, user) = (ca_path.clone(), url.clone(), user.clone());
        tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["--silent", "--show-error", "--fail", "--max-time", "30"])
                .arg("--cacert")
                .arg(&ca)
                .args(["-u", &user, "-H", "Content-Type: application/json", "-d", body])
                .arg(&url)
                .output()
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert!(with_ca.status.success(), "curl with the CA: {}", String::from_utf8_lossy(&with_ca.stderr));
    assert_eq!(String::from_utf8_lossy(&with_ca.stdout), "{}");
    assert_eq!(ufm.handle().members(5).len(), 1);

    let without_ca = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "30", "-u", &user])
            .arg(format!("{url}?guids_data=true"))
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!without_ca.status.success(), "curl without the CA must fail");
    // 60 is "peer certificate cannot be authenticated"; some TLS back ends report 35.
    assert!(matches!(without_ca.status.code(), Some(60 | 35)), "{}", String::from_utf8_lossy(&without_ca.stderr));
    assert_eq!(ufm.handle().count(Endpoint::ListPkeys), 0);
    ufm.shutdown().await;
}
