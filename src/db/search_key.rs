//! Folded names for search and for spotting duplicates: "Café Müller", "CAFE  MULLER" and
//! "cafe muller" fold alike. Computed here for both databases (neither folds accents the
//! same way: PostgreSQL's `unaccent` is an extension, SQLite has none), stored beside the name
//! on insert, and filled in at startup for rows that have none.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::{Database, DbError};

/// Lower case, compatibility-decomposed (NFKD: "ﬁ" is "fi", "é" is "e" + an accent), without
/// the combining marks or control characters (PostgreSQL text cannot hold a NUL), and with
/// runs of white space as one space, trimmed.
pub fn fold(text: &str) -> String {
    let folded: String = text
        .to_lowercase()
        .nfkd()
        .filter(|c| !is_combining_mark(*c) && (!c.is_control() || c.is_whitespace()))
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A LIKE pattern that finds `query` anywhere in a folded name, with LIKE's own `%`, `_` and
/// the escape character `\` matched literally (the statements say `ESCAPE '\'`).
pub fn contains_pattern(query: &str) -> String {
    let mut pattern = String::from("%");
    for c in fold(query).chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Database {
    /// Folds the names that have no search key yet (rows from before search, or inserted with
    /// plain SQL), in one transaction; runs at startup.
    #[tracing::instrument(name = "db.refresh_search_keys", skip_all)]
    pub async fn refresh_search_keys(&self) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        let rows: Vec<(i64, String)> = tx
            .fetch_all(
                "SELECT id, name FROM restaurant WHERE name_search IS NULL",
                &[],
            )
            .await?;
        for (id, name) in &rows {
            let folded = fold(name);
            tx.execute(
                "UPDATE restaurant SET name_search = $1 WHERE id = $2",
                &[folded.as_str().into(), (*id).into()],
            )
            .await?;
        }
        tx.commit().await?;
        let made = rows.len();
        if made > 0 {
            tracing::info!(restaurants = made, "made the names' search keys");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_without_case_accents_or_extra_spaces() {
        for (text, folded) in [
            ("Café Müller", "cafe muller"),
            ("CAFÉ", "cafe"),
            ("  Zum   Löwen ", "zum lowen"),
            ("Ångström\u{00A0}Bar", "angstrom bar"),
            ("ﬁsh & chips", "fish & chips"),
            ("Crème Brûlée", "creme brulee"),
            ("İstanbul", "istanbul"),
            ("tab\tand\u{0}nul", "tab andnul"),
        ] {
            assert_eq!(fold(text), folded, "{text}");
        }
    }

    #[test]
    fn like_patterns_match_percent_and_underscore_literally() {
        assert_eq!(contains_pattern("Café"), "%cafe%");
        assert_eq!(contains_pattern("100%"), "%100\\%%");
        assert_eq!(contains_pattern("a_b"), "%a\\_b%");
        assert_eq!(contains_pattern("back\\slash"), "%back\\\\slash%");
    }
}
