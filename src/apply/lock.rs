//! The HostDB apply lock: a lease renewed in the background while apply works.
//!
//! A crashed holder stops renewing, so its lease expires after the TTL and the next run takes
//! it; `kloud force-unlock ID` frees it sooner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::ApplyError;
use crate::hostdb::{Lease, Store, StoreError};

/// The name of the lock every apply takes.
pub const APPLY_LOCK: &str = "apply";

/// How long a lease lives without renewal, and how often we renew it.
const TTL: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How soon a failed renewal is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Work stops this long before the lease could expire: in-flight steps still need to write.
const SAFETY: Duration = Duration::from_secs(5);

/// Holds the lock until dropped.
pub struct LockGuard<'a> {
    store: &'a dyn Store,
    lease: Arc<std::sync::Mutex<Lease>>,
    stop: Arc<AtomicBool>,
}

impl<'a> LockGuard<'a> {
    /// Take the apply lock, or say who holds it.
    pub fn acquire(store: &'a dyn Store, holder: &str) -> Result<Self, ApplyError> {
        let lease = match store.lock_acquire(APPLY_LOCK, holder, TTL) {
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
        })
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
        const TICK: Duration = Duration::from_millis(200);
        let mut since_ok = Duration::ZERO;
        let mut since_try = Duration::ZERO;
        let mut failing = false;
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            since_ok += TICK;
            since_try += TICK;
            let due = if failing { RETRY_EVERY } else { RENEW_EVERY };
            if since_try < due {
                continue;
            }
            since_try = Duration::ZERO;
            let Ok(mut l) = self.lease.lock() else { return };
            match self.store.lock_renew(&l, TTL) {
                Ok(new) => {
                    *l = new;
                    since_ok = Duration::ZERO;
                    failing = false;
                }
                Err(e) => {
                    failing = true;
                    let gone = matches!(e, StoreError::NotFound { .. } | StoreError::Held { .. });
                    let fatal = gone || since_ok + RETRY_EVERY >= TTL - SAFETY;
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
