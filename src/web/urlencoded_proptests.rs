//! Properties of the strict urlencoded decoder: it never panics, reads back exactly what a
//! standard encoder wrote, and refuses duplicates, broken escapes and invalid UTF-8 by name.

use std::collections::HashMap;

use proptest::prelude::*;
use url::form_urlencoded;

use super::{FormError, parse_urlencoded};

fn encode<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Bytes drawn mostly from the characters the decoder treats specially.
fn nasty_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet = b"%&=+aF0 9gz\x00\xff\xc3\xa9\x80\r\n".to_vec();
    prop::collection::vec(prop::sample::select(alphabet), 0..64)
}

fn class(result: &Result<HashMap<String, String>, FormError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(FormError::Duplicate(_)) => "duplicate",
        Err(FormError::InvalidUtf8(_)) => "invalid-utf8",
        Err(FormError::BrokenEscape(_)) => "broken-escape",
        Err(_) => "other",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_are_decoded_or_refused_never_a_panic(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..256), nasty_bytes()],
    ) {
        let result = parse_urlencoded(&bytes);
        prop_assert_ne!(class(&result), "other");
    }

    #[test]
    fn any_unicode_form_encoded_by_the_standard_encoder_reads_back_exactly(
        fields in prop::collection::hash_map(any::<String>(), any::<String>(), 0..8),
    ) {
        prop_assert_eq!(parse_urlencoded(encode(&fields).as_bytes()), Ok(fields));
    }

    #[test]
    fn a_field_sent_twice_is_refused_by_name(
        fields in prop::collection::hash_map("[a-z_]{1,10}", any::<String>(), 1..6),
        again in any::<String>(),
    ) {
        let name = fields.keys().next().unwrap().clone();
        let body = format!("{}&{}", encode(&fields), encode([(&name, &again)]));
        prop_assert_eq!(parse_urlencoded(body.as_bytes()), Err(FormError::Duplicate(name)));
    }

    #[test]
    fn a_percent_escape_cut_short_is_refused_not_repaired(
        value in any::<String>(),
        at in any::<prop::sample::Index>(),
        broken in prop::sample::select(vec!["%g", "%zz", "%4g", "%%41", "%+1", "% 1", "%\u{e9}"]),
        cut in prop::sample::select(vec!["%", "%4"]),
    ) {
        let mut encoded = encode([(&"field".to_owned(), &value)]).into_bytes();
        // Anywhere after `field=`, even inside another escape: the field is refused.
        let at = 6 + at.index(encoded.len() - 5);
        encoded.splice(at..at, broken.bytes());
        prop_assert_eq!(
            parse_urlencoded(&encoded),
            Err(FormError::BrokenEscape("field".into()))
        );
        // An escape that is only a prefix is broken at the end of the field.
        let body = format!("{}{cut}&next=1", encode([(&"field".to_owned(), &value)]));
        prop_assert_eq!(
            parse_urlencoded(body.as_bytes()),
            Err(FormError::BrokenEscape("field".into()))
        );
    }

    #[test]
    fn escapes_that_are_not_utf8_are_refused_by_name(
        bytes in prop::collection::vec(any::<u8>(), 1..16)
            .prop_filter("not UTF-8", |b| std::str::from_utf8(b).is_err()),
    ) {
        let escaped: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
        prop_assert_eq!(
            parse_urlencoded(format!("ok=1&bad={escaped}").as_bytes()),
            Err(FormError::InvalidUtf8("bad".into()))
        );
    }
}

#[test]
fn every_urlencoded_corpus_input_gets_its_expected_outcome() {
    crate::corpus::check("urlencoded", |bytes| {
        class(&parse_urlencoded(bytes)).to_owned()
    });
}
