//! Static assets compiled into the binary, so the site looks right offline and wherever the
//! binary is started from (no CDN, no asset directory to deploy alongside).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::AppError;

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
}

fn lookup(name: &str) -> Option<Asset> {
    let (bytes, content_type): (&'static [u8], _) = match name {
        "bootstrap.min.css" => (
            include_bytes!("../../static/vendor/bootstrap-5.3.9.min.css"),
            "text/css; charset=utf-8",
        ),
        "app.css" => (
            include_bytes!("../../static/app.css"),
            "text/css; charset=utf-8",
        ),
        "app.js" => (
            include_bytes!("../../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "favicon.svg" => (include_bytes!("../../static/favicon.svg"), "image/svg+xml"),
        _ => return None,
    };
    Some(Asset {
        bytes,
        content_type,
    })
}

pub async fn static_asset(Path(name): Path<String>) -> Result<Response, AppError> {
    let asset = lookup(&name).ok_or(AppError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        asset.bytes,
    )
        .into_response())
}
