//! `GET /resources/pkeys/{pkey}` for an unknown PKey answers 200 `{}` like real UFM, or 404
//! when switched; `DELETE` of an unknown PKey is always 404.

mod common;

use common::{client, go_request, start};
use reqwest::Method;
use ufm_emulator::{UfmConfig, UnknownPkeyGet};

#[tokio::test]
async fn unknown_pkey_get_answer_is_switchable() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let c = client(&ufm);
    let path = "/ufmRest/resources/pkeys/0x0042?guids_data=true";

    let (s, body) = go_request(&c, &ufm, Method::GET, path, None).await;
    assert_eq!((s, body.as_str()), (200, "{}"));

    handle.set_unknown_pkey_get(UnknownPkeyGet::NotFound);
    let (s, _) = go_request(&c, &ufm, Method::GET, path, None).await;
    assert_eq!(s, 404);

    let (s, body) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/0x7fff", None).await;
    assert_eq!(s, 200, "management always exists: {body}");

    let (s, _) = go_request(&c, &ufm, Method::DELETE, "/ufmRest/resources/pkeys/0x42", None).await;
    assert_eq!(s, 404);
    ufm.shutdown().await;
}

#[tokio::test]
async fn not_found_can_be_the_configured_default() {
    let ufm = start(UfmConfig::http().with_unknown_pkey_get(UnknownPkeyGet::NotFound)).await;
    let c = client(&ufm);
    let (s, _) = go_request(&c, &ufm, Method::GET, "/ufmRest/resources/pkeys/0x42", None).await;
    assert_eq!(s, 404);
    ufm.shutdown().await;
}
