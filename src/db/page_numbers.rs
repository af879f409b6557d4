//! Numbered pages of the restaurant list (`?page=N`: a bookmark from before keyset paging, or
//! a hand-edited address) at the cost of the first page. An OFFSET walks every row before the
//! page (page 500 of 10,000 restaurants read 9,980 rows first); instead each order keeps a map
//! of where its pages end (one id per page, made by one pass over the index), and page N is
//! answered as "the page after the row that ends page N - 1", the keyset statement the pager's
//! own links use.
//!
//! The map is per instance and made again when this instance adds a restaurant (before the
//! next numbered page) and at most [`FRESH_FOR`] after it was made otherwise (in the
//! background, the old one answering meanwhile), so restaurants added through another
//! instance shift numbered pages a little late: a bookmark's page number is approximate
//! anyway, as rows come and go. Searches keep OFFSET: a search counts its matches in a scan of
//! the names already.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::paging::{Backend, PageAt, Sort};
use super::{Database, DbError};

/// A map older than this is made again in the background.
const FRESH_FOR: Duration = Duration::from_secs(30);

/// Where each order's pages end, for one page size.
#[derive(Debug, Clone)]
struct PageMap {
    made: Instant,
    per_page: u32,
    /// `(position, id)` of every `per_page`-th row in the order, and of the last row.
    ends: Arc<Vec<(i64, i64)>>,
    /// This instance changed the list since: make it again before using it.
    outdated: bool,
    refreshing: bool,
}

#[derive(Debug, Default)]
pub(super) struct PageNumbers {
    maps: Mutex<HashMap<Sort, PageMap>>,
    /// Counts [`Database::restaurants_changed`], so that a map made meanwhile is not
    /// taken as current.
    changes: AtomicU64,
}

/// `(position, id)` of every `$1`-th row of the list in `sort` order, and of its last row.
fn map_sql(backend: Backend, sort: Sort) -> &'static str {
    static SQL: LazyLock<[[String; 3]; 2]> = LazyLock::new(|| {
        [Backend::Sqlite, Backend::Postgres].map(|backend| {
            Sort::ALL.map(|sort| {
                let keys = sort.keys(backend).join(", ");
                format!(
                    "SELECT position, id FROM (\
                         SELECT id, row_number() OVER (ORDER BY {keys}, id) AS position FROM restaurant\
                     ) ranked \
                     WHERE position % $1 = 0 OR position = (SELECT COUNT(*) FROM restaurant) \
                     ORDER BY position"
                )
            })
        })
    });
    let b = usize::from(backend == Backend::Postgres);
    let s = Sort::ALL.iter().position(|x| *x == sort).unwrap_or(0);
    &SQL[b][s]
}

impl Database {
    /// Restaurants were added, removed or renamed here: numbered pages are mapped again
    /// before the next one is served. (Reviews move restaurants in the rating orders too;
    /// those maps follow within [`FRESH_FOR`].)
    pub(crate) fn restaurants_changed(&self) {
        self.page_numbers.changes.fetch_add(1, Ordering::SeqCst);
        for map in self.page_numbers.maps.lock().unwrap().values_mut() {
            map.outdated = true;
        }
    }

    /// Where page `number` of the whole list in `sort` order starts, as a keyset position.
    pub(super) async fn numbered_page(
        &self,
        sort: Sort,
        number: u32,
        per_page: u32,
    ) -> Result<PageAt, DbError> {
        let ends = self.page_ends(sort, per_page).await?;
        let Some(&(_, last_id)) = ends.last() else {
            // Nothing listed: the page is empty whichever way it is read.
            return Ok(PageAt::Number(number));
        };
        let before = i64::from(number.saturating_sub(1)) * i64::from(per_page);
        // Past the end: after the last row, which is empty (and then shown as the last page).
        let after = ends
            .iter()
            .find(|(position, _)| *position == before)
            .map_or(last_id, |&(_, id)| id);
        Ok(PageAt::After(after))
    }

    async fn page_ends(&self, sort: Sort, per_page: u32) -> Result<Arc<Vec<(i64, i64)>>, DbError> {
        let cached = self.page_numbers.maps.lock().unwrap().get(&sort).cloned();
        match cached {
            Some(map) if map.per_page == per_page && !map.outdated => {
                if map.made.elapsed() >= FRESH_FOR && !map.refreshing {
                    self.refresh_in_background(sort, per_page);
                }
                Ok(map.ends)
            }
            _ => self.make_page_map(sort, per_page).await,
        }
    }

    fn refresh_in_background(&self, sort: Sort, per_page: u32) {
        if let Some(map) = self.page_numbers.maps.lock().unwrap().get_mut(&sort) {
            map.refreshing = true;
        }
        let db = self.clone();
        tokio::spawn(async move {
            if let Err(error) = db.make_page_map(sort, per_page).await {
                tracing::warn!(error = %crate::error_chain(&error), "mapping the list's pages failed; the old map is kept");
                if let Some(map) = db.page_numbers.maps.lock().unwrap().get_mut(&sort) {
                    map.refreshing = false;
                }
            }
        });
    }

    #[tracing::instrument(name = "db.page_map", skip(self))]
    async fn make_page_map(
        &self,
        sort: Sort,
        per_page: u32,
    ) -> Result<Arc<Vec<(i64, i64)>>, DbError> {
        let made = Instant::now();
        let changes = self.page_numbers.changes.load(Ordering::SeqCst);
        let ends: Vec<(i64, i64)> = self
            .fetch_all(map_sql(self.backend(), sort), &[i64::from(per_page).into()])
            .await?;
        let ends = Arc::new(ends);
        self.page_numbers.maps.lock().unwrap().insert(
            sort,
            PageMap {
                made,
                per_page,
                ends: ends.clone(),
                outdated: self.page_numbers.changes.load(Ordering::SeqCst) != changes,
                refreshing: false,
            },
        );
        Ok(ends)
    }
}
