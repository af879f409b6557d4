//! The API's JSON shapes. Inputs carry the forms' field names and go through the forms' own
//! validation (`forms::RestaurantInput`, `forms::ReviewInput`): one set of rules, not two.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::db::{Restaurant, Review};
use crate::forms::{RestaurantInput, ReviewInput};
use crate::web::view::PhotoLinks;

pub const V1: &str = "/api/v1";

pub fn restaurant_href(id: i64) -> String {
    format!("{V1}/restaurants/{id}")
}

/// A restaurant with its running totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestaurantOut {
    #[schema(minimum = 1)]
    pub id: i64,
    pub name: String,
    pub street_address: String,
    pub description: String,
    #[schema(minimum = 0)]
    pub review_count: i64,
    /// The average rating to one decimal; `null` before the first review.
    #[schema(minimum = 1, maximum = 5)]
    pub average_rating: Option<f64>,
    pub links: RestaurantLinks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RestaurantLinks {
    /// This resource.
    #[serde(rename = "self")]
    #[schema(rename = "self")]
    pub this: String,
    /// Its reviews, newest first.
    pub reviews: String,
    /// Its page on the site.
    pub html: String,
}

impl From<Restaurant> for RestaurantOut {
    fn from(r: Restaurant) -> Self {
        let id = r.id.get();
        Self {
            id,
            average_rating: r.ratings.average_tenths().map(|t| t as f64 / 10.0),
            review_count: r.ratings.review_count,
            name: r.name,
            street_address: r.street_address,
            description: r.description,
            links: RestaurantLinks {
                this: restaurant_href(id),
                reviews: format!("{}/reviews", restaurant_href(id)),
                html: format!("/{id}/"),
            },
        }
    }
}

/// Where a list goes on: `next` is absent on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageLinks {
    #[serde(rename = "self")]
    #[schema(rename = "self")]
    pub this: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A page of restaurants and how many the search finds in all.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestaurantPage {
    pub items: Vec<RestaurantOut>,
    #[schema(minimum = 0)]
    pub total: i64,
    pub links: PageLinks,
}

/// A review. `photo` links its renditions the way the pages do (`PHOTO_URL_MODE`: a
/// short-lived SAS URL, the public blob URL, or the app's `/photos/` proxy).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewOut {
    #[schema(minimum = 1)]
    pub id: i64,
    pub user_name: String,
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    pub review_text: String,
    /// When it was posted (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub review_date: String,
    pub photo: Option<PhotoOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoOut {
    /// The display rendition (at most 1600 px on its long edge).
    pub display: String,
    /// The thumbnail (320 px).
    pub thumbnail: String,
}

impl ReviewOut {
    pub fn new(review: Review, links: Option<PhotoLinks>) -> Self {
        Self {
            id: review.id,
            user_name: review.user_name,
            rating: review.rating,
            review_text: review.review_text,
            review_date: review.review_date.format(&Rfc3339).unwrap_or_default(),
            photo: links.map(|l| PhotoOut {
                display: l.full_url,
                thumbnail: l.thumbnail_url,
            }),
        }
    }
}

/// A page of a restaurant's reviews, newest first; `total` is its review count.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewPage {
    /// The restaurant the reviews are about.
    pub restaurant: String,
    pub items: Vec<ReviewOut>,
    #[schema(minimum = 0)]
    pub total: i64,
    pub links: PageLinks,
}

/// A new restaurant, with the form's field names and limits.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewRestaurantIn {
    #[serde(default)]
    #[schema(required = true, min_length = 1, max_length = 50)]
    pub restaurant_name: String,
    #[serde(default)]
    #[schema(max_length = 50)]
    pub street_address: String,
    #[serde(default)]
    #[schema(required = true, min_length = 1, max_length = 250)]
    pub description: String,
    /// `true` adds it even when a restaurant with the same name and address is listed (which
    /// is otherwise a 409 naming it).
    #[serde(default)]
    pub confirm_duplicate: bool,
}

impl NewRestaurantIn {
    pub fn into_input(self) -> (RestaurantInput, bool) {
        let input = RestaurantInput {
            restaurant_name: self.restaurant_name,
            street_address: self.street_address,
            description: self.description,
        };
        (input, self.confirm_duplicate)
    }
}

/// A new review without a photo, as JSON.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewReviewIn {
    #[serde(default)]
    #[schema(required = true, min_length = 1, max_length = 20)]
    pub user_name: String,
    #[serde(default)]
    #[schema(required = true, minimum = 1, maximum = 5)]
    pub rating: i64,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub review_text: String,
}

impl From<NewReviewIn> for ReviewInput {
    fn from(review: NewReviewIn) -> Self {
        Self {
            user_name: review.user_name,
            // Absent (0) is "required" to the form's rule, like an empty field.
            rating: match review.rating {
                0 => String::new(),
                n => n.to_string(),
            },
            review_text: review.review_text,
        }
    }
}

/// A new review with a photo, as `multipart/form-data`: the site's review form without its
/// CSRF token (the API takes no cookies).
#[derive(Debug, ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct NewReviewMultipart {
    #[schema(min_length = 1, max_length = 20)]
    pub user_name: String,
    /// 1 to 5.
    #[schema(pattern = "^[1-5]$")]
    pub rating: String,
    #[schema(max_length = 500)]
    pub review_text: Option<String>,
    /// A JPEG, PNG or WebP photo (`MAX_UPLOAD_BYTES`, 8 MiB by default).
    #[schema(value_type = Option<String>, format = Binary, content_media_type = "application/octet-stream")]
    pub reviewImage: Option<Vec<u8>>,
}
