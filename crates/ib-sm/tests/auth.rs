//! Basic authentication on /ufmRest, access tokens on /ufmRestV3, and refused credentials as 401 errors.

mod common;

use common::{basic, config, guid, list, pkey, start, within};
use ib_sm::secret::Secret;
use ib_sm::ufm::Auth;
use ib_sm::{SubnetManager, Ufm};
use ufm_emulator::UfmConfig;

#[tokio::test]
async fn token_auth_uses_the_v3_prefix() {
    let ufm = start(UfmConfig::https().with_token("tok-123")).await;
    let sm = Ufm::new(config(&ufm, Auth::Token(Secret::new("tok-123")))).unwrap();
    within(sm.validate()).await.unwrap();
    within(sm.add_guids(pkey(7), &[guid(9)])).await.unwrap();
    assert_eq!(list(&sm).await, [("0x7".to_owned(), guid(9))]);
    let requests = ufm.handle().requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.path.starts_with("/ufmRestV3/") && r.status == 200), "{requests:?}");

    let wrong = Ufm::new(config(&ufm, Auth::Token(Secret::new("tok-456")))).unwrap();
    assert_eq!(common::http_status(&within(wrong.validate()).await.unwrap_err()), Some(401));
    ufm.shutdown().await;
}

#[tokio::test]
async fn wrong_password_is_a_401() {
    let ufm = start(UfmConfig::http().with_credentials("ops", "right-pw")).await;
    let good = Ufm::new(config(&ufm, basic("ops", "right-pw"))).unwrap();
    within(good.validate()).await.unwrap();

    let bad = Ufm::new(config(&ufm, basic("ops", "wrong-pw"))).unwrap();
    let err = within(bad.add_guids(pkey(5), &[guid(1)])).await.unwrap_err();
    assert_eq!((err.label(), common::http_status(&err)), ("status", Some(401)), "{err}");
    assert!(!err.to_string().contains("wrong-pw"));
    assert!(ufm.handle().partition(5).is_none());
    ufm.shutdown().await;
}
