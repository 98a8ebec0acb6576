//! [`CpuKernels`] on autodiff over flex: each operation runs its flex forward and registers a
//! hand-written backward step (the formulas are in each kernel's module comment). A backward
//! step computes only the gradients of parents that require one, and keeps only what it needs
//! (the inputs it reads, never padded copies or im2col buffers).

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Flex};

use super::cross_entropy::Saved;
use super::extension::{CpuKernels, Optional};
use super::flex::{self, Conv1x1, Conv3x3, Primitive, contiguous, dims, tensor};

type Tracked<C> = FloatTensor<Autodiff<Flex, C>>;

/// An untracked empty tensor, standing in for an absent optional input so that every
/// operation has a fixed number of parents (absent ones never receive a gradient).
fn absent<C: CheckpointStrategy>() -> Tracked<C> {
    Tracked::<C>::new(tensor(Vec::new(), [0]))
}

#[derive(Debug)]
struct Conv3x3Backward;

impl Backward<Flex, 4> for Conv3x3Backward {
    /// The operands, and the output when a ReLU followed.
    type State = (Conv3x3, Option<Primitive>);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [first, second, weight, bias] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (conv, relu_output) = ops.state;
        let dy = match relu_output {
            Some(y) => flex::relu_mask(dy, &y),
            None => dy,
        };
        if let Some(node) = weight {
            grads.register::<Flex>(node.id, conv.weight_gradient(&dy));
        }
        if let Some(node) = bias {
            grads.register::<Flex>(node.id, conv.bias_gradient(&dy));
        }
        let (d_first, d_second) = conv.input_gradients(&dy, first.is_some(), second.is_some());
        if let (Some(node), Some(g)) = (first, d_first) {
            grads.register::<Flex>(node.id, g);
        }
        if let (Some(node), Some(g)) = (second, d_second) {
            grads.register::<Flex>(node.id, g);
        }
    }
}

#[derive(Debug)]
struct Conv1x1Backward;

impl Backward<Flex, 3> for Conv1x1Backward {
    type State = Conv1x1;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, weight, bias] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let conv = ops.state;
        if let Some(node) = weight {
            grads.register::<Flex>(node.id, conv.weight_gradient(&dy));
        }
        if let Some(node) = bias {
            grads.register::<Flex>(node.id, conv.bias_gradient(&dy));
        }
        if let Some(node) = x {
            grads.register::<Flex>(node.id, conv.input_gradient(&dy));
        }
    }
}

#[derive(Debug)]
struct BatchNormReluBackward;

impl Backward<Flex, 3> for BatchNormReluBackward {
    /// `[x, gamma, beta, mean, var]` and epsilon.
    type State = ([Primitive; 5], f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let ([x, gamma, beta, mean, var], epsilon) = ops.state;
        let (dx, dgamma, dbeta) =
            flex::batch_norm_relu_backward([&x, &dy, &gamma, &beta, &mean, &var], epsilon);
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, dgamma);
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, dbeta);
        }
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// Position of each maximum, and the input's shape.
    type State = (Arc<Vec<u8>>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (positions, shape) = ops.state;
        if let Some(node) = x {
            grads.register::<Flex>(node.id, flex::max_pool2x2_backward(&dy, &positions, shape));
        }
    }
}

#[derive(Debug)]
struct UpsampleBackward;

impl Backward<Flex, 1> for UpsampleBackward {
    /// The input's shape.
    type State = [usize; 4];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = x {
            grads.register::<Flex>(node.id, flex::upsample2x_backward(&dy, ops.state));
        }
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    /// Probabilities and per-pixel coefficients, and the logits' shape.
    type State = (Arc<Saved>, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [logits] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (saved, shape) = ops.state;
        if let Some(node) = logits {
            // The graph holds the only reference, so the probabilities become the gradient
            // in place.
            let saved = Arc::try_unwrap(saved).unwrap_or_else(|shared| (*shared).clone());
            grads.register::<Flex>(node.id, flex::cross_entropy_backward(saved, &grad, shape));
        }
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn conv3x3(
        first: Tracked<C>,
        second: Optional<Self>,
        weight: Tracked<C>,
        bias: Optional<Self>,
        relu: bool,
    ) -> Tracked<C> {
        let (second, bias) = (second.into_option(), bias.into_option());
        let nodes = [
            first.node(),
            second
                .as_ref()
                .map_or_else(|| absent::<C>().node(), |s| s.node()),
            weight.node(),
            bias.as_ref()
                .map_or_else(|| absent::<C>().node(), |b| b.node()),
        ];
        let conv = Conv3x3::new(
            first.into_primitive(),
            second.map(|s| s.into_primitive()),
            weight.into_primitive(),
            bias.map(|b| b.into_primitive()),
        );
        match Conv3x3Backward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = conv.forward(relu);
                let relu_output = relu.then(|| output.clone());
                prep.finish((conv, relu_output), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv.forward(relu)),
        }
    }

    fn conv1x1(x: Tracked<C>, weight: Tracked<C>, bias: Optional<Self>) -> Tracked<C> {
        let bias = bias.into_option();
        let nodes = [
            x.node(),
            weight.node(),
            bias.as_ref()
                .map_or_else(|| absent::<C>().node(), |b| b.node()),
        ];
        let conv = Conv1x1::new(
            x.into_primitive(),
            weight.into_primitive(),
            bias.map(|b| b.into_primitive()),
        );
        match Conv1x1Backward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = conv.forward();
                prep.finish(conv, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv.forward()),
        }
    }

    fn batch_norm_relu(
        x: Tracked<C>,
        gamma: Tracked<C>,
        beta: Tracked<C>,
        epsilon: f64,
    ) -> (Tracked<C>, Tracked<C>, Tracked<C>) {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let x = contiguous(x.into_primitive());
        let gamma = contiguous(gamma.into_primitive());
        let beta = contiguous(beta.into_primitive());
        let (y, mean, var) = flex::batch_norm_relu(&x, &gamma, &beta, epsilon);
        let output = match BatchNormReluBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(([x, gamma, beta, mean.clone(), var.clone()], epsilon), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (output, Tracked::<C>::new(mean), Tracked::<C>::new(var))
    }

    fn max_pool2x2(x: Tracked<C>) -> Tracked<C> {
        let nodes = [x.node()];
        let x = contiguous(x.into_primitive());
        let shape = dims(&x);
        let (y, positions) = flex::max_pool2x2(&x);
        match MaxPoolBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((Arc::new(positions), shape), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn upsample2x(x: Tracked<C>) -> Tracked<C> {
        let nodes = [x.node()];
        let x = contiguous(x.into_primitive());
        let shape = dims(&x);
        let y = flex::upsample2x(&x);
        match UpsampleBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(shape, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn cross_entropy(
        logits: Tracked<C>,
        targets: IntTensor<Self>,
        class_weights: Option<Vec<f32>>,
    ) -> Tracked<C> {
        let nodes = [logits.node()];
        let logits = contiguous(logits.into_primitive());
        let shape = dims(&logits);
        let (loss, saved) = flex::cross_entropy(&logits, targets, class_weights.as_deref());
        match CrossEntropyBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((Arc::new(saved), shape), loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        }
    }
}
