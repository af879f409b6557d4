//! Static assets compiled into the binary, so the site looks right offline and wherever the
//! binary is started from (no CDN, no asset directory to deploy alongside).
//!
//! Each asset is served at two URLs: `/static/app.<hash>.css`, which pages link and which never
//! changes (cached for a year, `immutable`), and `/static/app.css`, for links from outside
//! (cached briefly, revalidated by `ETag`). The bytes are compressed once, with brotli and gzip
//! at their best levels, and the variant the client accepts is sent as is.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{LazyLock, OnceLock};

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::error::AppError;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The plain name may point at new bytes after a deploy: short-lived, then revalidated.
const REVALIDATE: &str = "public, max-age=300";
/// Hex digits of SHA-256 in a hashed name.
const HASH_LEN: usize = 8;

const SOURCES: [(&str, &[u8], &str); 4] = [
    (
        "bootstrap.min.css",
        include_bytes!("../../static/vendor/bootstrap-5.3.9.min.css"),
        "text/css; charset=utf-8",
    ),
    (
        "app.css",
        include_bytes!("../../static/app.css"),
        "text/css; charset=utf-8",
    ),
    (
        "app.js",
        include_bytes!("../../static/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "favicon.svg",
        include_bytes!("../../static/favicon.svg"),
        "image/svg+xml",
    ),
];

/// Marks a response whose encoding was already chosen here, so the compression layer leaves
/// it alone (also the uncompressed one: it was chosen, not forgotten).
#[derive(Clone, Copy, Debug)]
pub struct Negotiated;

struct Asset {
    name: &'static str,
    hashed_name: String,
    url: String,
    content_type: &'static str,
    hash: String,
    identity: Bytes,
    /// Made once, in the background: until then the asset is sent uncompressed, because a
    /// request must never wait (block its worker thread) for brotli's best level.
    compressed: OnceLock<Compressed>,
}

/// The compressed copies, each only kept when smaller than the original.
struct Compressed {
    br: Option<Bytes>,
    gzip: Option<Bytes>,
}

impl Asset {
    /// The compressed copies, made now if they are not yet: for the background thread (and
    /// tests), never for a request.
    fn compress(&self) -> &Compressed {
        self.compressed.get_or_init(|| {
            let bytes = &self.identity[..];
            let smaller = |packed: Vec<u8>| (packed.len() < bytes.len()).then(|| packed.into());
            Compressed {
                br: smaller(brotli_best(bytes)),
                gzip: smaller(gzip_best(bytes)),
            }
        })
    }
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|&(name, bytes, content_type)| {
            let digest = Sha256::digest(bytes);
            let hash: String = digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()[..HASH_LEN]
                .to_owned();
            let hashed_name = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{name}.{hash}"),
            };
            Asset {
                name,
                url: format!("/static/{hashed_name}"),
                hashed_name,
                content_type,
                hash,
                identity: Bytes::from_static(bytes),
                compressed: OnceLock::new(),
            }
        })
        .collect()
});

fn brotli_best(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // A window just big enough for the file rather than the default 4 MiB.
    let lgwin = (usize::BITS - bytes.len().max(1 << 10).leading_zeros()).clamp(10, 24) as i32;
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("in-memory brotli");
    out
}

fn gzip_best(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("in-memory gzip");
    encoder.finish().expect("in-memory gzip")
}

/// Compresses the assets off the request path (brotli's best level takes about a second for
/// Bootstrap in a release build, more on a busy machine).
pub fn prepare_in_background() {
    let _ = std::thread::Builder::new()
        .name("static-assets".into())
        .spawn(|| {
            for asset in ASSETS.iter() {
                let _ = asset.compress();
            }
        });
}

/// Whether every asset's compressed copies are made (until then they are sent uncompressed).
pub fn compressed_ready() -> bool {
    ASSETS.iter().all(|asset| asset.compressed.get().is_some())
}

/// The URL pages link for `name`: its hashed name. Called by templates
/// (`{{ crate::web::assets::url("app.css") }}`); an unknown name keeps its plain URL, which
/// answers 404, so a typo shows in tests rather than panicking a page.
pub fn url(name: &str) -> Cow<'static, str> {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => Cow::Borrowed(asset.url.as_str()),
        None => Cow::Owned(format!("/static/{name}")),
    }
}

enum Lookup {
    Current(&'static Asset, &'static str),
    /// A hashed name of a known asset with another hash: from a page of another version.
    Stale(&'static Asset),
}

fn lookup(requested: &str) -> Option<Lookup> {
    let assets: &'static [Asset] = &ASSETS;
    if let Some(asset) = assets.iter().find(|a| a.name == requested) {
        return Some(Lookup::Current(asset, REVALIDATE));
    }
    if let Some(asset) = assets.iter().find(|a| a.hashed_name == requested) {
        return Some(Lookup::Current(asset, IMMUTABLE));
    }
    let (rest, ext) = requested.rsplit_once('.')?;
    let (stem, hash) = rest.rsplit_once('.')?;
    let looks_hashed = hash.len() == HASH_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let plain = format!("{stem}.{ext}");
    assets
        .iter()
        .find(|a| looks_hashed && a.name == plain)
        .map(Lookup::Stale)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Br,
    Gzip,
    Identity,
}

/// The client's preferred encoding among those stored (`br`, `gzip`), by `Accept-Encoding`
/// q-values (RFC 9110 §12.5.3); brotli wins a tie, being smaller.
fn negotiate(headers: &HeaderMap, stored_br: bool, stored_gzip: bool) -> Encoding {
    let (mut br, mut gzip, mut any) = (None, None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| {
                    let (key, value) = p.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().ok())?
                })
                .unwrap_or(1.0);
            match coding.as_str() {
                "br" => br = Some(q),
                "gzip" | "x-gzip" => gzip = Some(q),
                "*" => any = Some(q),
                _ => {}
            }
        }
    }
    let br = if stored_br {
        br.or(any).unwrap_or(0.0)
    } else {
        0.0
    };
    let gzip = if stored_gzip {
        gzip.or(any).unwrap_or(0.0)
    } else {
        0.0
    };
    if br > 0.0 && br >= gzip {
        Encoding::Br
    } else if gzip > 0.0 {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// `If-None-Match` holds this representation's tag, or `*` (weak comparison, RFC 9110 §13.1.2).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

pub async fn static_asset(
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (asset, cache_control) = match lookup(&name).ok_or(AppError::NotFound)? {
        Lookup::Current(asset, cache_control) => (asset, cache_control),
        // During a rolling deploy a page may ask for another version's hash; the current bytes
        // beat an unstyled page, and the redirect itself is not cached.
        Lookup::Stale(asset) => {
            let mut response = Redirect::temporary(&asset.url).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(response);
        }
    };
    let packed = asset.compressed.get();
    let br = packed.and_then(|p| p.br.clone());
    let gzip = packed.and_then(|p| p.gzip.clone());
    let (body, content_encoding, suffix) = match negotiate(&headers, br.is_some(), gzip.is_some()) {
        Encoding::Br => (br, Some("br"), ".br"),
        Encoding::Gzip => (gzip, Some("gzip"), ".gz"),
        Encoding::Identity => (None, None, ""),
    };
    // Each encoding is its own representation, so its own strong tag.
    let etag = format!("\"{}{suffix}\"", asset.hash);

    let mut response = if not_modified(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body
            .unwrap_or_else(|| asset.identity.clone())
            .into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        if let Some(coding) = content_encoding {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        response
    };
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, etag);
    }
    response.extensions_mut().insert(Negotiated);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        headers
    }

    fn negotiate(headers: &HeaderMap) -> Encoding {
        super::negotiate(headers, true, true)
    }

    #[test]
    fn the_preferred_encoding_follows_q_values_and_brotli_wins_ties() {
        assert_eq!(negotiate(&HeaderMap::new()), Encoding::Identity);
        assert_eq!(negotiate(&accepting("gzip, deflate, br")), Encoding::Br);
        assert_eq!(negotiate(&accepting("gzip")), Encoding::Gzip);
        assert_eq!(negotiate(&accepting("br;q=0.5, gzip")), Encoding::Gzip);
        assert_eq!(
            negotiate(&accepting("br;q=0, gzip;q=0")),
            Encoding::Identity
        );
        assert_eq!(negotiate(&accepting("*")), Encoding::Br);
        assert_eq!(negotiate(&accepting("*;q=0.2, br;q=0")), Encoding::Gzip);
        assert_eq!(negotiate(&accepting("identity")), Encoding::Identity);
        assert_eq!(negotiate(&accepting("BR;Q=1")), Encoding::Br);
        assert_eq!(
            super::negotiate(&accepting("br"), false, true),
            Encoding::Identity,
            "gzip only if the client accepts it"
        );
    }

    #[test]
    fn hashed_names_carry_the_content_hash_before_the_extension() {
        let link = url("bootstrap.min.css");
        let hashed = link.strip_prefix("/static/").unwrap();
        let hash = &ASSETS[0].hash;
        assert_eq!(hashed, format!("bootstrap.min.{hash}.css"));
        assert!(matches!(
            lookup(hashed),
            Some(Lookup::Current(_, IMMUTABLE))
        ));
        assert!(matches!(
            lookup("bootstrap.min.css"),
            Some(Lookup::Current(_, REVALIDATE))
        ));
        assert!(matches!(
            lookup("bootstrap.min.00000000.css"),
            Some(Lookup::Stale(_))
        ));
        assert!(lookup("bootstrap.min.zzzzzzzz.css").is_none());
        assert!(lookup("nope.00000000.css").is_none());
        assert_eq!(url("nope.css"), "/static/nope.css");
    }

    #[test]
    fn every_asset_is_stored_compressed_and_the_base_template_links_them_all() {
        let base = include_str!("../../templates/base.html");
        for asset in ASSETS.iter() {
            let packed = asset.compress();
            assert!(
                packed.br.is_some() && packed.gzip.is_some(),
                "{}",
                asset.name
            );
            assert!(
                base.contains(&format!("crate::web::assets::url(\"{}\")", asset.name)),
                "{}",
                asset.name
            );
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_a_list_or_a_star() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, value.parse().unwrap());
            headers
        };
        assert!(not_modified(&with("\"abc\""), "\"abc\""));
        assert!(not_modified(&with("W/\"abc\""), "\"abc\""));
        assert!(not_modified(&with("\"x\", \"abc\""), "\"abc\""));
        assert!(not_modified(&with("*"), "\"abc\""));
        assert!(!not_modified(&with("\"abc.br\""), "\"abc\""));
        assert!(!not_modified(&HeaderMap::new(), "\"abc\""));
    }
}
