//! What pages show, shaped for the templates: restaurants and reviews as rows, star glyphs,
//! dates, and the pager.

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::forms::parse_urlencoded;
use crate::db::{PageAt, Restaurant, Review};
use crate::photos::{PhotoKey, PhotoStore, Variant};

const DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");

/// Page navigation under a list.
pub struct Pager {
    per_page: u32,
    pub page: u32,
    pub pages: u32,
    pub prev: Option<u32>,
    pub next: Option<u32>,
    /// Links to the neighbouring pages by keyset (`?after=<id>&page=N`): bookmarkable, and
    /// as cheap at page 500 as at page 1.
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    pub first_href: String,
    pub last_href: String,
}

impl Pager {
    pub fn new(page: u32, total: i64, per_page: u32) -> Self {
        let pages =
            u32::try_from((total.max(0) as u64).div_ceil(u64::from(per_page))).unwrap_or(u32::MAX);
        let page = page.clamp(1, pages.max(1));
        Self {
            per_page,
            page,
            pages,
            prev: (page > 1).then(|| page - 1),
            next: (page < pages).then(|| page + 1),
            prev_href: None,
            next_href: None,
            first_href: "?".into(),
            last_href: "?page=last".into(),
        }
    }

    /// The links of a page shown at `path` with `shown` rows, from id `first` to id `last`. A
    /// page short of rows is the last, whatever number it was given.
    pub fn linked(self, path: &str, shown: usize, first: Option<i64>, last: Option<i64>) -> Self {
        self.linked_with(path, "", shown, first, last)
    }

    /// [`Pager::linked`] for a list whose links keep `kept`, an encoded query (`q=…&sort=…`,
    /// or empty), ahead of their own parameters.
    pub fn linked_with(
        mut self,
        path: &str,
        kept: &str,
        shown: usize,
        first: Option<i64>,
        last: Option<i64>,
    ) -> Self {
        if shown < self.per_page as usize {
            self.next = None;
        }
        let (start, and) = if kept.is_empty() {
            (path.to_owned(), format!("{path}?"))
        } else {
            (format!("{path}?{kept}"), format!("{path}?{kept}&"))
        };
        self.first_href = start.clone();
        self.last_href = format!("{and}page=last");
        self.prev_href = self.prev.map(|prev| match (prev, first) {
            (1, _) | (_, None) => start.clone(),
            (prev, Some(first)) => format!("{and}before={first}&page={prev}"),
        });
        self.next_href = self.next.map(|next| match last {
            Some(last) => format!("{and}after={last}&page={next}"),
            None => format!("{and}page={next}"),
        });
        self
    }
}

/// `?page=N`, defaulting to 1 for anything missing or malformed.
pub fn requested_page(query: Option<String>) -> u32 {
    query
        .and_then(|q| parse_urlencoded(q.as_bytes()).ok())
        .and_then(|fields| fields.get("page").and_then(|p| p.parse::<u32>().ok()))
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// The number a page at `at` is shown as: 1 for the first, the last one for `Last` (the pager
/// clamps it), else what the link said.
pub fn shown_number(at: PageAt, query: Option<String>) -> u32 {
    match at {
        PageAt::First => 1,
        PageAt::Last => u32::MAX,
        _ => requested_page(query),
    }
}

/// The page to show instead of the one at `at`, which came back with `shown` of `total` rows:
/// the first when going back found fewer than a page (rows were added before it), the last
/// when a cursor or number pointed past the end. `None`: show it.
pub fn page_instead(at: PageAt, shown: usize, total: i64, per_page: u32) -> Option<PageAt> {
    match at {
        PageAt::Before(_) if shown < per_page as usize => Some(PageAt::First),
        _ if shown == 0 && total > 0 => Some(PageAt::Last),
        _ => None,
    }
}

/// Where the requested page starts: `?after=<id>` or `?before=<id>` (the pager's links),
/// `?page=last`, `?page=N` (older links, by offset), else the first page.
pub fn requested_position(query: Option<&str>) -> PageAt {
    let Some(fields) = query.and_then(|q| parse_urlencoded(q.as_bytes()).ok()) else {
        return PageAt::First;
    };
    let id = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|id| *id >= 1)
    };
    if let Some(after) = id("after") {
        return PageAt::After(after);
    }
    if let Some(before) = id("before") {
        return PageAt::Before(before);
    }
    match fields.get("page").map(String::as_str) {
        Some("last") => PageAt::Last,
        Some(number) => match number.parse::<u32>() {
            Ok(n) if n > 1 => PageAt::Number(n),
            _ => PageAt::First,
        },
        None => PageAt::First,
    }
}

pub struct RestaurantView {
    pub id: i64,
    pub href: String,
    pub name: String,
    pub street_address: String,
    pub description: String,
    pub average: Option<String>,
    pub count_label: String,
    pub stars: Stars,
}

impl From<Restaurant> for RestaurantView {
    fn from(r: Restaurant) -> Self {
        Self {
            id: r.id.get(),
            href: format!("/{}/", r.id),
            average: r.ratings.average_display(),
            count_label: r.ratings.count_display(),
            stars: Stars::from_tenths(r.ratings.average_tenths().unwrap_or(0)),
            name: r.name,
            street_address: r.street_address,
            description: r.description,
        }
    }
}

pub struct PhotoLinks {
    pub full_url: String,
    pub thumbnail_url: String,
}

pub struct ReviewView {
    pub id: i64,
    pub user_name: String,
    pub review_text: String,
    pub stars: Stars,
    pub date_label: String,
    pub date_iso: String,
    pub photo: Option<PhotoLinks>,
}

impl ReviewView {
    /// A review for the page. A photo whose link cannot be made (storage unreachable) is left
    /// out with a warning rather than failing the whole page.
    pub async fn new(review: Review, photos: &PhotoStore) -> Self {
        let photo = match &review.image {
            Some(name) => {
                let links = async {
                    Ok::<_, crate::photos::StoreError>(PhotoLinks {
                        full_url: photos.url(&PhotoKey::new(name, Variant::Display)).await?,
                        thumbnail_url: photos.url(&PhotoKey::new(name, Variant::Thumbnail)).await?,
                    })
                };
                match links.await {
                    Ok(links) => Some(links),
                    Err(error) => {
                        tracing::warn!(photo = %name, error = %crate::error_chain(&error), "showing a review without its photo");
                        None
                    }
                }
            }
            None => None,
        };
        Self {
            id: review.id,
            stars: Stars::from_rating(review.rating),
            date_label: date_label(review.review_date),
            date_iso: review
                .review_date
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            user_name: review.user_name,
            review_text: review.review_text,
            photo,
        }
    }
}

pub fn date_label(date: OffsetDateTime) -> String {
    date.format(DATE_FORMAT).unwrap_or_default()
}

/// How a 0–5 rating is drawn: whole stars, at most one half star, the rest empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stars {
    pub full: u8,
    pub half: bool,
    pub empty: u8,
}

impl Stars {
    /// Rounds an average given in tenths to the nearest half star.
    pub fn from_tenths(tenths: i64) -> Self {
        let halves = ((tenths.clamp(0, 50) + 2) / 5) as u8;
        let full = halves / 2;
        let half = halves % 2 == 1;
        Self {
            full,
            half,
            empty: 5 - full - u8::from(half),
        }
    }

    pub fn from_rating(rating: u8) -> Self {
        Self::from_tenths(i64::from(rating) * 10)
    }

    /// CSS classes for the five star glyphs, left to right.
    pub fn classes(self) -> Vec<&'static str> {
        let mut classes = vec!["star-full"; usize::from(self.full)];
        if self.half {
            classes.push("star-half");
        }
        classes.extend(std::iter::repeat_n("star-empty", usize::from(self.empty)));
        classes
    }

    /// What a screen reader says, e.g. "4.5 out of 5 stars".
    pub fn label(self) -> String {
        let half = if self.half { ".5" } else { "" };
        format!("{}{half} out of 5 stars", self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_clamps_and_links_neighbours() {
        let p = Pager::new(1, 45, 20);
        assert_eq!((p.page, p.pages, p.prev, p.next), (1, 3, None, Some(2)));
        let p = Pager::new(9, 45, 20);
        assert_eq!((p.page, p.prev, p.next), (3, Some(2), None));
        let p = Pager::new(1, 0, 20);
        assert_eq!((p.page, p.pages), (1, 0));
    }

    #[test]
    fn page_positions_come_from_cursors_then_numbers() {
        for (query, at) in [
            (None, PageAt::First),
            (Some("after=41&page=3"), PageAt::After(41)),
            (Some("before=7&page=2"), PageAt::Before(7)),
            (Some("page=last"), PageAt::Last),
            (Some("page=5"), PageAt::Number(5)),
            (Some("page=1"), PageAt::First),
            (Some("after=-3"), PageAt::First),
            (Some("after=x&page=2"), PageAt::Number(2)),
            (Some("page=%zz"), PageAt::First),
        ] {
            assert_eq!(requested_position(query), at, "{query:?}");
        }
    }

    #[test]
    fn pager_links_go_by_keyset_and_page_one_is_the_plain_path() {
        let p = Pager::new(2, 45, 20).linked("/", 20, Some(21), Some(40));
        assert_eq!(p.prev_href.as_deref(), Some("/"));
        assert_eq!(p.next_href.as_deref(), Some("/?after=40&page=3"));
        assert_eq!(p.last_href, "/?page=last");
        let p = Pager::new(3, 100, 20).linked("/7/", 20, Some(60), Some(41));
        assert_eq!(p.prev_href.as_deref(), Some("/7/?before=60&page=2"));
        // A short page has no next link, even if its number (from the URL) is off.
        let p = Pager::new(1, 45, 20).linked("/", 5, Some(1), Some(5));
        assert_eq!(p.next_href, None);
    }

    #[test]
    fn page_query_defaults_to_one() {
        assert_eq!(requested_page(None), 1);
        assert_eq!(requested_page(Some("page=3".into())), 3);
        assert_eq!(requested_page(Some("page=0".into())), 1);
        assert_eq!(requested_page(Some("page=abc".into())), 1);
        assert_eq!(requested_page(Some("page=%FF".into())), 1);
    }

    #[test]
    fn stars_round_to_the_nearest_half() {
        assert_eq!(
            Stars::from_tenths(43),
            Stars {
                full: 4,
                half: true,
                empty: 0
            }
        );
        assert_eq!(
            Stars::from_tenths(42),
            Stars {
                full: 4,
                half: false,
                empty: 1
            }
        );
        assert_eq!(
            Stars::from_rating(1),
            Stars {
                full: 1,
                half: false,
                empty: 4
            }
        );
    }
}
