//! Models: checkpoints, PyTorch names, clone independence, shape errors, the MNIST bar.

use crate::common::{mnist_dir, trained, values};
use advlab::data::{load_mnist_like, Which};
use advlab::eval::{accuracy, predict};
use advlab::nn::{load_model, save_model, Arch, Model};
use advlab::train::{fit, FitParams};
use candle_core::Device;

#[test]
fn save_then_load_gives_identical_predictions_and_torch_names() {
    let (model, data) = trained();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.safetensors");
    save_model(model, &path, &serde_json::json!({ "seed": 3 })).unwrap();
    let again = load_model(&path, &Device::Cpu).unwrap();
    assert_eq!(again.arch(), model.arch());
    let (a, b) = (
        predict(model, &data.test).unwrap(),
        predict(&again, &data.test).unwrap(),
    );
    assert_eq!(a.to_vec1::<u32>().unwrap(), b.to_vec1::<u32>().unwrap());
    let logits_a = values(&model.forward(data.test.images()).unwrap());
    let logits_b = values(&again.forward(data.test.images()).unwrap());
    assert_eq!(logits_a, logits_b);
    // the tensor names and shapes of nn.Sequential(Flatten, Linear, ReLU, Linear)
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<(String, Vec<usize>)> = st.tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("1.bias".into(), vec![64]),
            ("1.weight".into(), vec![64, 784]),
            ("3.bias".into(), vec![10]),
            ("3.weight".into(), vec![10, 64])
        ]
    );
}

#[test]
fn cnn_parameters_follow_torch_sequential_indices() {
    let m = Model::new(Arch::cnn(), &Device::Cpu, 0).unwrap();
    let names: Vec<(&str, Vec<usize>)> = m.named_params().map(|(n, t)| (n, t.dims().to_vec())).collect();
    assert_eq!(
        names,
        vec![
            ("0.weight", vec![32, 1, 3, 3]),
            ("0.bias", vec![32]),
            ("3.weight", vec![64, 32, 3, 3]),
            ("3.bias", vec![64]),
            ("7.weight", vec![128, 3136]),
            ("7.bias", vec![128]),
            ("9.weight", vec![10, 128]),
            ("9.bias", vec![10]),
        ]
    );
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load_model(&tmp.path().join("none.safetensors"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
    let p = tmp.path().join("junk.safetensors");
    std::fs::write(&p, b"not a checkpoint").unwrap();
    assert!(load_model(&p, &Device::Cpu)
        .unwrap_err()
        .to_string()
        .contains("not a safetensors file"));
    let plain = tmp.path().join("plain.safetensors");
    let t = candle_core::Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("w".to_string(), t)]), &plain).unwrap();
    assert!(load_model(&plain, &Device::Cpu)
        .unwrap_err()
        .to_string()
        .contains("not saved by advlab"));
}

#[test]
fn clone_is_independent_and_training_is_deterministic() {
    let (model, data) = trained();
    let copy = model.deep_clone().unwrap();
    let before = values(&model.forward(data.test.images()).unwrap());
    let p = FitParams {
        seed: 5,
        ..FitParams::default()
    }
    .check()
    .unwrap();
    fit(&copy, &data.train.take(500).unwrap(), &p).unwrap();
    assert_eq!(
        before,
        values(&model.forward(data.test.images()).unwrap()),
        "training the clone changed the original"
    );
    // the same init seed and fit seed give the same weights
    let (a, b) = (model.deep_clone().unwrap(), model.deep_clone().unwrap());
    for m in [&a, &b] {
        fit(m, &data.train.take(500).unwrap(), &p).unwrap();
    }
    assert_eq!(
        values(&a.forward(data.test.images()).unwrap()),
        values(&b.forward(data.test.images()).unwrap())
    );
    let sgd = FitParams {
        optimizer: "sgd".into(),
        lr: 0.05,
        seed: 5,
        ..FitParams::default()
    }
    .check()
    .unwrap();
    let c = Model::new(Arch::mlp(vec![784, 32, 10]).unwrap(), &Device::Cpu, 1).unwrap();
    let hist = fit(&c, &data.train, &sgd).unwrap();
    assert!(
        hist[0].loss < 2.0 && accuracy(&c, &data.test).unwrap() > 0.5,
        "sgd did not learn: {hist:?}"
    );
}

#[test]
fn a_model_of_the_wrong_input_size_is_a_shape_error() {
    let (_, data) = trained();
    let m = Model::new(Arch::mlp(vec![100, 10]).unwrap(), &Device::Cpu, 0).unwrap();
    let e = accuracy(&m, &data.test).unwrap_err().to_string();
    assert!(
        e.contains("takes 100 input features") && e.contains("1×28×28 = 784"),
        "{e}"
    );
    assert!(Arch::mlp(vec![784]).is_err());
    assert!(Arch::mlp(vec![784, 0, 10]).is_err());
}

#[test]
fn mnist_mlp_reaches_97_percent_in_three_epochs() {
    let Some(dir) = mnist_dir() else { return };
    let data = load_mnist_like(Which::Mnist, Some(&dir), &Device::Cpu).unwrap();
    let model = Model::new(Arch::mlp(vec![784, 256, 256, 10]).unwrap(), &Device::Cpu, 1).unwrap();
    let p = FitParams {
        epochs: 3,
        batch_size: 128,
        lr: 1e-3,
        seed: 1,
        ..FitParams::default()
    }
    .check()
    .unwrap();
    fit(&model, &data.train, &p).unwrap();
    let acc = accuracy(&model, &data.test).unwrap();
    eprintln!("MNIST MLP 784-256-256-10, 3 epochs: test accuracy {acc:.4}");
    assert!(acc >= 0.97, "test accuracy {acc}");
}
