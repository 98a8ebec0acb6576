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
use super::flex::{
    self, BatchNorm, Conv1x1, Conv3x3, ConvUnfolded, Primitive, contiguous, dims, tensor,
};
use super::pool_window::Window;

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
struct BatchNormBackward;

impl Backward<Flex, 4> for BatchNormBackward {
    type State = BatchNorm;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node, residual_node] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (dx, dgamma, dbeta, dresidual) = ops.state.backward(&dy);
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, dx);
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, dgamma);
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, dbeta);
        }
        if let (Some(node), Some(g)) = (residual_node, dresidual) {
            grads.register::<Flex>(node.id, g);
        }
    }
}

#[derive(Debug)]
struct ConvUnfoldedBackward;

impl Backward<Flex, 3> for ConvUnfoldedBackward {
    /// The operands, and the output when a ReLU followed.
    type State = (ConvUnfolded, Option<Primitive>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, weight, bias] = ops.parents;
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
        if let Some(node) = x {
            grads.register::<Flex>(node.id, conv.input_gradient(&dy));
        }
    }
}

#[derive(Debug)]
struct WindowPoolBackward;

impl Backward<Flex, 1> for WindowPoolBackward {
    /// Position of each maximum, the input's shape and the window.
    type State = (Arc<Vec<u8>>, [usize; 4], Window);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (positions, shape, window) = ops.state;
        if let Some(node) = x {
            let dx = flex::max_pool_backward(&dy, &positions, shape, window);
            grads.register::<Flex>(node.id, dx);
        }
    }
}

#[derive(Debug)]
struct AddReluBackward;

impl Backward<Flex, 2> for AddReluBackward {
    /// The output.
    type State = Primitive;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [a, b] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        if a.is_none() && b.is_none() {
            return;
        }
        let d = flex::add_relu_backward(&dy, &ops.state);
        if let Some(node) = b {
            grads.register::<Flex>(node.id, d.clone());
        }
        if let Some(node) = a {
            grads.register::<Flex>(node.id, d);
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

    fn batch_norm(
        x: Tracked<C>,
        gamma: Tracked<C>,
        beta: Tracked<C>,
        residual: Optional<Self>,
        relu: bool,
        epsilon: f64,
    ) -> (Tracked<C>, Tracked<C>, Tracked<C>) {
        let residual = residual.into_option();
        let nodes = [
            x.node(),
            gamma.node(),
            beta.node(),
            residual
                .as_ref()
                .map_or_else(|| absent::<C>().node(), |r| r.node()),
        ];
        let (y, norm) = BatchNorm::forward(
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            residual.map(|r| r.into_primitive()),
            relu,
            epsilon,
        );
        let (mean, var) = (norm.mean.clone(), norm.var.clone());
        let output = match BatchNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(norm, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (output, Tracked::<C>::new(mean), Tracked::<C>::new(var))
    }

    fn conv_unfolded(
        x: Tracked<C>,
        weight: Tracked<C>,
        bias: Optional<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        relu: bool,
    ) -> Tracked<C> {
        let bias = bias.into_option();
        let nodes = [
            x.node(),
            weight.node(),
            bias.as_ref()
                .map_or_else(|| absent::<C>().node(), |b| b.node()),
        ];
        let conv = ConvUnfolded::new(
            x.into_primitive(),
            weight.into_primitive(),
            bias.map(|b| b.into_primitive()),
            stride,
            padding,
        );
        match ConvUnfoldedBackward
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

    fn max_pool(x: Tracked<C>, size: usize, stride: usize, padding: usize) -> Tracked<C> {
        let nodes = [x.node()];
        let x = contiguous(x.into_primitive());
        let shape = dims(&x);
        let window = Window {
            size,
            stride,
            padding,
        };
        let (y, positions) = flex::max_pool(&x, window);
        match WindowPoolBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((Arc::new(positions), shape, window), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn add_relu(a: Tracked<C>, b: Tracked<C>) -> Tracked<C> {
        let nodes = [a.node(), b.node()];
        let y = flex::add_relu(
            &contiguous(a.into_primitive()),
            &contiguous(b.into_primitive()),
        );
        match AddReluBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
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
