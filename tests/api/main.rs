//! The integration tests, as one test binary: the app in-process on port 0 against SQLite and
//! a fresh PostgreSQL database per test (restaurants, reviews, security), the real binary
//! configured through its environment (binary), the Azure integrations against a fake
//! identity endpoint, throwaway PostgreSQL clusters and Azurite (azure), and photo sniffing's
//! property tests and corpus (parsers). One binary builds and links once, and lets the
//! minutes-long token soaks run side by side with everything else.

mod api_document;
mod assets;
mod azure;
mod binary;
mod browser;
mod database_auth;
mod helpers;
mod json_api;
mod moderation;
mod pages;
mod paging;
mod parsers;
mod photo_memory;
mod rate_limit;
mod refused_uploads;
mod restaurants;
mod reviews;
mod round_trips;
mod search;
mod security;
mod telemetry;
