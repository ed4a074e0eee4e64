use super::*;

#[test]
fn decode_checks_shape_and_version() {
    let none = Redactor::none();
    let ok: EmptyResult = decode("c", br#"{"protocolVersion":"1.0.0"}"#, Some("1.0.0"), &none).unwrap();
    assert_eq!(ok.protocol_version, "1.0.0");
    let kind = |out: &[u8]| decode::<EmptyResult>("c", out, Some("1.0.0"), &none).unwrap_err();
    for out in [&b""[..], b"  \n", b"garbage", b"[1]", br#"{"protocolVersion":"9.9.9"}"#, b"{}"] {
        assert!(matches!(kind(out), SmError::Decode { .. }), "{}", String::from_utf8_lossy(out));
    }
    let err = kind(br#"{"protocolVersion":"1.0.0","code":5,"msg":"down"}"#);
    assert!(err.to_string().contains("exited 0 but printed an error"), "{err}");
}

#[test]
fn tails_cut_at_char_boundaries() {
    assert_eq!(tail("short", 10), "short");
    assert_eq!(tail(&"é".repeat(10), 5), "…éé");
}

#[tokio::test]
async fn stderr_tails_keep_the_end_and_say_when_cut() {
    let (kept, cut) = read_tail(&b"short"[..], 16).await;
    assert_eq!((kept.as_slice(), cut), (&b"short"[..], false));
    let long: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (kept, cut) = read_tail(long.as_slice(), 1000).await;
    assert!(cut);
    assert_eq!(kept.as_slice(), &long[long.len() - 1000..]);
}

#[test]
fn plugin_text_is_scrubbed_before_it_is_cut() {
    let redactor = Redactor::for_environment([("UFM_USERNAME", "admin"), ("UFM_PASSWORD", "canary-pw")]);
    // A JSON error whose message holds the password, long enough to be cut after it.
    let msg = format!("{}canary-pw{}", "x".repeat(BODY_EXCERPT_BYTES - 4), "y".repeat(100));
    let stdout = serde_json::json!({"code": 6, "msg": msg, "details": "admin:canary-pw"}).to_string();
    let status = <ExitStatus as std::os::unix::process::ExitStatusExt>::from_raw(1 << 8);
    let e = failure("c", status, stdout.as_bytes(), "", &redactor);
    assert!(!format!("{e} {e:?}").contains("canary"), "{e}");
    // Output that is not JSON is quoted, scrubbed.
    let e = decode::<EmptyResult>("c", b"login admin:canary-pw failed", Some("1.0.0"), &redactor).unwrap_err();
    assert!(!e.to_string().contains("canary") && e.to_string().contains("<redacted>"), "{e}");
}

#[test]
fn config_debug_hides_values() {
    let c = ExecConfig::new("/plugins/x").with_env("UFM_PASSWORD", "hunter2");
    let shown = format!("{c:?}");
    assert!(shown.contains("UFM_PASSWORD") && !shown.contains("hunter2"), "{shown}");
}
