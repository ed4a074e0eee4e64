//! A new leader's fresh pod list taken in page by page (`State::fresh_pods_page`, `fresh_pods_end`)
//! decides exactly what the whole list does (`State::refresh_pods`), and nothing before its end; so do
//! the ownership records (`State::records_page`, `records_end` against `records_listed`).

use std::sync::Arc;

use super::*;

/// A cluster whose previous leader configured six pods, then, unseen by this replica's watch: one pod
/// deleted, one changed, one created; a pod the watch delivers after the list's snapshot; a new leader.
/// Returns the world and the list with its resourceVersion.
fn cluster_and_fresh_list() -> (World, Vec<PodView>, String) {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    let pods: Vec<PodUid> = (0..6).map(|i| w.pod("default", &format!("p{i}"), "ib")).collect();
    w.settle();
    // The API server's side, not delivered to this replica.
    w.pods.remove(&*pods[1].0);
    let rv = w.next_rv();
    w.pods.get_mut(&*pods[2].0).unwrap().resource_version = rv;
    let unseen = PodUid::from("uid-unseen");
    let view = PodView {
        uid: unseen.clone(),
        name: "unseen".into(),
        resource_version: w.next_rv(),
        ..w.pods[&*pods[0].0].clone()
    };
    let view = PodView { networks: Some("ib".into()), ..view };
    w.pods.insert(unseen.0.to_string(), view);
    let list: Vec<PodView> = w.pods.values().cloned().collect();
    let list_rv = w.rv.to_string();
    w.pod("default", "created-after", "ib");
    w.state.begin_leading();
    w.read_records();
    (w, list, list_rv)
}

/// Every plan until the world settles, and what it ends with.
fn plans_until_settled(w: &mut World) -> Vec<Plan> {
    let mut plans = Vec::new();
    for _ in 0..100 {
        let plan = w.state.plan();
        plans.push(plan.clone());
        let idle = plan.is_idle();
        w.execute(plan);
        if idle && w.state.records_waiting() {
            w.state.flush_records();
            continue;
        }
        if idle && w.state.is_settled() {
            return plans;
        }
    }
    panic!("did not settle: {:?}", w.state);
}

fn known_pods(w: &World) -> BTreeMap<String, PodView> {
    w.pods
        .keys()
        .chain(["uid-unseen".to_owned()].iter())
        .filter_map(|uid| w.state.pod(&PodUid::from(uid.as_str())).map(|v| (uid.clone(), v.clone())))
        .collect()
}

#[test]
fn a_fresh_list_in_pages_gives_the_state_and_plans_of_the_whole_list() {
    let (mut whole, list, list_rv) = cluster_and_fresh_list();
    whole.state.refresh_pods(list.clone(), Some(&list_rv));
    whole.state.pods_synced();
    let whole_plans = plans_until_settled(&mut whole);
    assert!(whole.state.pod(&PodUid::from("uid-unseen")).is_some());
    for page in [1, 2, 3, list.len()] {
        let (mut paged, list, list_rv) = cluster_and_fresh_list();
        for chunk in list.chunks(page) {
            paged.state.fresh_pods_page(chunk.to_vec());
        }
        paged.state.fresh_pods_end(Some(&list_rv));
        assert_eq!(plans_until_settled(&mut paged), whole_plans, "pages of {page}");
        assert_eq!(known_pods(&paged), known_pods(&whole), "pages of {page}");
        assert_eq!(paged.sm, whole.sm, "pages of {page}");
        assert_eq!(paged.records, whole.records, "pages of {page}");
        assert_eq!(paged.pods, whole.pods, "pages of {page}");
    }
}

#[test]
fn nothing_is_decided_before_the_last_page() {
    let (mut w, list, list_rv) = cluster_and_fresh_list();
    for chunk in list.chunks(2) {
        w.state.fresh_pods_page(chunk.to_vec());
        let plan = w.state.plan();
        assert!(plan.is_idle() && plan.pending.is_empty() && plan.notices.is_empty(), "{plan:?}");
    }
    w.state.fresh_pods_end(Some(&list_rv));
    assert!(w.state.plan().list_sm, "the list has ended: the subnet manager is read next");
}

#[test]
fn a_pod_missing_from_every_page_is_dropped_unless_newer_than_the_list() {
    let (mut w, list, list_rv) = cluster_and_fresh_list();
    let gone = w.state.known().pod_uids().find(|u| !w.pods.contains_key(&*u.0)).unwrap().clone();
    let after = w.pods.values().find(|v| v.name == "created-after").unwrap().uid.clone();
    for chunk in list.chunks(2) {
        w.state.fresh_pods_page(chunk.to_vec());
    }
    assert!(w.state.pod(&gone).is_some(), "dropped before the list ended");
    w.state.fresh_pods_end(Some(&list_rv));
    assert!(w.state.pod(&gone).is_none(), "a pod no page contained is kept");
    assert!(w.state.pod(&after).is_some(), "a pod newer than the list was dropped");
    plans_until_settled(&mut w);
    assert_eq!(w.annotation(&after)[0]["cni-args"]["mellanox.infiniband.app"], "configured");
}

/// A list that fails midway is read again whole: the pods its pages named do not keep a pod the list
/// that ends no longer has.
#[test]
fn a_list_failed_midway_is_read_again_whole() {
    let (mut w, list, list_rv) = cluster_and_fresh_list();
    let (first, rest) = list.split_at(2);
    w.state.fresh_pods_page(first.to_vec());
    w.state.fresh_pods_failed();
    assert!(w.state.plan().is_idle(), "a failed list decided something");
    // Between the attempts the first page's pods are deleted, and the watch has not said so.
    for v in first {
        w.pods.remove(&*v.uid.0);
    }
    let list_rv = (list_rv.parse::<u64>().unwrap() + 1).to_string();
    w.state.fresh_pods_page(rest.to_vec());
    w.state.fresh_pods_end(Some(&list_rv));
    for v in first {
        assert!(w.state.pod(&v.uid).is_none(), "{} kept by the failed attempt's page", v.name);
    }
    plans_until_settled(&mut w);
}

/// The pages of a list made for an earlier leadership name no pod the new leadership's list must drop.
#[test]
fn a_new_leadership_forgets_the_pages_of_the_last() {
    let (mut w, list, list_rv) = cluster_and_fresh_list();
    let (first, rest) = list.split_at(2);
    w.state.fresh_pods_page(first.to_vec());
    for v in first {
        w.pods.remove(&*v.uid.0);
    }
    w.state.begin_leading();
    w.read_records();
    let list_rv = (list_rv.parse::<u64>().unwrap() + 1).to_string();
    w.state.fresh_pods_page(rest.to_vec());
    w.state.fresh_pods_end(Some(&list_rv));
    for v in first {
        assert!(w.state.pod(&v.uid).is_none(), "{} kept by the last leadership's page", v.name);
    }
}

fn claims(w: &World) -> BTreeMap<Guid, crate::ledger::Claim> {
    w.state.ledger().iter().map(|(g, c)| (g, c.clone())).collect()
}

/// A new leader of a cluster whose previous leader configured pods, before it has read the records.
fn cluster_before_records() -> World {
    let mut w = World::default_range().synced();
    w.nad("default", "ib", IB5);
    for i in 0..6 {
        w.pod("default", &format!("p{i}"), if i % 2 == 0 { "ib" } else { "ib,ib" });
    }
    w.settle();
    w.state.begin_leading();
    w
}

/// The leader's start after the records: the pods read afresh, then planning until settled.
fn after_records(w: &mut World) -> Vec<Plan> {
    let list: Vec<PodView> = w.pods.values().cloned().collect();
    let rv = w.rv.to_string();
    w.state.fresh_pods_page(list);
    w.state.fresh_pods_end(Some(&rv));
    plans_until_settled(w)
}

#[test]
fn records_in_pages_give_the_state_and_plans_of_the_whole_list() {
    let mut whole = cluster_before_records();
    assert!(whole.records.len() >= 9, "{:?}", whole.records);
    whole.read_records();
    let whole_plans = after_records(&mut whole);
    for page in [1, 2, 5] {
        let mut paged = cluster_before_records();
        let records: Vec<(Guid, Record)> = paged.records.iter().map(|(g, r)| (*g, r.clone())).collect();
        for chunk in records.chunks(page) {
            paged.state.records_page(chunk.to_vec());
            assert!(!paged.state.records_known(), "records counted as read before their end");
        }
        paged.state.records_end(true);
        assert_eq!(after_records(&mut paged), whole_plans, "pages of {page}");
        assert_eq!(claims(&paged), claims(&whole), "pages of {page}");
        assert_eq!(paged.records, whole.records, "pages of {page}");
        assert_eq!(paged.sm, whole.sm, "pages of {page}");
    }
}

/// A record read that fails after some pages is read again whole: the records taken in twice are
/// taken in once.
#[test]
fn records_read_again_after_a_failure_give_the_state_of_one_read() {
    let mut whole = cluster_before_records();
    whole.read_records();
    let whole_plans = after_records(&mut whole);
    let mut retried = cluster_before_records();
    let records: Vec<(Guid, Record)> = retried.records.iter().map(|(g, r)| (*g, r.clone())).collect();
    retried.state.records_page(records[..records.len() / 2].to_vec());
    // Nothing is decided from part of the records; the claims they restore are not reported as
    // allocated (an earlier leadership allocated them).
    let plan = retried.state.plan();
    assert_eq!(plan, Plan::default(), "{plan:?}");
    assert!(!retried.state.ledger().is_empty(), "the first half's claims are restored");
    assert!(!retried.state.records_known());
    retried.read_records();
    assert_eq!(after_records(&mut retried), whole_plans);
    assert_eq!(claims(&retried), claims(&whole));
    assert_eq!(retried.state.record_count(), whole.state.record_count());
}

/// The pod watch's own list (a re-list after a gap) taken in page by page (`State::relist_pods_page`,
/// `relist_pods_end`) decides what the whole list does (`State::reset_pods`), also after an earlier
/// list was cut off midway by naming a pod the real list no longer has.
#[test]
fn the_watch_list_in_pages_gives_the_state_and_plans_of_the_whole_list() {
    let (mut whole, list, _) = cluster_and_fresh_list();
    whole.state.reset_pods(list.clone());
    whole.state.pods_synced();
    let whole_plans = plans_until_settled(&mut whole);
    assert!(whole.state.pod(&PodUid::from("uid-unseen")).is_some());
    for page in [1, 2, 3, list.len()] {
        let (mut paged, list, _) = cluster_and_fresh_list();
        // A list cut off after its first page, which named a pod deleted since.
        let deleted = paged.state.known().pod_uids().find(|u| !paged.pods.contains_key(&*u.0)).unwrap().clone();
        let stale = paged.state.pod(&deleted).unwrap();
        paged.state.relist_pods_page(true, vec![stale]);
        for (i, chunk) in list.chunks(page).enumerate() {
            paged.state.relist_pods_page(i == 0, chunk.to_vec());
        }
        assert_eq!(paged.state.relist_pods_end(), list.len());
        assert!(paged.state.pod(&deleted).is_none(), "pages of {page}: a pod only the cut-off list named is kept");
        assert_eq!(plans_until_settled(&mut paged), whole_plans, "pages of {page}");
        assert_eq!(known_pods(&paged), known_pods(&whole), "pages of {page}");
        assert_eq!(paged.sm, whole.sm, "pages of {page}");
        assert_eq!(paged.records, whole.records, "pages of {page}");
    }
}

/// The watch's first list: nothing is decided before its last page.
#[test]
fn nothing_is_decided_before_the_watch_lists_last_page() {
    let mut w = World::default_range();
    w.nad("default", "ib", IB5);
    w.state.nads_synced();
    w.read_records();
    let views: Vec<PodView> = (0..4)
        .map(|i| {
            let uid = w.pod("default", &format!("p{i}"), "ib");
            w.pods[&*uid.0].clone()
        })
        .collect();
    for chunk in views.chunks(2) {
        w.state.relist_pods_page(chunk.as_ptr() == views.as_ptr(), chunk.to_vec());
        let plan = w.state.plan();
        assert!(plan.is_idle() && plan.pending.is_empty(), "{plan:?}");
    }
    assert_eq!(w.state.relist_pods_end(), 4);
    w.settle();
    assert_eq!(w.members("0x5").len(), 4);
}

/// Each ownership record names its pod in a string of its own (a pod with two rails has two records).
/// A new replica's state keeps one copy of a pod's uid, the one its view holds, or, for a pod it does
/// not know, the one its first claim holds.
#[test]
fn restored_claims_share_one_copy_of_their_pods_uid() {
    let settled = cluster_before_records();
    let mut replica = World::default_range();
    let known: Vec<PodView> = settled.pods.values().filter(|v| v.name != "p0").cloned().collect();
    replica.state.reset_pods(known);
    replica.state.pods_synced();
    replica.state.begin_leading();
    // As read from the blocks: every uid a string of its own.
    let records: Vec<(Guid, Record)> = settled
        .records
        .iter()
        .map(|(g, r)| {
            let mut r = r.clone();
            r.owner.pod = PodUid::from(r.owner.pod.0.to_string());
            (*g, r)
        })
        .collect();
    replica.state.records_page(records.clone());
    let ledger = replica.state.ledger();
    let mut two_rails = 0;
    for (g, record) in &records {
        let claim = ledger.get(*g).expect("every record restores its claim");
        let kept = match replica.state.known().shared_uid(&record.owner.pod) {
            Some(view) => view.clone(),
            None => ledger.shared_pod(&record.owner.pod).expect("claimed").clone(),
        };
        assert!(Arc::ptr_eq(&claim.owner.pod.0, &kept.0), "{g}: {:?}", record.owner.pod);
        let rails = ledger.guids_of_pod(&record.owner.pod);
        two_rails += usize::from(rails.len() == 2);
        for other in rails {
            assert!(Arc::ptr_eq(&ledger.get(other).unwrap().owner.pod.0, &claim.owner.pod.0));
        }
    }
    assert!(two_rails > 0, "the cluster has pods with two rails");
    assert!(records.iter().any(|(_, r)| replica.state.known().shared_uid(&r.owner.pod).is_none()), "one pod unknown");
}

/// A list page names each pod with a uid string of its own; while the list lasts, the state keeps the
/// uid its pod table already holds, not the page's (freed with the page).
#[test]
fn a_lists_pages_keep_no_uid_of_their_own_for_a_known_pod() {
    let (mut w, list, _) = cluster_and_fresh_list();
    let page: Vec<PodView> = list
        .into_iter()
        .filter(|v| w.state.known().shared_uid(&v.uid).is_some())
        .map(|mut v| {
            v.uid = PodUid::from(v.uid.0.to_string());
            v
        })
        .collect();
    assert!(!page.is_empty());
    let uids: Vec<PodUid> = page.iter().map(|v| v.uid.clone()).collect();
    w.state.begin_leading();
    w.state.fresh_pods_page(page.clone());
    w.state.relist_pods_page(true, page);
    let mut unchanged = 0;
    for uid in &uids {
        let view = w.state.known().pod(uid).expect("known");
        if Arc::ptr_eq(&view.uid.0, &uid.0) {
            // Newer in the list: the page's view, uid and all, replaced the table's.
            continue;
        }
        unchanged += 1;
        assert_eq!(Arc::strong_count(&uid.0), 1, "{uid:?} is held by the state");
    }
    assert!(unchanged > 0, "the list has pods the state already knew as they are");
}
