//! A fixed pool of equal buffers: the init's only "allocator". Exhaustion is
//! an answer (`None`), not a failure: callers stop reading until a buffer
//! comes back, which is how backpressure reaches the payload's pipes.

use heapless::Vec;

/// A handle to one buffer of a [`Pool`]. Not `Clone`: it must be given back.
#[derive(Debug, PartialEq, Eq)]
pub struct BufId(u8);

impl BufId {
    /// Where the buffer lies in its pool: ids order by it.
    pub(crate) fn index(&self) -> usize {
        self.0 as usize
    }
}

pub struct Pool<const N: usize, const SIZE: usize> {
    bufs: [[u8; SIZE]; N],
    /// Buffers given back, reused first.
    free: Vec<u8, N>,
    /// Buffers never handed out are `fresh..N`, so `new` stays const and the
    /// untouched ones cost no resident memory.
    fresh: usize,
}

impl<const N: usize, const SIZE: usize> Pool<N, SIZE> {
    pub const fn new() -> Self {
        assert!(N <= u8::MAX as usize + 1, "buffer ids are u8");
        Pool {
            bufs: [[0; SIZE]; N],
            free: Vec::new(),
            fresh: 0,
        }
    }

    /// A free buffer, or `None` when all are in use.
    pub fn get(&mut self) -> Option<BufId> {
        if let Some(i) = self.free.pop() {
            return Some(BufId(i));
        }
        if self.fresh < N {
            self.fresh += 1;
            return Some(BufId((self.fresh - 1) as u8));
        }
        None
    }

    /// Gives a buffer back.
    pub fn put(&mut self, id: BufId) {
        // Cannot overflow: at most N ids exist and each is returned once.
        let _ = self.free.push(id.0);
    }

    pub fn buf(&mut self, id: &BufId) -> &mut [u8; SIZE] {
        &mut self.bufs[id.0 as usize]
    }

    /// The buffers of `ids`, which must ascend, borrowed at once: one
    /// vectored read fills several.
    pub fn bufs<'a>(
        &'a mut self,
        ids: impl Iterator<Item = &'a BufId> + 'a,
    ) -> impl Iterator<Item = &'a mut [u8; SIZE]> + 'a {
        let mut wanted = ids.map(BufId::index).peekable();
        self.bufs
            .iter_mut()
            .enumerate()
            .filter_map(move |(i, buf)| wanted.next_if_eq(&i).map(|_| buf))
    }

    /// Buffers that `get` can still hand out.
    pub fn available(&self) -> usize {
        self.free.len() + (N - self.fresh)
    }
}

impl<const N: usize, const SIZE: usize> Default for Pool<N, SIZE> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_returns_none_and_recovers_after_put() {
        let mut pool: Pool<3, 8> = Pool::new();
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        let c = pool.get().unwrap();
        assert_eq!(pool.available(), 0);
        assert_eq!(pool.get(), None);
        pool.put(b);
        assert_eq!(pool.available(), 1);
        let again = pool.get().unwrap();
        assert_eq!(pool.get(), None);
        for id in [a, c, again] {
            pool.put(id);
        }
        assert_eq!(pool.available(), 3);
    }

    #[test]
    fn bufs_borrows_the_ascending_ids_at_once() {
        let mut pool: Pool<4, 2> = Pool::new();
        let ids: std::vec::Vec<BufId> = (0..4).map(|_| pool.get().unwrap()).collect();
        let picked = [&ids[1], &ids[3]];
        for (n, buf) in pool.bufs(picked.into_iter()).enumerate() {
            buf.fill(n as u8 + 1);
        }
        let all: std::vec::Vec<[u8; 2]> = ids.iter().map(|id| *pool.buf(id)).collect();
        assert_eq!(all, [[0, 0], [1, 1], [0, 0], [2, 2]]);
    }

    #[test]
    fn buffers_are_distinct() {
        let mut pool: Pool<2, 4> = Pool::new();
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        pool.buf(&a).fill(1);
        pool.buf(&b).fill(2);
        assert_eq!(pool.buf(&a), &[1; 4]);
        assert_eq!(pool.buf(&b), &[2; 4]);
    }
}
