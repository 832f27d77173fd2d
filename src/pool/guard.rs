//! The checkout guard.

use crate::sync::Instant;
use std::ops::{Deref, DerefMut};
use std::sync::Weak;

use super::manager::{Manager, ObjectMeta};
use super::shared::{Destroy, Entry, Shared};

/// An object checked out of a [`Pool`](super::Pool).
///
/// Dropping the guard returns the object, unless it is broken
/// ([`Manager::is_broken`]), has served `max_uses` checkouts or outlived
/// `max_lifetime`, or the pool is closed: then the object is destroyed. Use
/// [`Pooled::discard`] to destroy an object that misbehaved.
///
/// The guard holds a `Weak` reference: it never keeps a dropped pool alive,
/// and an object returned to a pool that is gone is simply destroyed.
#[must_use = "dropping the guard returns the object to the pool at once"]
pub struct Pooled<M: Manager> {
    entry: Option<Entry<M::Object>>,
    pool: Weak<Shared<M>>,
}

impl<M: Manager> Pooled<M> {
    pub(crate) fn new(mut entry: Entry<M::Object>, pool: Weak<Shared<M>>) -> Self {
        entry.meta.uses += 1;
        Self {
            entry: Some(entry),
            pool,
        }
    }

    /// The object's life so far.
    pub fn meta(this: &Self) -> ObjectMeta {
        match &this.entry {
            Some(entry) => entry.meta,
            // Only `Drop` and `discard` empty it, and both consume the guard.
            None => ObjectMeta::new(Instant::now()),
        }
    }

    /// Destroys the object instead of returning it (for a connection whose
    /// stream can no longer be trusted). Its slot is freed at once.
    pub fn discard(mut this: Self) {
        if let Some(entry) = this.entry.take() {
            match this.pool.upgrade() {
                Some(shared) => shared.destroy(entry, Destroy::Broken),
                None => drop(entry),
            }
        }
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        let Some(shared) = self.pool.upgrade() else {
            return; // The pool is gone: dropping `entry` destroys the object.
        };
        if shared.manager.is_broken(&entry.obj) {
            shared.destroy(entry, Destroy::Broken);
            return;
        }
        if shared.retired(&entry.meta) {
            shared.destroy(entry, Destroy::Retired);
            return;
        }
        entry.meta.last_used = Instant::now();
        shared.return_object(entry);
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Object;

    fn deref(&self) -> &M::Object {
        match &self.entry {
            Some(entry) => &entry.obj,
            None => unreachable!("a Pooled guard is emptied only by Drop or discard"),
        }
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Object {
        match &mut self.entry {
            Some(entry) => &mut entry.obj,
            None => unreachable!("a Pooled guard is emptied only by Drop or discard"),
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pooled<M>
where
    M::Object: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("entry", &self.entry)
            .finish()
    }
}
