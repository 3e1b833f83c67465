//! The memory budget of loaded tile contents: least-recently-used eviction of tiles that are not
//! in view. A tile drawn (or needed) this frame is never evicted, even over budget — the view
//! comes first; the budget is met again once the view moves on.

use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Lru {
    pub budget_bytes: usize,
    used: usize,
    /// node → (bytes, last frame it was used)
    entries: HashMap<usize, (usize, u64)>,
}

impl Lru {
    pub fn new(budget_bytes: usize) -> Self {
        Lru { budget_bytes, used: 0, entries: HashMap::new() }
    }

    pub fn used_bytes(&self) -> usize {
        self.used
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, id: usize) -> bool {
        self.entries.contains_key(&id)
    }

    pub fn insert(&mut self, id: usize, bytes: usize, frame: u64) {
        if let Some((old, _)) = self.entries.insert(id, (bytes, frame)) {
            self.used -= old;
        }
        self.used += bytes;
    }

    pub fn touch(&mut self, id: usize, frame: u64) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.1 = frame;
        }
    }

    pub fn remove(&mut self, id: usize) {
        if let Some((b, _)) = self.entries.remove(&id) {
            self.used -= b;
        }
    }

    /// Evicts least-recently-used entries not used in `frame` until the budget is met; returns
    /// the evicted ids, oldest first.
    pub fn evict(&mut self, frame: u64) -> Vec<usize> {
        if self.used <= self.budget_bytes {
            return vec![];
        }
        let mut cands: Vec<(u64, usize, usize)> =
            self.entries.iter().filter(|(_, e)| e.1 < frame).map(|(&id, &(b, f))| (f, id, b)).collect();
        cands.sort_unstable();
        let mut out = vec![];
        for (_, id, b) in cands {
            if self.used <= self.budget_bytes {
                break;
            }
            self.entries.remove(&id);
            self.used -= b;
            out.push(id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_not_in_view_until_within_budget() {
        let mut l = Lru::new(100);
        l.insert(1, 40, 1);
        l.insert(2, 40, 2);
        l.insert(3, 40, 3); // 120 > 100
        assert_eq!(l.used_bytes(), 120);
        // frame 3: 3 is in view; 1 is the oldest
        assert_eq!(l.evict(3), vec![1]);
        assert_eq!(l.used_bytes(), 80);
        assert_eq!(l.evict(3), Vec::<usize>::new(), "within budget");
        // touching 2 makes it recent: adding 4 evicts 3, not 2
        l.touch(2, 4);
        l.insert(4, 40, 4); // 120
        assert_eq!(l.evict(5), vec![3]);
        assert!(l.contains(2) && l.contains(4) && !l.contains(3));
    }

    #[test]
    fn tiles_in_view_are_kept_even_over_budget() {
        let mut l = Lru::new(50);
        l.insert(1, 40, 7);
        l.insert(2, 40, 7);
        assert!(l.evict(7).is_empty(), "both used this frame");
        assert_eq!(l.used_bytes(), 80);
        // next frame only 2 is used
        l.touch(2, 8);
        assert_eq!(l.evict(8), vec![1]);
        assert_eq!((l.used_bytes(), l.len()), (40, 1));
        // re-inserting replaces the size
        l.insert(2, 10, 9);
        assert_eq!(l.used_bytes(), 10);
        l.remove(2);
        assert!(l.is_empty() && l.used_bytes() == 0);
    }
}
