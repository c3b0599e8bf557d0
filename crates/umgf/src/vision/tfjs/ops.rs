//! The TensorFlow ops the COCO detector uses, on libtorch: one [`Op`] per step of a plan, run by
//! [`run_op`], and the tensor helpers they share (SAME padding, TensorFlow's legacy bilinear resize,
//! strided slices with masks).
//!
//! Layout: values keep TensorFlow's NHWC semantics, so every axis attribute means what the graph says.
//! Convolutions and pooling see an NCHW *view* of the NHWC data (a permutation, no copy): libtorch
//! treats it as channels-last memory and its CPU kernels run natively on it.
use tch::{Kind, Tensor};

use crate::torch::TorchResult;
use crate::{Error, Result};

/// TensorFlow's padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Padding {
    Same,
    Valid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Activation {
    None,
    Relu,
    Relu6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    FloorMod,
    Equal,
    Maximum,
    Minimum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unary {
    Identity,
    Relu,
    Relu6,
    Sigmoid,
    Tanh,
}

/// One step of a plan; tensors held here are constants prepared once.
#[derive(Debug)]
pub(super) enum Op {
    Input(usize),
    Const(Tensor),
    Conv {
        /// [out, in / groups, kh, kw]
        weight: Tensor,
        bias: Option<Tensor>,
        stride: [i64; 2],
        dilation: [i64; 2],
        padding: Padding,
        groups: i64,
        activation: Activation,
    },
    Binary(Binary),
    Unary(Unary),
    /// x * relu6(x + 3) * scale (TensorFlow exports hard-swish as four ops; this is one pass).
    HardSwish {
        scale: f64,
    },
    Mean {
        keep_dims: bool,
    },
    /// TensorFlow's legacy bilinear resize (align_corners = half_pixel_centers = false).
    ResizeBilinear,
    Concat,
    MaxPool {
        kernel: [i64; 2],
        stride: [i64; 2],
        padding: Padding,
    },
    Reshape,
    ExpandDims,
    Cast(Kind),
    TopK {
        sorted: bool,
    },
    Gather,
    StridedSlice {
        begin_mask: i64,
        end_mask: i64,
        shrink_axis_mask: i64,
    },
}

/// TensorFlow SAME padding of one spatial axis: (before, after), larger after when odd.
fn same_padding(size: i64, kernel: i64, stride: i64, dilation: i64) -> (i64, i64) {
    let out = (size + stride - 1) / stride;
    let span = (kernel - 1) * dilation + 1;
    let total = ((out - 1) * stride + span - size).max(0);
    (total / 2, total - total / 2)
}

/// The NCHW view a kernel reads for an NHWC input, and the symmetric padding left for the kernel
/// itself (pooling kernels accept only symmetric padding). Uneven SAME padding is added to the NHWC
/// tensor, so the view stays channels-last in memory.
fn kernel_input(
    x: &Tensor,
    padding: Padding,
    kernel: [i64; 2],
    stride: [i64; 2],
    dilation: [i64; 2],
    fill: f64,
) -> Result<(Tensor, [i64; 2])> {
    if padding == Padding::Valid {
        return Ok((to_nchw(x)?, [0, 0]));
    }
    let size = x.size();
    let (top, bottom) = same_padding(size[1], kernel[0], stride[0], dilation[0]);
    let (left, right) = same_padding(size[2], kernel[1], stride[1], dilation[1]);
    if top == bottom && left == right {
        return Ok((to_nchw(x)?, [top, left]));
    }
    // Padding lists start at the last axis: channels (none), width, height.
    let padded = x
        .f_pad([0, 0, left, right, top, bottom], "constant", fill)
        .torch()?;
    Ok((to_nchw(&padded)?, [0, 0]))
}

/// The same 4-d tensor with channels-last strides (what libtorch's CPU convolutions prefer for
/// filters when the input is channels-last: no reordering on every call).
pub(crate) fn channels_last(x: &Tensor) -> Result<Tensor> {
    x.f_permute([0, 2, 3, 1])
        .torch()?
        .f_contiguous()
        .torch()?
        .f_permute([0, 3, 1, 2])
        .torch()
}

/// NHWC <-> NCHW as views.
fn to_nchw(x: &Tensor) -> Result<Tensor> {
    x.f_permute([0, 3, 1, 2]).torch()
}
fn to_nhwc(x: &Tensor) -> Result<Tensor> {
    x.f_permute([0, 2, 3, 1]).torch()
}

fn int_values(t: &Tensor) -> Result<Vec<i64>> {
    Vec::<i64>::try_from(t.f_to_kind(Kind::Int64).torch()?.f_flatten(0, -1).torch()?).torch()
}

/// Resizes NHWC images with TensorFlow's legacy bilinear rule (`align_corners = false`,
/// `half_pixel_centers = false`): output pixel i samples input position i * in / out. This is not
/// torch's `interpolate(align_corners=False)`, which samples (i + 0.5) * in / out - 0.5.
pub(crate) fn resize_bilinear_legacy(x: &Tensor, out_h: i64, out_w: i64) -> Result<Tensor> {
    let size = x.size();
    if size.len() != 4 {
        crate::bail!(
            Config,
            "resize: expected an NHWC tensor, got shape {size:?}"
        );
    }
    // Source positions along one axis: lower and upper neighbour, and the weight of the upper one.
    let positions = |input: i64, output: i64| {
        let scale = input as f64 / output as f64;
        let (mut lo, mut hi, mut frac) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..output {
            let src = i as f64 * scale;
            lo.push((src.floor() as i64).min(input - 1));
            hi.push((src.ceil() as i64).min(input - 1));
            frac.push((src - src.floor()) as f32);
        }
        (lo, hi, frac)
    };
    let device = x.device();
    // Integer images become float32; floating inputs keep their precision.
    let kind = if x.is_floating_point() {
        x.kind()
    } else {
        Kind::Float
    };
    let weights = |frac: Vec<f32>, axis: usize, len: i64| -> Result<Tensor> {
        let mut shape = [1i64; 4];
        shape[axis] = len;
        Tensor::from_slice(&frac)
            .f_to_device(device)
            .torch()?
            .f_to_kind(kind)
            .torch()?
            .f_view(shape)
            .torch()
    };
    let index = |i: &[i64]| Tensor::from_slice(i).to_device(device);
    let (row_lo, row_hi, row_frac) = positions(size[1], out_h);
    let (col_lo, col_hi, col_frac) = positions(size[2], out_w);
    let (col_lo, col_hi, col_frac) = (index(&col_lo), index(&col_hi), weights(col_frac, 2, out_w)?);
    // Only the rows the output reads, interpolated along the width first and then between the two
    // rows: TensorFlow's arithmetic, on 2 * out_h rows instead of the whole image.
    let across = |rows: &[i64]| -> Result<Tensor> {
        let rows = x
            .f_index_select(1, &index(rows))
            .torch()?
            .f_to_kind(kind)
            .torch()?;
        let left = rows.f_index_select(2, &col_lo).torch()?;
        let right = rows.f_index_select(2, &col_hi).torch()?;
        left.f_add(&right.f_sub(&left).torch()?.f_mul(&col_frac).torch()?)
            .torch()
    };
    let top = across(&row_lo)?;
    let bottom = across(&row_hi)?;
    top.f_add(
        &bottom
            .f_sub(&top)
            .torch()?
            .f_mul(&weights(row_frac, 1, out_h)?)
            .torch()?,
    )
    .torch()
}

/// `x[begin:end:stride]` per axis with TensorFlow's begin/end/shrink masks (bit i: axis i).
fn strided_slice(
    x: &Tensor,
    begin: &[i64],
    end: &[i64],
    strides: &[i64],
    (begin_mask, end_mask, shrink_mask): (i64, i64, i64),
) -> Result<Tensor> {
    let size = x.size();
    let mut out = x.shallow_clone();
    let mut shrink = Vec::new();
    for axis in 0..begin.len() {
        let len = size[axis];
        let stride = strides[axis];
        if stride <= 0 {
            crate::bail!(Graph, "strided slice: stride {stride} is not supported");
        }
        let bit = 1 << axis;
        let norm = |v: i64| if v < 0 { v + len } else { v }.clamp(0, len);
        let b = if begin_mask & bit != 0 {
            0
        } else {
            norm(begin[axis])
        };
        let e = if shrink_mask & bit != 0 {
            b + 1
        } else if end_mask & bit != 0 {
            len
        } else {
            norm(end[axis])
        };
        out = out
            .f_slice(axis as i64, Some(b), Some(e.max(b)), stride)
            .torch()?;
        if shrink_mask & bit != 0 {
            shrink.push(axis as i64);
        }
    }
    for axis in shrink.into_iter().rev() {
        out = out.f_squeeze_dim(axis).torch()?;
    }
    Ok(out)
}

fn scalar(t: &Tensor) -> Result<i64> {
    let v = int_values(t)?;
    match v[..] {
        [x] => Ok(x),
        _ => crate::bail!(Graph, "expected a scalar, got {} values", v.len()),
    }
}

pub(super) fn run_op(op: &Op, args: &[&Tensor], inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Input(i) => one(inputs[*i].shallow_clone()),
        Op::Const(t) => one(t.shallow_clone()),
        Op::Conv {
            weight,
            bias,
            stride,
            dilation,
            padding,
            groups,
            activation,
        } => {
            let kernel = [weight.size()[2], weight.size()[3]];
            let (x, pad) = kernel_input(args[0], *padding, kernel, *stride, *dilation, 0.0)?;
            let mut y = x
                .f_conv2d(weight, bias.as_ref(), stride, pad, dilation, *groups)
                .torch()?;
            match activation {
                Activation::None => {}
                Activation::Relu => _ = y.f_relu_().torch()?,
                Activation::Relu6 => _ = y.f_clamp_(0.0, 6.0).torch()?,
            }
            one(to_nhwc(&y)?)
        }
        Op::HardSwish { scale } => {
            let x = args[0];
            let mut y = x.f_add_scalar(3.0).torch()?;
            _ = y.f_clamp_(0.0, 6.0).torch()?;
            _ = y.f_mul_(x).torch()?;
            _ = y.f_mul_scalar_(*scale).torch()?;
            one(y)
        }
        Op::Binary(kind) => {
            let (a, b) = (args[0], args[1]);
            let out = match kind {
                Binary::Add => a.f_add(b).torch()?,
                Binary::Sub => a.f_sub(b).torch()?,
                Binary::Mul => a.f_mul(b).torch()?,
                Binary::Div => a.f_div(b).torch()?,
                Binary::FloorDiv if a.is_floating_point() => {
                    a.f_div(b).torch()?.f_floor().torch()?
                }
                Binary::FloorDiv => a.f_floor_divide(b).torch()?,
                // torch's remainder takes the divisor's sign, as TensorFlow's FloorMod does.
                Binary::FloorMod => a.f_remainder_tensor(b).torch()?,
                Binary::Equal => a.f_eq_tensor(b).torch()?,
                Binary::Maximum => a.f_maximum(b).torch()?,
                Binary::Minimum => a.f_minimum(b).torch()?,
            };
            one(out)
        }
        Op::Unary(kind) => {
            let x = args[0];
            one(match kind {
                Unary::Identity => x.shallow_clone(),
                Unary::Relu => x.f_relu().torch()?,
                Unary::Relu6 => x.f_clamp(0.0, 6.0).torch()?,
                Unary::Sigmoid => x.f_sigmoid().torch()?,
                Unary::Tanh => x.f_tanh().torch()?,
            })
        }
        Op::Mean { keep_dims } => {
            let rank = args[0].dim() as i64;
            let axes: Vec<i64> = int_values(args[1])?
                .into_iter()
                .map(|a| if a < 0 { a + rank } else { a })
                .collect();
            one(args[0]
                .f_mean_dim(axes.as_slice(), *keep_dims, args[0].kind())
                .torch()?)
        }
        Op::ResizeBilinear => {
            let size = int_values(args[1])?;
            let [h, w] = size[..] else {
                crate::bail!(Graph, "resize size {size:?}");
            };
            one(resize_bilinear_legacy(args[0], h, w)?)
        }
        Op::Concat => {
            let (axis, parts) = args
                .split_last()
                .ok_or_else(|| Error::Graph("concat of nothing".into()))?;
            let rank = parts.first().map_or(0, |p| p.dim() as i64);
            let axis = scalar(axis)?;
            let axis = if axis < 0 { axis + rank } else { axis };
            one(Tensor::f_cat(parts, axis).torch()?)
        }
        Op::MaxPool {
            kernel,
            stride,
            padding,
        } => {
            let (x, pad) = kernel_input(
                args[0],
                *padding,
                *kernel,
                *stride,
                [1, 1],
                f64::NEG_INFINITY,
            )?;
            let y = x.f_max_pool2d(kernel, stride, pad, [1, 1], false).torch()?;
            one(to_nhwc(&y)?)
        }
        Op::Reshape => one(args[0].f_reshape(int_values(args[1])?.as_slice()).torch()?),
        Op::ExpandDims => {
            let dim = scalar(args[1])?;
            let rank = args[0].dim() as i64;
            one(args[0]
                .f_unsqueeze(if dim < 0 { dim + rank + 1 } else { dim })
                .torch()?)
        }
        Op::Cast(kind) => one(args[0].f_to_kind(*kind).torch()?),
        Op::TopK { sorted } => {
            let k = scalar(args[1])?;
            let (values, indices) = args[0].f_topk(k, -1, true, *sorted).torch()?;
            Ok(vec![values, indices.f_to_kind(Kind::Int).torch()?])
        }
        Op::Gather => {
            let (params, indices) = (args[0], args[1]);
            let axis = scalar(args[2])?;
            let axis = if axis < 0 {
                axis + params.dim() as i64
            } else {
                axis
            };
            let flat = indices
                .f_flatten(0, -1)
                .torch()?
                .f_to_kind(Kind::Int64)
                .torch()?;
            let picked = params.f_index_select(axis, &flat).torch()?;
            let shape = params.size();
            let mut out_shape = shape[..axis as usize].to_vec();
            out_shape.extend(indices.size());
            out_shape.extend(&shape[axis as usize + 1..]);
            one(picked.f_reshape(out_shape.as_slice()).torch()?)
        }
        Op::StridedSlice {
            begin_mask,
            end_mask,
            shrink_axis_mask,
        } => {
            let begin = int_values(args[1])?;
            let end = int_values(args[2])?;
            let strides = int_values(args[3])?;
            if begin.len() != end.len()
                || begin.len() != strides.len()
                || begin.len() > args[0].dim()
            {
                crate::bail!(
                    Config,
                    "strided slice: begin/end/strides of lengths {}/{}/{} on rank {}",
                    begin.len(),
                    end.len(),
                    strides.len(),
                    args[0].dim()
                );
            }
            one(strided_slice(
                args[0],
                &begin,
                &end,
                &strides,
                (*begin_mask, *end_mask, *shrink_axis_mask),
            )?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // 512 wide, 3x3 stride 2: 256 outputs need 1 pixel of padding, all of it after.
        assert_eq!(same_padding(512, 3, 2, 1), (0, 1));
        assert_eq!(same_padding(511, 3, 2, 1), (1, 1));
        assert_eq!(same_padding(128, 3, 1, 1), (1, 1));
        assert_eq!(same_padding(64, 5, 2, 1), (1, 2));
        assert_eq!(same_padding(64, 1, 1, 1), (0, 0));
    }

    #[test]
    fn legacy_resize_samples_at_i_times_scale() {
        // One row 0, 10, 20, 30 doubled in width: positions 0, .5, 1, ..., 3.5 (the last clamps).
        let x = Tensor::from_slice(&[0.0f32, 10.0, 20.0, 30.0]).view([1, 1, 4, 1]);
        let y = resize_bilinear_legacy(&x, 1, 8).unwrap();
        let got = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
        assert_eq!(got, vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 30.0]);
    }

    #[test]
    fn strided_slice_with_masks() {
        let x = Tensor::arange(24, (Kind::Int64, tch::Device::Cpu)).view([2, 3, 4]);
        // x[:, :, 1:2] (begin and end masks on the first two axes)
        let y = strided_slice(&x, &[0, 0, 1], &[0, 0, 2], &[1, 1, 1], (3, 3, 0)).unwrap();
        assert_eq!(y.size(), vec![2, 3, 1]);
        assert_eq!(int_values(&y).unwrap(), vec![1, 5, 9, 13, 17, 21]);
        // x[1, -1] (shrink the first two axes)
        let y = strided_slice(&x, &[1, -1], &[2, 0], &[1, 1], (0, 0, 3)).unwrap();
        assert_eq!(int_values(&y).unwrap(), vec![20, 21, 22, 23]);
    }
}
