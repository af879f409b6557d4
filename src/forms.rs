//! The two forms as people type them: their field names (shared by the readers, the flows and
//! the templates), what was typed (kept to show a refused form again), and the messages for
//! the fields that failed validation.

use std::collections::BTreeMap;
use std::collections::HashMap;

use crate::domain::{
    Description, FieldError, NewRestaurant, NewReview, Rating, RestaurantName, ReviewText,
    StreetAddress, UserName,
};

/// The forms' field names, as the sample names them (its templates and tutorial use them).
pub mod field {
    pub const RESTAURANT_NAME: &str = "restaurant_name";
    pub const STREET_ADDRESS: &str = "street_address";
    pub const DESCRIPTION: &str = "description";
    pub const USER_NAME: &str = "user_name";
    pub const RATING: &str = "rating";
    pub const REVIEW_TEXT: &str = "review_text";
    /// The review's photo (a file part of the multipart form).
    pub const REVIEW_IMAGE: &str = "reviewImage";
    /// Where a problem with the form as a whole is shown.
    pub const FORM: &str = "form";
    /// The restaurant form's "add it anyway" box, shown only when the restaurant looks like
    /// one already listed.
    pub const CONFIRM_DUPLICATE: &str = "confirm_duplicate";

    /// Every field a message can be shown next to.
    pub const ALL: [&str; 7] = [
        RESTAURANT_NAME,
        STREET_ADDRESS,
        DESCRIPTION,
        USER_NAME,
        RATING,
        REVIEW_TEXT,
        REVIEW_IMAGE,
    ];

    /// The field a problem belongs next to: the named field if the form has it, else the form.
    pub fn shown_at(name: &str) -> &'static str {
        ALL.into_iter().find(|f| *f == name).unwrap_or(FORM)
    }
}

/// Messages for the fields that failed validation, keyed by field name.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    pub fn one(field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.insert(field, message);
        errors
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each field's message, by field name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0
            .iter()
            .map(|(field, message)| (*field, message.as_str()))
    }

    pub fn insert(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.insert(field, message.into());
    }

    fn check<T>(&mut self, field: &'static str, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.insert(field, e.0)).ok()
    }
}

/// The add-restaurant form as typed, kept to show it again when it is refused.
#[derive(Debug, Default, Clone)]
pub struct RestaurantInput {
    pub restaurant_name: String,
    pub street_address: String,
    pub description: String,
}

impl RestaurantInput {
    pub fn from_fields(fields: &mut HashMap<String, String>) -> Self {
        let mut take = |name: &str| fields.remove(name).unwrap_or_default();
        Self {
            restaurant_name: take(field::RESTAURANT_NAME),
            street_address: take(field::STREET_ADDRESS),
            description: take(field::DESCRIPTION),
        }
    }

    pub fn validate(&self) -> Result<NewRestaurant, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = errors.check(
            field::RESTAURANT_NAME,
            RestaurantName::parse(&self.restaurant_name),
        );
        let street = errors.check(
            field::STREET_ADDRESS,
            StreetAddress::parse(&self.street_address),
        );
        let description = errors.check(field::DESCRIPTION, Description::parse(&self.description));
        match (name, street, description) {
            (Some(name), Some(street_address), Some(description)) => Ok(NewRestaurant {
                name,
                street_address,
                description,
            }),
            _ => Err(errors),
        }
    }
}

/// The review form as typed (the photo is never echoed back).
#[derive(Debug, Default, Clone)]
pub struct ReviewInput {
    pub user_name: String,
    pub rating: String,
    pub review_text: String,
}

impl ReviewInput {
    pub fn from_fields(fields: &HashMap<String, String>) -> Self {
        let take = |name: &str| fields.get(name).cloned().unwrap_or_default();
        Self {
            user_name: take(field::USER_NAME),
            rating: take(field::RATING),
            review_text: take(field::REVIEW_TEXT),
        }
    }

    pub fn validate(&self) -> Result<NewReview, FieldErrors> {
        let mut errors = FieldErrors::default();
        let user_name = errors.check(field::USER_NAME, UserName::parse(&self.user_name));
        let rating = errors.check(field::RATING, Rating::parse(&self.rating));
        let review_text = errors.check(field::REVIEW_TEXT, ReviewText::parse(&self.review_text));
        match (user_name, rating, review_text) {
            (Some(user_name), Some(rating), Some(review_text)) => Ok(NewReview {
                user_name,
                rating,
                review_text,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restaurant_validation_reports_every_bad_field() {
        let input = RestaurantInput {
            restaurant_name: String::new(),
            street_address: "x".repeat(51),
            description: "Nice".into(),
        };
        let errors = input.validate().unwrap_err();
        assert!(errors.get("restaurant_name").is_some());
        assert!(errors.get("street_address").is_some());
        assert!(errors.get("description").is_none());
    }

    #[test]
    fn problems_with_unknown_fields_are_shown_at_the_form() {
        assert_eq!(field::shown_at("rating"), field::RATING);
        assert_eq!(field::shown_at("csrfmiddlewaretoken"), field::FORM);
    }
}
