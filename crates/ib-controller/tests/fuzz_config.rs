//! Fuzzing of configuration values: any value of any variable gives a valid configuration or an error
//! that names the variable, never a panic, and never echoes a credential. The case count follows
//! `PROPTEST_CASES` (default 2,000).

use ib_controller::Config;
use ib_sm::EnvMap;
use proptest::prelude::*;

const VARIABLES: [&str; 20] = [
    "DAEMON_SM_PLUGIN",
    "DAEMON_SM_PLUGIN_PATH",
    "DAEMON_PERIODIC_UPDATE",
    "GUID_POOL_RANGE_START",
    "GUID_POOL_RANGE_END",
    "K8S_NODE",
    "POD_UID",
    "POD_NAMESPACE",
    "UFM_USERNAME",
    "UFM_ADDRESS",
    "UFM_HTTP_SCHEMA",
    "UFM_PORT",
    "UFM_CERTIFICATE",
    "UFM_INSECURE_SKIP_VERIFY",
    "UFM_REQUEST_TIMEOUT",
    "DAEMON_RESYNC_INTERVAL",
    "LEADER_LEASE_DURATION",
    "LEADER_RENEW_DEADLINE",
    "ADMIN_ADDRESS",
    "LOG_FORMAT",
];

const CANARY: &str = "canary-fuzz-secret-99";

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("ufm".to_owned()),
        Just("noop".to_owned()),
        Just("0".to_owned()),
        Just("true".to_owned()),
        "[0-9]{1,12}",
        "-[0-9]{1,4}",
        "([0-9a-fA-F]{2}[:.-]){0,9}[0-9a-fA-F]{0,4}",
        "https?|ftp|HTTP",
        "[0-9.]{1,15}:[0-9]{1,6}",
        "\\PC{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_environment_is_valid_or_explained(values in prop::collection::vec(prop::option::of(value()), VARIABLES.len()),
                                             secret_kind in 0..2u8) {
        let mut env = EnvMap::new();
        for (k, v) in VARIABLES.iter().zip(values) {
            if let Some(v) = v {
                env.set(*k, v);
            }
        }
        env.set(if secret_kind == 0 { "UFM_PASSWORD" } else { "UFM_TOKEN" }, CANARY);
        match Config::from_env(&env, Some("host")) {
            Ok(config) => {
                let text = format!("{config:?}");
                prop_assert!(!text.contains(CANARY));
            }
            Err(e) => {
                prop_assert!(!e.0.is_empty());
                let text = e.to_string();
                prop_assert!(!text.contains(CANARY), "{}", text);
                for err in &e.0 {
                    prop_assert!(text.contains(err.variable));
                }
            }
        }
    }
}
