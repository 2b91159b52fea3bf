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

    /// Renew the lease every few seconds while `work` runs.
    pub fn while_held<T>(&self, work: impl FnOnce() -> T) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut waited = Duration::ZERO;
                while !self.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                    waited += Duration::from_millis(200);
                    if waited >= RENEW_EVERY {
                        waited = Duration::ZERO;
                        if let Ok(mut l) = self.lease.lock() {
                            if let Ok(new) = self.store.lock_renew(&l, TTL) {
                                *l = new;
                            }
                        }
                    }
                }
            });
            let out = work();
            self.stop.store(true, Ordering::SeqCst);
            out
        })
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
