//! Networks as layer lists: the presets are lists (the same weights and logits as the same list
//! written by hand), shapes are inferred and checked with the layer named, scripts build
//! networks with `sequential([...])`, and a sequential network saves, loads and prints its
//! PyTorch module.

use crate::common::{fails, max_abs_diff, round_trip, run_in, script, values};
use advlab::nn::{Arch, Input, Layer, Model, NoiseSite, Weighted};
use candle_core::{Device, Tensor};
use predicates::str::contains;

fn conv(out: usize, kernel: usize, padding: usize) -> Layer {
    Layer::Conv2d {
        out,
        kernel,
        stride: 1,
        padding,
        opts: Weighted::default(),
    }
}

/// The small CNN written out as a list.
fn cnn_list(classes: usize) -> Vec<Layer> {
    vec![
        conv(32, 3, 1),
        Layer::Relu,
        Layer::MaxPool { size: 2 },
        conv(64, 3, 1),
        Layer::Relu,
        Layer::MaxPool { size: 2 },
        Layer::Flatten,
        Layer::linear(128),
        Layer::Relu,
        Layer::linear(classes),
    ]
}

fn images(n: usize, c: usize, h: usize, w: usize) -> Tensor {
    let v: Vec<f32> = (0..n * c * h * w).map(|i| ((i as f32) * 0.173).sin().abs()).collect();
    Tensor::from_vec(v, (n, c, h, w), &Device::Cpu).unwrap()
}

#[test]
fn presets_are_the_layer_lists_they_describe() {
    let x = images(3, 1, 12, 12);
    for site in [None, Some(NoiseSite::Weights), Some(NoiseSite::Activations)] {
        let preset = Model::new(
            Arch::cnn_for([1, 12, 12], 5).unwrap().with_noise_injection(site),
            &Device::Cpu,
            7,
        )
        .unwrap();
        let list = Arch::sequential(Input::Image(1, 12, 12), cnn_list(5))
            .unwrap()
            .with_noise_injection(site);
        assert_eq!(list.layers(), preset.arch().layers(), "{site:?}");
        let by_hand = Model::new(list, &Device::Cpu, 7).unwrap();
        let names = |m: &Model| m.named_params().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&by_hand), names(&preset));
        preset.reseed(3);
        by_hand.reseed(3);
        assert_eq!(
            values(&preset.forward(&x).unwrap()),
            values(&by_hand.forward(&x).unwrap()),
            "{site:?}"
        );
    }
    // the MLP: Flatten, Linear, ReLU, …: PyTorch's positions 1, 3, 5
    let mlp = Model::new(Arch::mlp(vec![144, 20, 10, 4]).unwrap(), &Device::Cpu, 1).unwrap();
    let names: Vec<&str> = mlp.named_params().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    );
    assert_eq!(mlp.arch().layers().len(), 6);
}

#[test]
fn the_fused_convolution_gives_the_unfused_layers_values_and_gradients() {
    // conv → relu → max_pool runs as one op; conv → max_pool → relu (the same function) does not
    let x = images(2, 2, 8, 8);
    let fused = vec![
        conv(4, 3, 1),
        Layer::Relu,
        Layer::MaxPool { size: 2 },
        Layer::Flatten,
        Layer::linear(3),
    ];
    let plain = vec![
        conv(4, 3, 1),
        Layer::MaxPool { size: 2 },
        Layer::Relu,
        Layer::Flatten,
        Layer::linear(3),
    ];
    let a = Model::new(Arch::sequential(Input::Image(2, 8, 8), fused).unwrap(), &Device::Cpu, 4).unwrap();
    let b = Model::new(Arch::sequential(Input::Image(2, 8, 8), plain).unwrap(), &Device::Cpu, 4).unwrap();
    let (ya, yb) = (a.forward_train(&x).unwrap(), b.forward_train(&x).unwrap());
    assert!(max_abs_diff(&ya, &yb) < 1e-5);
    let (ga, gb) = (
        ya.sqr().unwrap().sum_all().unwrap().backward().unwrap(),
        yb.sqr().unwrap().sum_all().unwrap().backward().unwrap(),
    );
    for (va, vb) in a.vars().iter().zip(b.vars()) {
        let (da, db) = (ga.get(va.as_tensor()).unwrap(), gb.get(vb.as_tensor()).unwrap());
        assert!(max_abs_diff(da, db) < 1e-4, "gradient differs");
        assert!(values(da).iter().any(|v| *v != 0.0));
    }
}

#[test]
fn shapes_are_inferred_and_bad_lists_name_the_layer() {
    let arch = Arch::sequential(
        Input::Image(3, 16, 16),
        vec![
            conv(8, 3, 1),
            Layer::Relu,
            Layer::Residual {
                body: vec![conv(8, 3, 1), Layer::Relu, conv(8, 3, 1)],
                shortcut: Vec::new(),
            },
            Layer::Residual {
                body: vec![Layer::Conv2d {
                    out: 16,
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                    opts: Weighted::default(),
                }],
                shortcut: vec![Layer::Conv2d {
                    out: 16,
                    kernel: 1,
                    stride: 2,
                    padding: 0,
                    opts: Weighted::default(),
                }],
            },
            Layer::GlobalAvgPool,
            Layer::linear(10),
        ],
    )
    .unwrap();
    let m = Model::new(arch, &Device::Cpu, 1).unwrap();
    let names: Vec<(&str, Vec<usize>)> = m.named_params().map(|(n, t)| (n, t.dims().to_vec())).collect();
    assert_eq!(
        names.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [
            "0.weight",
            "0.bias",
            "2.body.0.weight",
            "2.body.0.bias",
            "2.body.2.weight",
            "2.body.2.bias",
            "3.body.0.weight",
            "3.body.0.bias",
            "3.shortcut.0.weight",
            "3.shortcut.0.bias",
            "5.weight",
            "5.bias"
        ]
    );
    assert_eq!(names[10].1, vec![10, 16]);
    let y = m.forward(&images(2, 3, 16, 16)).unwrap();
    assert_eq!(y.dims(), [2, 10]);

    let err = |input: Input, layers: Vec<Layer>| Arch::sequential(input, layers).unwrap_err().to_string();
    let e = err(
        Input::Image(1, 28, 28),
        vec![Layer::Flatten, conv(8, 3, 0), Layer::linear(10)],
    );
    assert!(e.contains("layer 1 (conv2d)") && e.contains("784 features"), "{e}");
    let e = err(Input::Image(1, 28, 28), vec![Layer::linear(10)]);
    assert!(e.contains("layer 0 (linear)") && e.contains("flatten()"), "{e}");
    let e = err(
        Input::Image(1, 4, 4),
        vec![conv(2, 7, 0), Layer::Flatten, Layer::linear(2)],
    );
    assert!(e.contains("7×7 kernel does not fit a 4×4"), "{e}");
    let e = err(
        Input::Image(1, 8, 8),
        vec![
            Layer::Residual {
                body: vec![conv(4, 3, 1)],
                shortcut: Vec::new(),
            },
            Layer::Flatten,
            Layer::linear(2),
        ],
    );
    assert!(
        e.contains("layer 0 (residual)") && e.contains("4×8×8") && e.contains("1×8×8"),
        "{e}"
    );
    let e = err(Input::Image(1, 8, 8), vec![conv(4, 3, 1)]);
    assert!(
        e.contains("flat output of at least 2 classes") && e.contains("4×8×8"),
        "{e}"
    );
    let e = err(
        Input::Features(10),
        vec![
            Layer::linear(6),
            Layer::Lwta {
                units: 4,
                temperature: 0.67,
            },
            Layer::linear(2),
        ],
    );
    assert!(e.contains("layer 1 (lwta)") && e.contains("6 channels"), "{e}");
    assert!(err(Input::Features(10), vec![]).contains("at least one layer"));
}

#[test]
fn a_script_builds_trains_saves_and_prints_a_sequential_network() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script(
        tmp.path(),
        "seq.rhai",
        r#"
let d = synthetic(#{ train: 1500, test: 300, seed: 2 });
let m = sequential([conv2d(#{ out: 8, kernel: 3, padding: 1 }), relu(), max_pool(2),
                    residual([conv2d(#{ out: 8, kernel: 3, padding: 1 }), relu()]),
                    flatten(), linear(10)], #{ input: [1, 28, 28], seed: 1 });
print(m.arch);
print(m.torch_module());
m.fit(d.train, #{ epochs: 2 });
let acc = m.accuracy(d.test);
print(`acc=${acc}`);
if acc < 0.5 { throw "did not learn"; }
m.save("out/seq.safetensors");
let back = load_model("out/seq.safetensors");
print(`back=${back.accuracy(d.test)}`);
"#,
    );
    let out = run_in(tmp.path(), &s)
        .success()
        .stdout(contains(
            "sequential(1×28×28 → conv8(3×3, p1)-relu-max_pool2-[conv8(3×3, p1)-relu + identity]-flatten-fc10)",
        ))
        .stdout(contains(
            "nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()), nn.Sequential()), nn.Flatten(), nn.Linear(1568, 10))",
        ))
        .stdout(contains("class Residual(nn.Module)"));
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let grab = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).unwrap().to_string();
    assert_eq!(grab("acc="), grab("back="));

    // the same network through the library round-trips with identical logits
    let arch = advlab::nn::load_model(&tmp.path().join("out/seq.safetensors"), &Device::Cpu)
        .unwrap()
        .arch()
        .clone();
    let m = Model::new(arch, &Device::Cpu, 3).unwrap();
    round_trip(&m, &tmp.path().join("again.safetensors"), &images(2, 1, 28, 28), 1);
}

#[test]
fn script_layer_errors_point_at_the_call() {
    let pre = "let d = synthetic(#{ train: 20, test: 20 });\n";
    fails(
        &format!("{pre}let m = sequential([linear(10)]);"),
        "layer 0 (linear): linear needs a flat input",
        "2:9",
    );
    fails(
        &format!("{pre}let m = sequential([flatten(), 3]);"),
        "element 1 is i64, not a layer",
        "2:9",
    );
    fails(
        &format!("{pre}let l = conv2d(#{{ out: 8 }});"),
        "option `kernel` is required",
        "2:9",
    );
    fails(
        &format!("{pre}let l = linear(0);"),
        "linear: out must be at least 1",
        "2:9",
    );
    fails(
        &format!("{pre}let m = sequential([flatten(), linear(10)], #{{ inputs: [784] }});"),
        "did you mean `input`?",
        "2:48",
    );
    fails(
        &format!("{pre}let m = sequential([flatten(), linear(1)], #{{ input: [784] }});"),
        "at least 2 classes",
        "2:9",
    );
}
