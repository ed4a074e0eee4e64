use super::*;

fn pairs(names: &[&str]) -> Vec<(String, String)> {
    names.iter().map(|n| ((*n).to_owned(), format!("value of {n}"))).collect()
}

#[test]
fn only_what_a_plugin_needs_is_inherited() {
    let all = pairs(&[
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TZ",
        "UFM_ADDRESS",
        "UFM_PASSWORD",
        "IB_PLUGIN_LOG",
        "ACME_SM_STATE",
        "HTTPS_PROXY",
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_PORT_443_TCP",
        "DAEMON_SM_PLUGIN",
        "POD_UID",
        "AWS_SECRET_ACCESS_KEY",
        "CANARY",
        "ACME_SMX",
    ]);
    let names: Vec<String> = inherited("acme-sm", all).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "TZ",
            "UFM_ADDRESS",
            "UFM_PASSWORD",
            "IB_PLUGIN_LOG",
            "ACME_SM_STATE",
            "HTTPS_PROXY"
        ]
    );
}

#[test]
fn a_plugin_name_never_opens_the_kubernetes_credentials() {
    assert_eq!(plugin_prefix("kubernetes").as_deref(), Some("KUBERNETES_"));
    assert!(!is_inherited("kubernetes", "KUBERNETES_SERVICE_HOST"));
    assert!(!is_inherited("kubeconfig", "KUBECONFIG"));
    assert!(is_inherited("example", "EXAMPLE_SM_STATE"));
    assert_eq!(plugin_prefix("--"), None);
    assert!(!is_inherited("--", "__X"));
}
