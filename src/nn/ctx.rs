//! The context of one forward pass: training or evaluation, and the key of its random draws.
//! Below `net.rs` and `ibp.rs`, which both draw from it.

use super::random::substream;
use std::cell::Cell;

/// What one forward pass needs besides the input: training or evaluation, and the key of its
/// random draws (each draw takes the next substream, in a fixed order).
pub(crate) struct Ctx {
    key: u64,
    next: Cell<u64>,
    /// Training pass (relaxed LWTA winners) rather than evaluation.
    pub train: bool,
}

impl Ctx {
    pub fn new(key: u64, train: bool) -> Self {
        Self {
            key,
            next: Cell::new(0),
            train,
        }
    }

    /// The key of the next random draw.
    pub fn draw(&self) -> u64 {
        let n = self.next.get();
        self.next.set(n + 1);
        substream(self.key, n)
    }
}
