//! A seed fixes a model's initial weights whatever reads them first. In a test binary of its
//! own: burn's seeded generator is one per process, and tests running beside this one would draw
//! from it between the seed and the initialisation.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use roadseg::core::model::unet::{UNet, UNetConfig};

/// Every float parameter's values, in the module's declaration order.
fn parameter_values(model: &UNet) -> Vec<Vec<f32>> {
    struct Values(Vec<Vec<f32>>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .push(param.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let mut values = Values(Vec::new());
    model.visit(&mut values);
    values.0
}

#[test]
fn a_forward_pass_reads_the_parameters_in_their_declared_order() {
    // burn initialises parameters lazily, on first read: a forward pass that reads them in
    // another order than the declaration (the head's bias before its weight did) hands the
    // seed's random numbers to other parameters, and a seeded run trains differently.
    let device = Device::flex();
    let config = UNetConfig::new(7).with_depth(2).with_base_width(4);
    device.seed(42);
    let declared = parameter_values(&config.init(&device));
    device.seed(42);
    let model = config.init(&device);
    let _ = model.forward(Tensor::<4>::zeros([1, 3, 8, 8], &device));
    let read = parameter_values(&model);
    assert_eq!(read.len(), declared.len());
    for (i, (a, b)) in read.iter().zip(&declared).enumerate() {
        assert_eq!(a, b, "parameter {i} of {}", read.len());
    }
}
