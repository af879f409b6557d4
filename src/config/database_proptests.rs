//! Properties of the two PostgreSQL settings parsers: any text is parsed or refused, never a
//! panic; libpq key=value strings written with libpq's quoting rules, and URLs with
//! percent-encoded parts, read back as the values written; a refused URL never shows its
//! password.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use secrecy::ExposeSecret;

use super::{PostgresSettings, libpq_pairs};

/// How one pair is written: the whitespace before it and around `=`, and whether its value
/// is quoted even when it need not be.
#[derive(Debug, Clone)]
struct Layout {
    before: String,
    around: (String, String),
    always_quote: bool,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        "[ \t\n\r\x0B\x0C]{1,3}",
        "[ \t]{0,2}",
        "[ \t]{0,2}",
        any::<bool>(),
    )
        .prop_map(|(before, left, right, always_quote)| Layout {
            before,
            around: (left, right),
            always_quote,
        })
}

/// libpq's rules: backslashes and single quotes are escaped with a backslash; an empty value
/// or one with whitespace is single-quoted.
fn render(pairs: &[(String, String)], layouts: &[Layout]) -> String {
    let mut text = String::new();
    for ((key, value), layout) in pairs.iter().zip(layouts.iter().cycle()) {
        let escaped = value.replace('\\', r"\\").replace('\'', r"\'");
        let needs_quotes = value.is_empty()
            || value
                .chars()
                .any(|c| c.is_ascii_whitespace() || c == '\x0B');
        let value = if needs_quotes || layout.always_quote {
            format!("'{escaped}'")
        } else {
            escaped
        };
        let (left, right) = &layout.around;
        text.push_str(&format!("{}{key}{left}={right}{value}", layout.before));
    }
    text
}

/// Text made mostly of what the libpq parser treats specially.
fn nasty_connection_string() -> impl Strategy<Value = String> {
    let pieces = vec![
        "host", "port", "dbname", "user", "=", " ", "'", "\\", "\t", "\n", "\u{a0}", "é", "5432",
        "99999", "-1", "sslmode", "require", "bogus", "x",
    ];
    prop::collection::vec(prop::sample::select(pieces), 0..24).prop_map(|p| p.concat())
}

fn nasty_url() -> impl Strategy<Value = String> {
    let pieces = vec![
        "postgres://",
        "postgresql://",
        "@",
        ":",
        "/",
        "%",
        "%zz",
        "%C0%AF",
        "%00",
        "?",
        "#",
        "sslmode=",
        "verify-full",
        "nope",
        "&",
        "[",
        "]",
        "::1",
        "u",
        "p",
        "h.example",
        "0",
        "99999",
        "é",
        "host=",
        "/tmp",
    ];
    prop::collection::vec(prop::sample::select(pieces), 0..16).prop_map(|p| p.concat())
}

const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

fn hostname() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,8}){1,3}"
}

fn encoded(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_a_connection_string_or_a_refusal_never_a_panic(
        text in prop_oneof![any::<String>(), nasty_connection_string()],
    ) {
        let _ = PostgresSettings::from_connection_string(&text);
    }

    #[test]
    fn any_text_is_a_database_url_or_a_refusal_never_a_panic(
        text in prop_oneof![any::<String>(), nasty_url()],
    ) {
        let _ = PostgresSettings::from_url(&text);
    }

    #[test]
    fn pairs_written_with_libpq_quoting_read_back_exactly(
        pairs in prop::collection::vec(("[a-z_]{1,12}", any::<String>()), 0..8),
        layouts in prop::collection::vec(layout(), 1..4),
    ) {
        prop_assert_eq!(libpq_pairs(&render(&pairs, &layouts)).unwrap(), pairs);
    }

    #[test]
    fn a_service_connector_string_reads_back_as_the_settings_written(
        host in hostname(),
        port in any::<u16>(),
        (dbname, user, password, root_cert) in
            (any::<String>(), any::<String>(), any::<String>(), any::<String>()),
        ssl_mode in prop::sample::select(SSL_MODES.to_vec()),
        layouts in prop::collection::vec(layout(), 1..4),
        order in Just((0..7).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let all = [
            ("host", host.clone()),
            ("port", port.to_string()),
            ("dbname", dbname.clone()),
            ("user", user.clone()),
            ("password", password.clone()),
            ("sslmode", ssl_mode.to_owned()),
            ("sslrootcert", root_cert.clone()),
        ];
        let pairs: Vec<(String, String)> =
            order.iter().map(|i| (all[*i].0.to_owned(), all[*i].1.clone())).collect();
        let settings = PostgresSettings::from_connection_string(&render(&pairs, &layouts)).unwrap();
        prop_assert_eq!(settings.host, host);
        prop_assert_eq!(settings.port, port);
        prop_assert_eq!(settings.database, dbname);
        prop_assert_eq!(settings.user, user);
        let read_password = settings.password.as_ref().map(|p| p.expose_secret().to_owned());
        prop_assert_eq!(read_password, Some(password).filter(|p| !p.is_empty()));
        prop_assert_eq!(format!("{:?}", settings.ssl_mode).to_lowercase(), ssl_mode.replace('-', ""));
        prop_assert_eq!(settings.ssl_root_cert, Some(root_cert.into()));
    }

    #[test]
    fn a_url_with_percent_encoded_parts_reads_back_as_the_parts_written(
        user in any::<String>().prop_filter("a user", |u| !u.is_empty()),
        password in any::<String>(),
        host in hostname(),
        port in 1..=u16::MAX,
        // `%2E` and `%2E%2E` are dot segments to a URL parser: `.` and `..` cannot be named.
        database in any::<String>()
            .prop_filter("a database", |d| !["", ".", ".."].contains(&d.as_str())),
        ssl_mode in prop::sample::select(SSL_MODES.to_vec()),
        scheme in prop::sample::select(vec!["postgres", "postgresql"]),
    ) {
        let url = format!(
            "{scheme}://{}:{}@{host}:{port}/{}?sslmode={ssl_mode}",
            encoded(&user),
            encoded(&password),
            encoded(&database),
        );
        let settings = PostgresSettings::from_url(&url).unwrap();
        prop_assert_eq!(settings.user, user);
        let read_password = settings.password.as_ref().map(|p| p.expose_secret().to_owned());
        prop_assert_eq!(read_password, Some(password).filter(|p| !p.is_empty()));
        prop_assert_eq!(settings.host, host);
        prop_assert_eq!(settings.port, port);
        prop_assert_eq!(settings.database, database);
        prop_assert_eq!(format!("{:?}", settings.ssl_mode).to_lowercase(), ssl_mode.replace('-', ""));
    }

    #[test]
    fn a_refused_url_never_shows_its_password(
        password in "[A-Za-z0-9]{12,20}",
        raw in any::<bool>(),
        fault in prop::sample::select(vec![
            ":99999/db", ":-1/db", ":5432/db?sslmode=nope", ":5432/%FF", ":5432/db?port=x",
            ":5432/db?hostaddr=not-an-ip",
        ]),
    ) {
        // The password as written and as an escape of every character: both are redacted.
        let written = if raw { password.clone() } else { encoded(&password) };
        let url = format!("postgres://app:{written}@h.example{fault}");
        let error = PostgresSettings::from_url(&url).unwrap_err();
        for shown in [error.to_string(), format!("{error:?}")] {
            prop_assert!(!shown.contains(&password), "{}", shown);
            prop_assert!(!shown.contains(&written), "{}", shown);
        }
    }
}

#[test]
fn every_connection_string_corpus_input_gets_its_expected_outcome() {
    crate::corpus::check("libpq", |bytes| {
        let text = std::str::from_utf8(bytes).expect("corpus strings are UTF-8");
        match PostgresSettings::from_connection_string(text) {
            Ok(_) => "ok".into(),
            Err(_) => "refused".into(),
        }
    });
}

#[test]
fn every_database_url_corpus_input_gets_its_expected_outcome() {
    crate::corpus::check("database-url", |bytes| {
        let text = std::str::from_utf8(bytes).expect("corpus strings are UTF-8");
        match PostgresSettings::from_url(text) {
            Ok(_) => "ok".into(),
            Err(_) => "refused".into(),
        }
    });
}
