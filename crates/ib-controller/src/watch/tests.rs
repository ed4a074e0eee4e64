//! The fresh list's pages, sent as they are read and only a few ahead of the state task.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A list of `pages` pages of one pod each, counting the pages read.
fn pages(
    pages: usize,
    read: &AtomicUsize,
) -> impl FnMut(Option<String>) -> std::future::Ready<Result<Page, Infallible>> {
    move |token: Option<String>| {
        let n: usize = token.map_or(0, |t| t.parse().unwrap_or(usize::MAX));
        read.fetch_add(1, Ordering::SeqCst);
        let view = PodView {
            uid: PodUid::from(format!("uid-{n}")),
            namespace: "default".into(),
            name: format!("p{n}"),
            resource_version: "7".into(),
            node_name: None,
            host_network: false,
            phase: ib_model::PodPhase::Running,
            deleting: false,
            networks: Some("ib".into()),
            created: 0,
            network_status: Vec::new(),
        };
        let next = (n + 1 < pages).then(|| (n + 1).to_string());
        std::future::ready(Ok(Page { views: vec![view], next, resource_version: Some("9".into()) }))
    }
}

#[tokio::test]
async fn a_fresh_list_reads_only_a_few_pages_ahead_of_the_state_task() {
    static READ: AtomicUsize = AtomicUsize::new(0);
    let (tx, mut rx) = mpsc::channel(64);
    let reader = tokio::spawn(async move { send_pages(3, &tx, pages(10, &READ)).await });
    // On this one-thread runtime the reader runs whenever the test yields, until it has to wait.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(READ.load(Ordering::SeqCst), FRESH_PAGES_AHEAD, "pages read while none was taken in");
    let mut taken = Vec::new();
    while let Some(input) = rx.recv().await {
        match input {
            Input::FreshPodsPage { term: 3, views, permit } => {
                drop(permit);
                taken.extend(views.into_iter().map(|v| v.name));
            }
            other => panic!("unexpected {other:?}"),
        }
        if taken.len() == 10 {
            break;
        }
    }
    let names: Vec<String> = (0..10).map(|n| format!("p{n}")).collect();
    assert_eq!(taken, names);
    assert_eq!(reader.await.unwrap(), Ok(Some("9".to_owned())));
}

/// The pod watch hands its list on a page at a time, the first page marked as beginning the list and
/// only the last as ending it, with every pod once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_watch_hands_its_list_on_a_page_at_a_time() {
    use kube_emulator::{EmulatorConfig, KubeEmulator, Resource};
    let emulator = KubeEmulator::start(EmulatorConfig::default()).await.expect("emulator");
    let pods = 2 * LIST_PAGE as usize + 7;
    for i in 0..pods {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i}"), "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        });
        emulator.handle().create(Resource::Pods, pod).expect("create pod");
    }
    let client = kube::Client::try_from(kube::Config::new(emulator.url().parse().expect("url"))).expect("client");
    let (tx, mut rx) = mpsc::channel(16);
    let metrics = Arc::new(Metrics::register(&mut prometheus_client::registry::Registry::default()));
    let watch = tokio::spawn(super::pods(client, None, tx, metrics));
    let mut pages = Vec::new();
    let deadline = std::time::Duration::from_secs(60);
    loop {
        let input = tokio::time::timeout(deadline, rx.recv()).await.expect("the list in time").expect("an input");
        if let Input::PodsReset { first, done, views } = input {
            pages.push((first, done, views.len()));
            if done {
                break;
            }
        }
    }
    watch.abort();
    assert!(pages.len() >= 3, "{pages:?}");
    assert!(pages.iter().all(|(_, _, n)| *n <= LIST_PAGE as usize), "{pages:?}");
    let firsts: Vec<bool> = pages.iter().map(|p| p.0).collect();
    assert!(firsts[0] && firsts[1..].iter().all(|f| !f), "{pages:?}");
    assert_eq!(pages.iter().filter(|p| p.1).count(), 1);
    assert_eq!(pages.iter().map(|p| p.2).sum::<usize>(), pods);
}
