//! Everything the app uses on App Service, at once: PostgreSQL in token mode (a throwaway
//! cluster whose logins are checked by [`TokenLdap`]), Azurite with OAuth, and the fake identity
//! endpoint minting tokens for both. The soak and the two-instance tests run the real binary on it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::azurite::Azurite;
use super::fake_identity::FakeIdentity;
use super::pg_cluster::PgCluster;
use super::process::AppProcess;
use super::token_ldap::TokenLdap;

pub const ROLE: &str = "restaurant-identity";
pub const DATABASE: &str = "restaurant";
pub const CONTAINER: &str = "photos";
const STORAGE_RESOURCE: &str = "https://storage.azure.com";

pub struct AzureRig {
    pub cluster: PgCluster,
    pub azurite: Azurite,
    pub identity: FakeIdentity,
    _tokens: TokenLdap,
}

/// One stored review, as the invariants need it.
#[derive(Debug, Clone)]
pub struct StoredReview {
    pub restaurant_id: i64,
    pub rating: i64,
    pub text: String,
    pub image_name: Option<String>,
}

impl AzureRig {
    /// `None` (with the reason printed) where PostgreSQL's server binaries or Azurite are
    /// missing on a developer machine; in CI that is a failure.
    pub async fn start(token_lifetime: Duration) -> Option<Self> {
        let tokens = TokenLdap::start().await;
        let cluster = PgCluster::start_with(&tokens, None)?;
        cluster.create_app_role(ROLE, DATABASE).await;
        let azurite = Azurite::start().await?;
        let identity = FakeIdentity::start(token_lifetime).await;
        let accept = tokens.clone();
        identity.on_mint(Arc::new(move |token, expires| {
            accept.accept(ROLE, &token, expires);
            Box::pin(async {})
        }));
        let rig = Self {
            cluster,
            azurite,
            identity,
            _tokens: tokens,
        };
        // deploy/azure.sh provisions the private container before the app starts.
        rig.azurite
            .create_container(CONTAINER, &rig.storage_token(), false)
            .await;
        Some(rig)
    }

    /// App Service's and the tutorial's settings for both PostgreSQL and Blob Storage.
    pub fn start_app(&self) -> AppProcess {
        self.start_app_with(&[])
    }

    /// The same settings and `extra` ones (telemetry, for instance).
    pub fn start_app_with(&self, extra: &[(&str, &str)]) -> AppProcess {
        let vars = self.environment();
        let vars: Vec<(&str, &str)> = vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .collect();
        AppProcess::start(&vars)
    }

    /// The variables [`AzureRig::start_app`] starts the binary with (for the `moderate`
    /// command, or a start with a few more).
    pub fn environment(&self) -> Vec<(String, String)> {
        let endpoint = self.azurite.endpoint();
        let ca = self.azurite.ca_file().display().to_string();
        let port = self.cluster.port.to_string();
        [
            ("IDENTITY_ENDPOINT", self.identity.app_service_url.as_str()),
            ("IDENTITY_HEADER", self.identity.header_secret()),
            ("AZURE_CLIENT_ID", self.identity.client_id()),
            ("DBHOST", "127.0.0.1"),
            // On Azure the host's name asks for a token; this local stand-in must say so.
            ("DATABASE_AUTH", "entra"),
            ("DBPORT", &port),
            ("DBNAME", DATABASE),
            ("DBUSER", ROLE),
            // The throwaway cluster has no TLS; on Azure the default is verify-full.
            ("DBSSLMODE", "disable"),
            ("STORAGE_ACCOUNT_NAME", &endpoint),
            ("STORAGE_CONTAINER_NAME", CONTAINER),
            ("STORAGE_CA_CERT_FILE", &ca),
            ("WEBSITE_HOSTNAME", "127.0.0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub fn storage_token(&self) -> String {
        self.identity.issue(STORAGE_RESOURCE)
    }

    /// Blob names in the photo container.
    pub async fn blobs(&self) -> Vec<String> {
        self.azurite
            .blob_names(CONTAINER, &self.storage_token())
            .await
    }

    /// The administrator, on the app's database (it outlives restarts of the app's sessions).
    pub async fn admin_db(&self) -> PgConnection {
        PgConnection::connect_with(&self.cluster.admin_options().database(DATABASE))
            .await
            .expect("admin connection to the app's database")
    }

    pub async fn reviews(&self) -> Vec<StoredReview> {
        let rows: Vec<(i64, i16, String, Option<String>)> = sqlx::query_as(
            "SELECT restaurant_id, rating, review_text, image_name FROM review ORDER BY id",
        )
        .fetch_all(&mut self.admin_db().await)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(restaurant_id, rating, text, image_name)| StoredReview {
                restaurant_id,
                rating: i64::from(rating),
                text,
                image_name,
            })
            .collect()
    }

    /// Each restaurant's stored running totals: id -> (review_count, rating_sum).
    pub async fn stored_totals(&self) -> BTreeMap<i64, (i64, i64)> {
        let rows: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT id, review_count, rating_sum FROM restaurant")
                .fetch_all(&mut self.admin_db().await)
                .await
                .unwrap();
        rows.into_iter()
            .map(|(id, n, sum)| (id, (n, sum)))
            .collect()
    }
}

/// Totals recomputed from the rows: id -> (count, sum of ratings), for every restaurant in
/// `restaurants` (those without reviews count zero).
pub fn totals_from_rows(
    restaurants: impl IntoIterator<Item = i64>,
    rows: &[StoredReview],
) -> BTreeMap<i64, (i64, i64)> {
    let mut totals: BTreeMap<i64, (i64, i64)> =
        restaurants.into_iter().map(|id| (id, (0, 0))).collect();
    for row in rows {
        let entry = totals.entry(row.restaurant_id).or_default();
        entry.0 += 1;
        entry.1 += row.rating;
    }
    totals
}
