use super::*;

fn limits(inspect: usize) -> Limits {
    Limits {
        max_frame: 1 << 20,
        max_message: 1 << 20,
        inspect_limit: inspect,
    }
}

#[test]
fn own_frames_decode_back() {
    let frame = encode(Role::Client, OpCode::Data(Data::Text), b"hello");
    let mut decoder = Decoder::new(Role::Server, limits(64));
    let mut out = Vec::new();
    decoder.feed(&frame, &mut out).unwrap();
    assert_eq!(
        out,
        vec![Inbound::Text {
            text: "hello".into(),
            raw: frame
        }]
    );
}
