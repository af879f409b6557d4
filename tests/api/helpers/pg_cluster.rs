//! A throwaway PostgreSQL cluster for Entra-token tests: `initdb --auth=scram-sha-256` from
//! the installed server binaries, on a free port. The administrator signs in with scram; every
//! other role's password is checked by [`TokenLdap`](super::token_ldap::TokenLdap), which
//! accepts exactly the minted, unexpired tokens, so a stale token is refused at connect as Azure
//! Database for PostgreSQL refuses it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use tempfile::TempDir;

use super::process::free_port;

pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    admin_password: String,
    run_as_postgres: bool,
    _dir: TempDir,
}

fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgCluster {
    /// Starts a cluster, serving TLS with `tls`'s certificate when given, or `None` (with the
    /// reason printed) where no server binaries exist; in CI (`CI=true`) that is a failure
    /// instead.
    pub fn start_with(
        tokens: &super::token_ldap::TokenLdap,
        tls: Option<&super::test_ca::Leaf>,
    ) -> Option<Self> {
        let Some(bin) = server_bin() else {
            let reason = "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{reason}; they are required in CI"
            );
            eprintln!("SKIPPED: {reason}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let admin_password = format!("admin-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(dir.path().join("pwfile"), &admin_password).unwrap();
        if let Some(leaf) = tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(dir.path().join("server.crt"), &leaf.cert_pem).unwrap();
            std::fs::write(dir.path().join("server.key"), &leaf.key_pem).unwrap();
            // PostgreSQL refuses a private key others can read.
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        let run_as_postgres = is_root();
        if run_as_postgres {
            // initdb refuses to run as root; the cluster belongs to the postgres user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown for the throwaway cluster");
        }
        let mut cluster = Self {
            port: free_port(),
            bin,
            data: data.clone(),
            admin_password,
            run_as_postgres,
            _dir: dir,
        };
        let socket_dir = cluster._dir.path().to_owned();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=scram-sha-256".as_ref(),
                "--pwfile".as_ref(),
                socket_dir.join("pwfile").as_os_str(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        // Tokens, not passwords, for application roles (`ldap` = simple bind with the token).
        let hba = format!(
            "local all all scram-sha-256\n\
             host all postgres 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport={} ldapprefix=\"{}\" ldapsuffix=\"{}\"\n",
            tokens.port,
            super::token_ldap::LDAP_PREFIX,
            super::token_ldap::LDAP_SUFFIX,
        );
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        // The free port was released before the server binds it, so a test starting in parallel
        // can take it first; start again on another port, and show the server's log if even
        // that fails.
        let log = socket_dir.join("server.log");
        for attempt in 1..=3 {
            if attempt > 1 {
                cluster.port = free_port();
            }
            let mut options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                cluster.port,
                socket_dir.display()
            );
            if tls.is_some() {
                options.push_str(&format!(
                    " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
                    dir = socket_dir.display()
                ));
            }
            let started = cluster.try_run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    options.as_ref(),
                    "-w".as_ref(),
                    "start".as_ref(),
                ],
            );
            match started {
                Ok(()) => return Some(cluster),
                Err(error) if attempt == 3 => panic!(
                    "{error}\nserver log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
                Err(error) => eprintln!(
                    "throwaway PostgreSQL did not start (attempt {attempt}), retrying on another port: {error}"
                ),
            }
        }
        unreachable!("the loop returns or panics on its last attempt")
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        if let Err(error) = self.try_run(program, args) {
            panic!("{error}");
        }
    }

    fn try_run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let path = self.bin.join(program);
        let output = if self.run_as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .current_dir(self._dir.path())
                .output()
        } else {
            Command::new(&path).args(args).output()
        }
        .map_err(|e| format!("running {program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    pub fn admin_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .password(&self.admin_password)
            .database("postgres")
            .ssl_mode(PgSslMode::Disable)
    }

    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect_with(&self.admin_options())
            .await
            .expect("admin connection to the throwaway cluster")
    }

    /// Creates a login role without a usable password and a database it owns, like
    /// `pgaadauth_create_principal` plus the tutorial's grants.
    pub async fn create_app_role(&self, role: &str, database: &str) {
        let mut admin = self.admin().await;
        for sql in [
            format!("CREATE ROLE \"{role}\" LOGIN"),
            format!("CREATE DATABASE \"{database}\" OWNER \"{role}\""),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }

    /// A database owned by the administrator that `role` may only connect to: PostgreSQL 15
    /// and later give such a role no CREATE on schema public.
    pub async fn create_locked_down_database(&self, database: &str, role: &str) {
        let mut admin = self.admin().await;
        for sql in [
            format!("CREATE DATABASE \"{database}\""),
            format!("GRANT CONNECT ON DATABASE \"{database}\" TO \"{role}\""),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }

    /// Restarts the server as an outage: `pg_ctl restart -m fast` (open sessions are ended,
    /// the options it was started with are kept) and waits until it accepts connections.
    pub fn restart(&self) {
        let log = self._dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "restart".as_ref(),
            ],
        );
    }

    /// Ends every session of `role` (`pg_terminate_backend`), as a failover or a server-side
    /// idle cleanup does; returns how many were ended.
    pub async fn terminate_sessions(&self, role: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1) AS ended",
        )
        .bind(role)
        .fetch_one(&mut self.admin().await)
        .await
        .unwrap()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data.clone();
        let mut command = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        let _ = command
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
        std::thread::sleep(Duration::from_millis(50));
    }
}
