//! The HostDB apply lock: a lease renewed in the background while apply works.
//!
//! A crashed holder stops renewing, so its lease expires after the TTL (by HostDB's clock: the
//! database's, or the server's over HTTP) and the next run takes it; `kloud force-unlock ID`
//! frees it sooner. A holder that cannot renew is told at once and stops starting new work
//! before the lease can expire; and every write apply makes carries a fence on the lease
//! (`Write::Fence`), so a holder that lost it anyway cannot write another record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::ApplyError;
use crate::hostdb::{Lease, Store, StoreError};

/// The name of the lock every apply takes.
pub const APPLY_LOCK: &str = "apply";

/// How long a lease lives without renewal. It is renewed every third of that; a failed
/// renewal is retried every fifteenth; work stops a sixth of it before it could expire.
pub const TTL: Duration = Duration::from_secs(30);

/// Holds the lock until dropped.
pub struct LockGuard<'a> {
    store: &'a dyn Store,
    lease: Arc<std::sync::Mutex<Lease>>,
    stop: Arc<AtomicBool>,
    ttl: Duration,
}

impl<'a> LockGuard<'a> {
    /// Take the apply lock, or say who holds it.
    pub fn acquire(store: &'a dyn Store, holder: &str, ttl: Duration) -> Result<Self, ApplyError> {
        let lease = match store.lock_acquire(APPLY_LOCK, holder, ttl) {
            Ok(l) => l,
            Err(StoreError::Held {
                holder,
                since_ms,
                id,
                ..
            }) => {
                return Err(ApplyError::Locked {
                    holder,
                    since: crate::hostdb::util::format_time(since_ms),
                    id,
                })
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            store,
            lease: Arc::new(std::sync::Mutex::new(lease)),
            stop: Arc::new(AtomicBool::new(false)),
            ttl,
        })
    }

    /// Take the apply lock, waiting up to `wait` for its holder to finish (self-service
    /// requests wait for a config apply instead of failing). Retries with a growing pause, so
    /// waiters do not hammer the database.
    pub fn acquire_waiting(
        store: &'a dyn Store,
        holder: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Self, ApplyError> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            match Self::acquire(store, holder, ttl) {
                Err(ApplyError::Locked { .. }) if started.elapsed() + pause < wait => {
                    std::thread::sleep(pause);
                    pause = (pause * 3 / 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// The lease as last renewed.
    pub fn lease(&self) -> Option<Lease> {
        self.lease.lock().ok().map(|l| l.clone())
    }

    /// Renew the lease every few seconds while `work` runs. A failed renewal is reported to
    /// `trouble` at once and retried sooner; `trouble` is told `fatal` when the lease may expire
    /// before the next try (or is gone), so the caller stops starting new work in time.
    pub fn while_held<T>(
        &self,
        trouble: &(dyn Fn(String, bool) + Sync),
        work: impl FnOnce() -> T,
    ) -> T {
        std::thread::scope(|s| {
            s.spawn(|| self.renew_until_stopped(trouble));
            let out = work();
            self.stop.store(true, Ordering::SeqCst);
            out
        })
    }

    fn renew_until_stopped(&self, trouble: &(dyn Fn(String, bool) + Sync)) {
        const TICK: Duration = Duration::from_millis(100);
        let (renew_every, retry_every, safety) = (self.ttl / 3, self.ttl / 15, self.ttl / 6);
        let mut since_ok = Duration::ZERO;
        let mut since_try = Duration::ZERO;
        let mut failing = false;
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            since_ok += TICK;
            since_try += TICK;
            let due = if failing { retry_every } else { renew_every };
            if since_try < due {
                continue;
            }
            since_try = Duration::ZERO;
            let Ok(mut l) = self.lease.lock() else { return };
            match self.store.lock_renew(&l, self.ttl) {
                Ok(new) => {
                    *l = new;
                    since_ok = Duration::ZERO;
                    failing = false;
                }
                Err(e) => {
                    failing = true;
                    let gone = matches!(e, StoreError::NotFound { .. } | StoreError::Held { .. });
                    let fatal = gone || since_ok + retry_every >= self.ttl.saturating_sub(safety);
                    trouble(format!("cannot renew the apply lock: {e}"), fatal);
                }
            }
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(l) = self.lease.lock() {
            let _ = self.store.lock_release(&l);
        }
    }
}
