//! restaurant-review: the Azure "Django web app with a user-assigned managed identity" sample,
//! rebuilt in Rust. See the README for running and configuring it.

pub mod config;
pub mod db;
pub mod doctor;
pub mod domain;
pub mod forms;
pub mod identity;
pub mod moderation;
pub mod photos;
pub mod reviews;
pub mod startup;
pub mod telemetry;
pub mod web;

/// The checked-in corpus of nasty parser inputs, read by the parsers' property tests.
#[cfg(test)]
#[path = "../tests/corpus/read.rs"]
mod corpus;

/// Formats an error with its sources, `outer: inner: root`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
