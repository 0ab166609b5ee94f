//! Every option key of every function that takes an options map, in one table. `Opts::new`
//! checks a map against its function's entry when the script runs; `advlab check` checks each
//! literal map a script passes to a call against the entries under that call's name before it
//! runs. A key is added here, once, or neither knows it.

/// The option keys one function accepts.
pub(crate) struct Keys {
    /// The name the script calls it by (the name errors use).
    pub func: &'static str,
    pub keys: &'static [&'static str],
    /// Any other key is the script's own (`attack`'s state): only the run checks the known ones.
    pub open: bool,
}

impl Keys {
    const fn of(func: &'static str, keys: &'static [&'static str]) -> Self {
        Self {
            func,
            keys,
            open: false,
        }
    }

    const fn open(func: &'static str, keys: &'static [&'static str]) -> Self {
        Self { func, keys, open: true }
    }
}

pub(crate) const FGSM: Keys = Keys::of("fgsm", &["eps", "target", "seed", "batch_size", "eot"]);
pub(crate) const BIM: Keys = Keys::of(
    "bim",
    &[
        "eps",
        "steps",
        "alpha",
        "target",
        "seed",
        "batch_size",
        "keep_best",
        "eot",
    ],
);
pub(crate) const PGD: Keys = Keys::of(
    "pgd",
    &[
        "eps",
        "norm",
        "steps",
        "alpha",
        "random_start",
        "restarts",
        "target",
        "seed",
        "batch_size",
        "keep_best",
        "eot",
    ],
);
pub(crate) const APGD: Keys = Keys::of(
    "apgd",
    &[
        "eps",
        "norm",
        "loss",
        "steps",
        "restarts",
        "rho",
        "seed",
        "eot",
        "batch_size",
    ],
);
pub(crate) const APGD_T: Keys = Keys::of(
    "apgd_t",
    &[
        "eps",
        "norm",
        "n_target_classes",
        "steps",
        "restarts",
        "rho",
        "seed",
        "eot",
        "batch_size",
    ],
);
pub(crate) const SQUARE: Keys = Keys::of(
    "square",
    &["eps", "norm", "queries", "p_init", "restarts", "seed", "batch_size"],
);
pub(crate) const FAB_T: Keys = Keys::of(
    "fab_t",
    &[
        "eps",
        "norm",
        "steps",
        "restarts",
        "n_target_classes",
        "alpha_max",
        "eta",
        "beta",
        "seed",
        "batch_size",
    ],
);
pub(crate) const CW_L2: Keys = Keys::of(
    "cw_l2",
    &[
        "c",
        "kappa",
        "steps",
        "lr",
        "binary_search_steps",
        "abort_early",
        "target",
        "seed",
        "batch_size",
    ],
);
pub(crate) const DEEPFOOL: Keys = Keys::of("deepfool", &["steps", "overshoot", "num_classes", "batch_size"]);
pub(crate) const NOISE: Keys = Keys::of("noise", &["eps", "kind", "norm", "seed", "batch_size"]);
pub(crate) const UNIVERSAL: Keys = Keys::of(
    "universal",
    &[
        "eps",
        "norm",
        "max_iters",
        "fooling_rate",
        "overshoot",
        "deepfool_steps",
        "num_classes",
        "batch_size",
        "seed",
    ],
);
pub(crate) const KMEANS: Keys = Keys::of("kmeans", &["k", "n_init", "max_iter", "tol", "seed"]);
pub(crate) const DBSCAN: Keys = Keys::of("dbscan", &["eps", "min_points"]);
pub(crate) const AGGLOMERATIVE: Keys = Keys::of("agglomerative", &["k", "linkage"]);
pub(crate) const IMAGE_FOLDER: Keys = Keys::of("image_folder", &["size", "split", "seed"]);
pub(crate) const SYNTHETIC: Keys = Keys::of("synthetic", &["train", "test", "seed"]);
pub(crate) const CIFAR10: Keys = Keys::of("cifar10", &["path", "train", "test"]);
pub(crate) const DENOISING_AUTOENCODER: Keys = Keys::of("denoising_autoencoder", &["hidden", "input", "seed"]);
pub(crate) const CONV_AUTOENCODER: Keys = Keys::of("conv_autoencoder", &["channels", "input", "seed"]);
pub(crate) const FIT_TRANSFORM: Keys = Keys::of("fit", &["epochs", "batch_size", "lr", "noise_std", "seed"]);
pub(crate) const ROBUSTNESS_CHECKS: Keys = Keys::of(
    "robustness_checks",
    &[
        "eps",
        "steps",
        "eot",
        "eot_check",
        "large_eps",
        "samples",
        "tolerance",
        "seed",
        "surrogate",
        "train",
    ],
);
pub(crate) const PCA_PROJECTION: Keys = Keys::of("pca_projection", &["data", "variance", "components"]);
pub(crate) const GAUSSIAN_NOISE: Keys = Keys::of("gaussian_noise", &["std", "seed"]);
pub(crate) const UNIFORM_NOISE: Keys = Keys::of("uniform_noise", &["magnitude", "seed"]);
pub(crate) const DOWNSAMPLE: Keys = Keys::of("downsample", &["factor"]);
pub(crate) const BIT_DEPTH: Keys = Keys::of("bit_depth", &["bits", "bpda"]);
pub(crate) const MEDIAN_SMOOTHING: Keys = Keys::of("median_smoothing", &["size", "bpda"]);
pub(crate) const AUTOATTACK: Keys = Keys::of("autoattack", &["eps", "norm", "version", "seed", "batch_size"]);
pub(crate) const SILHOUETTE: Keys = Keys::of("silhouette", &["max_points", "seed"]);
pub(crate) const MEAN_IMAGES: Keys = Keys::of("mean_images", &["title", "cols"]);
pub(crate) const SAMPLES_GRID: Keys = Keys::of("samples_grid", &["n", "seed", "title", "cols"]);
pub(crate) const INERTIA_CHART: Keys = Keys::of("inertia_chart", &["k_min", "k_max", "n_init", "seed", "title"]);
pub(crate) const ADVERSARIAL_GRID: Keys = Keys::of("adversarial_grid", &["n", "title", "successful_only"]);
pub(crate) const CONFIDENCE_HISTOGRAM: Keys = Keys::of("confidence_histogram", &["bins", "title"]);
pub(crate) const HEATMAP_CHART: Keys = Keys::of("heatmap_chart", &["x", "y", "value", "title", "x_label", "y_label"]);
pub(crate) const IMAGE_CHART: Keys = Keys::of("image_chart", &["title", "signed", "n", "cols"]);
pub(crate) const LINE_CHART: Keys = Keys::of("line_chart", &["x", "y", "err", "title", "x_label", "y_label"]);
pub(crate) const BAR_CHART: Keys = Keys::of("bar_chart", &["x", "y", "err", "title", "y_label"]);
pub(crate) const SCATTER_CHART: Keys = Keys::of("scatter_chart", &["title", "highlight"]);
pub(crate) const AGGREGATE: Keys = Keys::of("aggregate", &["by", "values"]);
pub(crate) const SEQUENTIAL: Keys = Keys::of("sequential", &["input", "seed", "noise_injection"]);
pub(crate) const CONV2D: Keys = Keys::of("conv2d", &["out", "kernel", "stride", "padding", "bias"]);
pub(crate) const BATCH_NORM: Keys = Keys::of("batch_norm", &["eps", "momentum", "affine"]);
pub(crate) const PREACT_BLOCK: Keys = Keys::of("preact_block", &["out", "stride"]);
pub(crate) const PREACT_RESNET18: Keys = Keys::of("preact_resnet18", &["classes", "seed"]);
pub(crate) const WIDE_RESNET: Keys = Keys::of("wide_resnet", &["depth", "widen", "classes", "drop", "seed"]);
pub(crate) const LWTA: Keys = Keys::of("lwta", &["units", "temperature"]);
pub(crate) const MADRY_MNIST_CNN: Keys = Keys::of("madry_mnist_cnn", &["seed"]);
pub(crate) const TRADES_SMALL_CNN: Keys = Keys::of("trades_small_cnn", &["drop", "seed"]);
pub(crate) const CNN: Keys = Keys::of("cnn", &["input", "classes", "noise_injection", "seed"]);
pub(crate) const RESNET: Keys = Keys::of(
    "resnet",
    &["input", "width", "blocks", "classes", "noise_injection", "seed"],
);
pub(crate) const LWTA_MLP: Keys = Keys::of(
    "lwta_mlp",
    &[
        "layers",
        "seed",
        "units_per_block",
        "temperature",
        "passes",
        "ibp",
        "ibp_alpha",
        "ibp_temperature",
    ],
);
pub(crate) const LWTA_CNN: Keys = Keys::of(
    "lwta_cnn",
    &[
        "input",
        "classes",
        "seed",
        "units_per_block",
        "temperature",
        "passes",
        "ibp",
        "ibp_alpha",
        "ibp_temperature",
    ],
);
pub(crate) const FIT: Keys = Keys::of(
    "fit",
    &[
        "epochs",
        "batch_size",
        "lr",
        "optimizer",
        "momentum",
        "seed",
        "lr_schedule",
        "defence",
        "nesterov",
        "weight_decay",
        "milestones",
        "gamma",
        "piecewise",
        "augment",
        "craft_mode",
        "clip_grad_norm",
        "eval_every",
        "eval_data",
        "eval_attack",
    ],
);
pub(crate) const MLP: Keys = Keys::of("mlp", &["noise_injection", "seed"]);
pub(crate) const RANDOM_CROP: Keys = Keys::of("random_crop", &["padding"]);
pub(crate) const PGD_TRAINING: Keys = Keys::of("pgd_training", &["eps", "steps", "alpha", "seed"]);
pub(crate) const FAST_FGSM_TRAINING: Keys = Keys::of(
    "fast_fgsm_training",
    &[
        "eps",
        "alpha",
        "seed",
        "guard_samples",
        "guard_steps",
        "guard_drop",
        "stop_on_overfit",
    ],
);
pub(crate) const TRADES: Keys = Keys::of("trades", &["eps", "beta", "steps", "alpha", "seed"]);
pub(crate) const MIXED_TRAINING: Keys = Keys::of("mixed_training", &["attacks", "p", "seed"]);
pub(crate) const CLUSTER_TRAINING: Keys = Keys::of("cluster_training", &["attack", "k", "dims", "augment", "seed"]);
pub(crate) const VAT: Keys = Keys::of("vat", &["eps", "xi", "power_iterations", "alpha", "use_labels", "seed"]);
pub(crate) const LOGIT_PAIRING: Keys = Keys::of("logit_pairing", &["attack", "weight", "clean_pairing", "seed"]);
pub(crate) const LABEL_SMOOTHING: Keys = Keys::of("label_smoothing", &["amount"]);
pub(crate) const PCA: Keys = Keys::of("pca", &["dims"]);
pub(crate) const TSNE: Keys = Keys::of("tsne", &["dims", "perplexity", "iterations", "theta", "seed"]);
pub(crate) const LOSS: Keys = Keys::of("loss", &["loss", "target", "reference", "reduction"]);
pub(crate) const INPUT_GRADIENT: Keys =
    Keys::of("input_gradient", &["loss", "target", "reference", "reduction", "eot"]);
pub(crate) const ATTACK: Keys = Keys::open(
    "attack",
    &[
        "name",
        "eps",
        "norm",
        "steps",
        "seed",
        "batch_size",
        "keep_best",
        "restarts",
        "init",
        "step",
    ],
);
pub(crate) const RANDOM_START: Keys = Keys::of("random_start", &["eps", "norm", "seed"]);

pub(crate) const ALL: &[&Keys] = &[
    &FGSM,
    &BIM,
    &PGD,
    &APGD,
    &APGD_T,
    &SQUARE,
    &FAB_T,
    &CW_L2,
    &DEEPFOOL,
    &NOISE,
    &UNIVERSAL,
    &KMEANS,
    &DBSCAN,
    &AGGLOMERATIVE,
    &IMAGE_FOLDER,
    &SYNTHETIC,
    &CIFAR10,
    &DENOISING_AUTOENCODER,
    &CONV_AUTOENCODER,
    &FIT_TRANSFORM,
    &ROBUSTNESS_CHECKS,
    &PCA_PROJECTION,
    &GAUSSIAN_NOISE,
    &UNIFORM_NOISE,
    &DOWNSAMPLE,
    &BIT_DEPTH,
    &MEDIAN_SMOOTHING,
    &AUTOATTACK,
    &SILHOUETTE,
    &MEAN_IMAGES,
    &SAMPLES_GRID,
    &INERTIA_CHART,
    &ADVERSARIAL_GRID,
    &CONFIDENCE_HISTOGRAM,
    &HEATMAP_CHART,
    &IMAGE_CHART,
    &LINE_CHART,
    &BAR_CHART,
    &SCATTER_CHART,
    &AGGREGATE,
    &SEQUENTIAL,
    &CONV2D,
    &BATCH_NORM,
    &PREACT_BLOCK,
    &PREACT_RESNET18,
    &WIDE_RESNET,
    &LWTA,
    &MADRY_MNIST_CNN,
    &TRADES_SMALL_CNN,
    &CNN,
    &RESNET,
    &LWTA_MLP,
    &LWTA_CNN,
    &FIT,
    &MLP,
    &RANDOM_CROP,
    &PGD_TRAINING,
    &FAST_FGSM_TRAINING,
    &TRADES,
    &MIXED_TRAINING,
    &CLUSTER_TRAINING,
    &VAT,
    &LOGIT_PAIRING,
    &LABEL_SMOOTHING,
    &PCA,
    &TSNE,
    &LOSS,
    &INPUT_GRADIENT,
    &ATTACK,
    &RANDOM_START,
];

/// The keys a literal map given to a call of `name` may hold (a union when several functions or
/// methods share the name, such as `fit`), or `None` when nothing is known of it or its maps are
/// open.
pub(crate) fn known(name: &str) -> Option<Vec<&'static str>> {
    let entries: Vec<&Keys> = ALL.iter().copied().filter(|k| k.func == name).collect();
    if entries.is_empty() || entries.iter().any(|k| k.open) {
        return None;
    }
    let mut keys: Vec<&'static str> = entries.iter().flat_map(|k| k.keys.iter().copied()).collect();
    keys.sort_unstable();
    keys.dedup();
    Some(keys)
}

/// The message for an option `key` that is not among `allowed`: the nearest one when it is
/// near enough to be a typo, and all of them.
pub(crate) fn unknown(key: &str, allowed: &[&str]) -> String {
    let near = allowed
        .iter()
        .map(|a| (strsim::levenshtein(key, a), a))
        .filter(|(d, _)| *d <= 2)
        .min();
    let hint = near.map(|(_, a)| format!(" (did you mean `{a}`?)")).unwrap_or_default();
    format!(
        "unknown option `{key}`{hint}; valid options are: {}",
        allowed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::ALL;

    /// Every table above is in ALL, so `advlab check` sees it.
    #[test]
    fn every_table_is_listed() {
        let source = include_str!("keys.rs");
        let declared = source.matches(&[": Keys", " ="].concat()).count();
        assert_eq!(declared, ALL.len());
    }

    /// No table lists a key twice.
    #[test]
    fn keys_are_unique() {
        for k in ALL {
            let mut keys = k.keys.to_vec();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), k.keys.len(), "{}", k.func);
        }
    }
}
