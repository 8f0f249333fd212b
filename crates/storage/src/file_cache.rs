//! What the engine remembers about each Parquet file, by path, within a budget.
//!
//! Files never change, so what is computed from one (its newest row per series, its
//! layout) stays true until the file is deleted. A [`FileCache`] keeps such values up to a
//! total weight (rows, bytes: whatever the owner counts) and forgets the oldest entries
//! first; a forgotten value is computed again from the file when next asked for.

use std::collections::{HashMap, VecDeque};

/// Values by file path, oldest first, within `limit` in total `weigh`t.
#[derive(Debug)]
pub struct FileCache<V> {
    files: HashMap<String, V>,
    order: VecDeque<String>,
    weight: usize,
    limit: usize,
    weigh: fn(&V) -> usize,
}

impl<V: Clone> FileCache<V> {
    pub fn new(limit: usize, weigh: fn(&V) -> usize) -> Self {
        FileCache {
            files: HashMap::new(),
            order: VecDeque::new(),
            weight: 0,
            limit,
            weigh,
        }
    }

    pub fn get(&self, path: &str) -> Option<V> {
        self.files.get(path).cloned()
    }

    /// Remembers `value` for `path`, then forgets the oldest entries while the total is
    /// over the limit (the newest entry always stays).
    pub fn insert(&mut self, path: String, value: V) {
        self.weight += (self.weigh)(&value);
        match self.files.insert(path.clone(), value) {
            Some(old) => self.weight -= (self.weigh)(&old),
            None => self.order.push_back(path),
        }
        while self.weight > self.limit && self.order.len() > 1 {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.files.remove(&oldest) {
                self.weight -= (self.weigh)(&old);
            }
        }
    }

    /// Forgets a deleted file.
    pub fn forget(&mut self, path: &str) {
        if let Some(old) = self.files.remove(path) {
            self.weight -= (self.weigh)(&old);
            self.order.retain(|p| p != path);
        }
    }
}
