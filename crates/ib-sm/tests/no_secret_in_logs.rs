//! Credentials appear nowhere: not in any tracing output at TRACE (ours, the HTTP stack's, the
//! emulator's), not in any error's `Display` or `Debug`, not even when UFM echoes them back or an exec
//! plugin prints them. Alone in its binary because the subscriber is process-global.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{config, guid, pkey, start, within};
use ib_sm::secret::Secret;
use ib_sm::ufm::Auth;
use ib_sm::{ExecConfig, ExecPlugin, SmError, SubnetManager, Ufm};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use ufm_emulator::{FaultRule, Method, RunningUfm, UfmConfig};

/// Exec plugins, each leaking the UFM credentials it was given in another place.
const LEAKY_PLUGINS: [(&str, &str); 5] = [
    (
        "stderr",
        r#"#!/bin/sh
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
echo "login $UFM_USERNAME:$UFM_PASSWORD refused; Authorization: Basic $(printf '%s' "$UFM_USERNAME:$UFM_PASSWORD" | base64)" >&2
exit 3
"#,
    ),
    (
        "json",
        r#"#!/bin/sh
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
printf '{"protocolVersion":"1.0.0","code":6,"msg":"bad password %s","details":"token %s"}
' "$UFM_PASSWORD" "$UFM_TOKEN"
exit 1
"#,
    ),
    (
        "stdout",
        r#"#!/bin/sh
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
echo "logged in with $UFM_PASSWORD"
"#,
    ),
    (
        "version",
        r#"#!/bin/sh
printf '{"protocolVersion":"1.0.0","supportedVersions":["%s"]}
' "$UFM_TOKEN"
"#,
    ),
    (
        "crash",
        r#"#!/bin/sh
if [ "$1" = VERSION ]; then echo '{"protocolVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
echo "panic: password=$UFM_PASSWORD" >&2
kill -SEGV $$
"#,
    ),
];

const USER: &str = "admin";
const PASSWORD: &str = "canary-PASSWORD-1234";
const TOKEN: &str = "canary-TOKEN-5678";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs every operation once; returns the errors so the caller can format them.
async fn exercise(sm: &Ufm) -> Vec<SmError> {
    let guids = [guid(0x0200000000000000), guid(0x0200000000000001)];
    let mut errors = Vec::new();
    let mut keep = |r: Result<(), SmError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    keep(within(sm.validate()).await);
    keep(within(sm.add_guids(pkey(5), &guids)).await);
    keep(within(sm.list_guids()).await.map(drop));
    keep(within(sm.remove_guids(pkey(5), &guids)).await);
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_never_leak() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone()))
        .try_init()
        .expect("the only subscriber in this binary");

    let basic = Auth::Basic { username: USER.into(), password: Secret::new(PASSWORD) };
    let token = Auth::Token(Secret::new(TOKEN));
    let mut errors = Vec::new();
    let mut shown = Vec::new();
    let mut last = None;

    // Plain HTTP/1.1 and HTTPS with HTTP/2, whose libraries log differently.
    for emulator in [UfmConfig::http(), UfmConfig::https()] {
        let ufm = start(emulator.with_credentials(USER, PASSWORD).with_token(TOKEN)).await;
        let handle = ufm.handle();
        for (auth_kind, auth) in [("basic", basic.clone()), ("token", token.clone())] {
            let settings = config(&ufm, auth);
            shown.push(format!("{settings:?}"));
            let sm = Ufm::new(settings).unwrap();
            shown.push(format!("{sm:?}"));
            assert!(exercise(&sm).await.is_empty(), "the right credentials work");

            // Refused credentials.
            handle.set_password("something-else");
            handle.revoke_token(TOKEN);
            let refused = exercise(&sm).await;
            assert!(refused.iter().all(|e| common::http_status(e) == Some(401)), "{refused:?}");
            errors.extend(refused);
            handle.set_password(PASSWORD);
            handle.add_token(TOKEN);

            // An outage whose body echoes back the credentials this client sent.
            let echo = match auth_kind {
                "basic" => format!(
                    "bad request: Authorization: Basic {} / {USER}:{PASSWORD}",
                    STANDARD.encode(format!("{USER}:{PASSWORD}"))
                ),
                _ => format!("bad request: Authorization: Basic {TOKEN}"),
            };
            handle.inject(FaultRule::respond(None, "*", 500, echo).times(4));
            let outage = exercise(&sm).await;
            assert!(outage.iter().all(|e| common::http_status(e) == Some(500)), "{outage:?}");
            errors.extend(outage);

            // A listing that cannot be read.
            handle.inject(
                FaultRule::respond(
                    Some(Method::GET),
                    "*/resources/pkeys/",
                    200,
                    r#"{"0x5": {"guids": [{"guid": "zz"}]}}"#,
                )
                .times(1),
            );
            errors.push(within(sm.list_guids()).await.unwrap_err());
        }
        if let Some(previous) = last.replace(ufm) {
            RunningUfm::shutdown(previous).await;
        }
    }
    let ufm = last.expect("the HTTPS emulator is running");
    let handle = ufm.handle();

    // A hang past the request timeout.
    let mut settings = config(&ufm, basic);
    settings.request_timeout = Duration::from_secs(1);
    let sm = Ufm::new(settings).unwrap();
    handle.inject(FaultRule::hang(None, "*").times(1));
    let timeout = within(sm.validate()).await.unwrap_err();
    assert_eq!(timeout.label(), "timeout");
    errors.push(timeout);
    handle.release_hung();

    // Nothing listens any more.
    ufm.shutdown().await;
    errors.push(within(sm.validate()).await.unwrap_err());

    // Exec plugins that print the credentials of their environment every way they can.
    for (name, body) in LEAKY_PLUGINS {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("leaky-{}-{name}", std::process::id()));
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sm = ExecPlugin::new(
            ExecConfig::new(&path)
                .with_env("UFM_USERNAME", USER)
                .with_env("UFM_PASSWORD", PASSWORD)
                .with_env("UFM_TOKEN", TOKEN),
        );
        shown.push(format!("{sm:?}"));
        let leaked = within(sm.add_guids(pkey(5), &[guid(1)])).await.expect_err(name);
        errors.push(leaked);
    }

    let labels: std::collections::BTreeSet<&str> = errors.iter().map(SmError::label).collect();
    assert!(labels.is_superset(&["status", "decode", "timeout", "transport", "plugin", "config"].into()), "{labels:?}");
    for e in &errors {
        tracing::error!(error = %e, debug = ?e, "recorded failure");
        shown.push(format!("{e} {e:?} {e:#?}"));
    }

    let logged = String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(logged.contains("ufm_request") && logged.contains("TRACE"), "TRACE output was captured");
    let everything = format!("{logged}\n{}", shown.join("\n"));
    let b64_pair = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let b64_token = STANDARD.encode(TOKEN);
    for canary in [PASSWORD, TOKEN, b64_pair.as_str(), b64_token.as_str(), "canary-"] {
        assert!(!everything.contains(canary), "{canary} leaked");
    }
    assert!(everything.contains("<redacted>"), "the echoed credentials were replaced");
}
