//! The noop manager accepts every call and holds nothing, like the Go noop plugin; `builtin` picks the
//! built-ins by the names `DAEMON_SM_PLUGIN` uses.

mod common;

use std::sync::Arc;

use common::{guid, pkey, within};
use ib_sm::{EnvMap, Noop, SubnetManager, builtin};

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
fn builtins_by_name() {
    let empty = EnvMap::new();
    assert_eq!(builtin("noop", &empty).unwrap().map(|sm| sm.name().to_owned()).as_deref(), Some("noop"));
    assert!(builtin("acme-sm", &empty).unwrap().is_none());
    // opensm is built in, with defaults for every variable.
    assert_eq!(builtin("opensm", &empty).unwrap().map(|sm| sm.name().to_owned()).as_deref(), Some("opensm"));
    let bad: EnvMap = [("OPENSM_MEMBERSHIP", "both")].into_iter().collect();
    assert!(builtin("opensm", &bad).unwrap_err().to_string().contains("OPENSM_MEMBERSHIP"));

    let err = builtin("ufm", &empty).unwrap_err().to_string();
    assert!(err.contains("UFM_ADDRESS"), "{err}");

    let env: EnvMap = [("UFM_ADDRESS", "ufm.example"), ("UFM_USERNAME", "admin"), ("UFM_PASSWORD", "canary-pw")]
        .into_iter()
        .collect();
    let ufm = builtin("ufm", &env).unwrap().unwrap();
    assert_eq!(ufm.name(), "ufm");
    let shown = format!("{ufm:?}");
    assert!(shown.contains("https://ufm.example:443/ufmRest") && !shown.contains("canary-pw"), "{shown}");
}
