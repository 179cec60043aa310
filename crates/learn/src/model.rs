//! The classifier network: an encoder ([`EncoderSpec`]) and a linear head to the `T` labels,
//! whose outputs are the logits of the propensity score `π(x) = softmax(logits)`.
//!
//! One model type serves both encoders (the unused one is `None`), so training, scoring and
//! saving never branch on the architecture.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::ops::PadMode;

use crate::LearnError;
use crate::data::InputShape;
use crate::spec::{Activation, EncoderSpec, LEAKY_RELU_SLOPE};

/// `Linear → [BatchNorm] → activation → [Dropout]`, repeated.
#[derive(Module, Debug)]
pub struct MlpEncoder {
    layers: Vec<Linear>,
    norms: Vec<BatchNorm>,
    dropout: Dropout,
    leaky: bool,
}

/// Strided `3×3 Conv → [BatchNorm] → activation`, repeated, then a global average pool.
#[derive(Module, Debug)]
pub struct CnnEncoder {
    convs: Vec<Conv2d>,
    norms: Vec<BatchNorm>,
    leaky: bool,
    channels: usize,
    height: usize,
    width: usize,
}

/// Encoder plus linear head; `forward` maps a batch of flattened rows to logits.
#[derive(Module, Debug)]
pub struct Classifier {
    mlp: Option<MlpEncoder>,
    cnn: Option<CnnEncoder>,
    head: Linear,
}

fn activate<const D: usize>(x: Tensor<D>, leaky: bool) -> Tensor<D> {
    if leaky {
        leaky_relu(x, LEAKY_RELU_SLOPE)
    } else {
        relu(x)
    }
}

impl MlpEncoder {
    fn new(
        input: usize,
        hidden: &[usize],
        batch_norm: bool,
        dropout: f64,
        activation: Activation,
        device: &Device,
    ) -> MlpEncoder {
        let mut layers = Vec::new();
        let mut norms = Vec::new();
        let mut width = input;
        for &h in hidden {
            layers.push(LinearConfig::new(width, h).init(device));
            if batch_norm {
                norms.push(BatchNormConfig::new(h).init(device));
            }
            width = h;
        }
        MlpEncoder {
            layers,
            norms,
            dropout: DropoutConfig::new(dropout).init(),
            leaky: activation == Activation::LeakyRelu,
        }
    }

    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if let Some(norm) = self.norms.get(i) {
                x = norm.forward(x);
            }
            x = self.dropout.forward(activate(x, self.leaky));
        }
        x
    }
}

impl CnnEncoder {
    fn new(
        (channels, height, width): (usize, usize, usize),
        widths: &[usize],
        batch_norm: bool,
        activation: Activation,
        device: &Device,
    ) -> CnnEncoder {
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut from = channels;
        for &to in widths {
            convs.push(
                Conv2dConfig::new([from, to], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
            );
            if batch_norm {
                norms.push(BatchNormConfig::new(to).init(device));
            }
            from = to;
        }
        CnnEncoder {
            convs,
            norms,
            leaky: activation == Activation::LeakyRelu,
            channels,
            height,
            width,
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, _] = x.dims();
        let mut x: Tensor<4> = x.reshape([batch, self.channels, self.height, self.width]);
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv3x3_stride2(conv, x);
            if let Some(norm) = self.norms.get(i) {
                x = norm.forward(x);
            }
            x = activate(x, self.leaky);
        }
        let [_, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }
}

/// `conv.forward(x)` for the encoder's `3×3`, stride-2, padding-1 convolutions, computed as one
/// matrix product over gathered patches (im2col) with the layer's own weight and bias.
///
/// Why: burn-ndarray convolves directly, a scalar loop per output pixel that does not vectorise
/// for stride 2, and its backward pass is a transposed convolution of the same kind. Nine
/// strided slices and one GEMM (`matrixmultiply` on the CPU) do the same arithmetic: the
/// paper's CNN went from 25 to 342 samples/s on two cores (benches/RESULTS.md). The same ops
/// run on every backend, and autodiff differentiates them like any other tensor ops. The parameters stay a
/// [`Conv2d`], so saved models do not change. A test checks it against `Conv2d::forward`.
fn conv3x3_stride2(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    let [out_channels, ..] = conv.weight.dims();
    // Padding 1, stride 2, kernel 3: ⌈size / 2⌉ outputs per side.
    let (out_height, out_width) = (height.div_ceil(2), width.div_ceil(2));
    // Channels first, batch second, so that the whole batch is one GEMM: `[C_out, 9 C]` times
    // `[9 C, batch · h · w]`, rather than one thin product per image that re-reads the weight.
    let padded = x.swap_dims(0, 1).pad((1, 1, 1, 1), PadMode::Constant(0.0));
    // Tap (kh, kw) of every output pixel: rows kh, kh + 2, … and columns kw, kw + 2, ….
    let taps: Vec<Tensor<4>> = (0..3)
        .flat_map(|kh| (0..3).map(move |kw| (kh, kw)))
        .map(|(kh, kw)| {
            padded.clone().slice(s![
                ..,
                ..,
                kh..kh + 2 * out_height - 1;2,
                kw..kw + 2 * out_width - 1;2
            ])
        })
        .collect();
    // [channels, 9, batch, h, w]: rows ordered (channel, kh, kw), as the weight's columns.
    let patches: Tensor<2> =
        Tensor::stack::<5>(taps, 1).reshape([channels * 9, batch * out_height * out_width]);
    let weight: Tensor<2> = conv.weight.val().reshape([out_channels, channels * 9]);
    let mut y = weight.matmul(patches);
    if let Some(bias) = &conv.bias {
        y = y + bias.val().reshape([out_channels, 1]);
    }
    y.reshape([out_channels, batch, out_height, out_width])
        .swap_dims(0, 1)
}

impl Classifier {
    /// A freshly initialised network for rows of `input` shape and `classes` outputs.
    pub fn new(
        encoder: &EncoderSpec,
        input: InputShape,
        classes: usize,
        device: &Device,
    ) -> Result<Classifier, LearnError> {
        let (mlp, cnn, width) = match (encoder, input) {
            (
                EncoderSpec::Mlp {
                    hidden,
                    batch_norm,
                    dropout,
                    activation,
                },
                _,
            ) => {
                let width = hidden.last().copied().unwrap_or(input.len());
                let mlp = MlpEncoder::new(
                    input.len(),
                    hidden,
                    *batch_norm,
                    *dropout,
                    *activation,
                    device,
                );
                (Some(mlp), None, width)
            }
            (
                EncoderSpec::Cnn {
                    channels: widths,
                    batch_norm,
                    activation,
                },
                InputShape::Image {
                    channels,
                    height,
                    width,
                },
            ) => {
                let cnn = CnnEncoder::new(
                    (channels, height, width),
                    widths,
                    *batch_norm,
                    *activation,
                    device,
                );
                (
                    None,
                    Some(cnn),
                    *widths.last().expect("validated: ≥ 1 layer"),
                )
            }
            (EncoderSpec::Cnn { .. }, InputShape::Flat { features }) => {
                return Err(LearnError::Input(format!(
                    "a CNN needs images (n × C × H × W), but the input has {features} flat features; \
                     use an MLP or give an image stack"
                )));
            }
        };
        Ok(Classifier {
            mlp,
            cnn,
            head: LinearConfig::new(width, classes).init(device),
        })
    }

    /// Logits for a batch of flattened rows, `batch × T`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let features = match (&self.mlp, &self.cnn) {
            (Some(mlp), _) => mlp.forward(x),
            (None, Some(cnn)) => cnn.forward(x),
            (None, None) => x,
        };
        self.head.forward(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_device;
    use burn::tensor::{Distribution, Tolerance};

    /// The gathered-patch convolution is `Conv2d::forward` (stride 2, padding 1), in value and in
    /// the gradients training takes, for even, odd and single-pixel images.
    #[test]
    fn im2col_convolution_matches_burns_conv2d() {
        let device = cpu_device().autodiff();
        for (channels, out_channels, height, width) in [(3, 8, 32, 32), (5, 4, 7, 9), (2, 3, 1, 1)]
        {
            let conv = Conv2dConfig::new([channels, out_channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device);
            let x = Tensor::<4>::random(
                [2, channels, height, width],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .require_grad();
            let ours = conv3x3_stride2(&conv, x.clone());
            let burns = conv.forward(x.clone());
            assert_eq!(ours.dims(), burns.dims());
            ours.to_data()
                .assert_approx_eq::<f32>(&burns.to_data(), Tolerance::absolute(1e-5));

            // Weight the outputs unevenly so every gradient entry is tested, not only sums.
            let weights = Tensor::<4>::random(burns.dims(), Distribution::Default, &device);
            let grads_ours = (ours * weights.clone()).sum().backward();
            let grads_burns = (burns * weights).sum().backward();
            for (a, b) in [
                (
                    conv.weight.grad(&grads_ours).unwrap(),
                    conv.weight.grad(&grads_burns).unwrap(),
                ),
                (x.grad(&grads_ours).unwrap(), x.grad(&grads_burns).unwrap()),
            ] {
                a.to_data()
                    .assert_approx_eq::<f32>(&b.to_data(), Tolerance::absolute(1e-4));
            }
            let bias = conv.bias.as_ref().unwrap();
            bias.grad(&grads_ours)
                .unwrap()
                .to_data()
                .assert_approx_eq::<f32>(
                    &bias.grad(&grads_burns).unwrap().to_data(),
                    Tolerance::absolute(1e-4),
                );
        }
    }
}
