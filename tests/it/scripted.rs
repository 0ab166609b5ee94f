//! Tensor algebra, model gradients and attacks written in scripts (README, "Attacks, losses and
//! metrics written in a script"): every op against hand-computed values, the broadcasting
//! rules, the gradients of losses against finite differences, a scripted PGD against the
//! built-in one, and bad input as a clear error at the script position.

use crate::common::{advlab, fails, run_in, script, trained};
use advlab::algebra::{self, Binary, Reduce, VecNorm};
use advlab::attack::loss::{input_gradient, loss_value, Loss, LossKind, Reduction};
use candle_core::{DType, Device, Tensor};
use predicates::str::contains;

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn binary_ops_broadcast_from_the_right_and_promote_as_pytorch() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let row = t(&[10., 20., 30.], &[3]);
    let col = t(&[100., 200.], &[2, 1]);
    assert_eq!(
        vals(&algebra::binary(&a, &row, Binary::Add).unwrap()),
        [11., 22., 33., 14., 25., 36.]
    );
    assert_eq!(
        vals(&algebra::binary(&a, &col, Binary::Mul).unwrap()),
        [100., 200., 300., 800., 1000., 1200.]
    );
    assert_eq!(
        vals(&algebra::scalar(&a, 1.0, Binary::Sub, true).unwrap()),
        [0., -1., -2., -3., -4., -5.]
    );
    assert_eq!(
        vals(&algebra::scalar(&a, 2.0, Binary::Div, true).unwrap()),
        [2., 1., 2. / 3., 0.5, 0.4, 2. / 6.]
    );
    assert_eq!(
        vals(&algebra::scalar(&a, 2.0, Binary::Pow, false).unwrap()),
        [1., 4., 9., 16., 25., 36.]
    );
    let mask = algebra::scalar(&a, 3.0, Binary::Gt, false).unwrap();
    assert_eq!(mask.dtype(), DType::U8);
    assert_eq!(vals(&mask), [0., 0., 0., 1., 1., 1.]);
    // labels (u32) meeting floats become f32; integer division is true division
    let labels = Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap();
    let q = algebra::binary(&labels, &Tensor::new(&[2u32, 2, 2], &Device::Cpu).unwrap(), Binary::Div).unwrap();
    assert_eq!((q.dtype(), vals(&q)), (DType::F32, vec![0.5, 1.0, 1.5]));
    assert_eq!(
        vals(&algebra::binary(&labels, &row, Binary::Add).unwrap()),
        [11., 22., 33.]
    );
    let e = algebra::binary(&a, &t(&[1., 2.], &[2]), Binary::Add)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[2, 3]") && e.contains("[2]") && e.contains("do not broadcast"),
        "{e}"
    );
    let sel = algebra::select(&mask, &a, &t(&[0.], &[1])).unwrap();
    assert_eq!(vals(&sel), [0., 0., 0., 4., 5., 6.]);
    assert!(algebra::select(&a, &a, &a).unwrap_err().to_string().contains("mask"));
    let c = algebra::clamp(&a, &t(&[2.], &[]), &row).unwrap();
    assert_eq!(vals(&c), [2., 2., 3., 4., 5., 6.]);
}

#[test]
fn reductions_norms_and_shapes_give_hand_computed_values() {
    let a = t(&[3., -4., 0., 1., 2., -2.], &[2, 3]);
    assert_eq!(vals(&algebra::reduce(&a, Reduce::Sum, 1, false).unwrap()), [-1., 1.]);
    assert_eq!(algebra::reduce(&a, Reduce::Mean, 0, true).unwrap().dims(), [1, 3]);
    assert_eq!(vals(&algebra::reduce(&a, Reduce::Max, -1, false).unwrap()), [3., 2.]);
    assert_eq!(vals(&algebra::reduce(&a, Reduce::ArgMin, 1, false).unwrap()), [1., 2.]);
    assert_eq!(algebra::reduce_all(&a, Reduce::Sum).unwrap(), 0.0);
    assert!(algebra::reduce(&a, Reduce::Sum, 2, false)
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    assert_eq!(vals(&algebra::norm(&a, VecNorm::L2, 1, false).unwrap()), [5., 3.]);
    assert_eq!(vals(&algebra::norm(&a, VecNorm::L1, 1, false).unwrap()), [7., 5.]);
    assert_eq!(vals(&algebra::norm(&a, VecNorm::Linf, 1, false).unwrap()), [4., 2.]);
    assert_eq!(vals(&algebra::norm(&a, VecNorm::L0, 1, false).unwrap()), [2., 3.]);
    let n = algebra::sample_norm(&a.reshape((2, 1, 3)).unwrap(), VecNorm::L2).unwrap();
    assert_eq!((n.dims(), vals(&n)), (&[2usize, 1, 1][..], vec![5., 3.]));
    let sm = algebra::softmax(&t(&[0., 0., (2f32).ln()], &[1, 3]), 1, false).unwrap();
    assert!(vals(&sm)
        .iter()
        .zip([0.25, 0.25, 0.5])
        .all(|(a, b)| (a - b).abs() < 1e-6));
    let y = Tensor::new(&[2u32, 0], &Device::Cpu).unwrap();
    assert_eq!(vals(&algebra::one_hot(&y, 3).unwrap()), [0., 0., 1., 1., 0., 0.]);
    assert_eq!(
        vals(&algebra::gather(&a, &y.reshape((2, 1)).unwrap(), 1).unwrap()),
        [0., 1.]
    );
    assert!(algebra::gather(&a, &t(&[0., 1.], &[2, 1]), 1)
        .unwrap_err()
        .to_string()
        .contains("integer"));
    assert!(algebra::one_hot(&y, 2)
        .unwrap_err()
        .to_string()
        .contains("out of range"));
    assert_eq!(algebra::reshape(&a, &[3, -1]).unwrap().dims(), [3, 2]);
    assert!(algebra::reshape(&a, &[4, -1]).is_err());
    assert!(algebra::shape(&[1 << 20, 1 << 20, 1 << 10], None)
        .unwrap_err()
        .to_string()
        .contains("GB"));
    assert_eq!(vals(&algebra::rows(&a, -1, 10).unwrap()), [1., 2., -2.]);
    assert_eq!(algebra::cat(&[a.clone(), a.clone()], 1).unwrap().dims(), [2, 6]);
    assert_eq!(algebra::stack(&[a.clone(), a.clone()], -1).unwrap().dims(), [2, 3, 2]);
    assert!(algebra::cat(&[a.clone(), a.reshape((3, 2)).unwrap()], 0).is_err());
    let u1 = algebra::rand_uniform(&[100], -1.0, 1.0, 5, &Device::Cpu).unwrap();
    let u2 = algebra::rand_uniform(&[100], -1.0, 1.0, 5, &Device::Cpu).unwrap();
    assert_eq!(vals(&u1), vals(&u2));
    assert!(vals(&u1).iter().all(|v| (-1.0..1.0).contains(v)));
}

/// The losses the attacker ascends, on logits chosen by hand.
#[test]
fn losses_match_their_definitions() {
    let z = t(&[4., 1., 2., 0., 0., 3., 1., 2.], &[2, 4]);
    let y = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
    let none = |kind, target: Option<Tensor>| {
        let l = Loss {
            target,
            reduction: Reduction::None,
            ..Loss::new(kind)
        };
        vals(&loss_value(&l, &z, &y).unwrap())
    };
    // CW margin: max other − true
    assert_eq!(none(LossKind::Cw, None), [2. - 4., 3. - 2.]);
    // DLR: −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3): row 0 sorted 4, 2, 1, 0; row 1 sorted 3, 2, 1, 0
    let dlr = none(LossKind::Dlr, None);
    assert!((dlr[0] - (-(4. - 2.) / (4. - 1.))).abs() < 1e-6 && (dlr[1] - (-(2. - 3.) / (3. - 1.))).abs() < 1e-6);
    // targeted CW towards class 1: z_t − max_{i≠t} z_i
    let target = Tensor::new(&[1u32, 1], &Device::Cpu).unwrap();
    assert_eq!(none(LossKind::Cw, Some(target)), [1. - 4., 3. - 2.]);
    let ce = none(LossKind::Ce, None);
    let lse0 = (4f32.exp() + 1f32.exp() + 2f32.exp() + 1.0).ln();
    assert!((ce[0] - (lse0 - 4.)).abs() < 1e-5);
    let bad = Tensor::new(&[0u32, 4], &Device::Cpu).unwrap();
    assert!(loss_value(&Loss::new(LossKind::Ce), &z, &bad)
        .unwrap_err()
        .to_string()
        .contains("label 4"));
}

/// The input gradient of every loss against central finite differences on a trained MLP.
#[test]
fn input_gradients_match_finite_differences() {
    let (model, data) = trained();
    let x = data
        .test
        .images()
        .narrow(0, 0, 4)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let x = x.to_dtype(DType::F32).unwrap();
    let y = data.test.labels().narrow(0, 0, 4).unwrap();
    for kind in [LossKind::Ce, LossKind::Cw, LossKind::Dlr] {
        let loss = Loss::new(kind);
        let (value, grad) = input_gradient(model, &x, |z| loss_value(&loss, z, &y)).unwrap();
        let f = |x: &Tensor| -> f64 {
            loss_value(&loss, &model.forward(x).unwrap(), &y)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        assert!((f(&x) - value.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()).abs() < 1e-4);
        let g = vals(&grad);
        let flat = vals(&x);
        // the pixels with the largest gradient (where the finite difference is well above noise)
        let mut idx: Vec<usize> = (0..g.len()).collect();
        idx.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        for &i in idx.iter().take(5) {
            let h = 1e-2f32;
            let bump = |s: f32| {
                let mut v = flat.clone();
                v[i] += s;
                Tensor::from_vec(v, x.dims(), &Device::Cpu).unwrap()
            };
            let fd = (f(&bump(h)) - f(&bump(-h))) / (2.0 * h as f64);
            let rel = (fd - g[i] as f64).abs() / (g[i].abs() as f64).max(1e-3);
            assert!(
                rel < 0.05,
                "{kind:?} pixel {i}: finite difference {fd}, gradient {}",
                g[i]
            );
        }
    }
}

#[test]
fn script_tensor_ops_closures_and_gradients_give_the_expected_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "ops.rhai",
        r#"
fn same(name, got, want) {
    let g = got.to_array();
    if g.len() != want.len() { throw `${name}: ${g} != ${want}`; }
    for i in 0..g.len() { if (g[i] - want[i]).abs() > 1e-5 { throw `${name}: ${g} != ${want}`; } }
}
let a = tensor([[1, 2], [3, 4]]);
same("add", a + 1, [2.0, 3.0, 4.0, 5.0]);
same("rsub", 1 - a, [0.0, -1.0, -2.0, -3.0]);
same("rdiv", 12.0 / a, [12.0, 6.0, 4.0, 3.0]);
same("neg", -a, [-1.0, -2.0, -3.0, -4.0]);
same("bcast", a * tensor([10, 100]), [10.0, 200.0, 30.0, 400.0]);
same("cmp", a >= 3, [0.0, 0.0, 1.0, 1.0]);
same("where", where_(a > 2.5, a, -1.0), [-1.0, -1.0, 3.0, 4.0]);
same("clamp", a.clamp(2, tensor([3, 3.5])), [2.0, 2.0, 3.0, 3.5]);
same("sum", a.sum(0), [4.0, 6.0]);
same("max", a.max(1, true), [2.0, 4.0]);
same("argmax", a.argmax(0), [1.0, 1.0]);
same("norm", tensor([[3, 4]]).norm(2.0, 1), [5.0]);
same("pow", a.pow(2), [1.0, 4.0, 9.0, 16.0]);
same("transpose", a.transpose(0, 1), [1.0, 3.0, 2.0, 4.0]);
same("index_select", a.index_select([1, 0], 0), [3.0, 4.0, 1.0, 2.0]);
same("narrow", a.narrow(1, 1, 1), [2.0, 4.0]);
if (a > 2).mean() != 0.5 { throw "mask mean"; }
if zeros([2, 3]).shape() != [2, 3] || full([2], 7.0).sum() != 14.0 { throw "constructors"; }
if rand_normal([1000], 3).to_array() != rand_normal([1000], 3).to_array() { throw "seeded normal"; }

// gradients: a scripted CE equals the built-in CE; a scripted quadratic loss of the logits
// z·z has the gradient 2·Wᵀz for a linear model
let data = synthetic(#{ train: 600, test: 100, seed: 2 });
let model = mlp([784, 10]);
model.fit(data.train, #{ epochs: 1 });
let x = data.test.images().rows(0, 8);
let y = data.test.labels().rows(0, 8);
let builtin = model.input_gradient(x, y);
let mine = model.input_gradient(x, y, |z, y| -z.log_softmax(1).gather(y.reshape([-1, 1]), 1));
if (builtin.grad - mine.grad).abs().max() > 1e-6 { throw "scripted CE gradient differs"; }
if (builtin.loss.item() - mine.loss.sum()).abs() > 1e-4 { throw "scripted CE value differs"; }
let named = model.input_gradient(x, y, #{ loss: "cw", reduction: "mean" });
if named.loss.shape() != [] { throw "a reduced loss is a scalar"; }
let q = model.input_gradient(x, |z| z * z);
let z = model.logits(x);
if (q.loss.sum() - (z * z).sum()).abs() > 1e-3 { throw "quadratic loss value"; }
// finite difference along the gradient direction
let d = q.grad / q.grad.sample_norm("l2") * 1e-3;
let up = (model.logits(x + d) * model.logits(x + d)).sum();
let down = (model.logits(x - d) * model.logits(x - d)).sum();
let fd = (up - down) / 2.0;
let predicted = (q.grad * d).sum();
if (fd - predicted).abs() > 0.02 * predicted.abs() { throw `directional derivative ${fd} vs ${predicted}`; }
let back = dataset(x, y, 10);
if back.len() != 8 || data.test.take(8).with_images(x * 0.5).images().max() > 0.5 { throw "datasets"; }
print("ops ok");
"#,
    );
    run_in(tmp.path(), &s).success().stdout(contains("ops ok"));
}

/// README's example: PGD written as a script gives the built-in pgd's images and accuracy
/// (the script throws otherwise), on the synthetic set; MI-FGSM, the ensemble and the margin
/// attack run through evaluate and perturb.
#[test]
fn custom_attacks_script_matches_the_builtin_pgd_in_quick_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    advlab()
        .current_dir(tmp.path())
        .args([
            "run",
            root.join("scripts/custom_attacks.rhai").to_str().unwrap(),
            "quick=true",
            "--out",
        ])
        .arg(tmp.path().join("out"))
        .assert()
        .success()
        .stdout(contains("mi_fgsm"))
        .stdout(contains("ensemble_pgd"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("out/custom_attacks.json")).unwrap()).unwrap();
    for row in json["pgd_check"].as_array().unwrap() {
        assert_eq!(row["builtin"], row["scripted"]);
        assert!(row["max_abs_diff"].as_f64().unwrap() <= 1e-6);
    }
    let r = &json["robust_accuracy"];
    // a scripted PGD with more steps than FGSM is not weaker, and nothing beats clean accuracy
    assert!(r["margin_pgd"].as_f64().unwrap() <= r["clean"].as_f64().unwrap());
    assert!(r["mi_fgsm"].as_f64().unwrap() <= r["clean"].as_f64().unwrap());
}

#[test]
fn scripted_attacks_vary_eps_and_record_their_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "eps.rhai",
        r#"
let data = synthetic(#{ train: 600, test: 200, seed: 2 });
let model = mlp([784, 32, 10]);
model.fit(data.train, #{ epochs: 2 });
let a = attack(#{ name: "sign_step", eps: 0.1, steps: 5, decay: 0.5,
    step: |x, x0, y, model, state| {
        if state.decay != 0.5 || state.norm != "linf" { throw "state lacks the parameters"; }
        let g = model.input_gradient(x, y).grad;
        (x + (state.eps / state.steps * 2.0) * g.sign()).clamp(x0 - state.eps, x0 + state.eps).clamp(0.0, 1.0)
    } });
let curve = accuracy_vs_eps(model, data.test, a, [0.0, 0.05, 0.2]);
print(curve);
if curve[0].accuracy < curve[2].accuracy { throw "a larger budget must not be weaker"; }
if a.params().decay != 0.5 || a.params().attack != "sign_step" { throw "params"; }
print(evaluate(model, data.test, [a]));
"#,
    );
    run_in(tmp.path(), &s).success().stdout(contains("sign_step"));
}

#[test]
fn bad_scripted_attacks_and_tensor_ops_are_errors_at_the_script_position() {
    let model = "let data = synthetic(#{ train: 300, test: 64, seed: 1 });\nlet model = mlp([784, 16, 10]);\n";
    // a step that leaves the box
    fails(
        &format!("{model}let a = attack(#{{ name: \"bad\", eps: 0.1, step: |x, x0, y, m, s| x + 0.5 }});\nprint(evaluate(model, data.test, [a]));"),
        "step 1 left the image box",
        "4:7",
    );
    // a step that leaves the budget
    fails(
        &format!("{model}let a = attack(#{{ name: \"far\", eps: 0.01, step: |x, x0, y, m, s| (x + 0.2).clamp(0.0, 1.0) }});\nprint(a.perturb(model, data.test));"),
        "the budget is eps = 0.01",
        "4:9",
    );
    // NaN in a step
    fails(
        &format!("{model}let a = attack(#{{ name: \"nan\", step: |x, x0, y, m, s| x * (0.0 / 0.0) }});\nprint(evaluate(model, data.test, [a]));"),
        "NaN",
        "4:7",
    );
    // a step returning a number, a wrong shape
    fails(
        &format!("{model}let a = attack(#{{ name: \"num\", step: |x, x0, y, m, s| 1.0 }});\nprint(evaluate(model, data.test, [a]));"),
        "must return the next iterate as a Tensor",
        "4:7",
    );
    fails(
        &format!("{model}let a = attack(#{{ name: \"shape\", step: |x, x0, y, m, s| x.rows(0, 2) }});\nprint(evaluate(model, data.test, [a]));"),
        "returned a tensor of shape [2, 1, 28, 28]",
        "4:7",
    );
    // a step with the wrong parameters
    fails(
        &format!(
            "{model}let a = attack(#{{ name: \"arity\", step: |x| x }});\nprint(evaluate(model, data.test, [a]));"
        ),
        "it must be |x, x0, y, model, state|",
        "4:7",
    );
    // an error inside the closure names the closure's line
    fails(
        &format!("{model}let a = attack(#{{ name: \"inner\", step: |x, x0, y, m, s| {{\n x + tensor([1, 2, 3]) }} }});\nprint(evaluate(model, data.test, [a]));"),
        "(line 4, position 4)",
        "5:7",
    );
    fails("let a = attack(#{ name: \"x\" });", "option `step` is required", "1:9");
    fails(
        "let a = attack(#{ name: \"no spaces\", step: |x, x0, y, m, s| x });",
        "name must be letters",
        "1:9",
    );
    fails("let a = tensor([[1, 2], [3]]);", "ragged", "1:9");
    fails(
        "let a = tensor([[1, 2], [3, 4]]);\nlet b = a + tensor([1, 2, 3]);",
        "shapes [2, 2] and [3] do not broadcast",
        "2:11",
    );
    fails(
        "let a = tensor([1, 2]);\nlet b = a.gather(tensor([[0]], \"u32\"), 0);",
        "rank",
        "2:11",
    );
    fails(
        "let a = tensor([1, 2]);\nlet b = a.gather(tensor([0.0]), 0);",
        "indices must be an integer tensor",
        "2:11",
    );
    fails(
        "let a = tensor([[1, 2]]);\nlet b = a.sum(3);",
        "dim 3 is out of range",
        "2:11",
    );
    fails("let a = zeros([100000, 100000, 1000]);", "GB", "1:9");
    fails(
        &format!("{model}let r = model.input_gradient(data.test.images(), data.test.labels(), |z, y| z.sum());"),
        "sum_all",
        "3:15",
    );
    fails(
        &format!(
            "{model}let r = model.input_gradient(data.test.images(), data.test.labels(), #{{ loss: \"hinge\" }});"
        ),
        "unknown loss \"hinge\"",
        "3:15",
    );
}
