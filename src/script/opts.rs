//! Option maps (`#{ eps: 0.3, steps: 20 }`): unknown keys are an error that lists the valid
//! ones, and every value is converted with a check of its type and range.

use super::error::{to_rhai, RResult};
use super::keys::Keys;
use rhai::{Dynamic, Map, INT};

/// A checked view of an option map for function `func`.
pub(crate) struct Opts<'a> {
    func: &'static str,
    map: &'a Map,
}

impl<'a> Opts<'a> {
    /// Check that every key of `map` is one of the function's (see [`keys`](super::keys)).
    pub fn new(keys: &'static Keys, map: &'a Map) -> RResult<Self> {
        let (func, allowed) = (keys.func, keys.keys);
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(to_rhai(format!("{func}: {}", super::keys::unknown(key, allowed))));
            }
        }
        Ok(Self { func, map })
    }

    /// The raw value of an option that is present and not `()`.
    pub fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    /// The name of the function the options belong to.
    pub fn func(&self) -> &'static str {
        self.func
    }

    fn wrong(&self, key: &str, want: &str, v: &Dynamic) -> Box<rhai::EvalAltResult> {
        to_rhai(format!(
            "{}: option `{key}` must be {want}, got {} ({v})",
            self.func,
            v.type_name()
        ))
    }

    /// A number (integer or float).
    pub fn f64(&self, key: &str) -> RResult<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match number(v) {
                // tensors hold f32: a finite f64 beyond its range would become ±inf, then NaN
                Some(x) if x.is_finite() && x.abs() > f32::MAX as f64 => Err(to_rhai(format!(
                    "{}: option `{key}` is {x:e}, beyond the ±3.4e38 that the 32-bit floats of a tensor hold",
                    self.func
                ))),
                Some(x) => Ok(Some(x)),
                None => Err(self.wrong(key, "a number", v)),
            },
        }
    }

    /// A non-negative integer.
    pub fn usize(&self, key: &str) -> RResult<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_int() {
                Ok(i) if i >= 0 => Ok(Some(i as usize)),
                Ok(i) => Err(to_rhai(format!("{}: option `{key}` must be >= 0, got {i}", self.func))),
                Err(_) => Err(self.wrong(key, "an integer", v)),
            },
        }
    }

    /// A seed: a non-negative integer.
    pub fn u64(&self, key: &str) -> RResult<Option<u64>> {
        Ok(self.usize(key)?.map(|v| v as u64))
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> RResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).map_err(|_| self.wrong(key, "true or false", v)),
        }
    }

    /// A string.
    pub fn string(&self, key: &str) -> RResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .clone()
                .into_string()
                .map(Some)
                .map_err(|_| self.wrong(key, "a string", v)),
        }
    }

    /// A string or an array of strings.
    pub fn strings(&self, key: &str) -> RResult<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(vec![v.to_string()])),
            Some(v) if v.is_array() => {
                let arr = v
                    .clone()
                    .into_array()
                    .map_err(|_| self.wrong(key, "an array of strings", v))?;
                arr.iter()
                    .map(|e| {
                        e.clone()
                            .into_string()
                            .map_err(|_| self.wrong(key, "an array of strings", v))
                    })
                    .collect::<RResult<Vec<_>>>()
                    .map(Some)
            }
            Some(v) => Err(self.wrong(key, "a string or an array of strings", v)),
        }
    }

    /// An image shape `[channels, height, width]` of whole numbers.
    pub fn chw(&self, key: &str) -> RResult<Option<[usize; 3]>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let arr = v
            .clone()
            .into_array()
            .map_err(|_| self.wrong(key, "an array [channels, height, width]", v))?;
        let dims = usize_array(&format!("{}: {key}", self.func), &arr)?;
        <[usize; 3]>::try_from(dims.as_slice()).map(Some).map_err(|_| {
            to_rhai(format!(
                "{}: option `{key}` must be [channels, height, width], got {dims:?}",
                self.func
            ))
        })
    }
}

/// An integer or float as f64.
pub(crate) fn number(v: &Dynamic) -> Option<f64> {
    v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64))
}

/// A non-negative script integer as usize, with an error naming what it is.
pub(crate) fn to_usize(what: &str, i: INT) -> RResult<usize> {
    usize::try_from(i).map_err(|_| to_rhai(format!("{what} must be >= 0, got {i}")))
}

/// An array of non-negative integers.
pub(crate) fn usize_array(what: &str, arr: &rhai::Array) -> RResult<Vec<usize>> {
    arr.iter()
        .enumerate()
        .map(|(k, v)| match v.as_int() {
            Ok(i) => to_usize(what, i),
            Err(_) => Err(to_rhai(format!(
                "{what}: element {k} is {}, not an integer",
                v.type_name()
            ))),
        })
        .collect()
}

/// Every element of `arr` as a `T`, or the error `wrong(index, type name)` for the first that
/// is not one.
pub(crate) fn typed<T: Clone + 'static>(arr: &rhai::Array, wrong: impl Fn(usize, &str) -> String) -> RResult<Vec<T>> {
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            v.clone()
                .try_cast::<T>()
                .ok_or_else(|| to_rhai(wrong(i, v.type_name())))
        })
        .collect()
}
