//! Axum's extractors, with their rejections turned into [`ApiError`]s so that malformed JSON,
//! a wrong content type, an oversized body or a bad id all answer with the JSON error body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// A JSON request body, which must be an object. serde would also fill a struct from an array
/// of its fields in order (`[null, null]` as a PATCH that changes nothing), which no client
/// means and the OpenAPI document does not allow.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // axum checks the content type and the size, and reports malformed JSON.
        let axum::Json(value) =
            axum::Json::<serde_json::Value>::from_request(request, state).await?;
        if !value.is_object() {
            return Err(ApiError::validation("The body must be a JSON object"));
        }
        // Deserialising from the text again (≤ the JSON body limit) keeps axum's messages, which
        // name the field at fault (`held_at: premature end of input`).
        let text = value.to_string();
        let axum::Json(body) = axum::Json::<T>::from_bytes(text.as_bytes())?;
        Ok(Self(body))
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Deserialises a nested object of the body, refusing the array form serde would also take.
pub fn object<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: DeserializeOwned,
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let value: Option<serde_json::Map<String, serde_json::Value>> =
        serde::Deserialize::deserialize(deserializer)?;
    value
        .map(|map| serde_json::from_value(serde_json::Value::Object(map)).map_err(D::Error::custom))
        .transpose()
}

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`) or a value, so that
/// PATCH can tell "leave it" from "clear it".
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// The value a full replacement (PUT) must carry.
pub fn required<T>(field: &str, value: Option<T>) -> ApiResult<T> {
    value.ok_or_else(|| {
        ApiError::invalid_field(
            field,
            format!("{field} is required (use PATCH to change only some fields)"),
        )
    })
}
