"""The ``sc`` model: unpaired translation with the spatially-correlative loss (F-LSeSim).

FSeSim: ``--model sc`` (fixed VGG16 self-similarity). LSeSim: add ``--learned_attn --augment``
(1x1 heads trained contrastively, usually with ``--patch_size 32``).

One training step: forward G -> [head step] -> D step -> G step. VGG16 features of the real
and augmented images are computed once per step without gradients, those of fake_B once with
gradients; the head step reuses detached copies. The VGG never gets gradients or optimiser state.

Speed switches: ``--amp bf16|fp16`` runs G, D, the VGG and the losses under autocast (the loss keeps
its similarity maps and softmax in float32; fp16 adds a GradScaler), ``--channels_last`` stores the
networks and images NHWC, ``--compile`` compiles G and D. Under torchrun (util/dist.py) G, D and the
heads are DDP-wrapped by ``setup``, and the image pool sees every process's fakes
(util/image_pool.py's ``query_across_ranks``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

import torch

from models.base_model import Adversary, BaseModel, frozen_config
from models.losses import gradient_penalty, perceptual_loss, style_loss
from models.networks import build_discriminator, build_generator, discriminator_settings, generator_settings
from models.spatial import add_spatial_options, build_spatial_loss, needs_other, parse_attn_layers, rot180, vgg_features
from util.errors import UserError
from util.image_pool import ImagePool


@dataclass(frozen=True)
class SCConfig:
    """What the sc step reads from the options (resolved in the constructor; None: not a test-time flag)."""

    learned_attn: bool
    loss_mode: str
    lambda_GAN: float
    lambda_spatial: float
    lambda_spatial_idt: float
    lambda_identity: float
    identity_scale: float
    lambda_perceptual: float
    lambda_style: float
    lambda_gradient: float


PERCEPTUAL_LAYER = 6  # relu3_3
STYLE_LAYERS = (1, 3, 6, 9)  # relu1_2, relu2_2, relu3_3, relu4_3


class SCModel(BaseModel):
    """Single-modal translation A -> B with the spatially-correlative loss."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        g = add_spatial_options(parser.add_argument_group("sc model"))
        g.add_argument(
            "--lambda_GAN",
            type=float,
            default=1.0,
            help="weight of G's adversarial loss (1 in the published code; 0 for ablations)",
        )
        g.add_argument("--lambda_spatial_idt", type=float, default=0.0, help="spatial loss on G(real_B) vs real_B")
        g.add_argument("--lambda_perceptual", type=float, default=0.0, help="L1 of relu3_3 of real_A vs fake_B")
        g.add_argument("--lambda_style", type=float, default=0.0, help="Gram-matrix L1 of real_B vs fake_B")
        g.add_argument("--lambda_identity", type=float, default=0.0, help="L1 of G(real_B) vs real_B")
        g.add_argument(
            "--identity_scale",
            type=float,
            default=1.0,
            help="the identity pass on real_B resized by this factor (0 < s <= 1; 0.5: a quarter of its cost)",
        )
        g.add_argument("--lambda_gradient", type=float, default=0.0, help="WGAN-GP gradient penalty weight")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.cfg = frozen_config(SCConfig, opt)
        self.attn_layers = parse_attn_layers(opt.attn_layers)
        self.use_idt = opt.lambda_identity > 0 or opt.lambda_spatial_idt > 0
        self.visual_names = ["real_A", "fake_B", "real_B"] + (["idt_B"] if self.use_idt and self.is_train else [])
        self.model_names = list(self.test_networks)
        self.compile_names = ["G", "D"] if self.is_train else ["G"]
        self.netG = build_generator(**generator_settings(opt)).to(self.device)
        if self.is_train:
            self._build_training(opt)
        self.apply_memory_format()

    # ---- construction -------------------------------------------------------------------
    def _build_training(self, opt: argparse.Namespace) -> None:
        if not 0 < opt.identity_scale <= 1:
            raise UserError(f"--identity_scale {opt.identity_scale}: must be in (0, 1]")
        if opt.identity_scale < 1 and opt.lambda_spatial_idt > 0:
            raise UserError(
                f"--identity_scale {opt.identity_scale}: resizes the identity pass of --lambda_identity only; "
                "with --lambda_spatial_idt leave it at 1"
            )
        if opt.augment and not opt.learned_attn:
            print("Note: --augment only feeds the learned heads; without --learned_attn it has no effect.")
        self.loss_names = ["G_GAN", "G_s", "D_real", "D_fake"]
        for flag, names in (
            (opt.learned_attn, ["spatial"]),
            (opt.lambda_spatial_idt > 0, ["G_s_idt_B"]),
            (opt.lambda_identity > 0, ["idt_B"]),
            (opt.lambda_perceptual > 0, ["per"]),
            (opt.lambda_style > 0, ["style"]),
            (opt.lambda_gradient > 0, ["D_Gradient"]),
        ):
            self.loss_names += names if flag else []
        self.model_names += ["D"] + (["F"] if opt.learned_attn else [])
        self.netD = build_discriminator(**discriminator_settings(opt, opt.output_nc)).to(self.device)
        extra = {PERCEPTUAL_LAYER} if opt.lambda_perceptual > 0 else set()
        extra |= set(STYLE_LAYERS) if opt.lambda_style > 0 else set()
        self.vgg, self.netF = build_spatial_loss(opt, self.attn_layers, self.device, extra_layers=extra)
        self.fake_pool = ImagePool(opt.pool_size, generator=self.seeded_generator())
        self.set_adversaries(opt.gan_mode, Adversary("D", real="real_B", fake="fake_B", pool="fake_pool"))
        self.optimizer_G, self.optimizer_D = self.adam(self.netG), self.adam(self.netD)
        if opt.learned_attn:
            self.optimizer_F = self.adam(self.netF)

    # ---- data and forward ---------------------------------------------------------------
    def forward(self) -> None:
        """G under autocast (``--amp``); its output images are float32 whatever ran inside."""
        with self.autocast():
            self.fake_B = self.netG(self.real_A).float()
            if self.is_train and self.use_idt:
                self.idt_B = self.netG(self.identity_source()).float()

    def identity_source(self) -> torch.Tensor:
        """real_B, or with ``--identity_scale s < 1`` real_B resized to round(s * side) (bilinear, antialiased):
        the image the identity pass translates and its L1 target."""
        scale = self.cfg.identity_scale
        if scale == 1:
            return self.real_B
        h, w = self.real_B.shape[2:]
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        return torch.nn.functional.interpolate(self.real_B, size=size, mode="bilinear", antialias=True)

    def _layer_feats(self, feats: list[torch.Tensor], layers: tuple | list) -> list[torch.Tensor]:
        return [feats[self.vgg.layers.index(i)] for i in layers]

    def _extract_features(self) -> None:
        """VGG16 features, once per step: real images in one batch without gradients, fakes with."""
        opt = self.cfg
        learned = opt.learned_attn
        need_real_B = opt.lambda_style > 0 or opt.lambda_spatial_idt > 0
        augment = learned and self.real_A_aug is not None and self.real_B_aug is not None
        reals = {"A": self.real_A}
        reals.update({"other": rot180(self.real_B)} if needs_other(opt) else {})
        reals.update({"A_aug": self.real_A_aug, "other_aug": rot180(self.real_B_aug)} if augment else {})
        reals.update({"B": self.real_B} if need_real_B else {})
        with torch.no_grad():
            self.feats = vgg_features(self.vgg, reals)
        fakes = {"fake_B": self.fake_B} | ({"idt_B": self.idt_B} if opt.lambda_spatial_idt > 0 else {})
        self.feats.update(vgg_features(self.vgg, fakes))

    # ---- losses -------------------------------------------------------------------------
    def spatial_src_tgt_other(self, detach_target: bool) -> tuple[list, list, Optional[list]]:
        """Source, target and other feature lists of the head step (doubled with --augment)."""
        src = self._layer_feats(self.feats["A"], self.attn_layers)
        tgt = self._layer_feats(self.feats["fake_B"], self.attn_layers)
        tgt = [t.detach() for t in tgt] if detach_target else tgt
        other = self._layer_feats(self.feats["other"], self.attn_layers) if "other" in self.feats else None
        if detach_target and "A_aug" in self.feats:
            aug = self._layer_feats(self.feats["A_aug"], self.attn_layers)
            other_aug = self._layer_feats(self.feats["other_aug"], self.attn_layers)
            # the source stays [real_A]: the loss tiles it to [real_A, real_A] after its heads
            tgt = [torch.cat([t, a]) for t, a in zip(tgt, aug)]
            other = [torch.cat([o, a]) for o, a in zip(other, other_aug)]
        return src, tgt, other

    def compute_F_loss(self) -> tuple[torch.Tensor, dict]:
        """Contrastive loss that trains the heads: real_A vs fake_B (detached) vs rot180(real_B)."""
        src, tgt, other = self.spatial_src_tgt_other(detach_target=True)
        loss = self.netF(src, tgt, other)
        return loss, {"spatial": loss.detach()}

    def discriminator_penalty(self, adversary: Adversary, real: torch.Tensor, fake: torch.Tensor) -> dict:
        """``--lambda_gradient``: the gradient penalty on real_B interpolated with the pooled fakes D saw."""
        if self.cfg.lambda_gradient <= 0:
            return {}
        # Second derivatives in float32, through the plain D: compiled graphs have no double
        # backward, and under DDP the D calls above already make its gradients all-reduced.
        with torch.autocast(self.device.type, enabled=False):
            return {
                "D_Gradient": gradient_penalty(self.networks()["D"], real, fake, lambda_gp=self.cfg.lambda_gradient)
            }

    def compute_G_loss(self) -> tuple[torch.Tensor, dict]:
        """GAN + lambda_spatial * spatial(real_A, fake_B) + the optional identity/perceptual/style terms."""
        opt = self.cfg
        terms = {"G_GAN": self.criterionGAN(self.netD(self.fake_B), True, for_discriminator=False) * opt.lambda_GAN}
        src, tgt, other = self.spatial_src_tgt_other(detach_target=False)
        other = other if opt.loss_mode == "info" else None
        terms["G_s"] = self.netF(src, tgt, other) * opt.lambda_spatial
        if opt.lambda_spatial_idt > 0:
            src_b = self._layer_feats(self.feats["B"], self.attn_layers)
            idt = self._layer_feats(self.feats["idt_B"], self.attn_layers)
            terms["G_s_idt_B"] = self.netF(src_b, idt, other) * opt.lambda_spatial_idt
        if opt.lambda_identity > 0:
            terms["idt_B"] = torch.nn.functional.l1_loss(self.idt_B, self.identity_source()) * opt.lambda_identity
        if opt.lambda_perceptual > 0:
            a, b = (self._layer_feats(self.feats[k], [PERCEPTUAL_LAYER])[0] for k in ("A", "fake_B"))
            terms["per"] = perceptual_loss(a, b) * opt.lambda_perceptual
        if opt.lambda_style > 0:
            real, fake = (self._layer_feats(self.feats[k], STYLE_LAYERS) for k in ("B", "fake_B"))
            terms["style"] = style_loss(real, fake) * opt.lambda_style
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}

    # ---- the step -----------------------------------------------------------------------
    def optimize_parameters(self) -> None:
        """forward G -> [head step] -> D step -> G step, under autocast with ``--amp``."""
        self.forward()
        with self.autocast():
            self._extract_features()
        parts = {}
        if self.cfg.learned_attn:
            self.set_requires_grad([self.netF], True)
            parts.update(self.optimizer_step(self.optimizer_F, self.compute_F_loss))
        self.set_requires_grad([self.netD], True)
        parts.update(self.optimizer_step(self.optimizer_D, self.compute_D_loss))
        self.set_requires_grad([self.netD, self.netF], False)
        parts.update(self.optimizer_step(self.optimizer_G, self.compute_G_loss))
        self.finish_step()
        self.loss_parts = parts
        self.feats = {}
