//! A panic inside a registered function is a bug, not a crash: every function and property
//! getter is registered through [`Guarded`], which turns a panic into a runtime error of the
//! call. Rhai gives that error the line and column of the call, so the report of an internal
//! error says where the script was; `advlab run` exits with 101 on it (see
//! [`super::report::is_internal`]), the REPL reports it and goes on.

use rhai::{Dynamic, EvalAltResult, NativeCallContext, Position, RhaiFunc, RhaiNativeFunc};
use std::any::TypeId;
use std::rc::Rc;
use std::sync::OnceLock;

/// How the message of an internal error starts, wherever it is printed.
pub const INTERNAL_ERROR: &str = "internal error, please report (with the script and this message)";

/// The environment variable that makes every call of the function it names panic: the one
/// way the tests reach the report of an internal error, which no input should.
pub const TEST_PANIC_VAR: &str = "ADVLAB_TEST_PANIC";

/// A native function registered so that a panic inside it becomes an error at the call.
pub(crate) struct Guarded<F> {
    name: &'static str,
    f: F,
}

impl<F> Guarded<F> {
    pub(crate) fn new(name: &'static str, f: F) -> Self {
        Self { name, f }
    }
}

/// The function name in [`TEST_PANIC_VAR`], read once.
fn panics_on_purpose() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| std::env::var(TEST_PANIC_VAR).ok()).as_deref()
}

/// The type of the functions Rhai keeps for native calls.
type Native = Rc<dyn Fn(Option<NativeCallContext>, &mut [&mut Dynamic]) -> Result<Dynamic, Box<EvalAltResult>>>;

/// `func`, with a panic inside it caught and returned as an internal error.
fn catching(name: &'static str, func: Native) -> Native {
    let on_purpose = panics_on_purpose() == Some(name);
    Rc::new(move |context, args| {
        let call = std::panic::AssertUnwindSafe(|| {
            if on_purpose {
                panic!("{TEST_PANIC_VAR} asked every call of `{name}` to panic");
            }
            func(context, args)
        });
        std::panic::catch_unwind(call).unwrap_or_else(|payload| {
            let what = crate::util::panic_message(payload.as_ref());
            Err(Box::new(EvalAltResult::ErrorRuntime(
                format!("{INTERNAL_ERROR}: {name}: {what}").into(),
                Position::NONE,
            )))
        })
    })
}

impl<A, const N: usize, const X: bool, R, const E: bool, F> RhaiNativeFunc<A, N, X, R, E> for Guarded<F>
where
    A: 'static,
    R: 'static,
    F: RhaiNativeFunc<A, N, X, R, E>,
{
    fn into_rhai_function(self, is_pure: bool, is_volatile: bool) -> RhaiFunc {
        match self.f.into_rhai_function(is_pure, is_volatile) {
            RhaiFunc::Pure {
                func,
                has_context,
                is_pure,
                is_volatile,
            } => RhaiFunc::Pure {
                func: catching(self.name, func),
                has_context,
                is_pure,
                is_volatile,
            },
            RhaiFunc::Method {
                func,
                has_context,
                is_pure,
                is_volatile,
            } => RhaiFunc::Method {
                func: catching(self.name, func),
                has_context,
                is_pure,
                is_volatile,
            },
            other => other,
        }
    }

    fn param_types() -> [TypeId; N] {
        F::param_types()
    }

    fn param_names() -> [&'static str; N] {
        F::param_names()
    }

    fn return_type() -> TypeId {
        F::return_type()
    }

    fn return_type_name() -> &'static str {
        F::return_type_name()
    }
}
