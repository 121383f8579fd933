//! Page-number pagination in the style of Django REST Framework:
//! `?page=2&page_size=50` → `{"count", "next", "previous", "results"}`.

use axum::http::Uri;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use attendansee_store::{Page, Paged};

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
/// The document calls `page` an int32, so a larger number is refused rather than read as a u32.
pub const MAX_PAGE: u32 = i32::MAX as u32;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Items per page, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub page_size: Option<u32>,
}

impl PageParams {
    pub fn page(&self) -> ApiResult<Page> {
        let number = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if number == 0 {
            return Err(ApiError::invalid_field("page", "page numbers start at 1"));
        }
        if number > MAX_PAGE {
            return Err(ApiError::invalid_field(
                "page",
                format!("page must be at most {MAX_PAGE}"),
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::invalid_field(
                "page_size",
                format!("page_size must be 1 to {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Page { number, size })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PagedResponse<T> {
    /// Items across all pages.
    pub count: i64,
    /// Link to the next page (path and query), or null on the last page.
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> PagedResponse<T> {
    /// Converts a store page into the response, with links that keep the request's other filters.
    pub fn new<R>(uri: &Uri, page: Page, paged: Paged<R>, convert: impl Fn(R) -> T) -> Self {
        let pages = (paged.total + i64::from(page.size) - 1) / i64::from(page.size);
        let link = |number: u32| link_to_page(uri, number, page.size);
        Self {
            count: paged.total,
            next: (i64::from(page.number) < pages).then(|| link(page.number + 1)),
            previous: (page.number > 1).then(|| link((page.number - 1).min(pages.max(1) as u32))),
            results: paged.items.into_iter().map(convert).collect(),
        }
    }
}

fn link_to_page(uri: &Uri, number: u32, size: u32) -> String {
    let mut query: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            !pair.is_empty() && !pair.starts_with("page=") && !pair.starts_with("page_size=")
        })
        .collect();
    let paging = format!("page={number}&page_size={size}");
    query.push(&paging);
    format!("{}?{}", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paged(total: i64) -> Paged<i64> {
        Paged {
            total,
            items: vec![],
        }
    }

    #[test]
    fn links_keep_filters_and_stop_at_the_ends() {
        let uri: Uri = "/api/x/?course=3&page=2&page_size=10".parse().unwrap();
        let page = Page {
            number: 2,
            size: 10,
        };
        let r = PagedResponse::new(&uri, page, paged(25), |i| i);
        assert_eq!(
            r.next.as_deref(),
            Some("/api/x/?course=3&page=3&page_size=10")
        );
        assert_eq!(
            r.previous.as_deref(),
            Some("/api/x/?course=3&page=1&page_size=10")
        );
        let last = PagedResponse::new(
            &uri,
            Page {
                number: 3,
                size: 10,
            },
            paged(25),
            |i| i,
        );
        assert_eq!(last.next, None);
        let first = PagedResponse::new(
            &uri,
            Page {
                number: 1,
                size: 10,
            },
            paged(25),
            |i| i,
        );
        assert_eq!(first.previous, None);
    }

    #[test]
    fn page_params_are_validated() {
        assert!(
            PageParams {
                page: Some(0),
                page_size: None
            }
            .page()
            .is_err()
        );
        assert!(
            PageParams {
                page: None,
                page_size: Some(0)
            }
            .page()
            .is_err()
        );
        assert!(
            PageParams {
                page: None,
                page_size: Some(501)
            }
            .page()
            .is_err()
        );
        assert_eq!(
            PageParams::default().page().unwrap(),
            Page {
                number: 1,
                size: 50
            }
        );
    }
}
