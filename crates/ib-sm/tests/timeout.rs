//! A UFM that never answers costs one request timeout, not a stuck queue; the next call works.

mod common;

use std::time::Duration;

use common::{basic, config, guid, pkey, start, within};
use ib_sm::{SmError, SubnetManager, Ufm};
use ufm_emulator::{FaultRule, Method, UfmConfig};

#[tokio::test]
async fn a_hung_request_times_out() {
    let ufm = start(UfmConfig::http()).await;
    let handle = ufm.handle();
    let mut settings = config(&ufm, basic(common::USER, common::PASSWORD));
    settings.request_timeout = Duration::from_secs(1);
    let sm = Ufm::new(settings).unwrap();

    handle.inject(FaultRule::hang(Some(Method::POST), "/ufmRest/resources/pkeys").times(1));
    let err = within(sm.add_guids(pkey(5), &[guid(1)])).await.unwrap_err();
    assert!(matches!(err, SmError::Timeout { timeout, .. } if timeout == Duration::from_secs(1)), "{err:?}");
    assert_eq!(err.label(), "timeout");
    assert!(err.to_string().contains("0x0005"), "{err}");

    handle.inject(FaultRule::hang(None, "/ufmRest/resources/pkeys/").times(1));
    assert_eq!(within(sm.list_guids()).await.unwrap_err().label(), "timeout");

    // The client has given up on the held requests; the next call is not stuck behind them.
    handle.release_hung();
    within(sm.validate()).await.unwrap();
    ufm.shutdown().await;
}
