//! Bad input never crashes the emulator: malformed PKeys, GUIDs, memberships, JSON, paths and
//! methods get a 4xx with `{"error": "..."}`, and the fabric is left as it was.

mod common;

use common::{client, go_request, start};
use reqwest::Method;
use serde_json::Value;
use ufm_emulator::UfmConfig;

#[tokio::test]
async fn malformed_requests_get_json_errors_and_change_nothing() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let before = handle.partitions();

    let bad_everywhere = [
        r#"{"pkey": "0x0000", "guids": ["0200000000000000"]}"#,
        r#"{"pkey": "0x7FFF", "guids": ["0200000000000000"]}"#,
        r#"{"pkey": "0x8005", "guids": ["0200000000000000"]}"#,
        r#"{"pkey": "0xFFFF", "guids": ["0200000000000000"]}"#,
        r#"{"pkey": "5", "guids": ["0200000000000000"]}"#,
        r#"{"pkey": "0xZZ", "guids": ["0200000000000000"]}"#,
        r#"{"pkey": 5, "guids": ["0200000000000000"]}"#,
        r#"{"pkey": "0x0005", "guids": ["02:00:00:00:00:00:00:00"]}"#,
        r#"{"pkey": "0x0005", "guids": ["020000000000"]}"#,
        r#"{"pkey": "0x0005", "guids": ["020000000000000000000"]}"#,
        r#"{"pkey": "0x0005", "guids": ["0200000000000000", "nothex!!nothex!!"]}"#,
        r#"{"pkey": "0x0005", "guids": []}"#,
        r#"{"pkey": "0x0005"}"#,
        r#"{"pkey": "0x0005", "guids": "0200000000000000"}"#,
        r#"{"guids": ["0200000000000000"]}"#,
        r#"[]"#,
        r#"null"#,
        r#"{"pkey": "0x0005", "guids": ["0200000000000000"]"#,
        "",
        "\u{0}\u{1}garbage",
    ];
    // Bad only in fields that removal does not read.
    let bad_attributes = [
        r#"{"pkey": "0x0005", "guids": ["0200000000000000"], "membership": "both"}"#,
        r#"{"pkey": "0x0005", "guids": ["0200000000000000"], "membership": "full", "memberships": ["full"]}"#,
        r#"{"pkey": "0x0005", "guids": ["0200000000000000"], "memberships": []}"#,
        r#"{"pkey": "0x0005", "guids": ["0200000000000000"], "mtu_limit": 3}"#,
    ];
    let add = "/ufmRest/resources/pkeys";
    let remove = "/ufmRest/actions/remove_guids_from_pkey";
    let cases = bad_everywhere
        .iter()
        .flat_map(|b| [(add, *b, 400), (remove, *b, 400)])
        .chain(bad_attributes.iter().flat_map(|b| [(add, *b, 400), (remove, *b, 200)]));
    for (path, body, want) in cases {
        let (s, text) = go_request(&c, &ufm, Method::POST, path, Some(body)).await;
        assert_eq!(s, want, "{path} {body} -> {text}");
        if want == 400 {
            let error: Value = serde_json::from_str(&text).unwrap();
            assert!(error["error"].is_string(), "{text}");
        }
    }
    assert_eq!(handle.partitions(), before);

    let bad_paths = [
        (Method::DELETE, "/ufmRest/resources/pkeys/0x5/guids/nothex", 400),
        (Method::DELETE, "/ufmRest/resources/pkeys/0x5/guids/%zz", 400),
        (Method::DELETE, "/ufmRest/resources/pkeys/0x7fff", 400),
        (Method::DELETE, "/ufmRest/resources/pkeys/0x0", 400),
        (Method::GET, "/ufmRest/resources/pkeys/banana", 400),
        (Method::GET, "/ufmRest/resources/pkeys/0x10000", 400),
        (Method::GET, "/ufmRest/no/such/thing", 404),
        (Method::PATCH, "/ufmRest/resources/pkeys", 405),
        (Method::POST, "/ufmRest/app/ufm_version", 405),
    ];
    for (method, path, want) in bad_paths {
        let (s, text) = go_request(&c, &ufm, method.clone(), path, None).await;
        assert_eq!(s, want, "{method} {path} -> {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"].is_string(), "{text}");
    }
    assert_eq!(handle.partitions(), before);

    // Still serving after all that.
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/app/ufm_version", None).await;
    assert_eq!(s, 200);
    ufm.shutdown().await;
}
