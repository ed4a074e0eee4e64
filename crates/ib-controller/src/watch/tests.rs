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
