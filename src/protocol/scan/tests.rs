use super::*;

fn types(text: &str) -> Vec<(bool, Option<String>)> {
    top_level(text.as_bytes())
        .types
        .into_iter()
        .map(|m| {
            (
                m.exact,
                m.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
            )
        })
        .collect()
}

#[test]
fn finds_type_members_past_values_our_parser_refuses() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for rest in [
        r#""n":1e400"#.to_owned(),
        r#""pad":"\ud800""#.to_owned(),
        format!(r#""deep":{deep}"#),
        r#""s":"a \"quoted\" } ] { [ value""#.to_owned(),
        r#""lit":nope"#.to_owned(),
    ] {
        let text = format!(r#"{{"a":1,{rest},"type":"REAUTH","x":{{"type":"no"}}}}"#);
        let scan = top_level(text.as_bytes());
        assert_eq!(types(&text), vec![(true, Some("REAUTH".into()))], "{text}");
        assert!(scan.closed && !scan.trailing && !scan.bom, "{text}");
    }
}

#[test]
fn key_case_escapes_duplicates_bom_and_trailing_bytes_are_seen() {
    assert_eq!(
        types(r#"{"TYPE":"REAUTH"}"#),
        vec![(false, Some("REAUTH".into()))]
    );
    assert_eq!(
        types(r#"{"\u0074ype":"RE\u0041UTH"}"#),
        vec![(true, Some("REAUTH".into()))]
    );
    assert_eq!(
        types(r#"{"\u0054ype":"REAUTH"}"#),
        vec![(false, Some("REAUTH".into()))]
    );
    assert_eq!(
        types(r#"{"type":"chat","Type":"REAUTH"}"#),
        vec![(true, Some("chat".into())), (false, Some("REAUTH".into()))]
    );
    assert_eq!(types(r#"{"type":7}"#), vec![(true, None)]);
    assert_eq!(types(r#"{"types":"REAUTH","typ":"REAUTH"}"#), vec![]);
    let bom = top_level("\u{feff}{\"type\":\"REAUTH\"}".as_bytes());
    assert!(bom.bom && bom.closed);
    // An escape JSON does not have breaks the string: nothing reads it.
    assert_eq!(types(r#"{"type":"\REAUTH"}"#), vec![]);
    assert_eq!(
        types(r#"{"type":"a\/b"}"#),
        vec![(true, Some("a/b".into()))]
    );
    let trailing = top_level(br#"{"type":"REAUTH"} {"x":1}"#);
    assert!(trailing.closed && trailing.trailing);
}

#[test]
fn broken_structure_stops_the_scan_without_failing() {
    let open = top_level(br#"{"type":"REAUTH","payload":{"token":"x"#);
    assert_eq!(open.types.len(), 1);
    assert!(!open.closed);
    assert_eq!(top_level(br#"[{"type":"REAUTH"}]"#), TopLevel::default());
    assert!(!top_level(br#"{type:"REAUTH"}"#).closed);
    assert!(top_level(b"").types.is_empty());
}

#[test]
fn surrogates_decode_leniently() {
    assert_eq!(
        types(r#"{"type":"\ud83d\ude00"}"#),
        vec![(true, Some("😀".into()))]
    );
    assert_eq!(
        types(r#"{"type":"\ud83d"}"#),
        vec![(true, Some("\u{fffd}".into()))]
    );
    assert_eq!(types(r#"{"type":"\u00zz"}"#), vec![]);
}

const NAMES: &[&[u8]] = &[b"REAUTH", b"identity_refreshed"];

#[test]
fn first_member_decides_from_the_start() {
    use Prefix::*;
    for (prefix, verdict) in [
        (&br#"{"type":"REAUTH","payload":"#[..], Control),
        (br#"  {  "TYPE" : "identity_refresh\u0065d""#, Control),
        (b"\xEF\xBB\xBF{\"type\":\"REAUTH\"", Control),
        (br#"{"type":"chat","text":"#, Data),
        (br#"{"text":"...","type":"REAUTH"}"#, Data),
        (br#"{"type":1"#, Data),
        (br#"["type","REAUTH"]"#, Data),
        (br#"{"typeface":"REAUTH"}"#, Data),
        (br#"{"type":"REAUTHX""#, Data),
        (br#"{"type":"REAU"#, NeedMore),
        (br#"{"ty"#, NeedMore),
        (br#"{"type":"RE\u00"#, NeedMore),
        (br#"{"type"   "#, NeedMore),
        (b"\xEF\xBB", NeedMore),
        (b"", NeedMore),
        (b"   ", NeedMore),
        (br#"{"x"#, Data),
        (br#"{"type":"\REAUTH"}"#, Data),
        (br#"{"\type":"REAUTH"}"#, Data),
        (br#"{"type":"RE\u00zzAUTH"}"#, Data),
    ] {
        assert_eq!(
            first_member(prefix, NAMES),
            verdict,
            "{}",
            String::from_utf8_lossy(prefix)
        );
    }
}

proptest::proptest! {
    /// Never panics, whatever the bytes, and a prefix of a message never
    /// contradicts what a longer prefix decided.
    #[test]
    fn any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = top_level(&bytes);
        let whole = first_member(&bytes, NAMES);
        for cut in 0..bytes.len() {
            let part = first_member(&bytes[..cut], NAMES);
            proptest::prop_assert!(part == Prefix::NeedMore || part == whole);
        }
    }
}
