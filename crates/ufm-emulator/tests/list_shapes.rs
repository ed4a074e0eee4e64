//! The list endpoint's response shapes, as UFM answers them: the map keyed by lower-case unpadded
//! PKeys with `guids: []` present, the QoS variant, and the bare list without flags.

mod common;

use common::{client, go_request, start};
use reqwest::Method;
use serde_json::{Value, json};
use ufm_emulator::{Guid, Member, Membership, UfmConfig};

#[tokio::test]
async fn list_shapes_match_ufm() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    handle.seed_members(
        0x31a,
        [(Guid::from(0x946dae03005985c8), Member { membership: Membership::Full, index0: true, ip_over_ib: true })],
    );
    let c = client(&ufm);

    for path in [
        "/ufmRest/resources/pkeys?guids_data=true",
        "/ufmRest/resources/pkeys/?guids_data=true",
        "/ufmRestV3/resources/pkeys/?guids_data=true",
    ] {
        if path.starts_with("/ufmRestV3") {
            handle.add_token("list-token");
        }
        let request = c.get(format!("{}{path}", ufm.base_url()));
        let request = if path.starts_with("/ufmRestV3") {
            request.header("Authorization", "Basic list-token")
        } else {
            request.basic_auth(common::USER, Some(common::PASSWORD))
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({
                "0x31a": {"partition": "api_pkey_0x31a", "ip_over_ib": true,
                          "guids": [{"guid": "946dae03005985c8", "membership": "full", "index0": true}]},
                "0x7fff": {"partition": "management", "ip_over_ib": true, "membership": "full", "guids": []},
            }),
            "{path}"
        );
    }

    let (s, body) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys?qos_conf=true", None).await;
    assert_eq!(s, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["0x31a"],
        json!({"partition": "api_pkey_0x31a", "ip_over_ib": true,
               "qos_conf": {"mtu_limit": 2, "rate_limit": 2.5, "service_level": 0}})
    );

    let (s, body) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys", None).await;
    assert_eq!(s, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!(["0x31a", "0x7fff"]));
    ufm.shutdown().await;
}
