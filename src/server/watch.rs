//! Blocking queries (Consul's model): a request with `?index=N&wait=D` is held until what it
//! covers changes past index N, or D passes.
//!
//! Every write through this server publishes a [`Tick`] on a `tokio::sync::watch` channel,
//! naming the objects it changed, so thousands of held requests wake together and most decide
//! without touching the store. A poller also publishes ticks for writes made by other
//! processes sharing the database (those carry no object list, so watchers re-check).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::hostdb::store::Store;

/// The latest index and what changed since the one before it.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    pub index: u64,
    /// The index this tick follows.
    pub prev: u64,
    /// Objects written in `(prev, index]`; `None` when unknown.
    pub objects: Option<Arc<BTreeSet<String>>>,
    /// The server is shutting down: answer every held query.
    pub closing: bool,
}

/// Publishes ticks.
#[derive(Clone)]
pub struct Notifier {
    tx: Arc<watch::Sender<Tick>>,
}

impl Notifier {
    pub fn new(index: u64) -> Notifier {
        let (tx, _) = watch::channel(Tick {
            index,
            prev: index,
            objects: None,
            closing: false,
        });
        Notifier { tx: Arc::new(tx) }
    }

    pub fn subscribe(&self) -> watch::Receiver<Tick> {
        self.tx.subscribe()
    }

    /// The latest published index.
    pub fn index(&self) -> u64 {
        self.tx.borrow().index
    }

    /// Publish `index`, reached by writing `objects` (or unknown objects).
    pub fn publish(&self, index: u64, objects: Option<BTreeSet<String>>) {
        self.tx.send_if_modified(|t| {
            if index <= t.index {
                return false;
            }
            let objects = match objects {
                // Only exact when nothing else happened in between.
                Some(o) if index == t.index + 1 => Some(Arc::new(o)),
                _ => None,
            };
            *t = Tick {
                index,
                prev: t.index,
                objects,
                closing: t.closing,
            };
            true
        });
    }

    /// Answer every held query (shutdown).
    pub fn close(&self) {
        self.tx.send_modify(|t| t.closing = true);
    }

    /// Poll the store for writes made by other processes, until the notifier is dropped.
    pub fn spawn_poller(&self, store: Arc<dyn Store>, every: Duration) {
        let weak = Arc::downgrade(&self.tx);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(tx) = weak.upgrade() else { return };
                let store = store.clone();
                if let Ok(Ok(i)) = tokio::task::spawn_blocking(move || store.index()).await {
                    Notifier { tx }.publish(i, None);
                }
            }
        });
    }
}

/// What a held request waits for.
pub enum Covers<'a> {
    /// Any write (listings).
    Anything,
    /// A write to this object (a get).
    Object(&'a str),
}

/// Hold until what `covers` describes changed after `index`, or `wait` passes. `changed`
/// answers from the store whether the object changed after an index, for ticks that do not
/// say which objects they wrote.
pub async fn wait<F, Fut>(
    notifier: &Notifier,
    index: u64,
    wait: Duration,
    covers: Covers<'_>,
    changed: F,
) where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + wait;
    let mut rx = notifier.subscribe();
    let mut seen = index;
    loop {
        let tick = rx.borrow_and_update().clone();
        if tick.closing {
            return;
        }
        if tick.index > seen {
            let hit = match &covers {
                Covers::Anything => true,
                Covers::Object(name) => match &tick.objects {
                    Some(objs) if tick.prev <= seen => objs.contains(*name),
                    _ => changed(index).await,
                },
            };
            if hit {
                return;
            }
            seen = tick.index;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            // The wait ended, or the server is shutting down.
            Ok(Err(_)) | Err(_) => return,
        }
    }
}
