//! `restaurant-review doctor`, run as in the App Service SSH console: the real binary with App
//! Service's and the tutorial's settings, against the fake identity endpoint, a throwaway
//! PostgreSQL cluster that checks tokens and serves verified TLS, and Azurite over HTTPS with
//! OAuth. Green first, then one injected fault at a time: the right ✗ line, the right fix, a
//! non-zero exit, and no secret in the output.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use super::forbidden_storage::ForbiddenStorage;
use crate::helpers::azurite::{ACCOUNT, Azurite};
use crate::helpers::fake_identity::{FakeIdentity, claims};
use crate::helpers::pg_cluster::PgCluster;
use crate::helpers::process::{BINARY, free_port};
use crate::helpers::test_ca::TestCa;
use crate::helpers::token_ldap::TokenLdap;

const ROLE: &str = "id-restaurant-demo";
const DATABASE: &str = "restaurant";
const CONTAINER: &str = "photos";
const STORAGE_RESOURCE: &str = "https://storage.azure.com";

struct Rig {
    cluster: PgCluster,
    identity: FakeIdentity,
    tokens: TokenLdap,
    azurite: Azurite,
    certs: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Option<Self> {
        let ca = TestCa::new("Doctor Test PostgreSQL CA");
        let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
        let tokens = TokenLdap::start().await;
        let cluster = PgCluster::start_with(&tokens, Some(&leaf))?;
        let azurite = Azurite::start().await?;
        cluster.create_app_role(ROLE, DATABASE).await;
        let identity = FakeIdentity::start(Duration::from_secs(3600)).await;
        let rig = Self {
            cluster,
            identity,
            tokens,
            azurite,
            certs: tempfile::tempdir().unwrap(),
        };
        rig.accept_tokens_for(ROLE);
        std::fs::write(rig.certs.path().join("postgres-ca.pem"), &ca.cert_pem).unwrap();
        let token = rig.identity.issue(STORAGE_RESOURCE);
        rig.azurite.create_container(CONTAINER, &token, false).await;
        Some(rig)
    }

    /// Tokens minted from now on sign in as `role` (Azure accepts any valid token; which role
    /// it may use is the server's business).
    fn accept_tokens_for(&self, role: &'static str) {
        let accept = self.tokens.clone();
        self.identity.on_mint(Arc::new(move |token, expires| {
            accept.accept(role, &token, expires);
            Box::pin(async {})
        }));
    }

    /// Exactly what App Service and the tutorial set, with the test CAs and ports.
    fn app_service_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IDENTITY_ENDPOINT", self.identity.app_service_url.clone()),
            ("IDENTITY_HEADER", self.identity.header_secret().to_owned()),
            ("AZURE_CLIENT_ID", self.identity.client_id().to_owned()),
            ("WEBSITE_SITE_NAME", "app-demo".into()),
            ("WEBSITE_RESOURCE_GROUP", "rg-demo".into()),
            ("DBHOST", "127.0.0.1".into()),
            // On Azure the host's name asks for a token; this local stand-in must say so.
            ("DATABASE_AUTH", "entra".into()),
            ("DBPORT", self.cluster.port.to_string()),
            ("DBNAME", DATABASE.into()),
            ("DBUSER", ROLE.into()),
            ("DBSSLMODE", "verify-full".into()),
            (
                "DBSSLROOTCERT",
                self.certs
                    .path()
                    .join("postgres-ca.pem")
                    .display()
                    .to_string(),
            ),
            ("STORAGE_ACCOUNT_NAME", self.azurite.endpoint()),
            ("STORAGE_CONTAINER_NAME", CONTAINER.into()),
            (
                "STORAGE_CA_CERT_FILE",
                self.azurite.ca_file().display().to_string(),
            ),
        ]
    }

    /// Runs `restaurant-review doctor [args]` with the App Service environment changed by
    /// `changes`; returns the exit code and everything it printed.
    async fn doctor(&self, changes: &[(&'static str, String)], args: &[&str]) -> (i32, String) {
        let mut env = self.app_service_env();
        for (name, value) in changes {
            env.retain(|(n, _)| n != name);
            env.push((name, value.clone()));
        }
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let output = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            Command::new(BINARY)
                .arg("doctor")
                .args(args)
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        self.assert_no_secrets(&text);
        (output.status.code().unwrap_or(-1), text)
    }

    fn assert_no_secrets(&self, text: &str) {
        assert!(
            !text.contains(self.identity.header_secret()),
            "the doctor printed IDENTITY_HEADER:\n{text}"
        );
        for token in self.identity.tokens() {
            let signature = token.rsplit('.').next().unwrap();
            assert!(
                !text.contains(&token) && !text.contains(signature),
                "the doctor printed a token:\n{text}"
            );
        }
        assert!(
            !text.contains("sig="),
            "the doctor printed a SAS signature:\n{text}"
        );
    }
}

/// The line of check `name` (its ✓/✗ mark and text) and the fix printed under it.
fn line_and_fix<'a>(report: &'a str, name: &str) -> (&'a str, String) {
    let lines: Vec<&str> = report.lines().collect();
    let at = lines
        .iter()
        .position(|l| l[l.find(' ').map_or(0, |i| i + 1)..].starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no line for {name:?} in:\n{report}"));
    let fix = lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("    "))
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    (lines[at], fix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_is_green_against_a_correct_setup_and_shows_claims_but_never_tokens() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let (code, report) = rig.doctor(&[], &[]).await;
    assert_eq!(code, 0, "{report}");
    let expected = [
        "settings",
        "moderator sign-in",
        "credential",
        "token https://ossrdbms-aad.database.windows.net/.default",
        "token https://storage.azure.com/.default",
        "DNS",
        "TCP",
        "TLS",
        "sign-in",
        "migrations",
        "container",
        "probe blob",
        "user-delegation key",
        "clock",
    ];
    let names: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with('✓') || l.starts_with('✗') || l.starts_with('–'))
        .map(|l| l.split_once(' ').unwrap().1.split(": ").next().unwrap())
        .collect();
    assert_eq!(names, expected, "{report}");
    assert!(
        report.lines().filter(|l| l.starts_with('✓')).count() == expected.len(),
        "{report}"
    );
    let credential = line_and_fix(&report, "credential").0;
    assert!(
        credential.contains("ManagedIdentityCredential (App Service)"),
        "{report}"
    );
    assert!(credential.contains(rig.identity.client_id()), "{report}");
    let token = rig.identity.tokens().pop().unwrap();
    let oid = claims(&token)["oid"].as_str().unwrap().to_owned();
    let (storage_token, _) = line_and_fix(&report, "token https://storage.azure.com/.default");
    assert!(
        storage_token.contains(&oid) && storage_token.contains("aud https://storage.azure.com"),
        "{report}"
    );
    assert!(
        line_and_fix(&report, "TLS").0.contains("verified"),
        "{report}"
    );
    assert!(report.ends_with("All checks passed.\n"), "{report}");
    // The probe blob is gone again.
    let token = rig.identity.issue(STORAGE_RESOURCE);
    assert!(rig.azurite.blob_names(CONTAINER, &token).await.is_empty());

    let (code, json) = rig.doctor(&[], &["--json"]).await;
    assert_eq!(code, 0, "{json}");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["ok"], true);
    assert_eq!(parsed["checks"].as_array().unwrap().len(), expected.len());
}

/// One fault: what to change, which check must fail, and what its line and fix must say.
struct Fault {
    what: &'static str,
    changes: Vec<(&'static str, String)>,
    check: &'static str,
    line_says: Vec<String>,
    fix_says: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_failing_check_and_its_fix_for_each_fault() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    rig.cluster
        .create_locked_down_database("locked_down", ROLE)
        .await;
    let forbidden = ForbiddenStorage::start().await;
    let forbidden_ca = rig.certs.path().join("forbidden-ca.pem");
    std::fs::write(&forbidden_ca, &forbidden.ca.cert_pem).unwrap();
    let wrong_client = "00000000-1111-2222-3333-444444444444";
    let closed_port = free_port().to_string();
    let s = |text: &str| text.to_owned();

    let faults = vec![
        Fault {
            what: "a wrong AZURE_CLIENT_ID (the endpoint answers 400)",
            changes: vec![("AZURE_CLIENT_ID", s(wrong_client))],
            check: "token https://ossrdbms-aad.database.windows.net/.default",
            line_says: vec![s("not assigned")],
            fix_says: vec![
                format!("AZURE_CLIENT_ID={wrong_client} is not an identity assigned to this app"),
                s("az webapp identity show --resource-group rg-demo --name app-demo"),
                s(
                    "az webapp config appsettings set --resource-group rg-demo --name app-demo --settings AZURE_CLIENT_ID=<client-id>",
                ),
            ],
        },
        Fault {
            what: "the identity's PostgreSQL role was never created",
            changes: vec![("DBUSER", s("id-never-created"))],
            check: "sign-in",
            line_says: vec![s("id-never-created")],
            fix_says: vec![
                s("select * from pgaadauth_create_principal('id-never-created', false, false);"),
                s("GRANT USAGE, CREATE ON SCHEMA public TO \"id-never-created\";"),
                s("az account get-access-token --resource-type oss-rdbms"),
            ],
        },
        Fault {
            what: "the database does not exist",
            changes: vec![("DBNAME", s("restaurants"))],
            check: "sign-in",
            line_says: vec![s("\"restaurants\" does not exist")],
            fix_says: vec![s(
                "az postgres flexible-server db create --resource-group rg-demo --server-name <server-name> --name restaurants",
            )],
        },
        Fault {
            what: "no CREATE on schema public",
            changes: vec![("DBNAME", s("locked_down"))],
            check: "migrations",
            line_says: vec![s("may not CREATE in schema public")],
            fix_says: vec![
                format!("dbname=locked_down"),
                format!("GRANT USAGE, CREATE ON SCHEMA public TO \"{ROLE}\";"),
            ],
        },
        Fault {
            what: "the database is unreachable (firewall)",
            changes: vec![("DBPORT", closed_port.clone())],
            check: "TCP",
            line_says: vec![format!("127.0.0.1:{closed_port}")],
            fix_says: vec![s(
                "az postgres flexible-server firewall-rule create --resource-group rg-demo --server-name <server-name> --name AllowAllAzureServicesAndResourcesWithinAzureIps --start-ip-address 0.0.0.0 --end-ip-address 0.0.0.0",
            )],
        },
        Fault {
            what: "the container is missing",
            changes: vec![("STORAGE_CONTAINER_NAME", s("reviews"))],
            check: "container",
            line_says: vec![s("\"reviews\" does not exist")],
            fix_says: vec![s(
                "az storage container-rm create --storage-account devstoreaccount1 --name reviews --public-access off",
            )],
        },
        Fault {
            what: "storage answers 403 AuthorizationPermissionMismatch (no data role)",
            changes: vec![
                ("STORAGE_ACCOUNT_NAME", forbidden.endpoint()),
                ("STORAGE_CA_CERT_FILE", forbidden_ca.display().to_string()),
            ],
            check: "container",
            line_says: vec![s("access denied")],
            fix_says: vec![
                s("az role assignment create --assignee-object-id "),
                s(
                    "--assignee-principal-type ServicePrincipal --role \"Storage Blob Data Contributor\"",
                ),
                format!(
                    "--scope \"$(az storage account show --name {ACCOUNT} --query id --output tsv)\""
                ),
            ],
        },
    ];

    let (mut table, mut fix_commands) = (Vec::new(), Vec::new());
    for fault in faults {
        if fault.changes.iter().any(|(name, _)| *name == "DBUSER") {
            rig.accept_tokens_for("id-never-created");
        }
        let (code, report) = rig.doctor(&fault.changes, &[]).await;
        rig.accept_tokens_for(ROLE);
        let (line, fix) = line_and_fix(&report, fault.check);
        assert_ne!(code, 0, "{}: exit 0\n{report}", fault.what);
        assert!(line.starts_with('✗'), "{}: {line}\n{report}", fault.what);
        for needle in &fault.line_says {
            assert!(
                line.contains(needle),
                "{}: line lacks {needle:?}\n{report}",
                fault.what
            );
        }
        for needle in &fault.fix_says {
            assert!(
                fix.contains(needle),
                "{}: fix lacks {needle:?}\n{report}",
                fault.what
            );
        }
        table.push(format!("{} → {line} → exit {code}", fault.what));
        fix_commands.extend(az_commands(&fix));
    }
    // Every az command a fix shows, for the check against the real Azure CLI's argument parser
    // that scripts/test.sh runs after this suite (deploy/test/check_az_args.py).
    let commands =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("doctor-fix-commands.txt");
    std::fs::write(&commands, fix_commands.join("\n") + "\n").unwrap();
    // The fault table, for the record (`cargo test -- --nocapture` shows it).
    println!("{}", table.join("\n"));
}

/// The `az` command lines in a fix, including those inside `$(...)`.
fn az_commands(fix: &str) -> Vec<String> {
    let mut commands = Vec::new();
    for line in fix.lines().map(str::trim) {
        if line.starts_with("az ") {
            commands.push(line.to_owned());
        }
        for inner in line.split("$(").skip(1) {
            if let Some(command) = inner.split(')').next().filter(|c| c.starts_with("az ")) {
                commands.push(command.to_owned());
            }
        }
    }
    commands
}
