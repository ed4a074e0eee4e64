//! `GET /resources/pkeys/last_updated` is null until the partition configuration changes,
//! then renders the change time in the configured format; reads and no-op removals do not
//! move it. Also `HEAD`, which the fork uses to read the server's `Date` header.

mod common;

use common::{client, go_request, start};
use reqwest::Method;
use serde_json::Value;
use ufm_emulator::{LastUpdatedFormat, UfmConfig};

#[tokio::test]
async fn last_updated_follows_changes() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let path = "/ufmRest/resources/pkeys/last_updated";

    let (s, body) = go_request(&c, &ufm, Method::GET, path, None).await;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["last_updated"], Value::Null);

    let add = r#"{"pkey": "0x0005", "guids": ["0200000000000000"]}"#;
    go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(add)).await;
    let changed = handle.last_updated().expect("set by the add");
    let (_, body) = go_request(&c, &ufm, Method::GET, path, None).await;
    let text = serde_json::from_str::<Value>(&body).unwrap()["last_updated"].as_str().unwrap().to_owned();
    assert!(text.ends_with(&changed.strftime("UTC %Y").to_string()), "{text}");
    assert_eq!(text.len(), "Thu Sep  3 11:42:39 UTC 2020".len(), "{text}");

    let noop = r#"{"pkey": "0x0005", "guids": ["02000000000000ff"]}"#;
    go_request(&c, &ufm, Method::POST, "/ufmRest/actions/remove_guids_from_pkey", Some(noop)).await;
    go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys?guids_data=true", None).await;
    assert_eq!(handle.last_updated(), Some(changed), "reads and no-ops leave it");

    let head = c
        .head(format!("{}{path}", ufm.base_url()))
        .basic_auth(common::USER, Some(common::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert!(head.headers().contains_key("date"));
    ufm.shutdown().await;
}

#[tokio::test]
async fn day_first_format() {
    let ufm = start(UfmConfig::http().with_last_updated_format(LastUpdatedFormat::DayFirst)).await;
    let c = client(&ufm);
    let add = r#"{"pkey": "0x0005", "guids": ["0200000000000000"]}"#;
    go_request(&c, &ufm, Method::POST, "/ufmRest/resources/pkeys", Some(add)).await;
    let (_, body) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/last_updated", None).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["last_updated"].as_str().unwrap();
    // DD-MM-YYYY, HH:MM:SS
    let bytes = text.as_bytes();
    assert_eq!(text.len(), 20, "{text}");
    assert_eq!((bytes[2], bytes[5], bytes[10], bytes[11]), (b'-', b'-', b',', b' '), "{text}");
    ufm.shutdown().await;
}
