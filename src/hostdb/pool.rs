//! A small bounded pool of database connections, shared by the SQL backends.
//!
//! Bounded because the HTTP server runs store calls on tokio's blocking pool (up to 512
//! threads): without a cap, a burst of 1,000 watchers answering at once would open hundreds of
//! SQLite handles or exceed PostgreSQL's `max_connections`. Callers beyond the cap wait.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::error::StoreError;

/// How long a caller waits for a free connection before giving up.
const WAIT: Duration = Duration::from_secs(30);

struct State<C> {
    idle: Vec<C>,
    open: usize,
}

pub(crate) struct Pool<C> {
    state: Mutex<State<C>>,
    freed: Condvar,
    max: usize,
}

impl<C> Pool<C> {
    pub(crate) fn new(max: usize) -> Pool<C> {
        Pool {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State<C>>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("connection pool poisoned".to_string()))
    }

    /// An idle connection, a new one made by `connect` while under the cap, or the next one
    /// given back.
    pub(crate) fn get(
        &self,
        connect: impl FnOnce() -> Result<C, StoreError>,
    ) -> Result<C, StoreError> {
        let mut st = self.lock()?;
        loop {
            if let Some(c) = st.idle.pop() {
                return Ok(c);
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return connect().inspect_err(|_| self.discard());
            }
            let (guard, timeout) = self
                .freed
                .wait_timeout(st, WAIT)
                .map_err(|_| StoreError::Backend("connection pool poisoned".to_string()))?;
            st = guard;
            if timeout.timed_out() && st.idle.is_empty() && st.open >= self.max {
                return Err(StoreError::Unavailable(format!(
                    "all {} database connections stayed busy for {}s",
                    self.max,
                    WAIT.as_secs()
                )));
            }
        }
    }

    /// Every idle connection, taken out of the pool (to close them elsewhere).
    pub(crate) fn take_idle(&self) -> Vec<C> {
        match self.state.lock() {
            Ok(mut st) => std::mem::take(&mut st.idle),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().idle),
        }
    }

    /// Give a healthy connection back.
    pub(crate) fn put(&self, c: C) {
        if let Ok(mut st) = self.state.lock() {
            st.idle.push(c);
        }
        self.freed.notify_one();
    }

    /// Forget a connection that was dropped (broken, or its open failed).
    pub(crate) fn discard(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.open = st.open.saturating_sub(1);
        }
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn never_opens_more_than_the_cap() {
        let pool = Arc::new(Pool::<usize>::new(3));
        let opened = Arc::new(AtomicUsize::new(0));
        let in_use = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..12 {
                let (pool, opened, in_use, peak) =
                    (pool.clone(), opened.clone(), in_use.clone(), peak.clone());
                s.spawn(move || {
                    for _ in 0..20 {
                        let c = pool
                            .get(|| Ok(opened.fetch_add(1, Ordering::SeqCst)))
                            .unwrap();
                        let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        in_use.fetch_sub(1, Ordering::SeqCst);
                        pool.put(c);
                    }
                });
            }
        });
        assert!(opened.load(Ordering::SeqCst) <= 3);
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn a_failed_open_frees_its_slot() {
        let pool = Pool::<u8>::new(1);
        assert!(pool
            .get(|| Err(StoreError::Unavailable("down".into())))
            .is_err());
        assert_eq!(pool.get(|| Ok(7)).unwrap(), 7);
    }
}
