//! Every default a function's doc line states (what `advlab functions`, the REPL and README
//! show) is the one the library's params type holds: a change of a default in the code fails
//! here until the doc says the same.

use advlab::attack::{CwL2Params, DeepFoolParams, FgsmParams, NoiseParams, PgdParams, UniversalParams};
use advlab::cluster::{AgglomerativeParams, DbscanParams, KMeansParams};
use advlab::defence::{AeFitParams, AutoencoderKind, BitDepth, Downsample, MedianSmoothing, PcaChoice};
use advlab::nn::{CnnParams, IbpPrior, Layer, Lwta, ResnetParams};
use advlab::reduce::TsneParams;
use advlab::train::{FitParams, GuardParams, LabelSmoothingParams, MixedParams, PgdTrainingParams, TradesParams};

/// The doc line of the function whose signature is `sig`.
fn doc(sig: &str) -> &'static str {
    advlab::script::function_docs()
        .into_iter()
        .find(|d| d.sig == sig)
        .unwrap_or_else(|| panic!("no function {sig}"))
        .doc
}

/// The default the doc of `sig` gives for `key`: the text in `key (…)` up to the first `,`
/// `:` `;` `)` or space outside brackets.
fn documented(sig: &str, key: &str) -> String {
    let d = doc(sig);
    let at = d
        .match_indices(&format!("{key} ("))
        .find(|(i, _)| *i == 0 || !d[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .unwrap_or_else(|| panic!("{sig}: the doc does not state the default of `{key}`: {d}"))
        .0;
    let rest = &d[at + key.len() + 2..];
    let mut depth = 0;
    let end = rest
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            depth == 0 && matches!(c, ',' | ':' | ';' | ')' | ' ')
        })
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].to_string()
}

/// `key`'s documented default equals `value` (numbers compared as numbers).
fn says(sig: &str, key: &str, value: impl ToString) {
    let (doc, want) = (documented(sig, key), value.to_string());
    let same = match (doc.parse::<f64>(), want.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => doc.replace(' ', "") == want.replace(' ', ""),
    };
    assert!(same, "{sig}: the doc says {key} ({doc}) but the default is {want}");
}

#[test]
fn documented_defaults_are_the_params_defaults() {
    let fgsm = FgsmParams::new(0.1);
    for key in ["eot", "batch_size"] {
        let v = if key == "eot" { fgsm.eot } else { fgsm.batch_size };
        says("fgsm(opts: Map) -> Attack", key, v);
    }
    let bim = PgdParams::bim(0.1);
    says("bim(opts: Map) -> Attack", "steps", bim.steps);
    says("bim(opts: Map) -> Attack", "keep_best", bim.keep_best);
    says("bim(opts: Map) -> Attack", "eot", bim.eot);
    says("bim(opts: Map) -> Attack", "batch_size", bim.batch_size);
    let pgd = PgdParams::new(0.1);
    let sig = "pgd(opts: Map) -> Attack";
    says(sig, "steps", pgd.steps);
    says(sig, "random_start", pgd.random_start);
    says(sig, "restarts", pgd.restarts);
    says(sig, "keep_best", pgd.keep_best);
    says(sig, "eot", pgd.eot);
    says(sig, "batch_size", pgd.batch_size);
    let cw = CwL2Params::default();
    let sig = "cw_l2(opts: Map) -> Attack";
    says(sig, "c", cw.c);
    says(sig, "kappa", cw.kappa);
    says(sig, "steps", cw.steps);
    says(sig, "lr", cw.lr);
    says(sig, "binary_search_steps", cw.binary_search_steps);
    says(sig, "abort_early", cw.abort_early);
    says(sig, "batch_size", cw.batch_size);
    let df = DeepFoolParams::default();
    let sig = "deepfool(opts: Map) -> Attack";
    says(sig, "steps", df.steps);
    says(sig, "overshoot", df.overshoot);
    says(sig, "num_classes", df.num_classes);
    says(sig, "batch_size", df.batch_size);
    says(
        "noise(opts: Map) -> Attack",
        "batch_size",
        NoiseParams::new(0.1).batch_size,
    );
    let u = UniversalParams::new(0.1);
    let sig = "universal(opts: Map) -> UniversalSearch";
    says(sig, "max_iters", u.max_iters);
    says(sig, "fooling_rate", u.fooling_rate);
    says(sig, "overshoot", u.overshoot);
    says(sig, "deepfool_steps", u.deepfool_steps);
    says(sig, "num_classes", u.num_classes);
    says(sig, "batch_size", u.batch_size);

    let sig = "pgd_training(opts: Map) -> Recipe";
    says(sig, "steps", PgdTrainingParams::new(0.1).steps);
    let g = GuardParams::default();
    let sig = "fast_fgsm_training(opts: Map) -> Recipe";
    says(sig, "guard_samples", g.samples);
    says(sig, "guard_steps", g.steps);
    says(sig, "guard_drop", g.drop);
    says(sig, "stop_on_overfit", g.stop);
    let t = TradesParams::new(0.1);
    says("trades(opts: Map) -> Recipe", "beta", t.beta);
    says("trades(opts: Map) -> Recipe", "steps", t.steps);
    says("mixed_training(opts: Map) -> Recipe", "p", MixedParams::new(vec![]).p);
    says(
        "label_smoothing(opts: Map) -> Recipe",
        "amount",
        LabelSmoothingParams::default().amount,
    );

    let km = KMeansParams::new(3);
    let sig = "kmeans(opts: Map) -> Clusterer";
    says(sig, "n_init", km.n_init);
    says(sig, "max_iter", km.max_iter);
    says(sig, "tol", km.tol);
    says(
        "dbscan(opts: Map) -> Clusterer",
        "min_points",
        DbscanParams::new(1.0).min_points,
    );
    let ag = AgglomerativeParams::new(3);
    says(
        "agglomerative(opts: Map) -> Clusterer",
        "linkage",
        format!("\"{:?}\"", ag.linkage).to_lowercase(),
    );
    let ts = TsneParams::default();
    let sig = "tsne(opts: Map) -> Reducer";
    says(sig, "perplexity", ts.perplexity);
    says(sig, "iterations", ts.iterations);
    says(sig, "theta", ts.theta);

    let cnn = CnnParams::default();
    says("cnn(opts: Map) -> Model", "input", format!("{:?}", cnn.input));
    says("cnn(opts: Map) -> Model", "classes", cnn.classes);
    let r = ResnetParams::default();
    let sig = "resnet(opts: Map) -> Model";
    says(sig, "input", format!("{:?}", r.input));
    says(sig, "width", r.width);
    says(sig, "blocks", format!("{:?}", r.blocks));
    says(sig, "classes", r.classes);
    let l = Lwta::default();
    let ibp = IbpPrior::default();
    for sig in ["lwta_mlp(opts: Map) -> Model", "lwta_cnn(opts: Map) -> Model"] {
        says(sig, "units_per_block", l.units_per_block);
        says(sig, "temperature", l.temperature);
        says(sig, "passes", l.passes);
        says(sig, "ibp", l.ibp.is_some());
        says(sig, "ibp_alpha", ibp.alpha);
        says(sig, "ibp_temperature", ibp.temperature);
    }
    says("lwta_cnn(opts: Map) -> Model", "input", format!("{:?}", cnn.input));
    says("lwta_cnn(opts: Map) -> Model", "classes", cnn.classes);
    says("lwta(opts: Map) -> Layer", "units", l.units_per_block);
    says("lwta(opts: Map) -> Layer", "temperature", l.temperature);
    let Layer::Conv2d { stride, padding, .. } = Layer::conv2d(1, 1) else {
        panic!("conv2d builds a convolution")
    };
    says("trades_small_cnn(opts: Map) -> Model", "drop", advlab::nn::TRADES_DROP);
    assert!(doc("leaky_relu() -> Layer").contains(&format!("LeakyReLU({})", advlab::nn::LEAKY_SLOPE)));
    says(
        "random_crop(opts: Map) -> Augment",
        "padding",
        advlab::data::Augment::DEFAULT_PADDING,
    );
    says(
        "conv2d(opts: Map) -> Layer",
        "bias",
        !advlab::nn::Weighted::default().no_bias,
    );
    says("conv2d(opts: Map) -> Layer", "stride", stride);
    says("conv2d(opts: Map) -> Layer", "padding", padding);

    let sig = "pca_projection(opts: Map) -> Transform";
    says(sig, "variance", PcaChoice::DEFAULT_VARIANCE);
    says(
        "downsample(opts: Map) -> Transform",
        "`factor`",
        Downsample::DEFAULT_FACTOR,
    );
    says("bit_depth(opts: Map) -> Transform", "bpda", BitDepth::DEFAULT_BPDA);
    says(
        "median_smoothing(opts: Map) -> Transform",
        "size",
        MedianSmoothing::DEFAULT_SIZE,
    );
    says(
        "median_smoothing(opts: Map) -> Transform",
        "bpda",
        MedianSmoothing::DEFAULT_BPDA,
    );
    let sig = "denoising_autoencoder(opts: Map) -> Transform";
    says(sig, "hidden", format!("{:?}", AutoencoderKind::DEFAULT_HIDDEN));
    says(sig, "input", format!("{:?}", AutoencoderKind::DEFAULT_INPUT));
    let sig = "conv_autoencoder(opts: Map) -> Transform";
    says(sig, "channels", format!("{:?}", AutoencoderKind::DEFAULT_CHANNELS));
    says(sig, "input", format!("{:?}", AutoencoderKind::DEFAULT_INPUT));

    // fit's defaults are written out in its short form's doc
    let f = FitParams::default();
    let sig = "Model.fit(data: Dataset, opts: Map) -> Map";
    says(sig, "momentum", f.momentum);
    says(sig, "nesterov", f.nesterov);
    says(sig, "weight_decay", f.weight_decay);
    says(sig, "gamma", f.gamma);
    let d = doc("Model.fit(data: Dataset) -> Map");
    for part in [
        format!("{} epoch", f.epochs),
        format!("batch {}", f.batch_size),
        format!("lr {}", f.lr),
    ] {
        assert!(d.contains(&part), "Model.fit: the doc misses `{part}`: {d}");
    }
    let ae = AeFitParams::default();
    let sig = "Transform.fit(data: Dataset, opts: Map) -> Map";
    says(sig, "epochs", ae.epochs);
    says(sig, "batch_size", ae.batch_size);
    says(sig, "lr", ae.lr);
    says(sig, "noise_std", ae.noise_std);
    let sy = advlab::data::SyntheticParams::default();
    let sig = "synthetic(opts: Map) -> Splits";
    says(sig, "train", sy.train);
    says(sig, "test", sy.test);
    says(sig, "seed", sy.seed);
    let w = advlab::nn::WideResnetParams::default();
    let sig = "wide_resnet(opts: Map) -> Model";
    says(sig, "depth", w.depth);
    says(sig, "widen", w.widen);
    says(sig, "classes", w.classes);
    says(sig, "drop", w.drop);
    let sig = "batch_norm(opts: Map) -> Layer";
    says(sig, "eps", advlab::nn::BN_EPS);
    says(sig, "momentum", advlab::nn::BN_MOMENTUM);
    says(sig, "affine", true);
    says(
        "image_folder(path: String, opts: Map) -> Splits",
        "split",
        advlab::data::FolderParams::DEFAULT_SPLIT,
    );
    let fit = "Model.fit(data: Dataset, opts: Map) -> Map";
    says(fit, "eval_every", 1);
    assert_eq!(
        documented(fit, "craft_mode"),
        format!("\"{}\"", FitParams::default().craft_mode)
    );
    says("preact_block(opts: Map) -> Layer", "stride", 1);
    says(
        "preact_resnet18(opts: Map) -> Model",
        "classes",
        advlab::data::CIFAR10_CLASSES.len(),
    );
}

#[test]
fn the_parser_reads_what_the_docs_write() {
    assert_eq!(documented("pgd(opts: Map) -> Attack", "steps"), "10");
    assert_eq!(
        documented("resnet(opts: Map) -> Model", "blocks"),
        "[1,1,1]".replace(',', ", ")
    );
    assert_eq!(documented("kmeans(opts: Map) -> Clusterer", "tol"), "1e-4");
}
