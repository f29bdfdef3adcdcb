//! A value replaced while serving and read as a snapshot: a reader keeps the
//! `Arc` it took, and a reload applies from the next read on (the sources'
//! secrets, the destinations' signing keys).

use std::fmt;
use std::sync::{Arc, RwLock};

pub struct Snapshot<T>(RwLock<Arc<T>>);

impl<T> Snapshot<T> {
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    /// The value now; a replacement meanwhile does not change it.
    pub fn current(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

impl<T: fmt::Debug> fmt::Debug for Snapshot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.current().fmt(f)
    }
}

/// What a reload changed, and what it could not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Names whose secrets (or a source's allowed addresses) changed, with
    /// how many secrets they have now.
    pub changed: Vec<(String, usize)>,
    /// Names added, removed or changed in another way: a restart applies
    /// those.
    pub need_restart: Vec<String>,
}

impl Reload {
    /// Both lists sorted, for stable logs and tests.
    pub fn sorted(mut self) -> Self {
        self.changed.sort();
        self.need_restart.sort();
        self
    }
}
