//! Running the statements of [`super::sql`] on either backend: reads, writes in one
//! transaction, and transactions that read before they write.
//!
//! On PostgreSQL a read is one round trip once its statement is prepared, and is retried once
//! on a new connection when its connection was dead; a write is one round trip with its
//! `BEGIN` and `COMMIT`, retried only when nothing can have been applied (see
//! [`super::postgres`]). On SQLite (a local file) neither can meet a dead connection.

use sqlx::sqlite::Sqlite;

use super::sql::{Param, Row, Statement, Written, sqlite_arguments};
use super::{Database, DbError, Pool, acquire};

impl Database {
    /// Every row `sql` returns.
    pub async fn fetch_all<R: Row>(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<R>, DbError> {
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
        match self {
            Tx::Sqlite(tx) => Ok(sqlite_run(tx, &Statement::new(sql, params)).await?.affected),
            Tx::Postgres(tx) => tx.execute(sql, params).await,
        }
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
