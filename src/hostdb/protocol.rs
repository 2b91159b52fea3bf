//! Names the HostDB HTTP API and its client share: headers and page limits.

/// The header carrying the index a response was read at.
pub const INDEX_HEADER: &str = "x-hostdb-index";

/// Who a write is recorded for, and why (optional; the token's name is always recorded too).
pub const ACTOR_HEADER: &str = "x-hostdb-actor";

pub const MESSAGE_HEADER: &str = "x-hostdb-message";

/// The cursor of the next page of a paged array answer (`/v1/history`, `/v1/tags`,
/// `/v1/sd/prometheus`); absent on the last page. Pass it back as `after`.
pub const NEXT_HEADER: &str = "x-hostdb-next";

/// Default and largest page of a host listing.
pub const DEFAULT_LIMIT: usize = 1000;

pub const MAX_LIMIT: usize = 10_000;
