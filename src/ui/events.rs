//! `GET /ui/events`: server-sent events telling open pages that HostDB changed.
//!
//! Each event is `event: change` with the new global index as data. The UI's notifier polls
//! the store's index ([`super::POLL_EVERY`]), so writes from anywhere (this server's API, the
//! CLI, another replica on the same database) reach every page. A stream lasts at most
//! [`STREAM_FOR`] and ends at shutdown; the browser's `EventSource` then reconnects by
//! itself, and the first event after a reconnect says whether it missed a change.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::session::signed;
use super::Ui;

/// The longest one stream is held.
pub const STREAM_FOR: Duration = Duration::from_secs(300);
/// How long the browser waits before reconnecting.
const RETRY: Duration = Duration::from_secs(1);

/// `GET /ui/events`: the change stream (401 without a session: an `EventSource` cannot follow
/// a redirect to a form).
pub async fn stream(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    if signed(&ui, &headers).await.is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    }
    // The index the page was drawn at, when the browser reconnects.
    let last: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let rx = ui.notifier.subscribe();
    let closing = ui.closing.subscribe();
    let deadline = tokio::time::Instant::now() + STREAM_FOR;
    let start = (rx, closing, last, true);
    let events = stream::unfold(
        start,
        move |(mut rx, mut closing, seen, at_start)| async move {
            if *closing.borrow() {
                return None;
            }
            if at_start {
                // Say where the stream starts, so a reconnecting page catches what it missed.
                let index = rx.borrow_and_update().index;
                let ev = Event::default()
                    .event(if seen.is_some_and(|s| s != index) {
                        "change"
                    } else {
                        "hello"
                    })
                    .id(index.to_string())
                    .data(index.to_string())
                    .retry(RETRY);
                return Some((
                    Ok::<Event, Infallible>(ev),
                    (rx, closing, Some(index), false),
                ));
            }
            loop {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        let tick = rx.borrow_and_update().clone();
                        if tick.closing {
                            return None;
                        }
                        if Some(tick.index) != seen {
                            let ev = Event::default()
                                .event("change")
                                .id(tick.index.to_string())
                                .data(tick.index.to_string());
                            return Some((Ok(ev), (rx, closing, Some(tick.index), false)));
                        }
                    }
                    _ = closing.changed() => return None,
                    () = tokio::time::sleep_until(deadline) => return None,
                }
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
