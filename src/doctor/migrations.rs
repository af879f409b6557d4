//! The database's migrations and whether the app's role may do what they need; the embedded
//! database's file.

use std::path::Path;

use sqlx::Row;
use sqlx::postgres::PgConnection;

use super::Check;
use super::fixes::AzureContext;
use crate::config::PostgresSettings;
use crate::db::POSTGRES_MIGRATIONS;

/// Which migrations the database has, and whether the role may do what the app does: create
/// the tables (when migrations are pending) or use them (when they exist).
pub async fn check(
    connection: &mut PgConnection,
    pg: &PostgresSettings,
    context: &AzureContext,
) -> Check {
    let known: Vec<i64> = POSTGRES_MIGRATIONS
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    match privileges(connection, &known).await {
        Ok(state) => state.check(known.len(), pg, context),
        Err(error) => Check::fail(
            "migrations",
            format!("could not read them: {}", crate::error_chain(&error)),
            None,
        ),
    }
}

struct MigrationState {
    applied: usize,
    failed: Vec<i64>,
    may_create: bool,
    may_use_tables: bool,
}

async fn privileges(
    connection: &mut PgConnection,
    known: &[i64],
) -> Result<MigrationState, sqlx::Error> {
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *connection)
        .await?;
    let (mut applied, mut failed) = (0, Vec::new());
    if has_table {
        for row in sqlx::query("SELECT version, success FROM _sqlx_migrations")
            .fetch_all(&mut *connection)
            .await?
        {
            let version: i64 = row.try_get("version")?;
            let success: bool = row.try_get("success")?;
            match (known.contains(&version), success) {
                (true, true) => applied += 1,
                (_, false) => failed.push(version),
                (false, true) => {}
            }
        }
    }
    // Each privilege asked for alone: with a list, PostgreSQL answers whether *any* is held.
    let may_create: bool = sqlx::query_scalar(
        "SELECT has_schema_privilege(current_user, 'public', 'USAGE') \
         AND has_schema_privilege(current_user, 'public', 'CREATE')",
    )
    .fetch_one(&mut *connection)
    .await?;
    let may_use_tables: bool = sqlx::query_scalar(
        "SELECT to_regclass('restaurant') IS NULL OR to_regclass('review') IS NULL \
         OR (has_table_privilege(current_user, 'restaurant', 'SELECT') \
             AND has_table_privilege(current_user, 'restaurant', 'INSERT') \
             AND has_table_privilege(current_user, 'restaurant', 'UPDATE') \
             AND has_table_privilege(current_user, 'review', 'SELECT') \
             AND has_table_privilege(current_user, 'review', 'INSERT'))",
    )
    .fetch_one(&mut *connection)
    .await?;
    Ok(MigrationState {
        applied,
        failed,
        may_create,
        may_use_tables,
    })
}

impl MigrationState {
    fn check(&self, known: usize, pg: &PostgresSettings, context: &AzureContext) -> Check {
        let counted = format!("{} of {known} applied", self.applied);
        if !self.failed.is_empty() {
            return Check::fail(
                "migrations",
                format!(
                    "{counted}; migration {:?} failed part-way and must be repaired by hand",
                    self.failed
                ),
                None,
            );
        }
        if !self.may_use_tables {
            return Check::fail(
                "migrations",
                format!(
                    "{counted}, but {} may not read and write the tables",
                    pg.user
                ),
                Some(context.postgres_table_grants(&pg.host, &pg.user, &pg.database)),
            );
        }
        if self.applied == known {
            return Check::pass(
                "migrations",
                format!("{counted}; SELECT, INSERT, UPDATE on the tables"),
            );
        }
        if self.may_create {
            Check::pass(
                "migrations",
                format!(
                    "{counted}; the app applies the rest at startup (it may CREATE in schema public)"
                ),
            )
        } else {
            Check::fail(
                "migrations",
                format!(
                    "{counted}, and {} may not CREATE in schema public, so the app cannot apply them",
                    pg.user
                ),
                Some(context.postgres_grant_create(&pg.host, &pg.user, &pg.database)),
            )
        }
    }
}

/// The embedded database: the file's directory must be writable (the file is created on the
/// app's first start).
pub fn check_sqlite(path: &Path) -> Check {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.exists() {
        return Check::pass("database", format!("SQLite file {} exists", path.display()));
    }
    match super::writable(dir) {
        Ok(()) => Check::pass(
            "database",
            format!(
                "SQLite file {} will be created on first start",
                path.display()
            ),
        ),
        Err(error) => Check::fail(
            "database",
            format!("cannot create {}: {error}", path.display()),
            Some("set DATA_DIR to a writable directory".into()),
        ),
    }
}
