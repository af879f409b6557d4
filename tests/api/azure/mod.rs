//! The Azure integrations, tested for real without Azure: the real binary configured as App
//! Service configures it, a fake managed-identity endpoint, throwaway PostgreSQL clusters that
//! check tokens like Azure does, and Azurite.

mod blob_photos;
mod doctor;
mod dropped_connections;
mod forbidden_storage;
mod moderated_photos;
mod passwordless;
mod soak;
mod two_instances;
