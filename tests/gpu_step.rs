//! The wgpu path (lavapipe in CI, a real GPU where there is one) trains like the flex CPU path:
//! the same weights and batch give the same loss before and after one optimiser step.

use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Distribution, Int, Tensor, TensorData};
use roadseg::core::model::unet::UNetConfig;
use roadseg::core::train::loss::LossConfig;
use roadseg::core::train::optim::{OptimizerConfig, build_optimizer};
use roadseg::core::train::step::train_step;

/// Loss before the step and after it, on `device`, from the same starting weights.
fn two_losses(
    device: &Device,
    weights: &burn::store::ModuleRecord,
    images: &TensorData,
    masks: &TensorData,
) -> (f32, f32) {
    let device = device.clone().autodiff();
    let cfg = UNetConfig::new(3).with_depth(2).with_base_width(4);
    let model = cfg.init(&device).load_record(weights.clone()).into();
    let images = Tensor::<4>::from_data(images.clone(), &device);
    let masks = Tensor::<3, Int>::from_data(masks.clone(), &device);
    let mut optimizer = build_optimizer(&OptimizerConfig::default()).unwrap();
    let loss = LossConfig {
        dice: 0.5,
        ..LossConfig::default()
    };
    let (model, first) = train_step(
        model,
        &mut optimizer,
        &loss,
        1e-2,
        images.clone(),
        masks.clone(),
    );
    let (_, second) = train_step(model, &mut optimizer, &loss, 1e-2, images, masks);
    (first.unwrap(), second.unwrap())
}

/// Without the test harness (`harness = false` in Cargo.toml), so that the process can leave
/// the moment the test has passed: Mesa's lavapipe has crashed (SIGSEGV) in its exit handlers
/// while wgpu's device threads were still up, after a passing run. A failure still panics,
/// which exits non-zero.
fn main() {
    one_wgpu_training_step_matches_flex();
    println!("test one_wgpu_training_step_matches_flex ... ok");
    #[cfg(target_os = "linux")]
    // SAFETY: nothing is left to flush or release; skipping exit handlers is the point.
    unsafe {
        libc::_exit(0)
    };
}

fn one_wgpu_training_step_matches_flex() {
    let cpu = Device::flex();
    cpu.seed(11);
    let weights = UNetConfig::new(3)
        .with_depth(2)
        .with_base_width(4)
        .init(&cpu)
        .into_record();
    let images = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &cpu);
    let masks = images.clone().argmax(1).squeeze_dim::<3>(1);
    let (images, masks) = (images.into_data(), masks.into_data());

    let flex = two_losses(&cpu, &weights, &images, &masks);
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let wgpu = two_losses(&gpu, &weights, &images, &masks);
    eprintln!("flex {flex:?}, wgpu {wgpu:?}");
    assert!(
        (flex.0 - wgpu.0).abs() < 1e-3,
        "first loss: flex {} vs wgpu {}",
        flex.0,
        wgpu.0
    );
    assert!(
        (flex.1 - wgpu.1).abs() < 1e-3,
        "after one step: flex {} vs wgpu {}",
        flex.1,
        wgpu.1
    );
    assert!(flex.1 < flex.0, "the step lowered the loss");
}
