//! A 200 whose listing cannot be read fails the whole listing and names the partition and value, where
//! the Go plugin passed any string through.

mod common;

use common::{client, start, within};
use ib_sm::SubnetManager;
use ufm_emulator::{FaultRule, Method, UfmConfig};

#[tokio::test]
async fn bad_listings_are_decode_errors_naming_the_value() {
    let ufm = start(UfmConfig::https()).await;
    let handle = ufm.handle();
    let sm = client(&ufm);
    let cases = [
        (r#"{"0x5": {"guids": [{"guid": "zz"}]}}"#, vec!["\"0x5\"", "\"zz\""]),
        (
            r#"{"0x5": {"guids": [{"guid": "0200000000000000"}, {"guid": "02000000000000001"}]}}"#,
            vec!["\"0x5\"", "\"02000000000000001\""],
        ),
        (r#"{"0x5": 3}"#, vec!["\"0x5\"", "expected an object, got 3"]),
        (
            r#"{"0x7fff": {"guids": []}, "0x5": {"guids": {"guid": "0200000000000000"}}}"#,
            vec!["\"0x5\"", "must be a list"],
        ),
        ("<html>maintenance</html>", vec!["not a JSON object"]),
    ];
    for (body, words) in cases {
        handle.inject(FaultRule::respond(Some(Method::GET), "/ufmRest/resources/pkeys/", 200, body).times(1));
        let err = within(sm.list_guids()).await.unwrap_err();
        assert_eq!(err.label(), "decode", "{err}");
        let text = err.to_string();
        assert!(text.contains("/ufmRest/resources/pkeys/"), "{text}");
        for word in words {
            assert!(text.contains(word), "{text} lacks {word}");
        }
    }

    handle.inject(
        FaultRule::respond(
            Some(Method::GET),
            "/ufmRest/resources/pkeys/",
            200,
            r#"{"0x5": {"guids": [{"guid": "02000FF000FF0009"}]}, "0x6": {}}"#,
        )
        .times(1),
    );
    let listed = within(sm.list_guids()).await.unwrap();
    assert_eq!(listed, [("0x5".to_owned(), ib_model::Guid::from_u64(0x02000ff000ff0009))], "upper case is UFM's too");
    ufm.shutdown().await;
}
