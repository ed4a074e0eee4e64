//! Authentication on both prefixes: Basic with user/password on `/ufmRest` (401 otherwise),
//! access tokens as `Authorization: Basic <token>` on `/ufmRestV3`.

mod common;

use base64::Engine;
use common::{client, start};
use serde_json::Value;
use ufm_emulator::{Endpoint, UfmConfig};

const PASSWORD: &str = "s3cret-Pass";

#[tokio::test]
async fn basic_auth_is_required_on_ufm_rest() {
    let ufm = start(UfmConfig::http().with_credentials("ops", PASSWORD)).await;
    let c = client(&ufm);
    let url = format!("{}/ufmRest/app/ufm_version", ufm.base_url());

    let ok = c.get(&url).basic_auth("ops", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    let wrong = c.get(&url).basic_auth("ops", Some("nope")).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
    let body: Value = wrong.json().await.unwrap();
    assert!(body["error"].is_string());

    let wrong_user = c.get(&url).basic_auth("admin", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(wrong_user.status().as_u16(), 401);
    let missing = c.get(&url).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);

    // A refused write leaves the fabric alone.
    let add = r#"{"pkey": "0x0005", "guids": ["0200000000000000"]}"#;
    let refused = c
        .post(format!("{}/ufmRest/resources/pkeys", ufm.base_url()))
        .basic_auth("ops", Some("nope"))
        .body(add)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(ufm.handle().partition(5).is_none());

    // The password can be rotated at run time.
    ufm.handle().set_password("rotated");
    let old = c.get(&url).basic_auth("ops", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(old.status().as_u16(), 401);
    let new = c.get(&url).basic_auth("ops", Some("rotated")).send().await.unwrap();
    assert_eq!(new.status().as_u16(), 200);
    ufm.shutdown().await;
}

#[tokio::test]
async fn tokens_authenticate_on_ufm_rest_v3() {
    let ufm = start(UfmConfig::http().with_token("configured-token")).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let url = format!("{}/ufmRestV3/app/ufm_version", ufm.base_url());

    let ok = c.get(&url).header("Authorization", "Basic configured-token").send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    let wrapped = base64::engine::general_purpose::STANDARD.encode("configured-token");
    let b64 = c.get(&url).header("Authorization", format!("Basic {wrapped}")).send().await.unwrap();
    assert_eq!(b64.status().as_u16(), 401, "the token is not base64-wrapped");
    let password = c.get(&url).basic_auth(common::USER, Some(common::PASSWORD)).send().await.unwrap();
    assert_eq!(password.status().as_u16(), 401, "V3 takes tokens only");

    // A token created through the API (Basic-auth protected) works on V3 until revoked.
    let created: Value = c
        .post(format!("{}/ufmRest/app/tokens", ufm.base_url()))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["access_token"].as_str().unwrap().to_owned();
    assert_eq!(created["revoked"], false);
    assert_eq!(created["username"], common::USER);
    let add = r#"{"pkey": "0x0007", "guids": ["0200000000000007"]}"#;
    let added = c
        .post(format!("{}/ufmRestV3/resources/pkeys", ufm.base_url()))
        .header("Authorization", format!("Basic {token}"))
        .body(add)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 200);
    assert_eq!(handle.members(7).len(), 1);

    assert!(handle.revoke_token(&token));
    let revoked = c.get(&url).header("Authorization", format!("Basic {token}")).send().await.unwrap();
    assert_eq!(revoked.status().as_u16(), 401);
    assert_eq!(handle.count(Endpoint::Version), 4);
    ufm.shutdown().await;
}
