//! Running the statements of [`super::sql`] on either backend: reads, writes in one
//! transaction, and transactions that read before they write.
//!
//! On PostgreSQL a read is one round trip once its statement is prepared, and is retried once
//! on a new connection when its connection was dead; a write is one round trip with its
//! `BEGIN` and `COMMIT`, retried only when nothing can have been applied (see
//! [`super::postgres`]). On SQLite (a local file) neither can meet a dead connection.

use sqlx::sqlite::Sqlite;
use tracing::Instrument;

use super::sql::{Param, Row, Statement, Written, sqlite_arguments};
use super::{Backend, Database, DbError, Pool, acquire};

impl Database {
    /// Every row `sql` returns.
    pub async fn fetch_all<R: Row>(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<R>, DbError> {
        let span = statement_span(self.backend(), sql);
        async {
            match &self.pool {
                Pool::Sqlite(pool) => {
                    let mut conn = acquire(pool).await?;
                    let query = sqlx::query_as_with::<Sqlite, R, _>(
                        sqlx::AssertSqlSafe(sql),
                        sqlite_arguments(params)?,
                    );
                    Ok(query.fetch_all(&mut *conn).await?)
                }
                Pool::Postgres(pool) => pg_rows(pool.fetch(sql, params).await?),
            }
        }
        .instrument(span)
        .await
    }

    /// The first row `sql` returns, if any.
    pub async fn fetch_optional<R: Row>(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<R>, DbError> {
        Ok(self.fetch_all(sql, params).await?.into_iter().next())
    }

    /// The row `sql` returns; none is a failed query.
    pub async fn fetch_one<R: Row>(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<R, DbError> {
        self.fetch_optional(sql, params)
            .await?
            .ok_or_else(|| DbError::Query("the statement returned no row".into()))
    }

    /// `statements` in one transaction, in order; what each did. On PostgreSQL they travel
    /// with their `BEGIN` and `COMMIT` in one round trip, so a statement cannot depend on
    /// what an earlier one returned (only on what it changed): use [`Database::begin`] for
    /// that. A connection lost while committing is [`DbError::OutcomeUnknown`].
    pub async fn write(&self, statements: &[Statement<'_>]) -> Result<Vec<Written>, DbError> {
        let span = write_span(self.backend(), statements);
        self.write_all(statements).instrument(span).await
    }

    async fn write_all(&self, statements: &[Statement<'_>]) -> Result<Vec<Written>, DbError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let mut written = Vec::with_capacity(statements.len());
                for statement in statements {
                    written.push(sqlite_run(&mut tx, statement).await?);
                }
                tx.commit().await?;
                Ok(written)
            }
            Pool::Postgres(pool) => pool.write(statements).await,
        }
    }

    /// A transaction whose statements depend on what earlier ones read; rolled back unless
    /// [`Tx::commit`] is called.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Tx::Postgres(Box::new(pool.begin().await?)),
        })
    }
}

/// An open transaction (see [`Database::begin`]).
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(Box<super::postgres::PgTx>),
}

impl Tx {
    pub async fn fetch_all<R: Row>(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<R>, DbError> {
        let span = statement_span(self.backend(), sql);
        self.fetch_rows(sql, params).instrument(span).await
    }

    async fn fetch_rows<R: Row>(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<R>, DbError> {
        match self {
            Tx::Sqlite(tx) => {
                let query = sqlx::query_as_with::<Sqlite, R, _>(
                    sqlx::AssertSqlSafe(sql),
                    sqlite_arguments(params)?,
                );
                Ok(query.fetch_all(&mut **tx).await?)
            }
            Tx::Postgres(tx) => pg_rows(tx.fetch(sql, params).await?),
        }
    }

    fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn fetch_optional<R: Row>(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<R>, DbError> {
        Ok(self.fetch_all(sql, params).await?.into_iter().next())
    }

    /// Runs one statement; the rows it changed.
    pub async fn execute(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<u64, DbError> {
        let span = statement_span(self.backend(), sql);
        async {
            match self {
                Tx::Sqlite(tx) => Ok(sqlite_run(tx, &Statement::new(sql, params)).await?.affected),
                Tx::Postgres(tx) => tx.execute(sql, params).await,
            }
        }
        .instrument(span)
        .await
    }

    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => Ok(tx.commit().await?),
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

async fn sqlite_run(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    statement: &Statement<'_>,
) -> Result<Written, DbError> {
    let arguments = sqlite_arguments(statement.params)?;
    let sql = sqlx::AssertSqlSafe(statement.sql);
    if statement.returns_id {
        let ids: Vec<(i64,)> = sqlx::query_as_with::<Sqlite, (i64,), _>(sql, arguments)
            .fetch_all(&mut **tx)
            .await?;
        Ok(Written {
            affected: ids.len() as u64,
            id: ids.first().map(|row| row.0),
        })
    } else {
        let done = sqlx::query_with::<Sqlite, _>(sql, arguments)
            .execute(&mut **tx)
            .await?;
        Ok(Written {
            affected: done.rows_affected(),
            id: None,
        })
    }
}

fn pg_rows<R: Row>(rows: Vec<tokio_postgres::Row>) -> Result<Vec<R>, DbError> {
    rows.iter()
        .map(R::from_pg)
        .collect::<Result<_, _>>()
        .map_err(|e| DbError::Query(Box::new(e)))
}

/// A dependency span for one statement: the operation and the statement's text with its
/// `$n` placeholders (the texts are constants in the code), never its parameters.
fn statement_span(backend: Backend, sql: &'static str) -> tracing::Span {
    let operation = operation(sql);
    tracing::debug_span!(
        "db.statement",
        otel.name = %format_args!("{operation} {}", backend_name(backend)),
        otel.kind = "client",
        db.system.name = backend_name(backend),
        db.operation.name = operation,
        db.query.text = sql,
    )
}

/// One span for a pipelined write (on PostgreSQL one round trip with its BEGIN and COMMIT).
fn write_span(backend: Backend, statements: &[Statement<'_>]) -> tracing::Span {
    let operations: Vec<&str> = statements.iter().map(|s| operation(s.sql)).collect();
    tracing::debug_span!(
        "db.transaction",
        otel.name = %format_args!("TRANSACTION {}", backend_name(backend)),
        otel.kind = "client",
        db.system.name = backend_name(backend),
        db.operation.name = %operations.join(", "),
    )
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "postgresql",
        Backend::Sqlite => "sqlite",
    }
}

/// The statement's first keyword (`SELECT`, `INSERT`, `WITH`, ...).
fn operation(sql: &'static str) -> &'static str {
    let word = sql.split_whitespace().next().unwrap_or("SQL");
    match word.to_ascii_uppercase().as_str() {
        "SELECT" => "SELECT",
        "INSERT" => "INSERT",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "WITH" => "WITH",
        _ => "SQL",
    }
}
