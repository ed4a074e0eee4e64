//! The alerts (deployment/ib-kubernetes-prometheusrule.yaml) and the Grafana dashboard
//! (deployment/ib-kubernetes-dashboard.json) refer only to series the controller exports: every metric
//! name, every label they match or group by, and every label value they match on appears on the
//! `/metrics` of the real binary, run against the Kubernetes and UFM emulators through a scenario that
//! produces each outcome (a configured pod, a waiting pod, one failed subnet-manager request, one
//! failed pod patch, one failed record write). Labels shown in alert summaries (`$labels.x`) and
//! dashboard legends (`{{x}}`) must survive the expression's aggregation.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{DEADLINE, binary};
use ib_kubernetes_deployment::{DASHBOARD, MONITORING, dir, load};
use kube_emulator::{EmulatorConfig, Fault, FaultRule, KubeEmulator, Resource};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IB5: &str = r#"{"type":"ib-sriov","cniVersion":"0.3.1","name":"ib","pkey":"0x5","ipam":{}}"#;

/// One metric selector of an expression: `name{label op "value", ...}`.
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

/// The `ib_kubernetes_*` selectors of a PromQL expression, and the labels of its `by (...)` clauses.
fn parse_promql(expr: &str) -> (Vec<Selector>, BTreeSet<String>) {
    let mut selectors = Vec::new();
    let mut by = BTreeSet::new();
    let bytes = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && ident(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        let rest = expr[i..].trim_start();
        if word == "by" || word == "without" {
            let list = rest.strip_prefix('(').and_then(|r| r.split_once(')')).map(|(l, _)| l).expect("by (...)");
            by.extend(list.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()));
        } else if word.starts_with("ib_kubernetes_") {
            let mut matchers = Vec::new();
            if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.split_once('}')).map(|(m, _)| m) {
                for matcher in inner.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    let at = matcher.find(['=', '!']).unwrap_or_else(|| panic!("matcher {matcher}"));
                    let (label, tail) = matcher.split_at(at);
                    let op_len = tail.find('"').expect("quoted value");
                    let value = tail[op_len..].trim_matches('"');
                    matchers.push((label.trim().to_owned(), tail[..op_len].to_owned(), value.to_owned()));
                }
            }
            selectors.push(Selector { metric: word.to_owned(), matchers });
        }
    }
    (selectors, by)
}

/// `{{ $labels.x }}` (alerts) or `{{x}}` (legends): the label names a text shows.
fn shown_labels(text: &str) -> BTreeSet<String> {
    text.split("{{")
        .skip(1)
        .filter_map(|t| t.split_once("}}").map(|(inner, _)| inner.trim()))
        .filter_map(|inner| {
            let name = inner.strip_prefix("$labels.").unwrap_or(inner);
            let name = name.split_whitespace().next()?;
            (!name.starts_with('$')).then(|| name.to_owned())
        })
        .collect()
}

/// Sample name → label name → values seen, from the text exposition format.
type Series = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn series(text: &str) -> Series {
    let mut out = Series::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.rsplit_once('}').map(|(l, _)| l).unwrap_or_default()),
            None => (line.split_whitespace().next().unwrap_or_default(), ""),
        };
        let entry = out.entry(name.to_owned()).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (label, value) = pair.split_once('=').expect("label=value");
            entry.entry(label.to_owned()).or_default().insert(value.trim_matches('"').to_owned());
        }
    }
    out
}

/// What every expression of the alerts and the dashboard uses, with where it comes from.
struct Use {
    place: String,
    expr: String,
    shown: BTreeSet<String>,
}

fn uses() -> Vec<Use> {
    let mut uses = Vec::new();
    for object in MONITORING.iter().flat_map(|f| load(f).unwrap_or_else(|e| panic!("{e}"))) {
        for group in object.value["spec"]["groups"].as_array().expect("groups") {
            for rule in group["rules"].as_array().expect("rules") {
                let name = rule["alert"].as_str().expect("alert name");
                let shown = rule["annotations"].as_object().into_iter().flatten().filter_map(|(_, v)| v.as_str());
                uses.push(Use {
                    place: format!("alert {name}"),
                    expr: rule["expr"].as_str().expect("expr").to_owned(),
                    shown: shown.flat_map(shown_labels).collect(),
                });
            }
        }
    }
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join(DASHBOARD)).expect("dashboard")).expect("JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            uses.push(Use {
                place: format!("panel {:?}", panel["title"]),
                expr: target["expr"].as_str().expect("expr").to_owned(),
                shown: shown_labels(target["legendFormat"].as_str().unwrap_or_default()),
            });
        }
    }
    uses
}

/// Every problem of `uses` against the scraped `series`.
fn problems(uses: &[Use], series: &Series) -> Vec<String> {
    let mut problems = Vec::new();
    for u in uses {
        let (selectors, by) = parse_promql(&u.expr);
        if selectors.is_empty() {
            problems.push(format!("{}: uses no ib_kubernetes_ metric: {}", u.place, u.expr));
        }
        for s in &selectors {
            let Some(labels) = series.get(&s.metric) else {
                problems.push(format!("{}: {} is not exported", u.place, s.metric));
                continue;
            };
            for (label, op, value) in &s.matchers {
                match labels.get(label) {
                    None => problems.push(format!("{}: {} has no label {label}", u.place, s.metric)),
                    Some(values) if (op == "=" || op == "!=") && !values.contains(value) => problems.push(format!(
                        "{}: {}{{{label}{op}\"{value}\"}}: no such value in {values:?}",
                        u.place, s.metric
                    )),
                    Some(_) if op != "=" && op != "!=" => {
                        problems.push(format!("{}: {label}{op}: only = and != are checked; use them", u.place))
                    }
                    Some(_) => {}
                }
            }
            for label in &by {
                if !labels.contains_key(label) {
                    problems.push(format!("{}: groups by {label}, which {} does not have", u.place, s.metric));
                }
            }
        }
        for label in u.shown.difference(&by) {
            problems.push(format!("{}: shows {label}, which the expression does not keep (by)", u.place));
        }
    }
    problems
}

#[test]
fn the_checks_catch_a_wrong_metric_label_value_and_shown_label() {
    let scraped =
        series("# TYPE ib_kubernetes_x counter\nib_kubernetes_x_total{outcome=\"success\"} 1\nib_kubernetes_y 2\n");
    let good = Use {
        place: "good".into(),
        expr: "sum by (outcome) (rate(ib_kubernetes_x_total{outcome!=\"success\"}[5m])) / ib_kubernetes_y".into(),
        shown: BTreeSet::new(),
    };
    // `outcome` is grouped by, and ib_kubernetes_y lacks it: caught.
    assert_eq!(problems(&[good], &scraped).len(), 1);
    let cases = [
        ("ib_kubernetes_z", "is not exported"),
        ("ib_kubernetes_x_total{reason=\"a\"}", "has no label reason"),
        ("ib_kubernetes_x_total{outcome=\"failed\"}", "no such value"),
        ("ib_kubernetes_x_total{outcome=~\"s.*\"}", "only = and !="),
        ("max by (outcome) (ib_kubernetes_y)", "does not have"),
        ("up", "uses no ib_kubernetes_ metric"),
    ];
    for (expr, expected) in cases {
        let u = Use { place: expr.into(), expr: expr.into(), shown: BTreeSet::new() };
        let found = problems(&[u], &scraped);
        assert!(found.iter().any(|p| p.contains(expected)), "{expr}: {found:?}");
    }
    let shown = Use {
        place: "s".into(),
        expr: "max(ib_kubernetes_y)".into(),
        shown: shown_labels("{{ $labels.reason }} {{ $value }}"),
    };
    assert_eq!(problems(&[shown], &scraped), ["s: shows reason, which the expression does not keep (by)"]);
    assert_eq!(
        shown_labels("{{operation}} {{ outcome }}"),
        BTreeSet::from(["operation".to_owned(), "outcome".to_owned()])
    );
}

/// A plain HTTP GET of `path` on `address`, with a deadline.
async fn get(address: &str, path: &str) -> String {
    let request = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), request).await.expect("GET in time").expect("GET");
    response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

/// The admin address the controller logged at start (`LOG_FORMAT=json`), once it is there.
async fn admin_address(log: &Path, child: &mut Child) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|l| l["fields"]["admin_address"].as_str().map(str::to_owned));
        if let Some(address) = found {
            return address;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the controller exited ({status}):\n{text}");
        }
        assert!(started.elapsed() < DEADLINE, "no admin address logged:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the controller when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_use_only_exported_metrics_and_labels() {
    let uses = uses();
    assert!(uses.len() >= 20, "{} expressions", uses.len());
    let binary = binary().clone();
    let kube = KubeEmulator::start(EmulatorConfig::default()).await.expect("kube emulator");
    let ufm = ufm_emulator::UfmEmulator::start(ufm_emulator::UfmConfig::http().with_credentials("admin", "pw-3f9"))
        .await
        .expect("ufm emulator");
    let temp = tempfile::tempdir().expect("temp dir");
    let kubeconfig = temp.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    // One failure of each kind the alerts match on; the controller retries each and succeeds.
    let api = kube.handle();
    api.inject_fault(FaultRule::new(Fault::InternalError).method("PATCH").path("/api/v1/namespaces/*/pods/*"));
    api.inject_fault(FaultRule::new(Fault::InternalError).method("PATCH").path("/apis/ib-kubernetes.mellanox.com/*"));
    let mut fault = ufm_emulator::FaultRule::respond(None, "/ufmRest/resources/pkeys*", 500, "{}");
    fault.times = Some(1);
    ufm.handle().inject(fault);

    api.create(
        Resource::NetworkAttachmentDefinitions,
        json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
               "metadata": {"name": "ib", "namespace": "default"}, "spec": {"config": IB5}}),
    )
    .expect("NAD");
    for (name, networks) in [("a", "ib"), ("waiting", "nowhere")] {
        api.create(
            Resource::Pods,
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": "default",
                                "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
                   "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
                   "status": {"phase": "Pending"}}),
        )
        .expect("pod");
    }

    let log = temp.path().join("controller.log");
    let env = [
        ("DAEMON_SM_PLUGIN", "ufm".to_owned()),
        ("UFM_ADDRESS", "127.0.0.1".to_owned()),
        ("UFM_PORT", ufm.addr().port().to_string()),
        ("UFM_HTTP_SCHEMA", "http".to_owned()),
        ("UFM_USERNAME", "admin".to_owned()),
        ("UFM_PASSWORD", "pw-3f9".to_owned()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("ADMIN_ADDRESS", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("K8S_NODE", "node-1".to_owned()),
        ("POD_UID", "monitoring-test".to_owned()),
        ("DAEMON_PERIODIC_UPDATE", "1".to_owned()),
    ];
    let child = Command::new(&binary)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("controller starts");
    let mut controller = Running(child);
    let address = admin_address(&log, &mut controller.0).await;

    // Every outcome shows once the pod is configured after the faults and the other pod waits.
    let wanted = [
        "ib_kubernetes_pods_configured_total",
        "ib_kubernetes_pending_pods{reason=\"NetworkNotFound\"} 1",
        "outcome=\"failure\"",
        "ib_kubernetes_pod_patches_total{outcome=\"failed\",",
        "ib_kubernetes_ownership_record_writes_total{outcome=\"failure\",",
        "ib_kubernetes_leader 1",
    ];
    let started = Instant::now();
    let text = loop {
        let text = get(&address, "/metrics").await;
        if wanted.iter().all(|w| text.contains(w)) && !text.contains("ib_kubernetes_pods_configured_total 0") {
            break text;
        }
        if let Ok(Some(status)) = controller.0.try_wait() {
            panic!("the controller exited ({status}):\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(started.elapsed() < DEADLINE, "the scenario never showed {wanted:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let scraped = series(&text);
    let found = problems(&uses, &scraped);
    assert!(found.is_empty(), "{}\n\n/metrics:\n{text}", found.join("\n"));
    drop(controller);
    ufm.shutdown().await;
    kube.shutdown().await;
}
