//! Which Azure credential the app uses, chosen predictably from the environment.
//!
//! `azure_identity` has no `DefaultAzureCredential`, so this module encodes the part of its
//! behaviour the tutorial relies on, as a table (see the README):
//!
//! | variables set | credential |
//! |---|---|
//! | `AZURE_TOKEN_CREDENTIALS=<name>` | that credential, whatever else is set |
//! | `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` | service principal (client secret) |
//! | `AZURE_FEDERATED_TOKEN_FILE` (+ tenant and client id) | workload identity |
//! | `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service) | managed identity; `AZURE_CLIENT_ID` picks the user-assigned one |
//! | none of the above | developer tools: Azure CLI, then Azure Developer CLI |
//!
//! On a VM (IMDS) nothing in the environment says so; set
//! `AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential`. The names follow the Python SDK's
//! `AZURE_TOKEN_CREDENTIALS`, which also accepts `dev` and `prod`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{Secret as AzureSecret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions};
use azure_identity::{
    AzureCliCredential, AzureDeveloperCliCredential, ClientSecretCredential,
    ClientSecretCredentialOptions, DeveloperToolsCredential, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
};

/// The token source decides when to retry (at least 30 s apart, never per request); the SDK's
/// own up-to-8 retries per call would hit the identity endpoint in bursts.
fn client_options() -> ClientOptions {
    ClientOptions {
        retry: RetryOptions::none(),
        ..Default::default()
    }
}

/// The override variable, as in the Python SDK.
pub const OVERRIDE_VAR: &str = "AZURE_TOKEN_CREDENTIALS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ClientSecret,
    WorkloadIdentity,
    /// App Service / Functions: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    AppServiceManagedIdentity,
    /// Azure VM / VM scale set: the instance metadata service.
    VmManagedIdentity,
    AzureCli,
    AzureDeveloperCli,
    /// Azure CLI, then Azure Developer CLI.
    DeveloperTools,
}

impl CredentialKind {
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::ClientSecret => "ClientSecretCredential",
            CredentialKind::WorkloadIdentity => "WorkloadIdentityCredential",
            CredentialKind::AppServiceManagedIdentity => "ManagedIdentityCredential (App Service)",
            CredentialKind::VmManagedIdentity => "ManagedIdentityCredential (IMDS)",
            CredentialKind::AzureCli => "AzureCliCredential",
            CredentialKind::AzureDeveloperCli => "AzureDeveloperCliCredential",
            CredentialKind::DeveloperTools => {
                "DeveloperToolsCredential (Azure CLI, then Azure Developer CLI)"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "{OVERRIDE_VAR}={0:?} is not a credential this app knows; use one of EnvironmentCredential, ClientSecretCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential, AzureDeveloperCliCredential, dev or prod"
    )]
    UnknownOverride(String),
    #[error("{kind} needs {missing}")]
    Missing {
        kind: &'static str,
        missing: &'static str,
    },
    #[error("could not create {kind}")]
    Create {
        kind: &'static str,
        #[source]
        source: azure_core::Error,
    },
}

/// What was chosen and why; `Display` is the startup log line (no secrets).
#[derive(Clone)]
pub struct SelectedCredential {
    pub kind: CredentialKind,
    pub reason: String,
    /// The user-assigned identity's client id, when one was named.
    pub client_id: Option<String>,
    pub credential: Arc<dyn TokenCredential>,
}

impl fmt::Debug for SelectedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectedCredential")
            .field("kind", &self.kind)
            .field("reason", &self.reason)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl SelectedCredential {
    /// A short name for messages: the credential and the identity it signs in as.
    pub fn label(&self) -> String {
        match &self.client_id {
            Some(id) => format!("{} for client id {id}", self.kind.name()),
            None => self.kind.name().to_owned(),
        }
    }
}

impl fmt::Display for SelectedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} because {}", self.kind.name(), self.reason)?;
        if let Some(id) = &self.client_id {
            write!(f, " (client id {id})")?;
        }
        Ok(())
    }
}

/// Decides which credential the variables call for, without creating it.
pub fn choose(vars: &HashMap<String, String>) -> Result<(CredentialKind, String), CredentialError> {
    let has = |name: &str| vars.get(name).is_some_and(|v| !v.trim().is_empty());
    if let Some(choice) = vars
        .get(OVERRIDE_VAR)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        let reason = format!("{OVERRIDE_VAR}={choice}");
        let kind = match choice.to_ascii_lowercase().as_str() {
            "environmentcredential" | "clientsecretcredential" => CredentialKind::ClientSecret,
            "workloadidentitycredential" => CredentialKind::WorkloadIdentity,
            "managedidentitycredential" if has("IDENTITY_ENDPOINT") && has("IDENTITY_HEADER") => {
                CredentialKind::AppServiceManagedIdentity
            }
            "managedidentitycredential" => CredentialKind::VmManagedIdentity,
            "azureclicredential" => CredentialKind::AzureCli,
            "azuredeveloperclicredential" => CredentialKind::AzureDeveloperCli,
            "dev" => CredentialKind::DeveloperTools,
            "prod" => {
                return choose_production(&has).map(|(k, r)| (k, format!("{reason}: {r}")));
            }
            _ => return Err(CredentialError::UnknownOverride(choice.to_owned())),
        };
        return Ok((kind, reason));
    }
    if let Ok(found) = choose_production(&has) {
        return Ok(found);
    }
    Ok((
        CredentialKind::DeveloperTools,
        "no service principal, workload identity or App Service managed identity is configured"
            .into(),
    ))
}

/// The deployed-environment credentials, in `DefaultAzureCredential`'s order.
fn choose_production(
    has: &dyn Fn(&str) -> bool,
) -> Result<(CredentialKind, String), CredentialError> {
    if has("AZURE_TENANT_ID") && has("AZURE_CLIENT_ID") && has("AZURE_CLIENT_SECRET") {
        return Ok((
            CredentialKind::ClientSecret,
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are set".into(),
        ));
    }
    if has("AZURE_FEDERATED_TOKEN_FILE") {
        return Ok((
            CredentialKind::WorkloadIdentity,
            "AZURE_FEDERATED_TOKEN_FILE is set".into(),
        ));
    }
    if has("IDENTITY_ENDPOINT") && has("IDENTITY_HEADER") {
        return Ok((
            CredentialKind::AppServiceManagedIdentity,
            "IDENTITY_ENDPOINT and IDENTITY_HEADER are set (App Service)".into(),
        ));
    }
    Err(CredentialError::Missing {
        kind: "a production credential",
        missing: "a service principal, workload identity or managed identity",
    })
}

/// Chooses and creates the credential. `vars` must be the process environment: the SDK's
/// credentials read their own variables from it.
pub fn select(vars: &HashMap<String, String>) -> Result<SelectedCredential, CredentialError> {
    let (kind, reason) = choose(vars)?;
    let get = |name: &str| {
        vars.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let create = |source| CredentialError::Create {
        kind: kind.name(),
        source,
    };
    let client_id = get("AZURE_CLIENT_ID");
    let credential: Arc<dyn TokenCredential> = match kind {
        CredentialKind::ClientSecret => {
            let (Some(tenant), Some(client), Some(secret)) = (
                get("AZURE_TENANT_ID"),
                client_id.clone(),
                get("AZURE_CLIENT_SECRET"),
            ) else {
                return Err(CredentialError::Missing {
                    kind: kind.name(),
                    missing: "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
                });
            };
            let options = ClientSecretCredentialOptions {
                client_options: client_options(),
            };
            ClientSecretCredential::new(&tenant, client, AzureSecret::new(secret), Some(options))
                .map_err(create)?
        }
        CredentialKind::WorkloadIdentity => {
            WorkloadIdentityCredential::new(None).map_err(create)?
        }
        CredentialKind::AppServiceManagedIdentity | CredentialKind::VmManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                // The SDK reads AZURE_CLIENT_ID only for workload identity; pass it ourselves.
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options: client_options(),
            };
            ManagedIdentityCredential::new(Some(options)).map_err(create)?
        }
        CredentialKind::AzureCli => AzureCliCredential::new(None).map_err(create)?,
        CredentialKind::AzureDeveloperCli => {
            AzureDeveloperCliCredential::new(None).map_err(create)?
        }
        CredentialKind::DeveloperTools => DeveloperToolsCredential::new(None).map_err(create)?,
    };
    let names_identity = matches!(
        kind,
        CredentialKind::AppServiceManagedIdentity
            | CredentialKind::VmManagedIdentity
            | CredentialKind::ClientSecret
            | CredentialKind::WorkloadIdentity
    );
    Ok(SelectedCredential {
        kind,
        reason,
        client_id: client_id.filter(|_| names_identity),
        credential,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars as vars;

    /// The README's credential table, row by row.
    #[test]
    fn the_credential_table() {
        let rows: Vec<(Vec<(&str, &str)>, CredentialKind)> = vec![
            (vec![], CredentialKind::DeveloperTools),
            (
                vec![("AZURE_CLIENT_ID", "abc")],
                CredentialKind::DeveloperTools,
            ),
            (
                vec![
                    ("AZURE_TENANT_ID", "t"),
                    ("AZURE_CLIENT_ID", "c"),
                    ("AZURE_CLIENT_SECRET", "s"),
                ],
                CredentialKind::ClientSecret,
            ),
            (
                vec![
                    ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
                    ("AZURE_CLIENT_ID", "c"),
                ],
                CredentialKind::WorkloadIdentity,
            ),
            (
                vec![
                    ("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"),
                    ("IDENTITY_HEADER", "h"),
                ],
                CredentialKind::AppServiceManagedIdentity,
            ),
            (
                vec![
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                    ("AZURE_CLIENT_ID", "c"),
                ],
                CredentialKind::AppServiceManagedIdentity,
            ),
            (
                // A service principal wins over App Service's managed identity, as in DefaultAzureCredential.
                vec![
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                    ("AZURE_TENANT_ID", "t"),
                    ("AZURE_CLIENT_ID", "c"),
                    ("AZURE_CLIENT_SECRET", "s"),
                ],
                CredentialKind::ClientSecret,
            ),
            (
                vec![("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")],
                CredentialKind::VmManagedIdentity,
            ),
            (
                vec![
                    ("AZURE_TOKEN_CREDENTIALS", "managedidentitycredential"),
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                ],
                CredentialKind::AppServiceManagedIdentity,
            ),
            (
                vec![
                    ("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential"),
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                ],
                CredentialKind::AzureCli,
            ),
            (
                vec![("AZURE_TOKEN_CREDENTIALS", "AzureDeveloperCliCredential")],
                CredentialKind::AzureDeveloperCli,
            ),
            (
                vec![
                    ("AZURE_TOKEN_CREDENTIALS", "dev"),
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                ],
                CredentialKind::DeveloperTools,
            ),
            (
                vec![
                    ("AZURE_TOKEN_CREDENTIALS", "prod"),
                    ("IDENTITY_ENDPOINT", "http://x"),
                    ("IDENTITY_HEADER", "h"),
                ],
                CredentialKind::AppServiceManagedIdentity,
            ),
        ];
        for (row, expected) in rows {
            let (kind, reason) = choose(&vars(&row)).unwrap();
            assert_eq!(kind, expected, "{row:?} ({reason})");
        }
    }

    #[test]
    fn prod_without_a_production_credential_and_unknown_overrides_are_errors() {
        assert!(choose(&vars(&[("AZURE_TOKEN_CREDENTIALS", "prod")])).is_err());
        let err = choose(&vars(&[("AZURE_TOKEN_CREDENTIALS", "Magic")])).unwrap_err();
        assert!(err.to_string().contains("Magic"));
    }

    #[test]
    fn the_startup_line_names_the_credential_and_never_the_secret() {
        let selected = select(&vars(&[
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("AZURE_CLIENT_SECRET", "very-secret-value"),
        ]))
        .unwrap();
        let line = selected.to_string();
        assert!(line.starts_with("ClientSecretCredential because"), "{line}");
        assert!(
            !line.contains("very-secret-value")
                && !format!("{selected:?}").contains("very-secret-value")
        );
    }
}
