//! Lock helpers: the relay's locks guard plain data and are never held across an `.await` or a
//! hook, so a poisoned lock (a panic while holding it) still guards consistent data.

use std::sync::{Mutex, MutexGuard, PoisonError};
#[cfg(feature = "server")]
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(feature = "server")]
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(feature = "server")]
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
