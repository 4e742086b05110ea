//! The synchronization primitives the broker's lock-free parts (replay ring, outbox, subscriber
//! snapshot) are built from, in one place so the loom model checks can swap them.
//!
//! Normal builds re-export the real types. The lib's unit tests built with
//! `RUSTFLAGS="--cfg herald_loom"` (src/broker/loom_tests.rs) get loom's instrumented atomics, its
//! `AtomicWaker` and `Mutex`, and the models below for the two crates loom cannot see into:
//! `arc-swap` and `crossbeam-queue`. The cfg is our own rather than loom's usual `loom` because
//! tokio and bytes change their own code under `cfg(loom)`.

#[cfg(not(all(test, herald_loom)))]
pub(crate) use arc_swap::{ArcSwap, ArcSwapOption};
#[cfg(not(all(test, herald_loom)))]
pub(crate) use crossbeam_queue::ArrayQueue;
#[cfg(not(all(test, herald_loom)))]
pub(crate) use futures_util::task::AtomicWaker;
#[cfg(not(all(test, herald_loom)))]
pub(crate) use parking_lot::{Mutex, RwLock};
#[cfg(not(all(test, herald_loom)))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64};

#[cfg(all(test, herald_loom))]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64};
#[cfg(all(test, herald_loom))]
pub(crate) use model::{ArcSwap, ArcSwapOption, ArrayQueue, AtomicWaker, Mutex, RwLock};

/// Stand-ins built from loom primitives, with the API subset the broker uses.
#[cfg(all(test, herald_loom))]
mod model {
    use std::collections::VecDeque;
    use std::fmt;
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::{Arc, PoisonError};
    use std::task::Waker;

    use loom::sync::atomic::AtomicUsize;

    /// `arc_swap::ArcSwapAny` as what it promises: an atomic pointer whose loads and swaps are
    /// sequentially consistent (arc-swap: every operation contains a `SeqCst` read-modify-write)
    /// and whose loaded values stay valid while in use. The pointer is an index into `values`,
    /// every value ever stored, never freed during a model run; that stands in for arc-swap's own
    /// reclamation, which is not what these checks are about. loom therefore explores every
    /// order of loads and stores of the pointer, including loads that see an older value where the
    /// memory model allows it.
    pub(crate) struct ArcSwapAny<T> {
        current: AtomicUsize,
        values: std::sync::Mutex<Vec<T>>,
    }

    /// `arc_swap::ArcSwap`.
    pub(crate) type ArcSwap<T> = ArcSwapAny<Arc<T>>;
    /// `arc_swap::ArcSwapOption`.
    pub(crate) type ArcSwapOption<T> = ArcSwapAny<Option<Arc<T>>>;

    impl<T: Clone> ArcSwapAny<T> {
        fn with_value(value: T) -> Self {
            Self {
                current: AtomicUsize::new(0),
                values: std::sync::Mutex::new(vec![value]),
            }
        }

        fn value(&self, index: usize) -> T {
            self.values.lock().unwrap_or_else(PoisonError::into_inner)[index].clone()
        }

        fn get(&self) -> T {
            self.value(self.current.load(SeqCst))
        }

        fn put(&self, value: T) -> T {
            let index = {
                let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
                values.push(value);
                values.len() - 1
            };
            self.value(self.current.swap(index, SeqCst))
        }
    }

    impl<T> ArcSwapAny<Arc<T>> {
        /// `ArcSwap::from_pointee`.
        pub(crate) fn from_pointee(value: T) -> Self {
            Self::with_value(Arc::new(value))
        }

        /// `ArcSwap::load` (the guard is the `Arc` itself here).
        pub(crate) fn load(&self) -> Arc<T> {
            self.get()
        }

        /// `ArcSwap::store`.
        pub(crate) fn store(&self, value: Arc<T>) {
            self.put(value);
        }

        /// `ArcSwap::swap`.
        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            self.put(value)
        }
    }

    impl<T> ArcSwapAny<Option<Arc<T>>> {
        /// `ArcSwapOption::empty`.
        pub(crate) fn empty() -> Self {
            Self::with_value(None)
        }

        /// `ArcSwapOption::load_full`.
        pub(crate) fn load_full(&self) -> Option<Arc<T>> {
            self.get()
        }

        /// `ArcSwapOption::store`.
        pub(crate) fn store(&self, value: Option<Arc<T>>) {
            self.put(value);
        }
    }

    impl<T> fmt::Debug for ArcSwapAny<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("ArcSwapAny(loom model)")
        }
    }

    /// `crossbeam_queue::ArrayQueue` as what it promises: a linearizable bounded FIFO. A loom
    /// mutex around a `VecDeque` gives exactly that (and the same release/acquire between a push
    /// and the pop that takes the item); crossbeam's lock-free algorithm itself is not checked.
    pub(crate) struct ArrayQueue<T> {
        items: loom::sync::Mutex<VecDeque<T>>,
        capacity: usize,
    }

    impl<T> ArrayQueue<T> {
        fn items(&self) -> loom::sync::MutexGuard<'_, VecDeque<T>> {
            self.items.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// `ArrayQueue::new`.
        pub(crate) fn new(capacity: usize) -> Self {
            Self {
                items: loom::sync::Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
            }
        }

        /// `ArrayQueue::push`.
        pub(crate) fn push(&self, item: T) -> Result<(), T> {
            let mut items = self.items();
            if items.len() == self.capacity {
                return Err(item);
            }
            items.push_back(item);
            Ok(())
        }

        /// `ArrayQueue::pop`.
        pub(crate) fn pop(&self) -> Option<T> {
            self.items().pop_front()
        }

        /// `ArrayQueue::is_empty`.
        pub(crate) fn is_empty(&self) -> bool {
            self.items().is_empty()
        }

        /// `ArrayQueue::capacity`.
        pub(crate) fn capacity(&self) -> usize {
            self.capacity
        }
    }

    impl<T> fmt::Debug for ArrayQueue<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("ArrayQueue(loom model)")
        }
    }

    /// `futures_util::task::AtomicWaker` over loom's own model of an atomic waker.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        /// `AtomicWaker::new`.
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// `AtomicWaker::register`.
        pub(crate) fn register(&self, waker: &Waker) {
            self.0.register_by_ref(waker);
        }

        /// `AtomicWaker::wake`.
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }

    /// `parking_lot::Mutex` (no poisoning) over loom's mutex.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        /// `Mutex::new`.
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        /// `Mutex::lock`.
        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// `parking_lot::RwLock` (no poisoning) over loom's lock.
    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        /// `RwLock::new`.
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        /// `RwLock::read`.
        pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        /// `RwLock::write`.
        pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }
}
