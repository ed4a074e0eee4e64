//! The noop manager accepts every call and holds nothing, like the Go noop plugin; the other built-ins
//! are made from their environment variables, naming the variable that is missing or wrong.

mod common;

use std::sync::Arc;

use common::{guid, pkey, within};
use ib_sm::opensm::OpenSmConfig;
use ib_sm::ufm::UfmConfig;
use ib_sm::{EnvMap, Noop, OpenSm, SubnetManager, Ufm};

#[tokio::test]
async fn noop_accepts_everything_and_lists_nothing() {
    let sm: Arc<dyn SubnetManager> = Arc::new(Noop);
    assert_eq!(sm.name(), "noop");
    within(sm.validate()).await.unwrap();
    within(sm.add_guids(pkey(5), &[guid(1), guid(1)])).await.unwrap();
    within(sm.remove_guids(pkey(5), &[guid(2)])).await.unwrap();
    within(sm.add_guids(pkey(5), &[])).await.unwrap();
    assert!(within(sm.list_guids()).await.unwrap().is_empty(), "nothing is remembered");
}

#[test]
fn builtins_from_their_environment() {
    let empty = EnvMap::new();
    // opensm is built in, with defaults for every variable.
    assert_eq!(OpenSm::new(OpenSmConfig::from_env(&empty).unwrap()).name(), "opensm");
    let bad: EnvMap = [("OPENSM_MEMBERSHIP", "both")].into_iter().collect();
    assert!(OpenSmConfig::from_env(&bad).unwrap_err().to_string().contains("OPENSM_MEMBERSHIP"));

    let err = UfmConfig::from_env(&empty).unwrap_err().to_string();
    assert!(err.contains("UFM_ADDRESS"), "{err}");

    let env: EnvMap = [("UFM_ADDRESS", "ufm.example"), ("UFM_USERNAME", "admin"), ("UFM_PASSWORD", "canary-pw")]
        .into_iter()
        .collect();
    let ufm: Arc<dyn SubnetManager> = Arc::new(Ufm::new(UfmConfig::from_env(&env).unwrap()).unwrap());
    assert_eq!(ufm.name(), "ufm");
    let shown = format!("{ufm:?}");
    assert!(shown.contains("https://ufm.example:443/ufmRest") && !shown.contains("canary-pw"), "{shown}");
}
