//! The kernels through burn, against burn's own operations on the same device (the reference
//! is the same call inside [`ops::with_burn_ops`]): values and every gradient, odd sizes,
//! batch 1, 1 to 256 channels, non-contiguous inputs; then finite differences on tiny shapes,
//! and the whole UNet.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::ops;
use crate::core::model::unet::UNetConfig;
use crate::core::train::loss::LossConfig;

pub(super) fn device() -> Device {
    Device::flex().autodiff()
}

/// Values in [-1.5, 1.5) from a generator of the test's own (tests run in parallel, and burn's
/// seeded random tensors share one global generator).
pub(super) fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..shape.iter().product())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 3.0 - 1.5
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &device())
}

/// Class indices `[batch, h, w]`: `|N(0, 1)| · spread`, truncated (mostly 0 to `spread`).
pub(super) fn random_targets([b, h, w]: [usize; 3], seed: u64, spread: f32) -> Tensor<3, Int> {
    let targets = random([b, 1, h, w], seed)
        .inner()
        .abs()
        .mul_scalar(spread)
        .int()
        .squeeze_dim::<3>(1);
    Tensor::from_data(targets.into_data(), &device())
}

pub(super) fn to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.clone().inner().into_data().try_into_vec::<f32>().unwrap()
}

#[track_caller]
pub(super) fn assert_close<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (to_vec(a), to_vec(b));
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}: element {i}: {x} vs {y} (scale {scale})"
        );
    }
}

/// `f(inputs)` weighted by a fixed random tensor and summed, so every output element gets a
/// different gradient.
pub(super) fn weighted_sum(y: Tensor<4>, seed: u64) -> Tensor<1> {
    let weights = random(y.dims(), seed);
    (y * weights).sum()
}

/// Runs `f` with the kernels and with burn's operations on fresh copies of `inputs` (all
/// requiring gradients) and compares outputs and input gradients.
pub(super) fn compare<const N: usize>(
    inputs: [Tensor<4>; N],
    tol: f32,
    what: &str,
    f: impl Fn([Tensor<4>; N]) -> Tensor<4>,
) {
    let run = |use_kernels: bool| {
        let xs = inputs
            .clone()
            .map(|x| Tensor::from_data(x.into_data(), &device()).require_grad());
        let y = if use_kernels {
            f(xs.clone())
        } else {
            ops::with_burn_ops(|| f(xs.clone()))
        };
        let grads = weighted_sum(y.clone(), 99).backward();
        let dxs = xs.map(|x| x.grad(&grads).expect("every input gets a gradient"));
        (y, dxs)
    };
    let (y, dxs) = run(true);
    let (y_ref, dxs_ref) = run(false);
    assert_close(&y, &y_ref, tol, &format!("{what}: output"));
    for (k, (d, d_ref)) in dxs.iter().zip(&dxs_ref).enumerate() {
        let d = Tensor::<4>::from_data(d.to_data(), &Device::flex());
        let d_ref = Tensor::<4>::from_data(d_ref.to_data(), &Device::flex());
        assert_close(&d, &d_ref, tol, &format!("{what}: gradient of input {k}"));
    }
}

/// A tensor of `shape` stored transposed in its last two axes (not contiguous).
pub(super) fn strided(shape: [usize; 4], seed: u64) -> Tensor<4> {
    let [b, c, h, w] = shape;
    random([b, c, w, h], seed).swap_dims(2, 3)
}

#[test]
fn conv3x3_matches_burn() {
    // (batch, c1, c2, h, w, out, bias, relu)
    let cases = [
        (1, 1, 0, 1, 1, 1, false, false),
        (2, 3, 0, 5, 7, 5, true, false),
        (1, 4, 3, 9, 17, 8, false, false),
        (3, 8, 8, 6, 10, 4, true, true),
        (1, 256, 0, 3, 4, 2, false, false),
        (1, 2, 0, 4, 5, 256, true, true),
    ];
    for (b, c1, c2, h, w, o, bias, relu) in cases {
        let what = format!("conv3x3 {b}x({c1}+{c2})x{h}x{w} -> {o} bias {bias} relu {relu}");
        let x1 = strided([b, c1, h, w], 1);
        let x2 = random([b, c2.max(1), h, w], 2);
        let weight = random([o, c1 + c2, 3, 3], 3).mul_scalar(0.3);
        let bias_t = random([1, 1, 1, o], 4);
        compare(
            [x1, x2, weight, bias_t],
            1e-4,
            &what,
            |[x1, x2, w, bias_t]| {
                let second = (c2 > 0).then_some(x2.clone());
                let bias_v = bias.then(|| bias_t.clone().reshape([o]));
                let y = ops::conv3x3(x1, second, w, bias_v, relu);
                // Touch the unused inputs so that they get a (zero) gradient too.
                y + (x2.sum() + bias_t.sum())
                    .mul_scalar(0.0)
                    .reshape([1, 1, 1, 1])
            },
        );
    }
}

#[test]
fn conv1x1_matches_burn() {
    for (b, c, h, w, o) in [(1, 1, 1, 1, 1), (2, 8, 5, 7, 7), (1, 256, 2, 3, 3)] {
        let what = format!("conv1x1 {b}x{c}x{h}x{w} -> {o}");
        let x = strided([b, c, h, w], 5);
        let weight = random([o, c, 1, 1], 6);
        let bias = random([1, 1, 1, o], 7);
        compare([x, weight, bias], 1e-4, &what, |[x, w, bias]| {
            ops::conv1x1(x, w, Some(bias.reshape([o])))
        });
    }
}

#[test]
fn batch_norm_relu_matches_burn_and_updates_running_statistics() {
    for (b, c, h, w) in [(1, 1, 1, 2), (2, 3, 5, 7), (4, 16, 6, 6), (1, 256, 2, 2)] {
        let what = format!("batch norm {b}x{c}x{h}x{w}");
        let make = || {
            let mut norm: BatchNorm = BatchNormConfig::new(c).init(&device());
            // Fresh leaves (not 1 and 0), so that their gradients are kept.
            norm.gamma = norm
                .gamma
                .map(|g| g.add_scalar(0.5).detach().require_grad());
            norm.beta = norm
                .beta
                .map(|b| b.add_scalar(-0.2).detach().require_grad());
            norm
        };
        let x = strided([b, c, h, w], 8).mul_scalar(2.0).add_scalar(3.0);
        let (norm, reference) = (make(), make());
        compare([x], 2e-4, &what, |[x]| {
            let norm = if ops::enabled() { &norm } else { &reference };
            ops::batch_norm_relu_train(x, norm)
        });
        let stats = |n: &BatchNorm| {
            [n.running_mean.value(), n.running_var.value()].map(|t| t.unsqueeze::<4>())
        };
        for (ours, theirs) in stats(&norm).iter().zip(&stats(&reference)) {
            assert_close(ours, theirs, 1e-5, &format!("{what}: running statistics"));
        }
        // And the parameter gradients.
        let grads = |norm: &BatchNorm, kernels: bool| {
            let x = Tensor::from_data(to_data(&strided([b, c, h, w], 9)), &device());
            let run = || weighted_sum(ops::batch_norm_relu_train(x.clone(), norm), 10);
            let grads = if kernels {
                run()
            } else {
                ops::with_burn_ops(run)
            }
            .backward();
            [norm.gamma.val(), norm.beta.val()].map(|p| p.grad(&grads).unwrap().unsqueeze::<4>())
        };
        for (ours, theirs) in grads(&make(), true).iter().zip(&grads(&make(), false)) {
            let ours = Tensor::<4>::from_data(ours.to_data(), &Device::flex());
            let theirs = Tensor::<4>::from_data(theirs.to_data(), &Device::flex());
            assert_close(
                &ours,
                &theirs,
                1e-4,
                &format!("{what}: gamma/beta gradients"),
            );
        }
    }
}

pub(super) fn to_data<const D: usize>(t: &Tensor<D>) -> TensorData {
    t.to_data()
}

#[test]
fn max_pool_matches_burn() {
    for (b, c, h, w) in [(1, 1, 2, 2), (2, 3, 6, 10), (1, 64, 4, 4)] {
        compare(
            [strided([b, c, h, w], 11)],
            1e-6,
            &format!("max pool {b}x{c}x{h}x{w}"),
            |[x]| ops::max_pool2x2(x),
        );
    }
}

#[test]
fn upsampling_matches_burn() {
    for (b, c, h, w) in [(1, 1, 1, 1), (2, 3, 5, 4), (1, 16, 6, 9)] {
        compare(
            [strided([b, c, h, w], 12)],
            1e-5,
            &format!("upsample {b}x{c}x{h}x{w}"),
            |[x]| ops::upsample2x(x),
        );
    }
}

#[test]
fn upsampling_matches_burns_interpolate() {
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    let x = Tensor::<4>::random([2, 3, 5, 4], Distribution::Default, &Device::flex());
    let reference = interpolate(
        x.clone(),
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([10, 8]),
    );
    assert_close(
        &ops::upsample2x(x),
        &reference,
        1e-5,
        "upsample vs interpolate",
    );
}

#[test]
fn cross_entropy_matches_the_composite_loss() {
    let (b, k, h, w) = (2, 5, 6, 7);
    let labels = |seed: u64| {
        let logits = random([b, k, h, w], seed);
        let targets = logits.clone().inner().argmax(1).squeeze_dim::<3>(1);
        // Some ignored pixels (255) and some out-of-range ids (9).
        let noise = Tensor::<3>::random([b, h, w], Distribution::Default, &Device::flex());
        let targets = targets
            .mask_fill(noise.clone().lower_elem(0.2), 255)
            .mask_fill(noise.greater_elem(0.9), 9);
        Tensor::<3, Int>::from_data(targets.into_data(), &device())
    };
    let targets = labels(13);
    for weights in [None, Some(vec![0.5, 2.0, 1.0, 0.0, 3.0])] {
        let loss = LossConfig {
            class_weights: weights.clone(),
            ..LossConfig::default()
        };
        let run = |kernels: bool| {
            let logits =
                Tensor::from_data(to_data(&random([b, k, h, w], 14)), &device()).require_grad();
            let value = if kernels {
                loss.loss(logits.clone(), targets.clone())
            } else {
                ops::with_burn_ops(|| loss.loss(logits.clone(), targets.clone()))
            };
            let grad = logits.grad(&value.backward()).unwrap();
            (value.into_scalar::<f32>(), grad)
        };
        let ((value, grad), (value_ref, grad_ref)) = (run(true), run(false));
        assert!(
            (value - value_ref).abs() < 1e-5 * value_ref.abs().max(1.0),
            "{value} vs {value_ref}"
        );
        let grad = Tensor::<4>::from_data(grad.to_data(), &Device::flex());
        let grad_ref = Tensor::<4>::from_data(grad_ref.to_data(), &Device::flex());
        assert_close(
            &grad,
            &grad_ref,
            1e-5,
            &format!("CE gradient, weights {weights:?}"),
        );
    }
}

/// An operation of one tensor, for [`check_finite_differences`].
pub(super) type Op = Box<dyn Fn(Tensor<4>) -> Tensor<4>>;

/// Central differences of `Σ r·f(x)` in one coordinate at a time agree with the kernels'
/// gradients on tiny shapes.
#[test]
fn gradients_agree_with_finite_differences() {
    let weight = random([3, 2, 3, 3], 20);
    let norm: BatchNorm = BatchNormConfig::new(2).init(&device());
    let cases: Vec<(&str, [usize; 4], Op)> = vec![
        ("conv3x3", [1, 2, 3, 4], {
            let weight = weight.clone();
            Box::new(move |x| ops::conv3x3(x, None, weight.clone(), None, false))
        }),
        ("conv3x3 concat", [2, 1, 3, 3], {
            let weight = weight.clone();
            Box::new(move |x| ops::conv3x3(x.clone(), Some(x), weight.clone(), None, false))
        }),
        (
            "batch norm + relu",
            [2, 2, 2, 3],
            Box::new(move |x| ops::batch_norm_relu_train(x.add_scalar(0.1), &norm)),
        ),
        ("max pool", [1, 2, 4, 4], Box::new(ops::max_pool2x2)),
        ("upsample", [1, 2, 2, 3], Box::new(ops::upsample2x)),
    ];
    check_finite_differences(cases);
}

/// [`gradients_agree_with_finite_differences`] for each `(name, input shape, op)`.
pub(super) fn check_finite_differences(cases: Vec<(&str, [usize; 4], Op)>) {
    for (what, shape, op) in cases {
        let x0 = random(shape, 21);
        let r = random(op(x0.clone()).dims(), 22);
        let f = |x: Tensor<4>| (op(x) * r.clone()).sum();
        let x = Tensor::from_data(to_data(&x0), &device()).require_grad();
        let analytic = to_vec(&x.grad(&f(x.clone()).backward()).unwrap().unsqueeze::<4>());
        let base = to_vec(&x0);
        let eps = 1e-2f32;
        for i in 0..base.len() {
            let at = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let x = Tensor::<4>::from_data(TensorData::new(v, shape), &device());
                f(x).into_scalar::<f32>() as f64
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let tolerance = 2e-2 * numeric.abs().max(1.0);
            assert!(
                (analytic[i] as f64 - numeric).abs() < tolerance,
                "{what}: d/dx[{i}] = {} analytically, {numeric} numerically",
                analytic[i]
            );
        }
    }
}

/// The whole UNet, training mode: logits, loss and every parameter's gradient agree with the
/// model run on burn's operations; in inference mode the folded batch norm agrees with burn's.
#[test]
fn the_unet_trains_and_predicts_like_with_burns_operations() {
    let config = UNetConfig::new(4).with_depth(2).with_base_width(4);
    let model = config.init(&device());
    let images = random([2, 3, 12, 20], 30);
    let targets = random_targets([2, 12, 20], 31, 2.0);
    compare_training(
        &model,
        |m, x| m.forward(x),
        &images,
        &targets,
        1e-4,
        GradientCheck::Elements(1e-3),
        "UNet",
    );

    let inference = model.valid();
    let x = Tensor::<4>::from_data(to_data(&images), &Device::flex());
    let reference = ops::with_burn_ops(|| inference.forward(x.clone()));
    let folded_per_call = inference.forward(x.clone());
    assert_close(&folded_per_call, &reference, 1e-4, "UNet inference");
    let folded_once = inference.fold_batch_norm();
    assert_close(
        &folded_once.forward(x.clone()),
        &reference,
        1e-4,
        "folded UNet",
    );
    let folded_on_burn = ops::with_burn_ops(|| folded_once.forward(x));
    assert_close(
        &folded_on_burn,
        &reference,
        1e-4,
        "folded UNet on burn's operations",
    );
}

/// One training forward + loss + backward of `model` with the kernels and on burn's operations:
/// the logits, the loss and every parameter's gradient agree.
pub(super) fn compare_training<M: Module + Clone>(
    model: &M,
    forward: impl Fn(&M, Tensor<4>) -> Tensor<4>,
    images: &Tensor<4>,
    targets: &Tensor<3, Int>,
    tolerance: f32,
    gradients: GradientCheck,
    what: &str,
) {
    let run = |kernels: bool| {
        let model = model.clone();
        let step = || {
            let logits = forward(&model, images.clone());
            let loss = LossConfig::default().loss(logits.clone(), targets.clone());
            (logits, loss)
        };
        let (logits, loss) = if kernels {
            step()
        } else {
            ops::with_burn_ops(step)
        };
        let grads = loss.backward();
        let mut params = Vec::new();
        model.visit(&mut CollectGrads(&grads, &mut params));
        (logits, loss.into_scalar::<f32>(), params)
    };
    let ((logits, loss, grads), (logits_ref, loss_ref, grads_ref)) = (run(true), run(false));
    assert_close(&logits, &logits_ref, tolerance, &format!("{what} logits"));
    assert!(
        (loss - loss_ref).abs() <= tolerance / 10.0 * loss_ref.abs().max(1.0),
        "{what}: loss {loss} vs {loss_ref}"
    );
    assert_eq!(
        grads.len(),
        grads_ref.len(),
        "{what}: parameters with a gradient"
    );
    for (k, (g, g_ref)) in grads.iter().zip(&grads_ref).enumerate() {
        match gradients {
            GradientCheck::Elements(tolerance) => {
                let scale = g_ref.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                for (a, b) in g.iter().zip(g_ref) {
                    assert!(
                        (a - b).abs() <= tolerance * scale,
                        "{what}: parameter {k}: {a} vs {b}"
                    );
                }
            }
            GradientCheck::Norm(tolerance) => {
                let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
                let diff = norm(&mut g.iter().zip(g_ref).map(|(a, b)| (a - b) as f64));
                let reference = norm(&mut g_ref.iter().map(|&b| b as f64));
                assert!(
                    diff <= tolerance as f64 * reference.max(1e-12),
                    "{what}: parameter {k}: relative difference {}",
                    diff / reference
                );
            }
        }
    }
}

/// How [`compare_training`] compares each parameter's gradient with the reference.
#[derive(Clone, Copy)]
pub(super) enum GradientCheck {
    /// Every element within this fraction of the parameter's largest gradient.
    Elements(f32),
    /// The difference's L2 norm within this fraction of the reference's.
    Norm(f32),
}

struct CollectGrads<'a>(&'a burn::tensor::Gradients, &'a mut Vec<Vec<f32>>);

impl burn::module::ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if let Some(g) = param.val().grad(self.0) {
            self.1.push(g.into_data().try_into_vec::<f32>().unwrap());
        }
    }
}

/// One NaN pixel in a batch must surface as a NaN loss (the trainer's divergence check), not
/// be swallowed by a ReLU, a max-pool or the softmax's max.
#[test]
fn a_single_nan_pixel_reaches_the_loss() {
    let model = UNetConfig::new(3)
        .with_depth(2)
        .with_base_width(4)
        .init(&device());
    let mut pixels = to_vec(&random([2, 3, 8, 8], 40));
    pixels[77] = f32::NAN;
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [2, 3, 8, 8]), &device());
    let targets = Tensor::<3, Int>::zeros([2, 8, 8], &device());
    let loss = LossConfig::default()
        .loss(model.forward(images), targets)
        .into_scalar::<f32>();
    assert!(loss.is_nan(), "loss {loss}");
}

/// The fused resize + arg-max picks the same classes as burn's `interpolate` followed by
/// `argmax`, down- and up-sampling, odd sizes.
#[test]
fn resized_argmax_matches_interpolate_then_argmax() {
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    for ([k, h, w], [oh, ow]) in [
        ([7, 12, 16], [37, 53]),
        ([3, 9, 7], [4, 5]),
        ([2, 1, 1], [3, 2]),
    ] {
        let logits = random([1, k, h, w], 50).inner().mul_scalar(2.0);
        let reference = interpolate(
            logits.clone(),
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size([oh, ow]),
        )
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
        let values = logits.into_data().try_to_vec::<f32>().unwrap();
        let (ids, _) = super::resize::resized_argmax(&values, [k, h, w], [oh, ow], false);
        let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
        assert_eq!(ids, reference, "{k}x{h}x{w} -> {oh}x{ow}");
    }
}
