//! Error types of the library: one `Error` for everything that can fail, and one
//! `ParamError` variant per rule that a parameter set is checked against.

use std::path::PathBuf;

/// Result type of the library.
pub type Result<T> = std::result::Result<T, Error>;

/// Every failure of the library. Messages are lower-case sentences that say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter broke one of its rules.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A tensor operation failed inside candle.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// Input of the wrong shape for the model or operation.
    #[error("{0}")]
    Shape(String),
    /// A data set could not be found or read.
    #[error("{0}")]
    Data(String),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// An output file could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    /// A checkpoint is missing a tensor, has a wrong shape or no architecture.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    /// The requested device is not available.
    #[error("{0}")]
    Device(String),
    /// Drawing a chart failed.
    #[error("chart: {0}")]
    Plot(String),
    /// An index or argument outside the valid range.
    #[error("{0}")]
    Invalid(String),
    /// The user interrupted a long call.
    #[error("interrupted")]
    Interrupted,
}

/// One variant per rule a parameter set must follow (checked by the `check()` of each
/// parameter type before any work starts).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("eps must be a finite number >= 0 (got {0})")]
    EpsNegative(f64),
    #[error("alpha (the step size) must be a finite number > 0 (got {0})")]
    AlphaNotPositive(f64),
    #[error("steps must be at least 1 (got 0)")]
    StepsZero,
    #[error("batch_size must be at least 1 (got 0)")]
    BatchSizeZero,
    #[error("epochs must be at least 1 (got 0)")]
    EpochsZero,
    #[error("lr (the learning rate) must be a finite number > 0 (got {0})")]
    LrNotPositive(f64),
    #[error("momentum must be in [0, 1) (got {0})")]
    MomentumOutOfRange(f64),
    #[error("unknown optimizer \"{0}\": use \"adam\", \"adamw\" or \"sgd\"")]
    UnknownOptimizer(String),
    #[error("an mlp needs at least an input and an output size, e.g. mlp([784, 256, 10]) (got {0:?})")]
    MlpTooFewLayers(Vec<usize>),
    #[error("every layer size must be at least 1 (got {0:?})")]
    LayerSizeZero(Vec<usize>),
    #[error("dims must be between 1 and the number of input features ({features}), got {dims}")]
    DimsOutOfRange { dims: usize, features: usize },
    #[error("k must be at least 1 (got 0)")]
    KZero,
    #[error("k = {k} is larger than the number of points ({points})")]
    KTooLarge { k: usize, points: usize },
    #[error("n_init and max_iter must be at least 1")]
    KMeansRuns,
    #[error("tol must be a finite number >= 0 (got {0})")]
    Tolerance(f64),
    #[error("dbscan eps (the neighbourhood radius) must be a finite number > 0 (got {0})")]
    DbscanEps(f64),
    #[error("min_points must be at least 2 (got {0})")]
    MinPoints(usize),
    #[error("unknown linkage \"{0}\": use \"ward\", \"average\", \"complete\" or \"single\"")]
    UnknownLinkage(String),
    #[error("perplexity must be a number in (0, N - 1) for N = {points} points (got {perplexity})")]
    Perplexity { perplexity: f64, points: usize },
    #[error("perplexity must be a finite number > 0 (got {0})")]
    PerplexityNotPositive(f64),
    #[error("dims must be at least 1")]
    PcaDimsZero,
    #[error("t-SNE needs at least 250 iterations, the early-exaggeration phase (got {0})")]
    TsneIterations(usize),
    #[error("theta (the Barnes-Hut opening angle) must be in [0, 1] (got {0})")]
    Theta(f64),
    #[error("unknown norm \"{0}\": use \"linf\" or \"l2\"")]
    UnknownNorm(String),
    #[error("unknown target \"{0}\": use a class number, \"least_likely\" or \"random\"")]
    UnknownTarget(String),
    #[error("target must be a class number >= 0 (got {0})")]
    TargetNegative(i64),
    #[error("c (the weight of the classification term) must be a finite number > 0 (got {0})")]
    CwConst(f64),
    #[error("kappa (the confidence margin) must be a finite number >= 0 (got {0})")]
    Kappa(f64),
    #[error("binary_search_steps must be at least 1 (got 0)")]
    BinarySearchStepsZero,
    #[error("overshoot must be a finite number >= 0 (got {0})")]
    Overshoot(f64),
    #[error("num_classes (the candidate classes DeepFool considers) must be at least 2 (got {0})")]
    CandidateClasses(usize),
    #[error("max_iters must be at least 1 (got 0)")]
    MaxItersZero,
    #[error("fooling_rate (the target fraction of fooled images) must be in (0, 1] (got {0})")]
    FoolingRate(f64),
    #[error("unknown noise kind \"{0}\": use \"uniform\" or \"gaussian\"")]
    UnknownNoise(String),
    #[error("input must be [channels, height, width], each at least 1 (got {0:?})")]
    InputShape(Vec<usize>),
    #[error("the cnn pools twice by 2: the images must be at least 4×4 (got {0}×{1})")]
    CnnInputTooSmall(usize, usize),
    #[error("classes must be at least 2 (got {0})")]
    ClassesTooFew(usize),
    #[error("blocks must list 1 to 4 stages of at least one residual block each, e.g. [1, 1, 1] (got {0:?})")]
    ResnetBlocks(Vec<usize>),
    #[error("width (the channels of the first stage) must be at least 1 (got 0)")]
    ResnetWidthZero,
    #[error("a resnet of {stages} stages halves the resolution {} times: height and width must be divisible by {factor} (got {height}×{width})", stages - 1)]
    ResnetInputNotDivisible {
        height: usize,
        width: usize,
        stages: usize,
        factor: usize,
    },
    #[error("split (the share of an image folder held out for testing) must be in [0, 1) (got {0})")]
    FolderSplit(f64),
    #[error("size must be [C, H, W] with C 1 or 3 and H, W from 1 to 8192 (got {0:?})")]
    FolderSize(Vec<usize>),
    #[error("eval_every must be at least 1 epoch (got 0)")]
    EvalEveryZero,
    #[error("eval_data (the held-out set model selection evaluates on) is empty")]
    EvalDataEmpty,
    #[error("unknown craft_mode \"{0}\": use \"eval\" (running statistics, as attacks and TRADES) or \"train\" (batch statistics, as Wong et al. and Rice et al.)")]
    UnknownCraftMode(String),
    #[error("clip_grad_norm must be a positive number (got {0})")]
    ClipGradNorm(f64),
    #[error("a WideResNet's depth must be 6n + 4 for n ≥ 1 blocks per group, e.g. 16, 28, 34, 70 (got {0})")]
    WideResnetDepth(usize),
    #[error("widen (the WideResNet's widening factor) must be at least 1 (got 0)")]
    WideResnetWidenZero,
    #[error("drop (the WideResNet's dropout between a block's convolutions) must be in [0, 1) (got {0})")]
    WideResnetDrop(f64),
    #[error("unknown noise_injection \"{0}\": use \"weights\" or \"activations\"")]
    UnknownNoiseInjection(String),
    #[error("units_per_block (the units competing in one LWTA block) must be at least 2 (got {0})")]
    UnitsPerBlock(usize),
    #[error("every hidden layer must split into blocks of units_per_block = {units} units (a layer has {size})")]
    LwtaNotDivisible { size: usize, units: usize },
    #[error("temperature (of the Gumbel-softmax relaxation) must be a finite number > 0 (got {0})")]
    Temperature(f64),
    #[error("passes must be at least 1 (got 0)")]
    PassesZero,
    #[error("ibp_alpha (the concentration of the IBP prior) must be a finite number > 0 (got {0})")]
    IbpAlpha(f64),
    #[error("ibp_temperature (of the relaxed IBP utilities) must be a finite number > 0 (got {0})")]
    IbpTemperature(f64),
    #[error("layer {at}: {reason}")]
    Layer { at: String, reason: String },
    #[error("a sequential network needs at least one layer")]
    SequentialEmpty,
    #[error("a classifier must end in a flat output of at least 2 classes, but this one ends in {0}: end it with flatten() and linear(classes)")]
    SequentialOutput(String),
    #[error("passes only applies to stochastic LWTA models (lwta_mlp, lwta_cnn, or a sequential network with an lwta layer)")]
    PassesNotStochastic,
    #[error("the synthetic data set needs train >= 1 and test >= 1 samples (got train {0}, test {1})")]
    SyntheticEmpty(usize, usize),
    #[error("restarts must be at least 1 (got 0)")]
    RestartsZero,
    #[error("an attack's name must be letters, digits and _ (it keys results), got \"{0}\"")]
    AttackName(String),
    #[error("rho must be in (0, 1] (got {0})")]
    Rho(f64),
    #[error("APGD's loss must be \"ce\" or \"dlr\" (got \"{0}\")")]
    ApgdLoss(String),
    #[error("n_target_classes must be at least 1 (got 0)")]
    TargetClassesZero,
    #[error("p_init must be in (0, 1] (got {0})")]
    PInit(f64),
    #[error("alpha_max (FAB's largest weight of the step from the clean image) must be in [0, 1] (got {0})")]
    FabAlphaMax(f64),
    #[error("eta (FAB's overshoot) must be a finite number >= 1 (got {0})")]
    FabEta(f64),
    #[error("beta (FAB's step back towards the clean image) must be in (0, 1] (got {0})")]
    FabBeta(f64),
    #[error("restarts = {0} needs random_start: true (without a random start every run is the same)")]
    RestartsWithoutRandomStart(usize),
    #[error("eps of a training recipe must be in (0, 1], the range of the pixels (got {0})")]
    RecipeEps(f64),
    #[error("beta (the weight of the KL term) must be a finite number >= 0 (got {0})")]
    BetaNegative(f64),
    #[error(
        "eps of vat is the L2 length of the virtual adversarial perturbation and must be a finite number > 0 (got {0})"
    )]
    VatEps(f64),
    #[error("xi (the finite-difference step of vat's power iteration) must be a finite number > 0 (got {0})")]
    VatXi(f64),
    #[error("power_iterations must be at least 1 (got 0)")]
    PowerIterationsZero,
    #[error("alpha (the weight of vat's KL term) must be a finite number >= 0 (got {0})")]
    VatAlpha(f64),
    #[error("weight (of the logit pairing term) must be a finite number >= 0 (got {0})")]
    PairingWeight(f64),
    #[error("logit_pairing needs an attack (adversarial logit pairing), e.g. logit_pairing(#{{ attack: pgd(#{{ eps: 0.3 }}) }}), or clean_pairing: true")]
    PairingNeedsAttack,
    #[error("clean logit pairing pairs clean images with each other: give clean_pairing: true without an attack, or an attack without clean_pairing")]
    PairingAttackAndClean,
    #[error("p (the probability of attacking a batch) must be in [0, 1] (got {0})")]
    AttackProbability(f64),
    #[error("attacks must list at least one attack, e.g. attacks: [pgd(#{{ eps: 0.3 }})]")]
    NoAttacks,
    #[error("amount (of label smoothing) must be in [0, 1) (got {0})")]
    SmoothingAmount(f64),
    #[error("guard_steps must be at least 1 (got 0)")]
    GuardStepsZero,
    #[error("guard_drop (the share of the best held-out PGD accuracy whose loss counts as catastrophic overfitting) must be in (0, 1] (got {0})")]
    GuardDrop(f64),
    #[error("a defence crafts its samples with one recipe, got both {0} and {1}: list one of them (label_smoothing composes with either)")]
    TwoCraftingRecipes(String, String),
    #[error("label_smoothing is listed twice in the defence")]
    SmoothingTwice,
    #[error("unknown lr_schedule \"{0}\": use \"constant\", \"cyclic\", \"cosine\", \"multistep\" or \"piecewise\"")]
    UnknownLrSchedule(String),
    #[error("padding (of random_crop) must be at least 1 (got 0)")]
    CropPaddingZero,
    #[error("nesterov needs optimizer \"sgd\" with momentum > 0")]
    NesterovWithoutMomentum,
    #[error("weight_decay must be a finite number >= 0 (got {0})")]
    WeightDecay(f64),
    #[error("lr_schedule \"multistep\" needs milestones: increasing epochs, e.g. [100, 150] (got {0:?})")]
    Milestones(Vec<usize>),
    #[error("gamma (the multistep factor) must be a finite number > 0 (got {0})")]
    Gamma(f64),
    #[error("lr_schedule \"piecewise\" needs piecewise: #{{ epochs: [...], lrs: [...] }}, at least two points, increasing epochs >= 0 and rates >= 0 (got {0})")]
    Piecewise(String),
    #[error("dims (of the PCA before clustering) must be at least 1 (got 0)")]
    DimsZero,
    #[error("eot (the gradient samples averaged per step) must be at least 1 (got 0)")]
    EotZero,
    #[error("std (the noise's standard deviation) must be a finite number >= 0 (got {0})")]
    NoiseStd(f64),
    #[error("magnitude (the noise's bound) must be a finite number >= 0 (got {0})")]
    NoiseMagnitude(f64),
    #[error("factor (the fraction of the side kept) must be in (0, 1], e.g. 0.5 or 0.25 (got {0})")]
    DownsampleFactor(f64),
    #[error("bits must be between 1 and 16 (got {0})")]
    BitDepth(usize),
    #[error("size (the median window's side) must be between 1 and 15 (got {0})")]
    MedianSize(usize),
    #[error("variance (the share of the variance kept) must be in (0, 1] (got {0})")]
    PcaVariance(f64),
    #[error("give either variance or components, not both")]
    PcaVarianceAndComponents,
    #[error("components must be between 1 and the number of input features ({features}), got {components}")]
    PcaComponents { components: usize, features: usize },
    #[error("hidden must list at least one layer size, each at least 1 (got {0:?})")]
    AutoencoderHidden(Vec<usize>),
    #[error("input must be [C, H, W] with every size at least 1 (got {0:?})")]
    AutoencoderInput(Vec<usize>),
    #[error(
        "a conv_autoencoder with {levels} pooling levels needs H and W divisible by {divisor} (got {height}×{width})"
    )]
    AutoencoderPooling {
        levels: usize,
        divisor: usize,
        height: usize,
        width: usize,
    },
    #[error("noise_std must be a finite number >= 0 (got {0})")]
    AutoencoderNoise(f64),
    #[error("tolerance must be a finite number in [0, 1) (got {0})")]
    CheckTolerance(f64),
    #[error("samples must be at least 1 (got 0)")]
    SamplesZero,
    #[error("large_eps must be a finite number > eps = {eps} (got {large_eps})")]
    LargeEps { large_eps: f64, eps: f64 },
    #[error(
        "the synthetic data set of {train} training and {test} test samples is too large: each split may have at most {most} samples (16 GiB of 28×28 f32 images)"
    )]
    SyntheticTooLarge { train: usize, test: usize, most: usize },
    #[error("{what} would need {values} values, more than the {most} advlab allocates at once (16 GiB as f32)")]
    TooLarge { what: String, values: String, most: usize },
    #[error("{blocks} residual blocks in one stage is more than the {most} advlab builds")]
    TooManyBlocks { blocks: usize, most: usize },
    #[error("passes must be at most {most} (got {passes})")]
    PassesTooMany { passes: usize, most: usize },
    #[error("residual blocks are nested {depth} deep, more than the {most} levels advlab builds")]
    NestingTooDeep { depth: usize, most: usize },
}
