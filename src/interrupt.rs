//! A process-wide interrupt flag: Ctrl-C sets it, long native calls (training, attacks) poll
//! it between batches and stop with `Error::Interrupted`.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

static FLAG: AtomicBool = AtomicBool::new(false);

/// Ask the running call to stop.
pub fn request() {
    FLAG.store(true, Ordering::SeqCst);
}

/// Clear the flag (before starting a new call).
pub fn clear() {
    FLAG.store(false, Ordering::SeqCst);
}

/// `Err(Interrupted)` when a stop was requested.
pub fn check() -> Result<()> {
    if FLAG.load(Ordering::SeqCst) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
