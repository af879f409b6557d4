//! Sort keys for restaurant names on SQLite, which has no Unicode collation of its own: ICU4X's
//! root collation, the order PostgreSQL's ICU collation "und-x-icu" gives, so both databases
//! list names alike ("Äpfel & Birnen" beside "apple tree diner", "Zum Löwen" last).

use std::sync::LazyLock;

use icu_collator::options::CollatorOptions;
use icu_collator::{Collator, CollatorBorrowed};
use sqlx::SqlitePool;

use super::DbError;

/// Names the algorithm and data the stored keys were made with. Keys are bytes compared as
/// they are, so when an icu_collator update changes them (the golden-key test below fails),
/// bump this: at startup every key made under another version is made again.
pub const VERSION: &str = "icu4x-2-root-tertiary-1";

static COLLATOR: LazyLock<CollatorBorrowed<'static>> = LazyLock::new(|| {
    Collator::try_new(Default::default(), CollatorOptions::default())
        .expect("the root collation's data is compiled in")
});

/// The bytes that sort `name` where the root collation puts it.
pub fn name_key(name: &str) -> Vec<u8> {
    let mut key = Vec::new();
    let Ok(()) = COLLATOR.write_sort_key_to(name, &mut key);
    key
}

/// Makes the keys that are missing (rows from before keys existed) or were made under another
/// [`VERSION`], in one transaction.
#[tracing::instrument(name = "db.refresh_sort_keys", skip_all)]
pub async fn refresh(pool: &SqlitePool) -> Result<(), DbError> {
    let mut tx = pool.begin().await?;
    let stored: Option<String> = sqlx::query_scalar("SELECT version FROM sort_key_version")
        .fetch_optional(&mut *tx)
        .await?;
    let sql = if stored.as_deref() == Some(VERSION) {
        "SELECT id, name FROM restaurant WHERE name_key IS NULL"
    } else {
        "SELECT id, name FROM restaurant"
    };
    let rows: Vec<(i64, String)> = sqlx::query_as(sql).fetch_all(&mut *tx).await?;
    for (id, name) in &rows {
        sqlx::query("UPDATE restaurant SET name_key = $1 WHERE id = $2")
            .bind(name_key(name))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("INSERT OR REPLACE INTO sort_key_version (only_row, version) VALUES (1, $1)")
        .bind(VERSION)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(
            restaurants = rows.len(),
            version = VERSION,
            "made the names' sort keys"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_people_expect_not_by_bytes() {
        let mut names = vec![
            "Zum Löwen",
            "apple tree diner",
            "Äpfel & Birnen",
            "Zebra Bar",
            "café crème",
            "Cafe Creme",
            "Ängel",
            "10 Downing",
            "9 Lives",
        ];
        names.sort_by_key(|name| name_key(name));
        assert_eq!(
            names,
            [
                // Digits compare one by one, as in PostgreSQL's "und-x-icu".
                "10 Downing",
                "9 Lives",
                "Ängel",
                "Äpfel & Birnen",
                "apple tree diner",
                "Cafe Creme",
                "café crème",
                "Zebra Bar",
                "Zum Löwen",
            ]
        );
    }

    #[test]
    fn the_keys_are_the_ones_this_version_stores() {
        // If this fails after an icu_collator update, the stored keys changed: bump VERSION.
        assert_eq!(
            name_key("Äb"),
            vec![0x2b, 0x2d, 0x01, 0x45, 0x96, 0x05, 0x01, 0xdc, 0x06],
            "{:x?}",
            name_key("Äb")
        );
    }
}
