"""StyleGAN2-style layers, generator and discriminator (Karras et al., CVPR 2020), in pure PyTorch.

Used by the single-image model (``--model sinsc``). The building blocks follow StyleGAN2:
equalised learning rate (weights drawn from N(0, 1) and scaled by 1/sqrt(fan_in) at run time),
blur ([1, 3, 3, 1]⊗[1, 3, 3, 1]) before strided convolutions and after transposed ones, leaky ReLU
with gain sqrt(2), modulated / demodulated convolutions, noise injection, and residual blocks
scaled by 1/sqrt(2).

Module and tensor names follow the F-LSeSim / CUT checkpoints (``encoder.convs.2.conv2.0.kernel``,
``decoder.convs.3.noise.weight``, ``final_linear.0.weight``, ...; see
tests/fixtures/checkpoint_keys_sinsc.txt), so published single-image checkpoints load as-is.
Unlike the reference, no layer depends on the training crop: channel counts come from ``ngf`` /
``ndf`` and the depth, so a generator trained on 128² crops translates a whole photo of any size.
"""

import math
from collections import OrderedDict
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.traits import InferenceTraits, pad_to_multiple

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through a leaky ReLU
D_NUM_DOWNSAMPLINGS = 4
D_FINAL_SIZE = 8  # the discriminator's last map is pooled to 8x8 (the reference's size at crop 128)


def blur_kernel(taps: tuple[float, ...] = BLUR_TAPS, gain: float = 1.0) -> torch.Tensor:
    """The separable 2-D kernel taps⊗taps, normalised to sum ``gain``; returns (k, k) float32."""
    row = torch.tensor(taps, dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel * (gain / kernel.sum())


def blur2d(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Zero-pad (B, C, H, W) by pad = (before, after) on both axes, then correlate each channel with ``kernel``.

    kernel: (k, k). Returns (B, C, H + before + after - k + 1, W + before + after - k + 1). Negative
    pads crop. Differentiable to any order at the cost of a depthwise conv per order (see _BlurFunction).
    """
    return _BlurFunction.apply(x, kernel, pad)


def _blur_forward(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    before, after = pad
    channels = int(x.shape[1])  # a constant when traced for ONNX export (export.py): the conv needs a fixed kernel
    weight = kernel.to(x.dtype)[None, None].expand(channels, 1, -1, -1)  # (C, 1, k, k)
    return F.conv2d(F.pad(x, (before, after, before, after)), weight, groups=channels)


class _BlurFunction(torch.autograd.Function):
    """The blur as a linear map whose adjoint is again a blur (flipped kernel, complementary pads).

    PyTorch differentiates a grouped conv's backward one group at a time, which made the gradient
    penalty (a double backward through the discriminator) about ten times slower than its forward
    pass; expressing the backward through this same function keeps every order one depthwise conv.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(kernel)
        ctx.pad = pad
        return _blur_forward(x, kernel, pad)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Optional[torch.Tensor], None, None]:
        (kernel,) = ctx.saved_tensors
        size = kernel.shape[-1]
        adjoint_pad = (size - 1 - ctx.pad[0], size - 1 - ctx.pad[1])
        return _BlurFunction.apply(grad_out, kernel.flip(0, 1), adjoint_pad), None, None


class Blur(nn.Module):
    """Zero-pad by ``pad`` = (before, after) on both axes, then convolve every channel with a fixed kernel.

    The kernel is a persistent buffer named ``kernel`` (it is part of the published checkpoints).
    Input (B, C, H, W); output (B, C, H + before + after - k + 1, W + ...).
    """

    def __init__(self, pad: tuple[int, int], gain: float = 1.0, taps: tuple[float, ...] = BLUR_TAPS) -> None:
        super().__init__()
        self.pad = pad
        self.register_buffer("kernel", blur_kernel(taps, gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> blurred (B, C, H', W'), see the class docstring for H', W'."""
        return blur2d(x, self.kernel, self.pad)


class EqualConv2d(nn.Module):
    """Conv2d with an equalised learning rate: weight ~ N(0, 1), multiplied by 1/sqrt(in·k·k) in forward.

    Input (B, in_channels, H, W); output (B, out_channels, H', W') as for ``nn.Conv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) -> (B, out_channels, H', W')."""
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with an equalised learning rate, optionally followed by the scaled leaky ReLU.

    Input (B, in_features); output (B, out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_features)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_features) -> (B, out_features)."""
        out = F.linear(x, self.weight * self.scale, self.bias)
        return F.leaky_relu(out, LRELU_SLOPE) * LRELU_GAIN if self.activate else out


class BiasedLeakyReLU(nn.Module):
    """Add a learned per-channel bias (stored as (1, C, 1, 1)), then leaky ReLU (0.2) times sqrt(2).

    Input and output (B, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        return F.leaky_relu(x + self.bias, LRELU_SLOPE) * LRELU_GAIN


class ConvLayer(nn.Sequential):
    """[Blur] → EqualConv2d (stride 2 when downsampling) → [BiasedLeakyReLU].

    With ``downsample`` the blur pads so that an even side H becomes exactly H / 2. The conv has its
    own bias only when there is no activation (the activation carries the bias otherwise).
    Input (B, in_channels, H, W); output (B, out_channels, H or H / 2, W or W / 2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        downsample: bool = False,
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        stride, padding = 1, kernel_size // 2
        if downsample:
            extra = (len(BLUR_TAPS) - 2) + (kernel_size - 1)
            layers.append(Blur(pad=((extra + 1) // 2, extra // 2)))
            stride, padding = 2, 0
        layers.append(
            EqualConv2d(
                in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias and not activate
            )
        )
        if activate:
            layers.append(BiasedLeakyReLU(out_channels))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """(conv3x3 → conv3x3 [↓2] + skip [1x1 ↓2]) / sqrt(2): StyleGAN2's residual discriminator block.

    The skip is the identity when the block keeps both channels and size.
    Input (B, in_channels, H, W); output (B, out_channels, H or H / 2, W or W / 2).
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=downsample)
        if in_channels != out_channels or downsample:
            self.skip: nn.Module = ConvLayer(
                in_channels, out_channels, 1, downsample=downsample, bias=False, activate=False
            )
        else:
            self.skip = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) -> (B, out_channels, H', W')."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: Optional[torch.Tensor],
    demodulate: bool = True,
    upsample: bool = False,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution, computed as scale-input → shared conv → scale-output.

    x: (B, I, H, W); weight: (O, I, k, k) already scaled for the equalised learning rate;
    styles: (B, I) per-sample input-channel scales, or None for all ones. The effective per-sample
    weight is w'_boik = w_oik · s_bi, demodulated to w'' = w' / sqrt(Σ_ik w'² + 1e-8). Returns
    (B, O, H, W), or (B, O, 2H + k - 2, 2W + k - 2) for a stride-2 transposed conv when ``upsample``.
    Scaling before and after one shared conv equals the grouped per-sample conv, without
    materialising B weight tensors.
    """
    batch = x.shape[0]
    if styles is not None:
        x = x * styles[:, :, None, None]  # (B, I, H, W)
    if upsample:
        out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # (B, O, 2H+k-2, 2W+k-2)
    else:
        out = F.conv2d(x, weight, padding=weight.shape[-1] // 2)  # (B, O, H, W)
    if demodulate:
        squares = weight.square().sum(dim=(2, 3))  # (O, I)
        if styles is None:
            norms = squares.sum(dim=1).expand(batch, -1)  # (B, O)
        else:
            norms = styles.square() @ squares.t()  # (B, O)
        out = out * torch.rsqrt(norms + 1e-8)[:, :, None, None]
    return out


class ModulatedConv2d(nn.Module):
    """Modulated (and by default demodulated) conv, optionally upsampling ×2 with a transposed conv + blur.

    ``style_dim`` > 0 adds ``modulation``, an EqualLinear mapping a (B, style_dim) style to per-input-channel
    scales (bias 1); with ``style_dim`` 0 (the generators here, like the reference) every scale is 1 and
    demodulation alone normalises each output channel's weights. The weight is stored as
    (1, O, I, k, k) like the published checkpoints. Input (B, I, H, W); output (B, O, H, W) or
    (B, O, 2H, 2W) with ``upsample``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int = 0,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0) if style_dim > 0 else None
        if upsample:
            # The transposed conv gives 2H + k - 2 samples; the blur brings them back to exactly 2H.
            extra = (len(BLUR_TAPS) - 2) - (kernel_size - 1)
            self.blur = Blur(pad=((extra + 1) // 2 + 1, extra // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor, style: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, I, H, W); style: (B, style_dim) or None -> (B, O, H', W')."""
        if (style is None) != (self.modulation is None):
            raise ValueError("a style must be given exactly when the layer was built with style_dim > 0")
        styles = self.modulation(style) if self.modulation is not None else None  # (B, I)
        out = modulated_conv2d(x, self.weight[0] * self.scale, styles, self.demodulate, self.upsample)
        return self.blur(out) if self.upsample else out


class NoiseInjection(nn.Module):
    """x + weight · noise, with one learned weight (initially 0) and per-pixel noise shared by the channels.

    Input and output (B, C, H, W); ``noise`` (B, 1, H, W), drawn from N(0, 1) on x's device when None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        if noise is None:
            batch, _, height, width = x.shape
            noise = torch.randn(batch, 1, height, width, device=x.device, dtype=x.dtype)
        return x + self.weight * noise


class StyledConv(nn.Module):
    """ModulatedConv2d → NoiseInjection → BiasedLeakyReLU (the generator's upsampling stage).

    Input (B, in_channels, H, W); output (B, out_channels, H or 2H, W or 2W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        style_dim: int = 0,
        upsample: bool = False,
        inject_noise: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim=style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = BiasedLeakyReLU(out_channels)
        self.inject_noise = inject_noise

    def forward(self, x: torch.Tensor, style: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, in_channels, H, W) -> (B, out_channels, H', W')."""
        out = self.conv(x, style)
        if self.inject_noise:
            out = self.noise(out)
        return self.activate(out)


def generator_channels(ngf: int, level: int) -> int:
    """Channels at ``level`` halvings below the input: 4·ngf·2^level, at most 512 (32, 64, 128 for ngf 8)."""
    return min(512, 4 * ngf * 2**level)


def discriminator_channels(ndf: int, level: int) -> int:
    """Channels at ``level`` halvings below the input: 2·ndf·2^level, at most 384 (16 ... 256 for ndf 8)."""
    return min(384, 2 * ndf * 2**level)


class StyleGAN2Encoder(nn.Module):
    """1x1 conv to 4·ngf channels → ``num_downsampling`` residual halvings → ``num_blocks`` residual blocks.

    ``convs`` is numbered from 1, as in the published checkpoints (whose slot 0 was an identity).
    Input (B, input_nc, H, W) with H, W multiples of 2^num_downsampling; output
    (B, C, H / 2^n, W / 2^n) with C = generator_channels(ngf, n).
    """

    def __init__(self, input_nc: int, ngf: int, num_downsampling: int, num_blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvLayer(input_nc, generator_channels(ngf, 0), 1)]
        for level in range(num_downsampling):
            layers.append(ResBlock(generator_channels(ngf, level), generator_channels(ngf, level + 1)))
        channels = generator_channels(ngf, num_downsampling)
        layers += [ResBlock(channels, channels, downsample=False) for _ in range(num_blocks)]
        self.convs = nn.Sequential(OrderedDict((str(i + 1), layer) for i, layer in enumerate(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_nc, H, W) -> (B, C, H / 2^n, W / 2^n)."""
        return self.convs(x)


class StyleGAN2Decoder(nn.Module):
    """``num_blocks`` residual blocks → ``num_upsampling`` StyledConv doublings (with noise) → 1x1 conv → tanh.

    As in the published decoder, the last 1x1 layer keeps its bias + scaled leaky ReLU and tanh
    follows, so every image that reaches D, the gradient penalty and the VGG lies in [-1, 1].
    Input (B, C, h, w); output (B, output_nc, h·2^n, w·2^n) in [-1, 1].
    """

    def __init__(
        self, output_nc: int, ngf: int, num_upsampling: int, num_blocks: int, inject_noise: bool = True
    ) -> None:
        super().__init__()
        channels = generator_channels(ngf, num_upsampling)
        layers: list[nn.Module] = [ResBlock(channels, channels, downsample=False) for _ in range(num_blocks)]
        for level in range(num_upsampling, 0, -1):
            layers.append(
                StyledConv(
                    generator_channels(ngf, level),
                    generator_channels(ngf, level - 1),
                    upsample=True,
                    inject_noise=inject_noise,
                )
            )
        layers.append(ConvLayer(generator_channels(ngf, 0), output_nc, 1))
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, h, w) -> (B, output_nc, h·2^n, w·2^n) in [-1, 1]."""
        return torch.tanh(self.convs(x))


class StyleGAN2Generator(nn.Module):
    """Encoder–decoder image translator built from StyleGAN2 blocks, independent of the image size.

    Args:
        input_nc / output_nc: image channels in and out.
        ngf: sets the channels, 4·ngf at full resolution doubling per halving (at most 512).
        num_downsampling: halvings in the encoder (and doublings in the decoder); 2 for sinsc.
        num_blocks: residual blocks at the bottleneck, split between encoder and decoder.
        inject_noise: per-pixel noise in the decoder's upsampling stages (random at test time too).

    forward: (B, input_nc, H, W), any H, W >= 1, values in [-1, 1] -> (B, output_nc, H, W) in [-1, 1]. The
    input is reflection-padded to a multiple of 2^num_downsampling and the output cropped back.
    """

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 8,
        num_downsampling: int = 2,
        num_blocks: int = 6,
        inject_noise: bool = True,
    ) -> None:
        super().__init__()
        if num_downsampling < 0 or num_blocks < 0:
            raise ValueError(f"num_downsampling ({num_downsampling}) and num_blocks ({num_blocks}) must be >= 0")
        self.input_nc = input_nc
        self.multiple = 2**num_downsampling
        self.encoder = StyleGAN2Encoder(input_nc, ngf, num_downsampling, num_blocks // 2)
        self.decoder = StyleGAN2Decoder(
            output_nc, ngf, num_downsampling, num_blocks - num_blocks // 2, inject_noise=inject_noise
        )
        # no normalisation over the image: tiles run through forward; the decoder's noise is switchable
        self.inference = InferenceTraits(size_multiple=self.multiple, tiling="forward", noise=inject_noise)

    def set_noise(self, enabled: bool) -> bool:
        """Switch the decoder's per-pixel noise on or off; returns whether it was on."""
        layers = [m for m in self.modules() if isinstance(m, StyledConv)]
        previous = any(layer.inject_noise for layer in layers)
        for layer in layers:
            layer.inject_noise = enabled
        return previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_nc, H, W) -> (B, output_nc, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ValueError(f"expected input (B, {self.input_nc}, H, W), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        out = self.decoder(self.encoder(pad_to_multiple(x, self.multiple, self.multiple)))
        return out[:, :, :height, :width]


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2's residual discriminator: one real/fake logit per image.

    1x1 conv → 4 residual halvings → 3x3 conv → pool to 8x8 → two EqualLinear layers. At a 128²
    input the map is already 8x8 and the network is exactly the reference's; other sizes are
    average-pooled (or repeated) to 8x8, so the parameters do not depend on the crop.
    Input (B, input_nc, H, W) with H, W >= 1; output (B, 1) logits.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvLayer(input_nc, discriminator_channels(ndf, 0), 1)]
        for level in range(D_NUM_DOWNSAMPLINGS):
            layers.append(ResBlock(discriminator_channels(ndf, level), discriminator_channels(ndf, level + 1)))
        self.convs = nn.Sequential(*layers)
        final = min(384, 64 * ndf)
        self.final_conv = ConvLayer(discriminator_channels(ndf, D_NUM_DOWNSAMPLINGS), final, 3)
        self.final_linear = nn.Sequential(
            EqualLinear(final * D_FINAL_SIZE**2, final, activate=True), EqualLinear(final, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, input_nc, H, W) -> (B, 1) logits."""
        out = self.final_conv(self.convs(x))  # (B, final, H / 16, W / 16)
        out = F.adaptive_avg_pool2d(out, D_FINAL_SIZE)  # (B, final, 8, 8)
        return self.final_linear(out.flatten(1))


def build_stylegan2_generator(
    *, input_nc: int, output_nc: int, ngf: int, norm: str, use_dropout: bool, no_antialias: bool, no_antialias_up: bool
) -> nn.Module:
    """GENERATORS['stylegan2']: 2 downsamplings, 6 residual blocks (the sinsc setting).

    StyleGAN2 blocks have no normalisation or dropout and always blur, so norm, use_dropout and the
    antialias switches do not apply.
    """
    return StyleGAN2Generator(input_nc=input_nc, output_nc=output_nc, ngf=ngf, num_downsampling=2, num_blocks=6)


def build_stylegan2_discriminator(
    *, input_nc: int, ndf: int, n_layers: int, norm: str, no_antialias: bool
) -> nn.Module:
    """DISCRIMINATORS['stylegan2']: its depth is fixed (4 halvings), so n_layers, norm and no_antialias do not apply."""
    return StyleGAN2Discriminator(input_nc=input_nc, ndf=ndf)
