//! Statements written once for both drivers: `$N` placeholders (both accept them), typed
//! parameters ([`Param`]) and rows read as tuples ([`Row`]). SQLite runs them through sqlx,
//! PostgreSQL through tokio-postgres (see [`super::postgres`]); callers never see which.
//!
//! ```ignore
//! let row: Option<(i64, String)> = db
//!     .fetch_optional("SELECT id, name FROM restaurant WHERE id = $1", &[id.get().into()])
//!     .await?;
//! let written = db
//!     .write(&[Statement::returning_id("INSERT INTO t (a) VALUES ($1) RETURNING id", &[a.into()])])
//!     .await?;
//! ```

use std::error::Error as StdError;

use bytes::BytesMut;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use time::OffsetDateTime;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// A statement parameter. Its type is told to PostgreSQL when the statement is prepared (as
/// sqlx did), so `$1` is what the Rust value is, whatever the server would have inferred.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    OptInt(Option<i64>),
    SmallInt(i16),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bytes(&'a [u8]),
    Time(OffsetDateTime),
    Bool(bool),
}

impl Param<'_> {
    /// The PostgreSQL type the statement is prepared with for this parameter.
    pub(crate) fn pg_type(&self) -> Type {
        match self {
            Param::Int(_) | Param::OptInt(_) => Type::INT8,
            Param::SmallInt(_) => Type::INT2,
            Param::Text(_) | Param::OptText(_) => Type::TEXT,
            Param::Bytes(_) => Type::BYTEA,
            Param::Time(_) => Type::TIMESTAMPTZ,
            Param::Bool(_) => Type::BOOL,
        }
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}
impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        Param::OptInt(value)
    }
}
impl From<i16> for Param<'_> {
    fn from(value: i16) -> Self {
        Param::SmallInt(value)
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(value)
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(value)
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Param::OptText(value)
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(value: &'a [u8]) -> Self {
        Param::Bytes(value)
    }
}
impl From<OffsetDateTime> for Param<'_> {
    fn from(value: OffsetDateTime) -> Self {
        Param::Time(value)
    }
}
impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Bool(value)
    }
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Param::Int(v) => v.to_sql(ty, out),
            Param::OptInt(v) => v.to_sql(ty, out),
            Param::SmallInt(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
            Param::OptText(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
            Param::Bool(v) => v.to_sql(ty, out),
        }
    }

    /// Any: each parameter's type is the one [`Param::pg_type`] prepared the statement with.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The parameters bound to a sqlx SQLite statement, in order.
pub(crate) fn sqlite_arguments(params: &[Param<'_>]) -> Result<SqliteArguments, sqlx::Error> {
    use sqlx::Arguments;
    let mut arguments = SqliteArguments::default();
    for param in params {
        let added = match *param {
            Param::Int(v) => arguments.add(v),
            Param::OptInt(v) => arguments.add(v),
            Param::SmallInt(v) => arguments.add(v),
            Param::Text(v) => arguments.add(v),
            Param::OptText(v) => arguments.add(v),
            Param::Bytes(v) => arguments.add(v),
            Param::Time(v) => arguments.add(v),
            Param::Bool(v) => arguments.add(v),
        };
        added.map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}

/// A result row read as a tuple of column values, on either backend.
pub trait Row: for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin + Sized {
    fn from_pg(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error>;
}

macro_rules! tuple_rows {
    ($($name:ident $index:tt),+) => {
        impl<$($name),+> Row for ($($name,)+)
        where
            $($name: for<'a> FromSql<'a>
                + for<'r> sqlx::Decode<'r, Sqlite>
                + sqlx::Type<Sqlite>
                + Send
                + Unpin,)+
        {
            fn from_pg(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
                Ok(($(row.try_get::<_, $name>($index)?,)+))
            }
        }
    };
}
tuple_rows!(A 0);
tuple_rows!(A 0, B 1);
tuple_rows!(A 0, B 1, C 2);
tuple_rows!(A 0, B 1, C 2, D 3);
tuple_rows!(A 0, B 1, C 2, D 3, E 4);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);

/// One statement of a [`super::Database::write`]. Its SQL is `'static`: PostgreSQL keeps each
/// distinct text prepared on every connection, so texts must not be made per request.
#[derive(Debug, Clone, Copy)]
pub struct Statement<'a> {
    pub sql: &'static str,
    pub params: &'a [Param<'a>],
    /// Whether it ends in `RETURNING id` (an integer), which [`Written::id`] then holds.
    pub returns_id: bool,
}

impl<'a> Statement<'a> {
    pub fn new(sql: &'static str, params: &'a [Param<'a>]) -> Self {
        Self {
            sql,
            params,
            returns_id: false,
        }
    }

    /// A statement ending in `RETURNING id`.
    pub fn returning_id(sql: &'static str, params: &'a [Param<'a>]) -> Self {
        Self {
            sql,
            params,
            returns_id: true,
        }
    }
}

/// What one statement of a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Rows inserted, updated or deleted (or returned, for a `RETURNING` statement).
    pub affected: u64,
    /// The first returned `id`, for a [`Statement::returning_id`].
    pub id: Option<i64>,
}
