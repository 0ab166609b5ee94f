//! A model's logits, losses and input gradients in scripts, and attacks whose step a script
//! writes (`attack(#{ name, eps, steps, init, step })`). The attack's loop, checks, restarts and
//! `keep_best` are `crate::attack::Custom`'s; this file turns its calls into calls of the
//! script's closures.

use super::attack::AttackRef;
use super::error::{to_rhai, RResult};
use super::keys;
use super::opts::Opts;
use super::{def, Reg, Session};
use crate::attack::loss::{self, Loss, LossKind, Reduction};
use crate::attack::{random_start, CustomParams, Norm, RunParams, StepRule};
use crate::nn::Model;
use candle_core::{DType, Tensor};
use rhai::{Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext, INT};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// The options every `attack(#{…})` understands; any other key is a parameter of the
/// script's own (a number, string, bool or array), passed to the closures in `state`.
/// The loss the options name, for a batch of `n` samples.
fn loss_opts(o: &Opts, n: usize) -> RResult<Loss> {
    let kind = LossKind::parse(&o.string("loss")?.unwrap_or_else(|| "ce".into())).map_err(to_rhai)?;
    let reduction = Reduction::parse(&o.string("reduction")?.unwrap_or_else(|| "sum".into())).map_err(to_rhai)?;
    let target = match o.get("target") {
        None => None,
        Some(v) => Some(match (v.clone().try_cast::<Tensor>(), v.as_int()) {
            (Some(t), _) => t,
            (None, Ok(c)) if c >= 0 => Tensor::full(c as u32, n, &candle_core::Device::Cpu).map_err(to_rhai)?,
            _ => {
                return Err(to_rhai(format!(
                    "{}: option `target` must be a class (int >= 0) or a Tensor of classes, got {v}",
                    o.func()
                )))
            }
        }),
    };
    let reference = match o.get("reference") {
        None => None,
        Some(v) => Some(v.clone().try_cast::<Tensor>().ok_or_else(|| {
            to_rhai(format!(
                "{}: option `reference` must be a Tensor of logits, got {}",
                o.func(),
                v.type_name()
            ))
        })?),
    };
    Ok(Loss {
        kind,
        target,
        reference,
        reduction,
    })
}

/// `loss` with its tensors on `x`'s device.
fn on_device(mut l: Loss, x: &Tensor) -> RResult<Loss> {
    let dev = x.device();
    l.target = l.target.map(|t| t.to_device(dev)).transpose().map_err(to_rhai)?;
    l.reference = l.reference.map(|t| t.to_device(dev)).transpose().map_err(to_rhai)?;
    Ok(l)
}

fn check_x(m: &Model, x: &Tensor) -> RResult<()> {
    m.check_input(x.dims()).map_err(to_rhai)
}

/// `#{ loss, grad }` of a built-in loss.
fn gradient_named(m: &Model, x: &Tensor, y: &Tensor, l: Loss, eot: usize) -> RResult<Map> {
    let l = on_device(l, x)?;
    let (value, grad) = loss::input_gradient_mean(m, x, eot, |z| loss::loss_value(&l, z, y)).map_err(to_rhai)?;
    Ok(result_map(value, grad))
}

fn result_map(value: Tensor, grad: Tensor) -> Map {
    let mut out = Map::new();
    out.insert("loss".into(), Dynamic::from(value));
    out.insert("grad".into(), Dynamic::from(grad));
    out
}

/// `#{ loss, grad }` of a loss the script builds from the logits with closure `f`.
fn gradient_closure(ctx: &NativeCallContext, m: &Model, x: &Tensor, f: &FnPtr, y: Option<&Tensor>) -> RResult<Map> {
    let mut script_error: Option<Box<EvalAltResult>> = None;
    let out = loss::input_gradient(m, x, |logits| {
        let called = match y {
            Some(y) => f.call_within_context::<Dynamic>(ctx, (logits.clone(), y.clone())),
            None => f.call_within_context::<Dynamic>(ctx, (logits.clone(),)),
        };
        match called {
            Ok(v) => v.clone().try_cast::<Tensor>().ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "input_gradient: the loss closure must return a Tensor, got {}{}",
                    v.type_name(),
                    if v.is_float() {
                        " (sum() and mean() without a dim give a number: return the per-sample tensor, which is summed, or use sum_all())"
                    } else {
                        ""
                    }
                ))
            }),
            Err(e) => {
                script_error = Some(e);
                Err(crate::Error::Invalid("the loss closure failed".into()))
            }
        }
    });
    match (out, script_error) {
        (_, Some(e)) => Err(e),
        (Ok((value, grad)), None) => Ok(result_map(value, grad)),
        (Err(e), None) => Err(to_rhai(e)),
    }
}

fn models(reg: &mut Reg) {
    def!(reg, "Model.logits(x: Tensor) -> Tensor", "The model's logits (N, classes) on a batch of images, in evaluation mode (gradients flow through them inside input_gradient's closure).", |m: &mut Model, x: Tensor| -> RResult<Tensor> {
        check_x(m, &x)?;
        m.forward(&x).map_err(to_rhai)
    });
    def!(
        reg,
        "Model.probs(x: Tensor) -> Tensor",
        "The model's softmax probabilities (N, classes) on a batch of images.",
        |m: &mut Model, x: Tensor| -> RResult<Tensor> {
            check_x(m, &x)?;
            m.forward(&x)
                .and_then(|z| Ok(candle_nn::ops::softmax(&z, 1)?))
                .map_err(to_rhai)
        }
    );
    def!(
        reg,
        "Model.loss(x: Tensor, y: Tensor) -> Tensor",
        "The summed cross-entropy of the true labels y (a scalar tensor).",
        |m: &mut Model, x: Tensor, y: Tensor| -> RResult<Tensor> {
            check_x(m, &x)?;
            let z = m.forward(&x).map_err(to_rhai)?;
            loss::loss_value(&Loss::new(LossKind::Ce), &z, &y).map_err(to_rhai)
        }
    );
    def!(reg, "Model.loss(x: Tensor, y: Tensor, opts: Map) -> Tensor", "A loss the attacker ascends: loss (\"ce\" | \"dlr\" | \"cw\": max other logit − true logit | \"kl\": KL(softmax(reference) ‖ softmax(logits))), target (a class or a Tensor of classes: the loss rises towards them), reference (logits, for kl), reduction (\"sum\" | \"mean\" | \"none\": one per sample).", |m: &mut Model, x: Tensor, y: Tensor, o: Map| -> RResult<Tensor> {
        check_x(m, &x)?;
        let o = Opts::new(&keys::LOSS, &o)?;
        let l = on_device(loss_opts(&o, x.dim(0).unwrap_or(0))?, &x)?;
        let z = m.forward(&x).map_err(to_rhai)?;
        loss::loss_value(&l, &z, &y).map_err(to_rhai)
    });
    def!(reg, "Model.input_gradient(x: Tensor, y: Tensor) -> Map", "#{ loss, grad }: the summed cross-entropy of y and its gradient with respect to x only, from one forward and one backward pass (the built-in attacks' path).", |m: &mut Model, x: Tensor, y: Tensor| -> RResult<Map> {
        gradient_named(m, &x, &y, Loss::new(LossKind::Ce), 1)
    });
    def!(reg, "Model.input_gradient(x: Tensor, y: Tensor, opts: Map) -> Map", "#{ loss, grad } of the loss the options name (as Model.loss: loss, target, reference, reduction) with respect to x; eot (1): both averaged over that many passes, for a randomised model.", |m: &mut Model, x: Tensor, y: Tensor, o: Map| -> RResult<Map> {
        let o = Opts::new(&keys::INPUT_GRADIENT, &o)?;
        let l = loss_opts(&o, x.dim(0).unwrap_or(0))?;
        let eot = crate::attack::check_eot(o.usize("eot")?.unwrap_or(1)).map_err(|e| to_rhai(format!("input_gradient: {e}")))?;
        gradient_named(m, &x, &y, l, eot)
    });
    def!(reg, "Model.input_gradient(x: Tensor, y: Tensor, loss: Fn(logits, y) -> Tensor) -> Map", "#{ loss, grad } of a loss the closure builds from the logits with tensor ops (autograd through them; a loss of several elements is summed).", |ctx: NativeCallContext, m: &mut Model, x: Tensor, y: Tensor, f: FnPtr| -> RResult<Map> {
        gradient_closure(&ctx, m, &x, &f, Some(&y))
    });
    def!(
        reg,
        "Model.input_gradient(x: Tensor, loss: Fn(logits) -> Tensor) -> Map",
        "#{ loss, grad } of a loss the closure builds from the logits alone (no labels).",
        |ctx: NativeCallContext, m: &mut Model, x: Tensor, f: FnPtr| -> RResult<Map> {
            gradient_closure(&ctx, m, &x, &f, None)
        }
    );
}

/// A step rule made of a script's closures, with the `state` map they share during one run.
struct ScriptRule {
    session: Rc<Session>,
    name: String,
    init: Option<FnPtr>,
    step: FnPtr,
    /// The script's own parameters (keys outside [`keys::ATTACK`]).
    extra: Map,
    state: RefCell<Dynamic>,
}

impl fmt::Debug for ScriptRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptRule({})", self.name)
    }
}

impl ScriptRule {
    /// A closure's result as the next iterate, or an error naming what it returned.
    fn iterate(&self, what: &str, v: Result<Dynamic, Box<EvalAltResult>>, arity: &str) -> crate::Result<Tensor> {
        let v = v.map_err(|e| match *e {
            EvalAltResult::ErrorFunctionNotFound(..) => crate::Error::Invalid(format!(
                "attack {}: {what}: the closure takes the wrong parameters; it must be |{arity}|",
                self.name
            )),
            _ => crate::Error::Invalid(format!("attack {}: {what}: {e}", self.name)),
        })?;
        let ty = v.type_name();
        v.try_cast::<Tensor>().ok_or_else(|| {
            crate::Error::Invalid(format!(
                "attack {}: {what} must return the next iterate as a Tensor, got {ty}",
                self.name
            ))
        })
    }
}

impl StepRule for ScriptRule {
    fn init(&self, p: &RunParams, _model: &Model, x0: &Tensor, y: &Tensor) -> crate::Result<Tensor> {
        let mut state = self.extra.clone();
        state.insert("eps".into(), p.eps.map(Dynamic::from_float).unwrap_or(Dynamic::UNIT));
        state.insert("norm".into(), p.norm.as_str().into());
        state.insert("steps".into(), (p.steps as INT).into());
        state.insert("seed".into(), (p.seed as INT).into());
        state.insert("restart".into(), (p.restart as INT).into());
        state.insert("step".into(), (0 as INT).into());
        let shared = Dynamic::from_map(state).into_shared();
        *self.state.borrow_mut() = shared.clone();
        match &self.init {
            None => Ok(x0.clone()),
            Some(f) => {
                let v = self.session.call(f, (x0.clone(), y.clone(), shared));
                self.iterate("init", v, "x, y, state")
            }
        }
    }

    fn step(&self, k: usize, model: &Model, x: &Tensor, x0: &Tensor, y: &Tensor) -> crate::Result<Tensor> {
        let mut state = self.state.borrow().clone();
        if let Some(mut m) = state.write_lock::<Map>() {
            m.insert("step".into(), (k as INT).into());
        }
        let v = self
            .session
            .call(&self.step, (x.clone(), x0.clone(), y.clone(), model.clone(), state));
        self.iterate(&format!("step {}", k + 1), v, "x, x0, y, model, state")
    }
}

/// The attack `attack(#{…})` describes.
fn scripted_attack(s: &Rc<Session>, m: &Map) -> RResult<AttackRef> {
    let known: Map = m
        .iter()
        .filter(|(k, _)| keys::ATTACK.keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let o = Opts::new(&keys::ATTACK, &known)?;
    let fn_opt = |key: &str| -> RResult<Option<FnPtr>> {
        match o.get(key) {
            None => Ok(None),
            Some(v) => v.clone().try_cast::<FnPtr>().map(Some).ok_or_else(|| {
                to_rhai(format!(
                    "attack: option `{key}` must be a closure, e.g. |x, x0, y, model, state| {{ … }}, got {}",
                    v.type_name()
                ))
            }),
        }
    };
    let step = fn_opt("step")?.ok_or_else(|| {
        to_rhai("attack: option `step` is required: a closure |x, x0, y, model, state| returning the next iterate")
    })?;
    let name = o
        .string("name")?
        .ok_or_else(|| to_rhai("attack: option `name` is required (it keys the results), e.g. name: \"mi_fgsm\""))?;
    let mut extra = Map::new();
    let mut extra_json = serde_json::Map::new();
    for (k, v) in m.iter().filter(|(k, _)| !keys::ATTACK.keys.contains(&k.as_str())) {
        if v.is::<FnPtr>() || v.is::<Tensor>() || v.is::<Model>() {
            return Err(to_rhai(format!(
                "attack: option `{k}` is a {}; an attack's own parameters must be numbers, strings, bools or arrays (closures go in init and step)",
                v.type_name()
            )));
        }
        extra_json.insert(
            k.to_string(),
            rhai::serde::from_dynamic(v).unwrap_or(serde_json::Value::Null),
        );
        extra.insert(k.clone(), v.clone());
    }
    let norm = match o.string("norm")? {
        Some(n) => Norm::parse(&n).map_err(|e| to_rhai(format!("attack: {e}")))?,
        None => Norm::Linf,
    };
    let base = CustomParams::new(name.clone());
    let p = CustomParams {
        eps: o.f64("eps")?,
        norm,
        steps: o.usize("steps")?.unwrap_or(base.steps),
        seed: o.u64("seed")?.unwrap_or(s.seed),
        batch_size: o.usize("batch_size")?.unwrap_or(base.batch_size),
        keep_best: o.bool("keep_best")?.unwrap_or(base.keep_best),
        restarts: o.usize("restarts")?.unwrap_or(base.restarts),
        extra: serde_json::Value::Object(extra_json),
        ..base
    };
    let rule = ScriptRule {
        session: s.clone(),
        name,
        init: fn_opt("init")?,
        step,
        extra,
        state: RefCell::new(Dynamic::UNIT),
    };
    p.check(Rc::new(rule))
        .map(|a| AttackRef(Rc::new(a)))
        .map_err(|e| to_rhai(format!("attack: {e}")))
}

pub(super) fn register(reg: &mut Reg) {
    let s = reg.session.clone();
    def!(reg, "attack(opts: Map) -> Attack", "An attack written in the script: name (required, keys results), step (required: |x, x0, y, model, state| → next iterate), init (|x, y, state| → first iterate; default the clean input), eps (checked after every step when given), norm (\"linf\" | \"l2\"), steps (10), seed (--seed), batch_size (256), keep_best (false: true keeps each sample's first fooling iterate, one forward pass per step), restarts (1); any other key is the script's own parameter; state starts as those plus eps, norm, steps, seed, restart and step, and lives for one run on one batch.", move |m: Map| scripted_attack(&s, &m));
    def!(reg, "random_start(x: Tensor, opts: Map) -> Tensor", "The random start the built-in pgd draws: x plus noise uniform in the eps-ball (norm \"linf\" | \"l2\"), seeded per sample by seed and the sample itself, clipped to [0, 1].", |x: Tensor, m: Map| -> RResult<Tensor> {
        let o = Opts::new(&keys::RANDOM_START, &m)?;
        let eps = o.f64("eps")?.ok_or_else(|| to_rhai("random_start: option `eps` is required"))?;
        crate::attack::check_eps(eps).map_err(|e| to_rhai(format!("random_start: {e}")))?;
        let norm = Norm::parse(&o.string("norm")?.unwrap_or_else(|| "linf".into())).map_err(|e| to_rhai(format!("random_start: {e}")))?;
        // any int: state.seed carries a u64 seed bit for bit, so it may read as negative
        let seed = o
            .get("seed")
            .and_then(|v| v.as_int().ok())
            .ok_or_else(|| to_rhai("random_start: option `seed` is required, an int (state.seed inside an attack)"))?
            as u64;
        if x.dtype() != DType::F32 || x.rank() < 2 {
            return Err(to_rhai(format!("random_start: x must be an f32 batch (N, …), got {:?} of shape {:?}", x.dtype(), x.dims())));
        }
        random_start(&x, eps, norm, seed).map_err(to_rhai)
    });
    reg.domain = "model";
    models(reg);
    reg.domain = "attack";
}
