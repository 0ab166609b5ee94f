//! The IBP prior over stochastic LWTA connections: the ELBO keeps the first blocks whole and,
//! in later blocks, only connections the data need (never MNIST's always-blank border pixels);
//! the model keeps learning, the posterior saves and loads, seeds repeat, and bad options are
//! errors.

use crate::common::{advlab, fails, mnist_dir, round_trip, script, values};
use advlab::data::{load_mnist_like, Which};
use advlab::eval::accuracy;
use advlab::nn::{save_model, Arch, IbpPrior, Lwta, Model};
use advlab::train::{fit, FitParams};
use candle_core::Device;
use predicates::str::contains;

fn ibp_mlp(hidden: usize) -> Arch {
    let lwta = Lwta {
        ibp: Some(IbpPrior::default()),
        ..Lwta::default()
    };
    Arch::lwta_mlp(vec![784, hidden, 10], lwta).unwrap()
}

/// Pixels within two of the image's edge: blank in every MNIST image.
fn is_border(j: usize) -> bool {
    let (r, c) = (j / 28, j % 28);
    !(2..26).contains(&r) || !(2..26).contains(&c)
}

#[test]
fn ibp_prior_keeps_the_first_blocks_and_the_connections_the_data_need() {
    let Some(dir) = mnist_dir() else { return };
    let data = load_mnist_like(Which::Mnist, Some(&dir), &Device::Cpu).unwrap();
    let train = data.train.take(10000).unwrap();
    let test = data.test.take(1000).unwrap();
    let model = Model::new(ibp_mlp(64), &Device::Cpu, 1).unwrap();
    let fresh = model.ibp_usage().unwrap();
    assert_eq!(fresh.len(), 1, "one LWTA layer");
    assert_eq!(
        (fresh[0].on, fresh[0].connections),
        (32 * 784, 32 * 784),
        "starts dense"
    );
    let p = FitParams {
        epochs: 8,
        seed: 1,
        ..FitParams::default()
    }
    .check()
    .unwrap();
    let history = fit(&model, &train, &p).unwrap();
    let kl: Vec<f64> = history.iter().map(|e| e.measured["ibp_kl"]).collect();
    assert!(kl[kl.len() - 1] < 0.5 * kl[0], "the KL term falls: {kl:?}");
    let acc = accuracy(&model, &test).unwrap();
    assert!(acc > 0.85, "an IBP LWTA MLP still learns MNIST: {acc}");

    // the posterior utilities of (block, pixel), read back from the checkpoint
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ibp.safetensors");
    save_model(&model, &path, &serde_json::json!({})).unwrap();
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let logit = &tensors["1.ibp_logit"];
    assert_eq!(logit.dims(), &[32, 784]);
    let on = values(logit);
    // the fraction of block k's connections on, from blank border pixels or from the inside
    let frac = |blocks: std::ops::Range<usize>, border: bool| {
        let sel: Vec<f32> = blocks
            .flat_map(|k| (0..784).filter(|&j| is_border(j) == border).map(move |j| k * 784 + j))
            .map(|i| on[i])
            .collect();
        sel.iter().filter(|&&v| v > 0.0).count() as f64 / sel.len() as f64
    };
    let per_block: Vec<String> = (0..32)
        .map(|k| format!("{:.2}/{:.2}", frac(k..k + 1, true), frac(k..k + 1, false)))
        .collect();
    eprintln!("IBP: accuracy {acc}, KL {kl:?}, per block on (blank/inside) {per_block:?}");
    // the sticks: the first blocks are kept whole, later ones are ever less likely
    assert!(frac(0..8, false) > 0.9 && frac(0..8, true) > 0.9, "{per_block:?}");
    assert!(frac(24..32, false) < 0.5, "{per_block:?}");
    // in the later blocks the data keep some informative connections, and no blank one
    assert!(frac(20..32, true) < 0.02, "{per_block:?}");
    assert!(frac(20..32, false) > frac(20..32, true) + 0.03, "{per_block:?}");
    let usage = model.ibp_usage().unwrap()[0];
    assert!(usage.on < usage.connections * 9 / 10, "{usage:?}");

    // the posterior saves and loads: the same passes after the same reseed
    let x = test.images().narrow(0, 0, 64).unwrap();
    let back = round_trip(&model, &path, &x, 3);
    assert_eq!(back.ibp_usage().unwrap(), model.ibp_usage().unwrap());
}

#[test]
fn ibp_training_is_seeded_and_its_kl_has_gradients() {
    let data = advlab::data::synthetic(
        &advlab::data::SyntheticParams {
            train: 256,
            test: 64,
            seed: 1,
        },
        &Device::Cpu,
    )
    .unwrap();
    let dims = data.train.images().dims()[1..].iter().product::<usize>();
    let lwta = Lwta {
        ibp: Some(IbpPrior::default()),
        ..Lwta::default()
    };
    let arch = Arch::lwta_mlp(vec![dims, 16, 10], lwta).unwrap();
    let run = || {
        let m = Model::new(arch.clone(), &Device::Cpu, 7).unwrap();
        let kl = m.ibp_kl().unwrap().expect("an IBP model has a KL term");
        assert!(kl.to_scalar::<f32>().unwrap() > 0.0);
        let grads = kl.backward().unwrap();
        let moved = m.vars().iter().filter(|v| grads.get(v.as_tensor()).is_some()).count();
        assert_eq!(moved, 3, "the KL reaches the logits and both Kumaraswamy parameters");
        let p = FitParams {
            epochs: 2,
            seed: 3,
            ..FitParams::default()
        }
        .check()
        .unwrap();
        let h = fit(&m, &data.train, &p).unwrap();
        m.reseed(5);
        let out: Vec<f32> = values(&m.forward(data.test.images()).unwrap());
        (h.iter().map(|e| e.loss).collect::<Vec<_>>(), out)
    };
    assert_eq!(run(), run(), "same seeds, same losses and predictions");
    // without the prior there is no KL term and no extra parameter
    let plain = Model::new(
        Arch::lwta_mlp(vec![dims, 16, 10], Lwta::default()).unwrap(),
        &Device::Cpu,
        1,
    )
    .unwrap();
    assert!(plain.ibp_kl().unwrap().is_none());
    let with = Model::new(arch.clone(), &Device::Cpu, 1).unwrap();
    assert_eq!(with.param_count(), plain.param_count() + 8 * dims + 2 * 8);
}

#[test]
fn ibp_options_work_from_a_script_and_bad_ones_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "i.rhai",
        r#"
let m = lwta_mlp(#{ layers: [784, 32, 10], ibp: true, seed: 1 });
print(m.arch);
let u = m.ibp_usage();
print(`${u.len()} ${u[0].on} ${u[0].connections} ${u[0].blocks_on} ${u[0].blocks}`);
let c = lwta_cnn(#{ ibp_alpha: 2.0 });
print(c.ibp_usage().len());
print(lwta_mlp(#{ layers: [784, 32, 10] }).ibp_usage().len());
"#,
    );
    advlab()
        .arg("run")
        .arg(&s)
        .assert()
        .success()
        .stdout(contains("IBP prior alpha 5 (temperature 0.67)"))
        .stdout(contains("1 12544 12544 16 16"))
        .stdout(contains("3\n0"));
    for (bad, message) in [
        ("lwta_mlp(#{ layers: [784, 32, 10], ibp_alpha: 0.0 });", "ibp_alpha"),
        (
            "lwta_mlp(#{ layers: [784, 32, 10], ibp_temperature: -1.0 });",
            "ibp_temperature",
        ),
        ("lwta_mlp(#{ layers: [784, 32, 10], ibp: 3 });", "ibp"),
    ] {
        fails(bad, message, "1:");
    }
}
