use std::path::{Path, PathBuf};

use super::*;
use crate::opensm::config::Reload;
use crate::opensm::partitions::{BEGIN_MARKER, END_MARKER};

const SITE: &str = "# the site's own partitions\nDefault=0x7fff, ipoib : ALL=full ;\n\tstorage = 0x0a01 :  0x0002c90300000001=full ; # keep\n";
/// Generous: the machine running the tests may be loaded.
const LONG: Duration = Duration::from_secs(120);

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    reloads: PathBuf,
}

impl Fixture {
    fn new(site: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partitions.conf");
        std::fs::write(&path, site).unwrap();
        let reloads = dir.path().join("reloads");
        Fixture { path, reloads, _dir: dir }
    }

    /// Reloads by appending a line to a file, so that they can be counted.
    fn counting(&self) -> Reload {
        Reload::Command(vec![
            "sh".into(),
            "-c".into(),
            "echo reload >> \"$0\"".into(),
            self.reloads.display().to_string(),
        ])
    }

    fn sm(&self, reload: Reload) -> OpenSm {
        let mut config = OpenSmConfig::new(&self.path, reload);
        config.timeout = LONG;
        OpenSm::new(config)
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    fn reload_count(&self) -> usize {
        std::fs::read_to_string(&self.reloads).map(|t| t.lines().count()).unwrap_or(0)
    }
}

fn pkey(v: u32) -> PKey {
    PKey::new(v).unwrap()
}

fn guid(v: u64) -> Guid {
    Guid::from_u64(v)
}

fn local(e: &SmError) -> (&str, bool) {
    match e {
        SmError::Local { reason, outcome_unknown, .. } => (reason.as_str(), *outcome_unknown),
        other => panic!("expected a local error, got {other:?}"),
    }
}

#[tokio::test]
async fn adds_and_removes_land_in_our_block_and_the_site_text_stays_a_prefix() {
    let f = Fixture::new(SITE);
    let sm = f.sm(f.counting());
    sm.validate().await.unwrap();
    sm.add_guids(pkey(0xa01), &[guid(0x0200_0000_0000_0002), guid(0x0200_0000_0000_0003)]).await.unwrap();
    sm.add_guids(pkey(0x5), &[guid(0x0200_0000_0000_0002)]).await.unwrap();
    let text = String::from_utf8(f.bytes()).unwrap();
    assert!(text.starts_with(SITE), "{text}");
    assert!(
        text.ends_with(&format!(
            "{BEGIN_MARKER}\nib-kubernetes-0x0005=0x0005,ipoib :\n    0x0200000000000002=full ;\n\
             ib-kubernetes-0x0A01=0x0A01,ipoib :\n    0x0200000000000002=full, 0x0200000000000003=full ;\n{END_MARKER}\n"
        )),
        "{text}"
    );
    let mut listed = sm.list_guids().await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("0x0005".to_owned(), guid(0x0200_0000_0000_0002)),
            ("0x0A01".to_owned(), guid(0x0200_0000_0000_0002)),
            ("0x0A01".to_owned(), guid(0x0200_0000_0000_0003)),
        ],
        "the site's member of 0x0a01 is not listed: it is not ours"
    );
    sm.remove_guids(pkey(0xa01), &[guid(0x0200_0000_0000_0002), guid(0x0200_0000_0000_0003)]).await.unwrap();
    sm.remove_guids(pkey(0x5), &[guid(0x0200_0000_0000_0002)]).await.unwrap();
    assert_eq!(String::from_utf8(f.bytes()).unwrap(), format!("{SITE}{BEGIN_MARKER}\n{END_MARKER}\n"));
    assert_eq!(sm.stats(), OpenSmStats { batches: 4, rewrites: 4, reloads: 4 });
    assert_eq!(f.reload_count(), 4);
}

#[tokio::test]
async fn a_change_that_changes_nothing_costs_no_rewrite_and_no_reload_once_nothing_is_owed() {
    let f = Fixture::new(SITE);
    let sm = f.sm(f.counting());
    // The first batch of a process reloads even without a change: an earlier process may have written
    // the file and died before its reload.
    sm.remove_guids(pkey(0x5), &[guid(1)]).await.unwrap();
    assert_eq!(sm.stats(), OpenSmStats { batches: 1, rewrites: 0, reloads: 1 });
    assert_eq!(f.bytes(), SITE.as_bytes(), "no block written for nothing");
    sm.add_guids(pkey(0x5), &[guid(1), guid(1)]).await.unwrap();
    sm.add_guids(pkey(0x5), &[guid(1)]).await.unwrap();
    sm.remove_guids(pkey(0x6), &[guid(1)]).await.unwrap();
    assert_eq!(sm.stats(), OpenSmStats { batches: 4, rewrites: 1, reloads: 2 });
    assert_eq!(f.reload_count(), 2);
}

/// Holds the writers' lock so that a batch waits, until every other call has queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_four_pkeys_is_one_rewrite_and_one_reload_after_the_first() {
    let f = Fixture::new(SITE);
    let sm = Arc::new(f.sm(f.counting()));
    let resolved = file::resolve(&f.path).unwrap();
    let held = file::lock(&resolved, Instant::now()).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let sm = Arc::clone(&sm);
        tasks.spawn(async move { sm.add_guids(pkey(0x10 + (i % 4) as u32), &[guid(0x0200_0000_0000_1000 + i)]).await });
    }
    // The first batch is waiting for the lock; every other call queues behind it.
    let deadline = Instant::now() + LONG;
    let queued = |q: &Queue| q.pending.len() + q.in_batch;
    while queued(&sm.inner.queue.lock().unwrap()) < 200 {
        assert!(Instant::now() < deadline, "calls did not queue");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(held);
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let stats = sm.stats();
    assert!(stats.batches <= 2 && stats.rewrites == stats.batches && stats.reloads == stats.batches, "{stats:?}");
    let listed = sm.list_guids().await.unwrap();
    assert_eq!(listed.len(), 200);
    assert!(f.bytes().starts_with(SITE.as_bytes()));
}

#[tokio::test]
async fn a_forged_marker_pair_around_site_lines_is_refused_and_nothing_is_touched() {
    let forged = format!("{SITE}{BEGIN_MARKER}\nmine=0x0b01 : 0x0300000000000001=full ;\n{END_MARKER}\n# after\n");
    let f = Fixture::new(&forged);
    let sm = f.sm(f.counting());
    for e in [
        sm.add_guids(pkey(0x5), &[guid(1)]).await.unwrap_err(),
        sm.remove_guids(pkey(0x5), &[guid(1)]).await.unwrap_err(),
        sm.list_guids().await.unwrap_err(),
        sm.validate().await.unwrap_err(),
    ] {
        let (reason, unknown) = local(&e);
        assert!(reason.contains("line 5") && reason.contains("mine=0x0b01"), "{reason}");
        assert!(!unknown, "{e}");
    }
    assert_eq!(f.bytes(), forged.as_bytes());
    assert_eq!(f.reload_count(), 0, "never reloaded");

    // A second pair: refused the same way.
    let twice = format!("{BEGIN_MARKER}\n{END_MARKER}\n{SITE}{BEGIN_MARKER}\n{END_MARKER}\n");
    let f = Fixture::new(&twice);
    let e = f.sm(f.counting()).add_guids(pkey(0x5), &[guid(1)]).await.unwrap_err();
    assert!(local(&e).0.contains("line 6") && local(&e).0.contains("second"), "{e}");
    assert_eq!(f.bytes(), twice.as_bytes());
}

#[tokio::test]
async fn a_site_part_opensm_would_refuse_stops_every_write() {
    let broken = "Default=0x7fff : ALL=full ;\nopen=0x0a02 : 0x0200000000000002=full\n";
    let f = Fixture::new(broken);
    let sm = f.sm(f.counting());
    let e = sm.add_guids(pkey(0x5), &[guid(1)]).await.unwrap_err();
    let (reason, unknown) = local(&e);
    assert!(reason.contains("line 2") && reason.contains("no ';'") && !unknown, "{reason}");
    assert!(e.to_string().contains(&f.path.display().to_string()), "{e}");
    assert!(sm.validate().await.is_err());
    assert_eq!(f.bytes(), broken.as_bytes());
    assert_eq!(f.reload_count(), 0);
}

#[tokio::test]
async fn a_missing_file_is_a_clear_error_and_is_not_created() {
    let f = Fixture::new("");
    std::fs::remove_file(&f.path).unwrap();
    let sm = f.sm(f.counting());
    for e in [
        sm.add_guids(pkey(0x5), &[guid(1)]).await.unwrap_err(),
        sm.validate().await.unwrap_err(),
        sm.list_guids().await.unwrap_err(),
    ] {
        assert!(e.to_string().contains("partitions.conf"), "{e}");
        assert!(!e.outcome_unknown(), "{e}");
    }
    assert!(!f.path.exists());
}

#[tokio::test]
async fn a_failed_reload_restores_our_block_and_says_the_outcome_is_open() {
    let f = Fixture::new(SITE);
    let good = f.sm(f.counting());
    good.add_guids(pkey(0x5), &[guid(1)]).await.unwrap();
    let before = f.bytes();
    let failing = f.sm(Reload::Command(vec!["sh".into(), "-c".into(), "echo opensm is gone >&2; exit 1".into()]));
    let e = failing.add_guids(pkey(0x6), &[guid(2)]).await.unwrap_err();
    let (reason, unknown) = local(&e);
    assert!(reason.contains("opensm is gone") && reason.contains("restored"), "{reason}");
    assert!(unknown, "the command ran: it may have signalled OpenSM");
    assert_eq!(f.bytes(), before, "our block is back as it was");
    assert_eq!(failing.stats().rewrites, 1);
}

#[tokio::test]
async fn a_pid_file_that_does_not_lead_to_opensm_stops_the_write_before_it_happens() {
    let f = Fixture::new(SITE);
    let pid_file = f.path.with_file_name("opensm.pid");
    // This test process: alive, and not OpenSM.
    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
    let sm = f.sm(Reload::PidFile(pid_file.clone()));
    let e = sm.add_guids(pkey(0x5), &[guid(1)]).await.unwrap_err();
    let (reason, unknown) = local(&e);
    assert!(reason.contains("not opensm") && reason.contains("was not changed") && !unknown, "{reason}");
    assert_eq!(f.bytes(), SITE.as_bytes());
    assert!(sm.validate().await.is_err());
    std::fs::remove_file(&pid_file).unwrap();
    let e = sm.add_guids(pkey(0x5), &[guid(1)]).await.unwrap_err();
    assert!(local(&e).0.contains("opensm.pid") && !e.outcome_unknown(), "{e}");
    assert_eq!(sm.stats().rewrites, 0);
}

#[tokio::test]
async fn a_call_ends_within_its_timeout_when_another_writer_holds_the_lock() {
    let f = Fixture::new(SITE);
    let mut config = OpenSmConfig::new(&f.path, f.counting());
    config.timeout = Duration::from_secs(4);
    let sm = OpenSm::new(config);
    let held = file::lock(&file::resolve(&f.path).unwrap(), Instant::now()).unwrap();
    let e = tokio::time::timeout(LONG, sm.add_guids(pkey(0x5), &[guid(1)])).await.expect("ended").unwrap_err();
    // The lock is waited for half the call's time, so the precise error comes before the call's timeout.
    let (reason, unknown) = local(&e);
    assert!(reason.contains(".partitions.conf.ib-kubernetes.lock") && reason.contains("held the lock"), "{reason}");
    assert!(!unknown, "nothing was written: {e}");
    drop(held);
    assert_eq!(f.bytes(), SITE.as_bytes());
    assert_eq!(f.reload_count(), 0);
    sm.add_guids(pkey(0x5), &[guid(1)]).await.unwrap();
}

#[tokio::test]
async fn a_caller_that_gives_up_gets_a_timeout_with_the_outcome_open() {
    let f = Fixture::new(SITE);
    // The reload hangs past the call's time: the file may already be written.
    let mut config = OpenSmConfig::new(&f.path, Reload::Command(vec!["sleep".into(), "600".into()]));
    config.timeout = Duration::from_secs(2);
    let sm = OpenSm::new(config);
    let e = tokio::time::timeout(LONG, sm.add_guids(pkey(0x5), &[guid(1)])).await.expect("ended").unwrap_err();
    // The caller's timeout or the reload's own, whichever comes first: either way the file was written
    // and the reload may have happened.
    assert!(e.outcome_unknown(), "{e}");
    // The batch ends too: the hung reload is killed, our block put back.
    let deadline = Instant::now() + LONG;
    while sm.inner.queue.lock().unwrap().committing {
        assert!(Instant::now() < deadline, "the batch did not end");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.bytes(), format!("{SITE}{BEGIN_MARKER}\n{END_MARKER}\n").as_bytes());
}

#[test]
fn debug_shows_where_not_what() {
    let sm = OpenSm::new(OpenSmConfig::new(
        "/etc/opensm/partitions.conf",
        Reload::PidFile(Path::new("/run/opensm.pid").into()),
    ));
    let shown = format!("{sm:?}");
    assert!(shown.contains("/etc/opensm/partitions.conf") && shown.contains("opensm.pid"), "{shown}");
    assert_eq!(sm.name(), "opensm");
}

fn block_text(f: &Fixture) -> String {
    let text = String::from_utf8(f.bytes()).unwrap();
    let start = text.find(BEGIN_MARKER).expect("our block") + BEGIN_MARKER.len() + 1;
    let end = text.find(END_MARKER).expect("its end");
    text[start..end].to_owned()
}

#[tokio::test]
async fn options_give_each_member_its_membership_and_the_partition_its_flags() {
    use ib_model::partition::{Membership, MtuLimit, RateLimit};
    let f = Fixture::new(SITE);
    let sm = f.sm(f.counting());
    let limited = PartitionOptions { membership: Membership::Limited, index0: false, ip_over_ib: true, qos: None };
    sm.add_guids_with(pkey(0x10), &[guid(1), guid(2)], &limited).await.unwrap();
    // A full member of the same partition next to the limited ones: the bit is per member.
    sm.add_guids_with(pkey(0x10), &[guid(3)], &PartitionOptions { membership: Membership::Full, ..limited })
        .await
        .unwrap();
    let qos = Qos { mtu_limit: MtuLimit::Mtu4K, service_level: 3, rate_limit: RateLimit::from_gbps(200.0).unwrap() };
    let with_qos = PartitionOptions { qos: Some(qos), ..PartitionOptions::default() };
    sm.add_guids_with(pkey(0x11), &[guid(4)], &with_qos).await.unwrap();
    assert_eq!(
        block_text(&f),
        "ib-kubernetes-0x0010=0x0010,ipoib :\n    0x0000000000000001=limited, 0x0000000000000002=limited, 0x0000000000000003=full ;\n\
         ib-kubernetes-0x0011=0x0011,indx0,ipoib,mtu=5,rate=16,sl=3 :\n    0x0000000000000004=full ;\n"
    );
    // An add without QoS keeps the partition's QoS; the plain add writes the configuration's flags.
    sm.add_guids_with(pkey(0x11), &[guid(5)], &PartitionOptions::default()).await.unwrap();
    assert!(
        block_text(&f).contains("ib-kubernetes-0x0011=0x0011,indx0,ipoib,mtu=5,rate=16,sl=3 :"),
        "{}",
        block_text(&f)
    );
    // What we wrote reads back, memberships included.
    let (_, block) = partitions::read_block_full(&f.bytes()).unwrap();
    assert_eq!(block[&pkey(0x10)].members[&guid(1)], Membership::Limited);
    assert_eq!(block[&pkey(0x10)].members[&guid(3)], Membership::Full);
    assert_eq!(sm.list_guids().await.unwrap().len(), 5);
}

#[tokio::test]
async fn qos_is_set_on_our_partitions_only_and_leaves_with_the_last_member() {
    use ib_model::partition::MtuLimit;
    let f = Fixture::new(SITE);
    let sm = f.sm(f.counting());
    sm.add_guids(pkey(0x12), &[guid(1)]).await.unwrap();
    let qos = Qos { mtu_limit: MtuLimit::Mtu2K, service_level: 15, ..Qos::default() };
    sm.set_qos(pkey(0x12), qos).await.unwrap();
    assert!(block_text(&f).starts_with("ib-kubernetes-0x0012=0x0012,ipoib,mtu=4,rate=2,sl=15 :"), "{}", block_text(&f));
    // The site's partition 0x0A01 and a partition nobody defined are refused, naming the partition.
    for missing in [0xa01, 0x13] {
        let e = sm.set_qos(pkey(missing), qos).await.unwrap_err();
        let (reason, unknown) = local(&e);
        assert!(reason.contains(&pkey(missing).to_string()) && !unknown, "{e}");
    }
    // The last member leaves: the partition and its QoS are gone; a new add starts from the configuration.
    sm.remove_guids(pkey(0x12), &[guid(1)]).await.unwrap();
    sm.add_guids(pkey(0x12), &[guid(1)]).await.unwrap();
    assert!(block_text(&f).starts_with("ib-kubernetes-0x0012=0x0012,ipoib :"), "{}", block_text(&f));
}

#[tokio::test]
async fn a_partition_exists_when_the_site_defines_it_or_ours_has_it() {
    let f = Fixture::new(SITE);
    let sm = f.sm(f.counting());
    assert_eq!(sm.partition_members(pkey(0x0a01)).await.unwrap(), Some(vec![]), "the site's, with no member of ours");
    assert_eq!(sm.partition_members(pkey(0x30)).await.unwrap(), None);
    sm.add_guids(pkey(0x30), &[guid(0x0200_0000_0000_0001)]).await.unwrap();
    assert_eq!(sm.partition_members(pkey(0x30)).await.unwrap(), Some(vec![guid(0x0200_0000_0000_0001)]));
    sm.remove_guids(pkey(0x30), &[guid(0x0200_0000_0000_0001)]).await.unwrap();
    assert_eq!(sm.partition_members(pkey(0x30)).await.unwrap(), None, "our partition went with its last member");
}
