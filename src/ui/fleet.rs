//! The fleet page: every host, filtered by tag, class, owner, machine, kind and state and
//! searched by name, one page at a time.
//!
//! Tag, class, owner, machine and kind are store filters (indexed columns; a page is one
//! `ORDER BY name LIMIT` query, however large the fleet). State and the name search are not
//! columns, so they are applied to pages read in name order, and a request reads at most
//! [`SCAN_BUDGET`] hosts: when it runs out before a page is full, the page says how far it
//! searched and links on from there. Pages follow each other by name (`after`), never by
//! offset, so page 1,000 costs what page 1 does.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use minijinja::context;
use serde::Serialize;

use super::authz::{allowed, Action};
use super::pages::{blocking, forbidden, store_error};
use super::session::{require, Form};
use super::Ui;
use crate::hostdb::model::{Host, HostQuery, Kind};
use crate::hostdb::{Store, StoreError};

/// Hosts on one page.
pub const PAGE_SIZE: usize = 50;
/// Most hosts one request reads when state or name filters the pages.
pub const SCAN_BUDGET: usize = 20_000;
/// Hosts read per store call while scanning.
const BATCH: usize = 1000;

/// The fleet page's query string.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filter {
    pub tag: String,
    pub class: String,
    pub owner: String,
    pub machine: String,
    pub kind: String,
    pub state: String,
    /// Part of the name, any case.
    pub q: String,
    /// Only names after this one (the next page).
    pub after: String,
}

impl Filter {
    /// The filter a query string asks for (unknown fields ignored).
    pub fn from_query(query: Option<&str>) -> Filter {
        let form = Form::parse(query.unwrap_or("").as_bytes());
        let get = |k: &str| form.get(k).unwrap_or("").to_string();
        Filter {
            tag: get("tag"),
            class: get("class"),
            owner: get("owner"),
            machine: get("machine"),
            kind: get("kind"),
            state: get("state"),
            q: get("q"),
            after: get("after"),
        }
    }
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl Filter {
    /// The store query of the indexed filters.
    fn store_query(&self) -> HostQuery {
        HostQuery {
            tags: some(&self.tag).into_iter().collect(),
            class: some(&self.class),
            owner: some(&self.owner),
            machine: some(&self.machine),
            kind: Kind::parse(self.kind.trim()),
            after: some(&self.after),
            ..HostQuery::default()
        }
    }

    /// The filters applied to what the store returns.
    fn matches(&self, host: &Host) -> bool {
        let state_ok = match self.state.trim() {
            "" => true,
            "none" => host.state.is_none(),
            s => host.state.is_some_and(|st| st.as_str() == s),
        };
        let q = self.q.trim().to_lowercase();
        state_ok && (q.is_empty() || host.name.to_lowercase().contains(&q))
    }

    fn scans(&self) -> bool {
        !self.state.trim().is_empty() || !self.q.trim().is_empty()
    }

    /// This filter's query string with `after` replaced.
    pub fn with_after(&self, after: Option<&str>) -> String {
        let mut f = self.clone();
        f.after = after.unwrap_or("").to_string();
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("tag", &f.tag),
            ("class", &f.class),
            ("owner", &f.owner),
            ("machine", &f.machine),
            ("kind", &f.kind),
            ("state", &f.state),
            ("q", &f.q),
            ("after", &f.after),
        ] {
            if !v.trim().is_empty() {
                out.append_pair(k, v.trim());
            }
        }
        out.finish()
    }
}

/// One page of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetPage {
    pub hosts: Vec<Host>,
    /// Where the next page starts, if there may be more.
    pub next: Option<String>,
    /// Hosts read to fill this page.
    pub scanned: usize,
    /// The scan budget ran out before the page was full: `next` continues the search.
    pub partial: bool,
}

/// The page of hosts `filter` selects, reading at most `budget` hosts.
pub fn fleet_page(
    store: &dyn Store,
    filter: &Filter,
    page_size: usize,
    budget: usize,
) -> Result<FleetPage, StoreError> {
    let mut q = filter.store_query();
    if !filter.scans() {
        q.limit = Some(page_size);
        let page = store.list_hosts(&q)?;
        let scanned = page.items.len();
        return Ok(FleetPage {
            hosts: page.items,
            next: page.next,
            scanned,
            partial: false,
        });
    }
    let mut hosts = Vec::new();
    let mut scanned = 0;
    loop {
        q.limit = Some(BATCH.min(budget - scanned).max(1));
        let page = store.list_hosts(&q)?;
        for h in page.items {
            scanned += 1;
            let name = h.name.clone();
            if filter.matches(&h) {
                hosts.push(h);
                if hosts.len() == page_size {
                    return Ok(FleetPage {
                        hosts,
                        next: Some(name),
                        scanned,
                        partial: false,
                    });
                }
            }
            q.after = Some(name);
        }
        match page.next {
            None => {
                return Ok(FleetPage {
                    hosts,
                    next: None,
                    scanned,
                    partial: false,
                });
            }
            Some(_) if scanned >= budget => {
                let next = q.after.clone();
                return Ok(FleetPage {
                    hosts,
                    next,
                    scanned,
                    partial: true,
                });
            }
            Some(_) => {}
        }
    }
}

/// `GET /ui/fleet`.
pub async fn page(State(ui): State<Arc<Ui>>, headers: HeaderMap, uri: Uri) -> Response {
    let filter = Filter::from_query(uri.query());
    let who = match require(&ui, &headers, &uri).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    if !allowed(who.role, Action::ReadFleet) {
        return forbidden(&ui, &who);
    }
    let store = ui.store.clone();
    let f = filter.clone();
    let result = blocking(move || {
        let page = fleet_page(store.as_ref(), &f, PAGE_SIZE, SCAN_BUDGET)?;
        let tags: Vec<String> = store.list_tags()?.into_iter().map(|t| t.name).collect();
        Ok((page, tags))
    })
    .await;
    let (page, tags) = match result {
        Ok(x) => x,
        Err(e) => return store_error(&ui, e, &who),
    };
    let next = page.next.as_deref().map(|n| filter.with_after(Some(n)));
    let first = (!filter.after.is_empty()).then(|| filter.with_after(None));
    let states = ["creating", "running", "failed", "deleting", "none"];
    ui.page(
        StatusCode::OK,
        "fleet.html",
        context! {
            title => "Fleet", me => who, nav => "fleet", filter, page, next, first, tags, states,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostdb::{Actor, Expect, State as HostState, Write};

    fn store(n: usize) -> (tempfile::TempDir, Box<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::hostdb::sqlite::open(&dir.path().join("h.db")).unwrap();
        let writes = (0..n)
            .map(|i| {
                let mut h = Host::container(&format!("h{i:03}.example"));
                h.state = Some(if i % 3 == 0 {
                    HostState::Running
                } else {
                    HostState::Creating
                });
                h.class = Some(if i % 2 == 0 { "web" } else { "db" }.to_string());
                Write::PutHost {
                    host: h,
                    expect: Expect::Absent,
                }
            })
            .collect();
        store.write(writes, &Actor::new("test")).unwrap();
        (dir, Box::new(store))
    }

    fn names(p: &FleetPage) -> Vec<&str> {
        p.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn pages_follow_by_name() {
        let (_d, s) = store(7);
        let f = Filter {
            class: "web".into(),
            ..Filter::default()
        };
        let p = fleet_page(s.as_ref(), &f, 2, 100).unwrap();
        assert_eq!(names(&p), ["h000.example", "h002.example"]);
        let f2 = Filter {
            after: p.next.clone().unwrap(),
            ..f
        };
        let p2 = fleet_page(s.as_ref(), &f2, 2, 100).unwrap();
        assert_eq!(names(&p2), ["h004.example", "h006.example"]);
    }

    #[test]
    fn state_and_name_filter_the_scan_within_the_budget() {
        let (_d, s) = store(30);
        let f = Filter {
            state: "running".into(),
            q: "H01".into(),
            ..Filter::default()
        };
        let p = fleet_page(s.as_ref(), &f, 10, 1000).unwrap();
        assert_eq!(names(&p), ["h012.example", "h015.example", "h018.example"]);
        assert_eq!(p.next, None);
        // A budget of 5 reads h000..h004 and says where to go on.
        let p = fleet_page(s.as_ref(), &f, 10, 5).unwrap();
        assert!(p.partial);
        assert_eq!(p.scanned, 5);
        assert_eq!(p.next.as_deref(), Some("h004.example"));
    }

    #[test]
    fn query_string_keeps_the_filters() {
        let f = Filter {
            tag: "web".into(),
            q: "a b".into(),
            ..Filter::default()
        };
        assert_eq!(f.with_after(Some("x")), "tag=web&q=a+b&after=x");
        assert_eq!(f.with_after(None), "tag=web&q=a+b");
    }
}
