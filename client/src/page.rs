//! Following a paged list answer: the first request, and the request of
//! the page after each answer until the last.

use confab_proto::client as pb;

/// The first page of a list, at the gateway's default size.
pub(crate) fn first_page() -> pb::PageRequest {
    pb::PageRequest::default()
}

/// The request of the page after `info`, or None after the last one.
pub(crate) fn next(info: Option<pb::PageInfo>) -> Option<pb::PageRequest> {
    info.filter(|i| i.more).map(|i| pb::PageRequest {
        cursor: i.next_cursor,
        limit: 0,
    })
}
