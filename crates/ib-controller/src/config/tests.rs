use super::*;
use ib_sm::ufm::TlsTrust;

fn env(pairs: &[(&str, &str)]) -> EnvMap {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<Config, EnvErrors> {
    Config::from_env(&env(pairs), Some("host-1"))
}

fn err(pairs: &[(&str, &str)]) -> String {
    load(pairs).unwrap_err().to_string()
}

#[test]
fn go_defaults() {
    let c = load(&[("DAEMON_SM_PLUGIN", "noop")]).unwrap();
    assert_eq!(c.periodic_update, Duration::from_secs(5));
    assert_eq!(c.sm, SmSelection::Noop);
    assert_eq!(c.sm_plugin_path, PathBuf::from("/plugins"));
    assert_eq!(c.guid_range.start().to_string(), "02:00:00:00:00:00:00:00");
    assert_eq!(c.guid_range.end().to_string(), "02:ff:ff:ff:ff:ff:ff:ff");
    assert_eq!(c.identity, Identity { node: "host-1".into(), pod_uid: None, namespace: "kube-system".into() });
    assert_eq!(c.identity.holder(), "host-1");
    assert_eq!(c.lease.duration, Duration::from_secs(15));
    assert_eq!(c.log_format, LogFormat::Plain);
}

#[test]
fn empty_string_means_default() {
    let c = load(&[
        ("DAEMON_SM_PLUGIN", "noop"),
        ("DAEMON_PERIODIC_UPDATE", ""),
        ("GUID_POOL_RANGE_START", ""),
        ("DAEMON_SM_PLUGIN_PATH", ""),
        ("POD_NAMESPACE", ""),
    ])
    .unwrap();
    assert_eq!(c.periodic_update, DEFAULT_PERIODIC_UPDATE);
    assert_eq!(c.sm_plugin_path, PathBuf::from(DEFAULT_PLUGIN_PATH));
    assert_eq!(c.identity.namespace, DEFAULT_NAMESPACE);
}

#[test]
fn identity_is_node_and_pod_uid() {
    let c = load(&[("DAEMON_SM_PLUGIN", "noop"), ("K8S_NODE", "n1"), ("POD_UID", "u-1"), ("POD_NAMESPACE", "ibk")])
        .unwrap();
    assert_eq!(c.identity.holder(), "n1_u-1");
    assert_eq!(c.identity.namespace, "ibk");
    let e = Config::from_env(&env(&[("DAEMON_SM_PLUGIN", "noop")]), None).unwrap_err().to_string();
    assert!(e.contains("K8S_NODE"), "{e}");
}

#[test]
fn every_bad_value_is_named() {
    for (pairs, words) in [
        (vec![], "DAEMON_SM_PLUGIN=\"\": required"),
        (
            vec![("DAEMON_PERIODIC_UPDATE", "0")],
            "DAEMON_PERIODIC_UPDATE=\"0\": must be a whole number of seconds greater than 0",
        ),
        (vec![("DAEMON_PERIODIC_UPDATE", "5s")], "DAEMON_PERIODIC_UPDATE=\"5s\": must be a whole number"),
        (vec![("DAEMON_PERIODIC_UPDATE", "-1")], "DAEMON_PERIODIC_UPDATE=\"-1\""),
        (vec![("GUID_POOL_RANGE_START", "02:00")], "GUID_POOL_RANGE_START=\"02:00\""),
        (vec![("GUID_POOL_RANGE_END", "00:11:22:33:44:55")], "6-byte"),
        (
            vec![
                ("GUID_POOL_RANGE_START", "02:00:00:00:00:00:00:09"),
                ("GUID_POOL_RANGE_END", "02:00:00:00:00:00:00:01"),
            ],
            "invalid GUID range",
        ),
        (vec![("GUID_POOL_RANGE_START", "00:00:00:00:00:00:00:00")], "invalid GUID range"),
        (vec![("GUID_POOL_RANGE_END", "ff:ff:ff:ff:ff:ff:ff:ff")], "invalid GUID range"),
        (vec![("LEADER_RENEW_DEADLINE", "20")], "shorter than LEADER_LEASE_DURATION"),
        (vec![("LEADER_RETRY_PERIOD", "10")], "shorter than LEADER_RENEW_DEADLINE"),
        (vec![("ADMIN_ADDRESS", "nowhere")], "ADMIN_ADDRESS=\"nowhere\""),
        (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT=\"xml\""),
    ] {
        let mut pairs = pairs;
        if !words.starts_with("DAEMON_SM_PLUGIN=") {
            pairs.push(("DAEMON_SM_PLUGIN", "noop"));
        }
        let e = err(&pairs);
        assert!(e.contains(words), "{pairs:?}: {e}");
    }
}

#[test]
fn several_errors_are_reported_together() {
    let e = err(&[("DAEMON_PERIODIC_UPDATE", "x"), ("LOG_FORMAT", "xml")]);
    for var in ["DAEMON_SM_PLUGIN", "DAEMON_PERIODIC_UPDATE", "LOG_FORMAT"] {
        assert!(e.contains(var), "{e}");
    }
}

#[test]
fn ufm_plugin_reads_its_variables_and_never_prints_the_password() {
    let c = load(&[
        ("DAEMON_SM_PLUGIN", "ufm"),
        ("UFM_USERNAME", "admin"),
        ("UFM_PASSWORD", "canary-secret"),
        ("UFM_ADDRESS", "ufm.local"),
        ("UFM_INSECURE_SKIP_VERIFY", "true"),
    ])
    .unwrap();
    let SmSelection::Ufm(ufm) = &c.sm else { panic!("{:?}", c.sm) };
    assert_eq!(ufm.tls, TlsTrust::InsecureSkipVerify);
    assert!(!format!("{c:?}").contains("canary-secret"));
    let e = err(&[("DAEMON_SM_PLUGIN", "ufm"), ("UFM_PASSWORD", "canary-secret")]);
    assert!(e.contains("UFM_ADDRESS") && e.contains("UFM_USERNAME") && !e.contains("canary-secret"), "{e}");
}

#[test]
fn other_plugin_names_are_external_and_paths_are_refused() {
    assert_eq!(load(&[("DAEMON_SM_PLUGIN", "acme-sm")]).unwrap().sm, SmSelection::External("acme-sm".into()));
    assert!(err(&[("DAEMON_SM_PLUGIN", "../evil")]).contains("not a path"));
}

#[test]
fn opensm_is_built_in_and_reads_its_variables() {
    let c = load(&[
        ("DAEMON_SM_PLUGIN", "opensm"),
        ("OPENSM_PARTITIONS_FILE", "/shared/partitions.conf"),
        ("OPENSM_MEMBERSHIP", "limited"),
    ])
    .unwrap();
    let SmSelection::OpenSm(opensm) = &c.sm else { panic!("{:?}", c.sm) };
    assert_eq!(opensm.partitions_file, std::path::PathBuf::from("/shared/partitions.conf"));
    assert_eq!(opensm.membership, ib_sm::opensm::Membership::Limited);
    let e =
        err(&[("DAEMON_SM_PLUGIN", "opensm"), ("OPENSM_PARTITION_FLAGS", "ipoib;ALL=full"), ("OPENSM_TIMEOUT", "x")]);
    assert!(e.contains("OPENSM_PARTITION_FLAGS") && e.contains("OPENSM_TIMEOUT"), "{e}");
}

#[test]
fn tenant_policy_variables() {
    let c = load(&[("DAEMON_SM_PLUGIN", "noop")]).unwrap();
    assert_eq!(
        c.policy,
        ib_model::Policy {
            namespace_isolation: false,
            global_namespaces: ["default".to_owned()].into(),
            remove_unrecorded: false,
            partitions: Default::default(),
        }
    );
    let c = load(&[
        ("DAEMON_SM_PLUGIN", "noop"),
        ("NAMESPACE_ISOLATION", "true"),
        ("GLOBAL_NAMESPACES", "shared, infra"),
        ("REMOVE_UNRECORDED_MEMBERSHIPS", "true"),
    ])
    .unwrap();
    assert!(c.policy.namespace_isolation && c.policy.remove_unrecorded);
    assert_eq!(c.policy.global_namespaces, ["infra".to_owned(), "shared".to_owned()].into());
    let e = err(&[
        ("DAEMON_SM_PLUGIN", "noop"),
        ("GLOBAL_NAMESPACES", "ok,Not_A_Namespace"),
        ("NAMESPACE_ISOLATION", "maybe"),
    ]);
    assert!(e.contains("GLOBAL_NAMESPACES") && e.contains("Not_A_Namespace"), "{e}");
    assert!(e.contains("NAMESPACE_ISOLATION") && e.contains("maybe"), "{e}");
}

#[test]
fn partition_defaults_are_todays_behaviour() {
    let c = load(&[("DAEMON_SM_PLUGIN", "noop")]).unwrap();
    assert_eq!(c.policy.partitions, ib_model::partition::PartitionPolicy::default());
    let p = c.policy.partitions;
    assert!(p.primary.ip_over_ib && p.primary.index0 && p.allow_create && p.default_limited.is_none());
    assert_eq!(p.primary.membership, ib_model::partition::Membership::Full);
    // Empty means default, as for every variable.
    let c = load(&[
        ("DAEMON_SM_PLUGIN", "noop"),
        ("ENABLE_IP_OVER_IB", ""),
        ("DEFAULT_LIMITED_PARTITION", ""),
        ("ALLOW_PARTITION_CREATE", ""),
    ])
    .unwrap();
    assert_eq!(c.policy.partitions, ib_model::partition::PartitionPolicy::default());
}

#[test]
fn partition_defaults_are_read() {
    let c = load(&[
        ("DAEMON_SM_PLUGIN", "noop"),
        ("ENABLE_IP_OVER_IB", "false"),
        ("ENABLE_INDEX0_FOR_PRIMARY_PKEY", "0"),
        ("DEFAULT_LIMITED_PARTITION", " 0x7ffe "),
        ("ALLOW_PARTITION_CREATE", "False"),
    ])
    .unwrap();
    let p = c.policy.partitions;
    assert!(!p.primary.ip_over_ib && !p.primary.index0 && !p.allow_create);
    assert_eq!(p.default_limited, Some(PKey::parse("0x7ffe").unwrap()));
}

#[test]
fn bad_partition_defaults_name_variable_and_value() {
    for (key, value, words) in [
        ("ENABLE_IP_OVER_IB", "yes", "ENABLE_IP_OVER_IB=\"yes\": must be true or false"),
        ("ENABLE_INDEX0_FOR_PRIMARY_PKEY", "2", "ENABLE_INDEX0_FOR_PRIMARY_PKEY=\"2\""),
        ("ALLOW_PARTITION_CREATE", "never", "ALLOW_PARTITION_CREATE=\"never\""),
        ("DEFAULT_LIMITED_PARTITION", "16", "DEFAULT_LIMITED_PARTITION=\"16\": must be a partition key"),
        ("DEFAULT_LIMITED_PARTITION", "0x7fff", "management"),
        ("DEFAULT_LIMITED_PARTITION", "0x8010", "15 bits"),
        ("DEFAULT_LIMITED_PARTITION", "0x0", "0x0000"),
    ] {
        let e = err(&[("DAEMON_SM_PLUGIN", "noop"), (key, value)]);
        assert!(e.contains(words), "{key}={value}: {e}");
    }
    // A huge value is echoed shortened, and every bad variable is reported in one go.
    let huge = "0x".to_owned() + &"f".repeat(1 << 20);
    let e = err(&[("DAEMON_SM_PLUGIN", "noop"), ("DEFAULT_LIMITED_PARTITION", &huge), ("ENABLE_IP_OVER_IB", "x")]);
    assert!(
        e.len() < 1000 && e.contains(&format!("({} bytes)", huge.len())) && e.contains("ENABLE_IP_OVER_IB"),
        "{}",
        e.len()
    );
}

#[test]
fn watch_namespace_is_one_namespace_with_a_range_of_its_own() {
    let c = load(&[("DAEMON_SM_PLUGIN", "noop"), ("WATCH_NAMESPACE", "")]).unwrap();
    assert_eq!(c.watch_namespace, None);
    let range =
        [("GUID_POOL_RANGE_START", "02:00:00:00:00:00:01:00"), ("GUID_POOL_RANGE_END", "02:00:00:00:00:00:01:3f")];
    let mut pairs = vec![("DAEMON_SM_PLUGIN", "noop"), ("WATCH_NAMESPACE", " team-a ")];
    pairs.extend(range);
    assert_eq!(load(&pairs).unwrap().watch_namespace.as_deref(), Some("team-a"));

    // Hostile or mistaken values are refused by name, never used as a path or selector.
    for bad in ["Team", "a/b", "../kube-system", "a,b", "x".repeat(64).as_str()] {
        let mut pairs = vec![("DAEMON_SM_PLUGIN", "noop"), ("WATCH_NAMESPACE", bad)];
        pairs.extend(range);
        let e = err(&pairs);
        assert!(e.contains("WATCH_NAMESPACE") && e.contains(bad) && e.contains("DNS-1123"), "{e}");
    }
    // Without a range of its own it would release the records of the other namespaces' pods: the
    // default range is refused whether it is left unset or written out (as the manifests do).
    for missing in [0, 1] {
        let mut pairs = vec![("DAEMON_SM_PLUGIN", "noop"), ("WATCH_NAMESPACE", "team-a"), range[missing]];
        assert!(load(&pairs).is_ok(), "one end of the default range moved is a range of its own");
        pairs.pop();
        let e = err(&pairs);
        assert!(e.contains("WATCH_NAMESPACE=\"team-a\"") && e.contains("not the default one"), "{e}");
    }
    let e = err(&[
        ("DAEMON_SM_PLUGIN", "noop"),
        ("WATCH_NAMESPACE", "team-a"),
        ("GUID_POOL_RANGE_START", DEFAULT_RANGE_START),
        ("GUID_POOL_RANGE_END", "02:ff:ff:ff:ff:ff:ff:ff"),
    ]);
    assert!(e.contains("not the default one"), "{e}");
}

#[test]
fn pkey_allocation_range_is_read_and_kept_apart_from_the_shared_partition() {
    let c = load(&[("DAEMON_SM_PLUGIN", "noop"), ("PKEY_ALLOCATION_RANGE", "0x1000-0x1fff")]).unwrap();
    assert_eq!(c.policy.partitions.allocation_range.map(|r| r.to_string()).as_deref(), Some("0x1000-0x1FFF"));
    for (value, words) in [
        ("0x2000-0x1000", "PKEY_ALLOCATION_RANGE=\"0x2000-0x1000\""),
        ("0x1000", "must be a range of partition keys"),
        ("0x1-0x7fff", "management"),
    ] {
        let e = err(&[("DAEMON_SM_PLUGIN", "noop"), ("PKEY_ALLOCATION_RANGE", value)]);
        assert!(e.contains(words), "{value}: {e}");
    }
    let e = err(&[
        ("DAEMON_SM_PLUGIN", "noop"),
        ("PKEY_ALLOCATION_RANGE", "0x1000-0x1fff"),
        ("DEFAULT_LIMITED_PARTITION", "0x1005"),
    ]);
    assert!(e.contains("DEFAULT_LIMITED_PARTITION") && e.contains("inside PKEY_ALLOCATION_RANGE"), "{e}");
    let e = err(&[("DAEMON_SM_PLUGIN", "noop"), ("PKEY_ALLOCATION_RANGE", &"0x1".repeat(1_000_000))]);
    assert!(e.len() < 1_000, "a megabyte value is not echoed whole: {} bytes", e.len());
}
