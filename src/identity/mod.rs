//! Azure identity: which credential the app signs in with, and a token source per scope that
//! keeps a valid token ready for PostgreSQL (and later Blob Storage).

pub mod credential;
pub mod token_source;

pub use credential::{CredentialError, CredentialKind, SelectedCredential, select};
pub use token_source::{FIRST_TOKEN_PATIENCE, Token, TokenError, TokenSource, TokenStatus};
