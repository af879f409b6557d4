//! The tests' stand-ins, shared with the benchmark as they are: the fake identity endpoint
//! (tokens for Azure Monitor) and the test CA the fake ingestion's HTTPS needs.

#[allow(dead_code)]
#[path = "../../tests/api/helpers/fake_identity.rs"]
pub mod fake_identity;
#[allow(dead_code)]
#[path = "../../tests/api/helpers/test_ca.rs"]
pub mod test_ca;
