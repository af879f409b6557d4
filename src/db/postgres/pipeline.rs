//! Writes: statements in one transaction, sent with their `BEGIN` and `COMMIT` in one go (one
//! round trip), and the rule for when a failed one may be sent again.
//!
//! A write is retried (once, on a new connection) only when nothing of it can have been
//! applied: the server said it was ending the session (57P0x, class 08) in answer to the
//! `BEGIN` or a statement before the `COMMIT` (the backend exits after saying so, so the
//! `COMMIT` behind it never runs), or the connection was found closed by a goodbye that came
//! while it was idle, before any of it was written. A write whose `COMMIT` got no answer may
//! have been applied: it is never sent again, and the caller hears
//! [`DbError::OutcomeUnknown`].

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool::managed::Object;
use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;

use super::{Connector, Ended, PgConn, PgPool, is_dead_connection, is_session_ended};
use crate::db::DbError;
use crate::db::sql::{Param, Statement, Written};

/// Why a write did not go through.
enum Failure {
    /// Nothing of it can have been applied, and the connection was dead: safe to send again.
    NotApplied(tokio_postgres::Error),
    /// The server refused a statement (a constraint, say); the transaction was rolled back.
    Refused(tokio_postgres::Error),
    /// The connection was lost after the write may have reached the server.
    Unknown(tokio_postgres::Error),
}

impl Failure {
    fn into_db_error(self) -> DbError {
        match self {
            Failure::NotApplied(error) => DbError::Unavailable(Box::new(error)),
            Failure::Refused(error) => DbError::from_pg(error),
            Failure::Unknown(error) => DbError::OutcomeUnknown(Box::new(error)),
        }
    }
}

type Request<'a> =
    Pin<Box<dyn Future<Output = Result<Written, tokio_postgres::Error>> + Send + 'a>>;

impl PgConn {
    /// `BEGIN`, the statements and `COMMIT`, queued together and answered together.
    async fn pipeline(&mut self, statements: &[Statement<'_>]) -> Result<Vec<Written>, Failure> {
        // Preparing (the first time a text is used on this connection) changes nothing.
        let mut prepared = Vec::with_capacity(statements.len());
        for statement in statements {
            match self.statement(statement.sql, statement.params).await {
                Ok(ready) => prepared.push(ready),
                Err(error) if is_dead_connection(&error) => return Err(Failure::NotApplied(error)),
                Err(error) => return Err(Failure::Refused(error)),
            }
        }
        let client = &self.client;
        let mut requests: Vec<Request<'_>> = Vec::with_capacity(statements.len() + 2);
        requests.push(Box::pin(async move {
            client
                .batch_execute("BEGIN")
                .await
                .map(|()| Written::default())
        }));
        for (statement, ready) in statements.iter().zip(&prepared) {
            requests.push(Box::pin(run(
                client,
                ready,
                statement.params,
                statement.returns_id,
            )));
        }
        requests.push(Box::pin(async move {
            client
                .batch_execute("COMMIT")
                .await
                .map(|()| Written::default())
        }));
        let mut results = in_order(requests).await;
        let commit = results.pop().expect("COMMIT is the last request");
        let mut written = Vec::with_capacity(statements.len());
        for (index, result) in results.into_iter().enumerate() {
            let error = match result {
                Ok(done) if index > 0 => {
                    written.push(done);
                    continue;
                }
                Ok(_) => continue,
                Err(error) => error,
            };
            if is_session_ended(&error) {
                return Err(Failure::NotApplied(error));
            }
            if error.as_db_error().is_some() {
                return Err(Failure::Refused(error));
            }
            // Closed: sent or not? Only a goodbye that came while the connection was idle
            // proves that the requests queued behind it were never written.
            let never_sent =
                index == 0 && self.ended().await == Some(Ended::ServerEndedIdleSession);
            return Err(if never_sent {
                Failure::NotApplied(error)
            } else {
                Failure::Unknown(error)
            });
        }
        match commit {
            Ok(_) => Ok(written),
            // Refused at COMMIT (a serialization failure, say): rolled back.
            Err(error) if error.as_db_error().is_some() && !is_session_ended(&error) => {
                Err(Failure::Refused(error))
            }
            Err(error) => Err(Failure::Unknown(error)),
        }
    }
}

/// One statement of a pipeline, queued on its first poll.
async fn run(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    params: &[Param<'_>],
    returns_id: bool,
) -> Result<Written, tokio_postgres::Error> {
    let values = params.iter().map(|p| p as &(dyn ToSql + Sync));
    let rows = client.query_raw(statement, values).await?;
    let mut rows = std::pin::pin!(rows);
    let mut written = Written::default();
    let mut returned = 0;
    while let Some(row) = rows.try_next().await? {
        returned += 1;
        if returns_id && written.id.is_none() {
            written.id = Some(row.try_get(0)?);
        }
    }
    written.affected = if returns_id {
        returned
    } else {
        rows.rows_affected().unwrap_or(0)
    };
    Ok(written)
}

/// Awaits `requests` together after polling each once, in order. A tokio-postgres request is
/// queued on its future's first poll, so this fixes the order they reach the server in; and
/// all are queued in one poll, so a request cancelled part-way cannot leave a `BEGIN` without
/// its `COMMIT`. (`tokio::join!` starts polling from a different future each time.)
async fn in_order<T>(mut requests: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut results: Vec<Option<T>> = requests.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (request, result) in requests.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match request.as_mut().poll(cx) {
                    Poll::Ready(value) => *result = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

impl PgPool {
    /// `statements` in one transaction, in one round trip; sent again once, on a new
    /// connection, when their connection was dead and nothing can have been applied.
    pub async fn write(&self, statements: &[Statement<'_>]) -> Result<Vec<Written>, DbError> {
        let mut conn = self.get().await?;
        match conn.pipeline(statements).await {
            Ok(written) => Ok(written),
            Err(Failure::NotApplied(error)) => {
                tracing::info!(
                    cause = %crate::error_chain(&error),
                    "a write met a dead connection before reaching the server; sending it again on a new one"
                );
                self.replace(&mut conn).await?;
                conn.pipeline(statements)
                    .await
                    .map_err(Failure::into_db_error)
            }
            Err(failure) => Err(failure.into_db_error()),
        }
    }

    /// A transaction for statements that depend on what earlier ones read. Its `BEGIN` is
    /// retried on a new connection when the connection was dead (a `BEGIN` alone changes
    /// nothing); what follows is not.
    pub async fn begin(&self) -> Result<PgTx, DbError> {
        let mut conn = self.get().await?;
        if let Err(error) = conn.client.batch_execute("BEGIN").await {
            if !is_dead_connection(&error) {
                return Err(DbError::from_pg(error));
            }
            self.replace(&mut conn).await?;
            conn.client
                .batch_execute("BEGIN")
                .await
                .map_err(DbError::from_pg)?;
        }
        Ok(PgTx { conn: Some(conn) })
    }
}

/// An open transaction on one pooled connection; rolled back if dropped uncommitted.
pub struct PgTx {
    conn: Option<Object<Connector>>,
}

impl PgTx {
    fn conn(&mut self) -> &mut PgConn {
        self.conn
            .as_mut()
            .expect("a transaction has its connection until it ends")
    }

    pub async fn fetch(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        self.conn()
            .query(sql, params)
            .await
            .map_err(DbError::from_pg)
    }

    pub async fn execute(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<u64, DbError> {
        let conn = self.conn();
        let statement = conn
            .statement(sql, params)
            .await
            .map_err(DbError::from_pg)?;
        let values: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        conn.client
            .execute(&statement, &values)
            .await
            .map_err(DbError::from_pg)
    }

    /// Commits. A `COMMIT` that got no answer may or may not have been applied:
    /// [`DbError::OutcomeUnknown`].
    pub async fn commit(mut self) -> Result<(), DbError> {
        let conn = self.conn.take().expect("a transaction commits once");
        match conn.client.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(error) if error.as_db_error().is_some() && !is_session_ended(&error) => {
                Err(DbError::from_pg(error))
            }
            Err(error) => Err(DbError::OutcomeUnknown(Box::new(error))),
        }
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // The connection goes back to the pool once the rollback has been answered; without
        // a runtime (shutting down) it is closed instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = conn.client.batch_execute("ROLLBACK").await;
            });
        } else {
            drop(Object::take(conn));
        }
    }
}
