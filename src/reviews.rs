//! Posting a review, the one path from a submitted form to a stored review: validate, process
//! the photo, store the photo, insert the row, and delete the photo again if the row cannot be
//! written. The outcome is the new review's id or a [`Refusal`]: why, and the form to show
//! again with what was typed. Nothing is half-saved.

use bytes::Bytes;

use crate::db::Database;
use crate::domain::RestaurantId;
use crate::error_chain;
use crate::forms::{FieldErrors, ReviewInput, field};
use crate::photos::{ImageWorkers, PhotoError, PhotoLimits, PhotoStore};

/// A review form as read from the request, before validation.
#[derive(Debug, Default)]
pub struct Submission {
    pub input: ReviewInput,
    /// The uploaded file's bytes, when a file was chosen.
    pub photo: Option<Bytes>,
}

const NOT_SAVED_NOW: &str =
    "Your review could not be saved just now. Please try again in a minute.";

/// Why a review was not saved; the web layer maps each kind to its status once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request could not be read as the form (400).
    Malformed,
    /// A field or the photo is invalid (422).
    Invalid,
    /// The photo is over the size limit (413).
    TooLarge,
    /// Storage or the database failed; try again (503).
    Unavailable,
    /// The client posts too often (429); nothing was tried.
    TooMany,
}

/// The review form's state when the page is shown again after a refused submission.
#[derive(Debug, Default, Clone)]
pub struct ReviewFormState {
    pub input: ReviewInput,
    pub errors: FieldErrors,
    pub message: Option<String>,
}

#[derive(Debug)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub form: ReviewFormState,
}

impl Refusal {
    pub fn new(
        kind: RefusalKind,
        input: ReviewInput,
        errors: FieldErrors,
        photo_was_sent: bool,
    ) -> Self {
        let mut message = match kind {
            RefusalKind::Unavailable | RefusalKind::TooMany => "Review not added.",
            _ => "Review not added. Please correct the fields marked below.",
        }
        .to_owned();
        if photo_was_sent && errors.get(field::REVIEW_IMAGE).is_none() {
            message.push_str(" Choose your photo again before saving.");
        }
        Self {
            kind,
            form: ReviewFormState {
                input,
                errors,
                message: Some(message),
            },
        }
    }

    /// The photo is over the limit, found from its declared size or while it streamed.
    pub fn too_large(input: ReviewInput, max_bytes: u64) -> Self {
        let message = PhotoError::TooLarge { max_bytes }.to_string();
        let errors = FieldErrors::one(field::REVIEW_IMAGE, message);
        Self::new(RefusalKind::TooLarge, input, errors, false)
    }

    /// The request is not the form (the message says how), shown next to `at`.
    pub fn malformed(at: &'static str, message: impl Into<String>) -> Self {
        let errors = FieldErrors::one(at, message);
        Self::new(
            RefusalKind::Malformed,
            ReviewInput::default(),
            errors,
            false,
        )
    }

    /// The database is down: nothing was tried, the form comes back as typed.
    pub fn not_saved_now(input: ReviewInput, photo_was_sent: bool) -> Self {
        Self::unavailable(input, field::FORM, NOT_SAVED_NOW, photo_was_sent)
    }

    /// The client is over the post rate limit: nothing was tried, the form comes back as typed
    /// with `message` (which says how long to wait).
    pub fn too_many(input: ReviewInput, message: String, photo_was_sent: bool) -> Self {
        let errors = FieldErrors::one(field::FORM, message);
        Self::new(RefusalKind::TooMany, input, errors, photo_was_sent)
    }

    /// Nothing was saved because a service failed; `at` is the field the message belongs to.
    fn unavailable(
        input: ReviewInput,
        at: &'static str,
        message: &str,
        photo_was_sent: bool,
    ) -> Self {
        let errors = FieldErrors::one(at, message);
        Self::new(RefusalKind::Unavailable, input, errors, photo_was_sent)
    }
}

/// What posting a review needs: the database, the photo store and the image workers.
#[derive(Clone)]
pub struct Reviews {
    pub db: Database,
    pub photos: PhotoStore,
    pub workers: ImageWorkers,
    pub limits: PhotoLimits,
}

impl Reviews {
    /// Saves the review (and its photo), or says why not. The restaurant is known to exist.
    pub async fn post(
        &self,
        restaurant: RestaurantId,
        submission: Submission,
    ) -> Result<i64, Refusal> {
        let Submission { input, photo } = submission;
        let photo_was_sent = photo.is_some();
        let review = input.validate().map_err(|errors| {
            Refusal::new(RefusalKind::Invalid, input.clone(), errors, photo_was_sent)
        })?;

        let photo = match photo {
            None => None,
            Some(bytes) => match self.workers.process(bytes, self.limits.clone()).await {
                Ok(photo) => Some(photo),
                Err(error) => {
                    let kind = match error {
                        PhotoError::TooLarge { .. } => RefusalKind::TooLarge,
                        PhotoError::Busy | PhotoError::Internal => RefusalKind::Unavailable,
                        _ => RefusalKind::Invalid,
                    };
                    let errors = FieldErrors::one(field::REVIEW_IMAGE, error.to_string());
                    return Err(Refusal::new(kind, input, errors, true));
                }
            },
        };

        // Photo first, then the row; if the row cannot be written the photo is removed again, so
        // neither an orphan photo nor a review pointing at a missing one is left behind.
        if let Some(photo) = &photo
            && let Err(error) = self.photos.save(photo).await
        {
            // exception.*: OpenTelemetry's names, so telemetry shows it as an exception.
            tracing::error!(exception.type = "StoreError", exception.message = %error_chain(&error), "storing a photo failed; the review was not saved");
            return Err(Refusal::unavailable(
                input,
                field::REVIEW_IMAGE,
                "Your photo could not be stored just now, so the review was not saved. Please try again in a minute.",
                true,
            ));
        }
        let name = photo.as_ref().map(|p| &p.name);
        match self.db.add_review(restaurant, &review, name).await {
            Ok(review_id) => {
                tracing::info!(
                    restaurant = restaurant.get(),
                    review = review_id,
                    with_photo = photo.is_some(),
                    "review added"
                );
                Ok(review_id)
            }
            Err(error) => {
                tracing::error!(exception.type = "DbError", exception.message = %error_chain(&error), "saving a review failed; its photo is removed again");
                if let Some(photo) = &photo {
                    self.photos.remove(&photo.name).await;
                }
                Err(Refusal::unavailable(
                    input,
                    field::FORM,
                    NOT_SAVED_NOW,
                    photo_was_sent,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::config::DatabaseSettings;
    use crate::domain::{Description, NewRestaurant, RestaurantName, StreetAddress};

    /// A small real JPEG, made here so the photo goes through the whole pipeline.
    fn jpeg() -> Bytes {
        let image =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        Bytes::from(out.into_inner())
    }

    async fn rig(dir: &tempfile::TempDir) -> (Reviews, RestaurantId) {
        let settings = DatabaseSettings::Sqlite {
            path: dir.path().join("reviews.sqlite3"),
        };
        let db = Database::connect(&settings, None).await.unwrap();
        let restaurant = db
            .create_restaurant(&NewRestaurant {
                name: RestaurantName::parse("Chez Test").unwrap(),
                street_address: StreetAddress::parse("").unwrap(),
                description: Description::parse("For the flow's tests.").unwrap(),
            })
            .await
            .unwrap();
        let reviews = Reviews {
            db,
            photos: PhotoStore::in_memory(),
            workers: ImageWorkers::new(1, crate::config::DEFAULT_PHOTO_MEMORY_LIMIT),
            limits: PhotoLimits::new(8 << 20),
        };
        (reviews, restaurant)
    }

    fn submission(photo: Option<Bytes>) -> Submission {
        Submission {
            input: ReviewInput {
                user_name: "Ada".into(),
                rating: "4".into(),
                review_text: "Typed before the failure.".into(),
            },
            photo,
        }
    }

    #[tokio::test]
    async fn a_review_with_a_photo_stores_both_renditions_and_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let (reviews, restaurant) = rig(&dir).await;
        reviews
            .post(restaurant, submission(Some(jpeg())))
            .await
            .unwrap();
        assert_eq!(reviews.photos.object_names().await.len(), 2);
    }

    #[tokio::test]
    async fn when_the_row_cannot_be_written_the_photo_is_deleted_and_the_form_comes_back_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (reviews, restaurant) = rig(&dir).await;
        // The database refuses every review from now on, after the photo has been stored.
        reviews
            .db
            .write(&[crate::db::sql::Statement::new(
                "CREATE TRIGGER refuse_reviews BEFORE INSERT ON review \
                 BEGIN SELECT RAISE(ABORT, 'the disk is full'); END",
                &[],
            )])
            .await
            .unwrap();

        let refusal = reviews
            .post(restaurant, submission(Some(jpeg())))
            .await
            .unwrap_err();

        assert_eq!(refusal.kind, RefusalKind::Unavailable);
        assert_eq!(refusal.form.input.user_name, "Ada");
        assert_eq!(refusal.form.input.rating, "4");
        assert_eq!(refusal.form.input.review_text, "Typed before the failure.");
        assert!(
            refusal
                .form
                .errors
                .get(field::FORM)
                .is_some_and(|m| m.contains("could not be saved")),
            "{refusal:?}"
        );
        assert!(
            refusal
                .form
                .message
                .as_deref()
                .is_some_and(|m| m.contains("Choose your photo again")),
            "{refusal:?}"
        );
        assert!(
            reviews.photos.object_names().await.is_empty(),
            "an orphan photo was left"
        );
        let (rows,): (i64,) = reviews
            .db
            .fetch_one("SELECT COUNT(*) FROM review", &[])
            .await
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[tokio::test]
    async fn a_photo_turned_away_for_memory_is_unavailable_with_the_form_kept_and_nothing_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reviews, restaurant) = rig(&dir).await;
        reviews.workers = reviews
            .workers
            .clone()
            .with_memory_wait(std::time::Duration::from_millis(100));
        let _in_flight = reviews.workers.hold_all_memory();

        let refusal = reviews
            .post(restaurant, submission(Some(jpeg())))
            .await
            .unwrap_err();

        assert_eq!(refusal.kind, RefusalKind::Unavailable);
        assert_eq!(refusal.form.input.review_text, "Typed before the failure.");
        assert!(
            refusal
                .form
                .errors
                .get(field::REVIEW_IMAGE)
                .is_some_and(|m| m.contains("try again")),
            "{refusal:?}"
        );
        assert!(reviews.photos.object_names().await.is_empty());
        let (rows,): (i64,) = reviews
            .db
            .fetch_one("SELECT COUNT(*) FROM review", &[])
            .await
            .unwrap();
        assert_eq!(rows, 0);
    }
}
