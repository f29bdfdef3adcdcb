//! A bounded count of what the server holds at once (open connections, body
//! bytes being read): taken before the thing is held, given back when it is
//! dropped, and read by `/metrics`.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// `max` units, each taken by a permit and given back when it drops.
#[derive(Debug, Clone)]
pub struct Budget {
    max: usize,
    free: Arc<Semaphore>,
}

impl Budget {
    pub fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            max,
            free: Arc::new(Semaphore::new(max)),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Units held now.
    pub fn in_use(&self) -> usize {
        self.max.saturating_sub(self.free.available_permits())
    }

    /// `units` now, or `None` when fewer are free.
    pub fn try_take(&self, units: u32) -> Option<SemaphorePermit<'_>> {
        self.free.try_acquire_many(units).ok()
    }

    /// One unit, for a task to own, now or `None`.
    pub fn try_take_one(&self) -> Option<OwnedSemaphorePermit> {
        self.free.clone().try_acquire_owned().ok()
    }

    /// One unit, for a task to own, once one is free.
    pub async fn take_one(&self) -> OwnedSemaphorePermit {
        let taken = self.free.clone().acquire_owned().await;
        taken.expect("the semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_held_until_their_permits_drop() {
        let budget = Budget::new(3);
        let two = budget.try_take(2).expect("room for two");
        let one = budget.try_take_one().expect("room for one");
        assert_eq!((budget.in_use(), budget.max()), (3, 3));
        assert!(budget.try_take(1).is_none() && budget.try_take_one().is_none());
        drop(two);
        assert_eq!(budget.in_use(), 1);
        drop(one);
        assert_eq!(budget.in_use(), 0);
    }
}
