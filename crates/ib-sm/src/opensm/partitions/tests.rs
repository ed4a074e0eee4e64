use super::*;
use proptest::prelude::*;

fn pkey(v: u32) -> PKey {
    PKey::new(v).unwrap()
}

fn guid(v: u64) -> Guid {
    Guid::from_u64(v)
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().map(|f| (*f).to_owned()).collect()
}

fn memberships(items: &[(u32, &[u64])]) -> Memberships {
    items.iter().map(|(p, gs)| (pkey(*p), gs.iter().map(|g| guid(*g)).collect())).collect()
}

/// Everything outside our block, as the site wrote it.
fn outside(bytes: &[u8]) -> Vec<u8> {
    let layout = layout(bytes).unwrap();
    let block = layout.block.unwrap();
    [&bytes[..block.start], &bytes[block.end..]].concat()
}

#[test]
fn renders_exactly_this_and_reads_it_back() {
    let m =
        memberships(&[(0x5, &[0x0200_0000_0000_0002, 0x0200_0000_0000_0004]), (0xa30, &[1, 2, 3, 4, 5]), (0x6, &[])]);
    let text = render(&m, &flags(&["ipoib", "mtu=4"]), Membership::Full);
    assert_eq!(
        text,
        "ib-kubernetes-0x0005=0x0005,ipoib,mtu=4 :\n    0x0200000000000002=full, 0x0200000000000004=full ;\n\
         ib-kubernetes-0x0A30=0x0A30,ipoib,mtu=4 :\n    0x0000000000000001=full, 0x0000000000000002=full, \
         0x0000000000000003=full, 0x0000000000000004=full,\n    0x0000000000000005=full ;\n"
    );
    let mut expected = m.clone();
    expected.remove(&pkey(0x6));
    assert_eq!(parse_block(text.as_bytes(), 1).unwrap(), expected);
    // Written with another configuration (limited, no flags): still ours, same memberships.
    let limited = render(&expected, &[], Membership::Limited);
    assert!(limited.contains("=limited") && limited.starts_with("ib-kubernetes-0x0005=0x0005 :\n"), "{limited}");
    assert_eq!(parse_block(limited.as_bytes(), 1).unwrap(), expected);
    assert_eq!(render(&Memberships::new(), &[], Membership::Full), "");
}

/// A site file written by hand: odd whitespace, tabs, comments, a statement over several lines, CRLF
/// line ends, a partition with the same P_Key and even our partition name, no newline at the end.
const HOSTILE_SITE: &str = "# site partitions\r\nDefault=0x7fff, ipoib : ALL=full ;  \n\n\t  storage = 0x0a01 ,ipoib,  mtu=4:\n  \
     0x0002c90300000001 = full , # first\n\t0x0002c90300000002=limited;\nib-kubernetes-0x0005=0x0005 : 0x0300000000000001=full ; # same name as ours\n   \
     # BEGIN ib-kubernetes? no: this is a comment, indented, mentioning us\n  compute=0x0005:SELF=full,ALL_CAS=limited;";

#[test]
fn site_lines_are_kept_byte_for_byte_through_every_rewrite() {
    // The indented comment starting like a marker is refused: see the lookalike test. Without it:
    let site = HOSTILE_SITE.replace("# BEGIN ib-kubernetes? no", "# begin-ish comment");
    let bytes = site.as_bytes();
    let l = layout(bytes).unwrap();
    assert_eq!(l.block, None);
    check_site(bytes, &l).unwrap();
    let first = replace_block(bytes, &l, &render(&memberships(&[(0x5, &[7])]), &flags(&["ipoib"]), Membership::Full));
    assert!(first.starts_with(bytes), "the site text is a prefix");
    assert_eq!(first[bytes.len()], b'\n', "a line break added after the unterminated last line");
    let (l1, m1) = read_block(&first).unwrap();
    assert_eq!(m1, memberships(&[(0x5, &[7])]));
    check_site(&first, &l1).unwrap();

    // Site lines after the block too, then rewrites: only the block changes.
    let mut with_after = first.clone();
    with_after.extend_from_slice(b"after = 0x0b01 : 0x0400000000000001 ;\n# trailing comment without newline");
    let (l2, _) = read_block(&with_after).unwrap();
    let second = replace_block(&with_after, &l2, &render(&memberships(&[(0x6, &[8, 9])]), &[], Membership::Limited));
    assert_eq!(outside(&second), outside(&with_after));
    let (l3, m3) = read_block(&second).unwrap();
    assert_eq!(m3, memberships(&[(0x6, &[8, 9])]));
    let emptied = replace_block(&second, &l3, "");
    assert_eq!(outside(&emptied), outside(&with_after));
    assert_eq!(read_block(&emptied).unwrap().1, Memberships::new());
    assert!(String::from_utf8_lossy(&emptied).contains(&format!("{BEGIN_MARKER}\n{END_MARKER}\n")));
}

fn marker_line(bytes: &[u8]) -> usize {
    match layout(bytes) {
        Err(PartitionsError::Marker { line, .. }) => line,
        other => panic!("expected a marker error, got {other:?}"),
    }
}

#[test]
fn doubtful_markers_are_refused_with_their_line() {
    let (b, e) = (BEGIN_MARKER, END_MARKER);
    assert_eq!(marker_line(format!("a=0x1:ALL;\n{b}\n{e}\n{b}\n{e}\n").as_bytes()), 4, "a second pair");
    assert_eq!(marker_line(format!("{b}\n{b}\n{e}\n").as_bytes()), 2, "nested");
    assert_eq!(marker_line(format!("{e}\n{b}\n").as_bytes()), 1, "END first");
    assert_eq!(marker_line(format!("x\n{b}\nsite=0x2:ALL;\n").as_bytes()), 2, "never closed");
    assert_eq!(marker_line(format!("{b}\n{e}\n{e}\n").as_bytes()), 3, "a second END");
    assert_eq!(marker_line(b"ok=0x1:ALL;\n  # END ib-kubernetes partitions (moved)\n"), 2, "lookalike");
    assert_eq!(marker_line(HOSTILE_SITE.as_bytes()), 8, "indented lookalike comment");
    let near = format!("{b} \n{e}\n");
    assert_eq!(marker_line(near.as_bytes()), 1, "trailing blank: not exactly ours");
}

#[test]
fn a_forged_pair_around_site_lines_is_refused_and_a_well_formed_one_is_ours() {
    // Someone pasted our markers around their own partitions: rewriting the block would delete them.
    let forged =
        format!("Default=0x7fff:ALL=full;\n{BEGIN_MARKER}\nsite=0x0a01 : 0x0200000000000002=full ;\n{END_MARKER}\n");
    match read_block(forged.as_bytes()) {
        Err(PartitionsError::Block { line, text, .. }) => {
            assert_eq!(line, 3);
            assert!(text.contains("site=0x0a01"), "{text}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Hand edits inside our block are refused the same way: a comment, a changed GUID form, a name that
    // does not match the key, a partition twice, a partition left open, a P_Key we never write.
    for (inside, why) in [
        ("# note\n", "a comment"),
        ("ib-kubernetes-0x0005=0x0005 :\n    0x0200000000000002=both ;\n", "membership"),
        ("ib-kubernetes-0x0005=0x0005 :\n    0x200000000000002=full ;\n", "short GUID"),
        ("ib-kubernetes-0x0005=0x0005 :\n    0x0200000000000002=FULL ;\n", "upper case"),
        ("ib-kubernetes-0x0006=0x0005 :\n    0x0200000000000002=full ;\n", "name and key"),
        ("ib-kubernetes-0x7FFF=0x7FFF :\n    0x0200000000000002=full ;\n", "default partition"),
        ("ib-kubernetes-0x0005=0x0005,defmember=full :\n    0x0200000000000002=full ;\n", "defmember"),
        ("ib-kubernetes-0x0005=0x0005 :\n    0x0200000000000002=full,\n", "never ended"),
        (
            "ib-kubernetes-0x0005=0x0005 :\n    0x0000000000000001=full ;\nib-kubernetes-0x0005=0x0005 :\n    0x0000000000000002=full ;\n",
            "twice",
        ),
        ("ib-kubernetes-0x0005=0x0005 :\n    0x0000000000000001=full, 0x0000000000000001=full ;\n", "GUID twice"),
    ] {
        let file = format!("{BEGIN_MARKER}\n{inside}{END_MARKER}\n");
        assert!(matches!(read_block(file.as_bytes()), Err(PartitionsError::Block { .. })), "{why}: {file}");
    }
    // A pair around exactly what we write is ours, whoever typed it: it holds nothing else to lose.
    let ours = format!(
        "{BEGIN_MARKER}\n{}{END_MARKER}\n",
        render(&memberships(&[(5, &[1])]), &flags(&["ipoib"]), Membership::Full)
    );
    assert_eq!(read_block(ours.as_bytes()).unwrap().1, memberships(&[(5, &[1])]));
}

fn site_error(text: &str) -> (usize, String) {
    let l = layout(text.as_bytes()).unwrap();
    match check_site(text.as_bytes(), &l) {
        Err(PartitionsError::Site { line, reason }) => (line, reason),
        other => panic!("expected a site error for {text:?}, got {other:?}"),
    }
}

#[test]
fn site_text_that_opensm_would_refuse_is_found() {
    let (b, e) = (BEGIN_MARKER, END_MARKER);
    // An open statement before our block would swallow our first partition.
    let (line, reason) = site_error(&format!("Default=0x7fff:ALL;\nopen=0x0a02 : 0x0200000000000002=full\n{b}\n{e}\n"));
    assert_eq!(line, 2);
    assert!(reason.contains("no ';'"), "{reason}");
    assert_eq!(site_error("a=0x0a01 : 0x02=full ;\n\nbroken=0xzz1 : 0x02=full ;\n").0, 3);
    assert!(site_error("x=0x10000 : ALL ;").1.contains("P_Key"));
    assert!(site_error("x=0x1 : 0x02g=full ;").1.contains("port GUID"));
    assert!(site_error("x=0x1 : nobody ;").1.contains("neither"));
    assert!(site_error("x=0x1 ALL ;").1.contains("':'"));
    // After our block: the site's too.
    assert_eq!(site_error(&format!("{b}\n{e}\nlate=0x3 :\n ALL\n")).0, 3);

    // What OpenSM's documentation allows passes: comments, multi-line members, keywords, flags,
    // multicast groups, decimal GUIDs, empty member lists.
    let fine = "# c\nDefault=0x7fff, ipoib, defmember=full : ALL, SELF=full ;\n\
                p1=0x8001,indx0,ipoib,rate=7 :\n 0x0002c90300000001=both, # x\n 12345 = limited,\n ALL_SWITCHES=full ;\n\
                mc=0x0b01, ipoib : mgid=ff12:401b::0707,sl=1,Q_Key=0xDEADBEEF,TClass=0 ; ; nameonly : ;\n =0x0c01 : ;";
    let l = layout(fine.as_bytes()).unwrap();
    check_site(fine.as_bytes(), &l).unwrap();
}

#[test]
fn flags_are_checked() {
    for ok in ["ipoib", "indx0", "mtu=4", "rate=0x7", "sl=0", "scope=2", "Q_Key=0x0b1b", "TClass=0", "FlowLabel=1"] {
        check_flag(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["", "mtu", "mtu=", "mtu=x", "ipoib=1", "defmember=full", "name:x", "mtu=4;evil", "a b"] {
        assert!(check_flag(bad).is_err(), "{bad}");
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(500)
}

/// Site lines: valid statements, comments, blanks, whitespace, in any mix.
fn site_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ \t]{0,4}".prop_map(|s| s),
        "#[ -~]{0,30}".prop_map(|s| s),
        (1u32..0x7fff, "[a-z]{1,8}", 0u64..u64::MAX, prop::sample::select(vec!["full", "limited", "both", ""]))
            .prop_map(|(p, name, g, m)| {
                let m = if m.is_empty() { String::new() } else { format!("={m}") };
                format!("{name} = 0x{p:04x} ,ipoib :\t0x{g:016x}{m} ; # c")
            }),
    ]
}

fn any_memberships() -> impl Strategy<Value = Memberships> {
    prop::collection::btree_map(
        (1u32..0x7fff).prop_map(pkey),
        prop::collection::btree_set(any::<u64>().prop_map(guid), 0..9),
        0..5,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Whatever the site wrote and whatever we write, in any order of rewrites: our block reads back
    /// as written, and every byte outside it is the site's.
    #[test]
    fn rewrites_keep_the_site_and_read_back(
        before in prop::collection::vec(site_line(), 0..6),
        after in prop::collection::vec(site_line(), 0..4),
        newline_at_end in any::<bool>(),
        writes in prop::collection::vec((any_memberships(), any::<bool>()), 1..4),
    ) {
        let mut site = before.join("\n");
        if newline_at_end { site.push('\n'); }
        let mut file = site.clone().into_bytes();
        let l = layout(&file).unwrap();
        prop_assert!(check_site(&file, &l).is_ok());
        file = replace_block(&file, &l, "");
        prop_assert!(file.starts_with(site.as_bytes()));
        file.extend_from_slice(after.join("\n").as_bytes());
        let site_outside = outside(&file);
        for (m, limited) in writes {
            let (l, _) = read_block(&file).unwrap();
            let membership = if limited { Membership::Limited } else { Membership::Full };
            file = replace_block(&file, &l, &render(&m, &["ipoib".to_owned()], membership));
            let (l, read) = read_block(&file).unwrap();
            let expected: Memberships = m.into_iter().filter(|(_, g)| !g.is_empty()).collect();
            prop_assert_eq!(read, expected);
            prop_assert_eq!(outside(&file), site_outside.clone());
            prop_assert!(check_site(&file, &l).is_ok());
        }
    }

    /// Arbitrary bytes never panic any of the readers.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), inject in any::<bool>()) {
        let mut bytes = bytes;
        if inject {
            bytes.extend_from_slice(format!("\n{BEGIN_MARKER}\n").as_bytes());
            bytes.extend_from_slice(&bytes.clone()[..bytes.len().min(40)]);
            bytes.extend_from_slice(format!("\n{END_MARKER}").as_bytes());
        }
        if let Ok((l, _)) = read_block(&bytes) {
            let _ = check_site(&bytes, &l);
        }
    }
}

#[test]
fn the_site_s_partitions_are_known_to_exist_ours_are_not_counted_twice() {
    let file = format!(
        "Default=0x7fff, ipoib : ALL=full ;\n# storage=0x20 : ALL ;\nstorage = 0x8010 , ipoib : 0x0002c903000e0b72=full ;\nodd=banana : ALL ;\n{BEGIN_MARKER}\nk8s_0x30=0x30 : 0x0200000000000001=full ;\n{END_MARKER}\nlate=0x11:\nALL;\n"
    );
    let layout = layout(file.as_bytes()).unwrap();
    let site = site_pkeys(file.as_bytes(), &layout);
    // The membership bit is dropped (0x8010 is partition 0x10); a commented-out line and a key that is
    // not a number define nothing; our block's partition is not the site's.
    assert_eq!(site, BTreeSet::from([0x7fff, 0x10, 0x11]));
    assert!(site_pkeys(b"", &layout_of_nothing()).is_empty());
}

fn layout_of_nothing() -> Layout {
    layout(b"").unwrap()
}
