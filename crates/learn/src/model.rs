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
            x = conv.forward(x);
            if let Some(norm) = self.norms.get(i) {
                x = norm.forward(x);
            }
            x = activate(x, self.leaky);
        }
        let [_, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }
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
