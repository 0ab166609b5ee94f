//! The one way a binding fails: a runtime error with `Position::NONE`, which Rhai fills with
//! the line and column of the call.

use rhai::{EvalAltResult, Position};

/// Turn any error into a Rhai runtime error carrying its message.
pub fn to_rhai(e: impl std::fmt::Display) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(e.to_string().into(), Position::NONE))
}

/// Result of a binding.
pub(crate) type RResult<T> = Result<T, Box<EvalAltResult>>;
