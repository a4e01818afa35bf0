//! A terminal's scrollback: the last bytes it wrote, addressed by their
//! offset in its whole output, so each attached client can follow at its own
//! pace and tell when it fell so far behind that bytes it had not sent yet
//! were dropped.

use std::collections::VecDeque;

/// The last `capacity` bytes of a stream.
#[derive(Debug)]
pub(super) struct Scrollback {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// Offset (in the whole output) of the first byte held.
    start: u64,
}

/// The bytes asked for were dropped already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lagged;

impl Scrollback {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            capacity,
            start: 0,
        }
    }

    /// Offset of the oldest byte held: where a new client's replay starts.
    pub(super) fn start(&self) -> u64 {
        self.start
    }

    /// Offset just past the newest byte: the total written so far.
    #[cfg(test)]
    pub(super) fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Appends `data`, dropping the oldest bytes beyond the capacity.
    pub(super) fn push(&mut self, data: &[u8]) {
        let data = if data.len() > self.capacity {
            let skipped = data.len() - self.capacity;
            self.start += skipped as u64;
            &data[skipped..]
        } else {
            data
        };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.start += overflow as u64;
        self.bytes.extend(data);
    }

    /// Up to `max` bytes from offset `from` (empty when `from` is at or past
    /// the end), or [`Lagged`] when some of them were dropped already.
    pub(super) fn read(&self, from: u64, max: usize) -> Result<Vec<u8>, Lagged> {
        if from < self.start {
            return Err(Lagged);
        }
        let Ok(skip) = usize::try_from(from - self.start) else {
            return Ok(Vec::new());
        };
        if skip >= self.bytes.len() {
            return Ok(Vec::new());
        }
        let take = max.min(self.bytes.len() - skip);
        Ok(self.bytes.range(skip..skip + take).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_with_their_offsets() {
        let mut ring = Scrollback::new(8);
        ring.push(b"hello");
        assert_eq!((ring.start(), ring.end()), (0, 5));
        assert_eq!(ring.read(0, 100), Ok(b"hello".to_vec()));
        assert_eq!(ring.read(1, 3), Ok(b"ell".to_vec()));
        assert_eq!(ring.read(5, 100), Ok(Vec::new()));
        assert_eq!(ring.read(99, 100), Ok(Vec::new()));

        ring.push(b" world");
        assert_eq!((ring.start(), ring.end()), (3, 11));
        assert_eq!(ring.read(3, 100), Ok(b"lo world".to_vec()));
        assert_eq!(ring.read(2, 100), Err(Lagged));
        assert_eq!(ring.read(0, 1), Err(Lagged));
    }

    #[test]
    fn a_write_larger_than_the_capacity_keeps_its_tail() {
        let mut ring = Scrollback::new(4);
        ring.push(b"ab");
        ring.push(b"0123456789");
        assert_eq!((ring.start(), ring.end()), (8, 12));
        assert_eq!(ring.read(8, 100), Ok(b"6789".to_vec()));
        ring.push(b"");
        assert_eq!(ring.end(), 12);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let mut ring = Scrollback::new(1000);
        let mut written = 0u64;
        for n in 0..500u16 {
            let chunk = vec![u8::try_from(n % 251).unwrap(); usize::from(n % 37)];
            ring.push(&chunk);
            written += chunk.len() as u64;
            assert!(ring.end() - ring.start() <= 1000);
            assert_eq!(ring.end(), written);
        }
        let tail = ring.read(ring.start(), usize::MAX).unwrap();
        assert_eq!(tail.len(), 1000);
    }
}
