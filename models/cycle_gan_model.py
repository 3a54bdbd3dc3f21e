"""The ``cycle_gan`` model: CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017) on this framework's networks.

    python train.py --dataroot ./datasets/horse2zebra --name h2z_cyclegan --model cycle_gan

Two generators, G_A: A -> B and G_B: B -> A, and two PatchGANs, D_A judging the B side and D_B the
A side. G_A and G_B are trained together on both GAN losses, the cycle losses
lambda_A |G_B(G_A(a)) - a| and lambda_B |G_A(G_B(b)) - b|, and the identity losses
lambda_identity * (lambda_B |G_A(b) - b| + lambda_A |G_B(a) - a|); then D_A and D_B together, each on
0.5 (real + pooled fake). The published defaults: lambda_A = lambda_B = 10, lambda_identity 0.5,
the networks without anti-aliasing (strided convs, transposed convs), normal init with gain 0.02,
lr 2e-4, lsgan, image pools of 50, 100 + 100 epochs. Checkpoints ``net_G_A``, ``net_G_B``,
``net_D_A``, ``net_D_B`` have the published key names. test.py translates with G_A (``latest_net_G_A``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from models.base_model import Adversary, BaseModel, frozen_config
from models.networks import build_discriminator, build_generator, discriminator_settings, generator_settings
from util.errors import UserError
from util.image_pool import ImagePool


@dataclass(frozen=True)
class CycleGANConfig:
    """What the cycle_gan step reads from the options (resolved in the constructor; None at test time)."""

    lambda_A: Optional[float]
    lambda_B: Optional[float]
    lambda_identity: Optional[float]


class CycleGANModel(BaseModel):
    """Unpaired translation with cycle consistency, both directions at once."""

    test_networks = ("G_A",)
    reverse_networks = {"G_A": "G_B"}  # the other --direction translates with G_B (B -> A)

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(no_antialias=True, no_antialias_up=True, init_type="normal")
        if is_train:
            g = parser.add_argument_group("cycle_gan")
            g.add_argument("--lambda_A", type=float, default=10.0, help="weight of the cycle loss A -> B -> A")
            g.add_argument("--lambda_B", type=float, default=10.0, help="weight of the cycle loss B -> A -> B")
            g.add_argument(
                "--lambda_identity",
                type=float,
                default=0.5,
                help="identity loss weight, relative to lambda_A / lambda_B",
            )
            parser.set_defaults(lr=0.0002, pool_size=50, n_epochs=100, n_epochs_decay=100)
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.cfg = frozen_config(CycleGANConfig, opt)
        self.netG_A = build_generator(**generator_settings(opt)).to(self.device)
        self.model_names = list(self.test_networks)
        self.compile_names = ["G_A"]
        self.visual_names = ["real_A", "fake_B", "real_B"]
        if self.is_train:
            reverse = {"input_nc": opt.output_nc, "output_nc": opt.input_nc}
            self.netG_B = build_generator(**generator_settings(opt) | reverse).to(self.device)
            self._build_training(opt)
        self.apply_memory_format()  # --channels_last: the networks NHWC, and set_input's images

    def _build_training(self, opt: argparse.Namespace) -> None:
        self.use_idt = opt.lambda_identity > 0
        if self.use_idt and opt.input_nc != opt.output_nc:
            raise UserError(
                f"--lambda_identity {opt.lambda_identity} needs --input_nc equal to --output_nc "
                f"(got {opt.input_nc} and {opt.output_nc}); or set --lambda_identity 0"
            )
        idt = ["idt_A", "idt_B"] if self.use_idt else []
        self.loss_names = ["D_A", "G_A", "cycle_A"] + idt[:1] + ["D_B", "G_B", "cycle_B"] + idt[1:]
        self.visual_names = ["real_A", "fake_B", "rec_A"] + idt[1:] + ["real_B", "fake_A", "rec_B"] + idt[:1]
        self.model_names = ["G_A", "G_B", "D_A", "D_B"]
        self.compile_names = list(self.model_names)
        self.netD_A = build_discriminator(**discriminator_settings(opt, opt.output_nc)).to(self.device)
        self.netD_B = build_discriminator(**discriminator_settings(opt, opt.input_nc)).to(self.device)
        self.fake_A_pool = ImagePool(opt.pool_size, generator=self.seeded_generator())
        self.fake_B_pool = ImagePool(opt.pool_size, generator=self.seeded_generator(1))
        # D_A on real_B vs pooled fake_B plus D_B on real_A vs pooled fake_A, reals first, as published.
        self.set_adversaries(
            opt.gan_mode,
            Adversary("D_A", real="real_B", fake="fake_B", pool="fake_B_pool", part="D_A", real_first=True),
            Adversary("D_B", real="real_A", fake="fake_A", pool="fake_A_pool", part="D_B", real_first=True),
        )
        self.optimizer_G = self.adam(self.netG_A, self.netG_B)
        self.optimizer_D = self.adam(self.netD_A, self.netD_B)

    # ---- data and forward ---------------------------------------------------------------
    def forward(self) -> None:
        """fake_B = G_A(real_A); when training also rec_A, fake_A = G_B(real_B) and rec_B."""
        with self.autocast():
            self.fake_B = self.netG_A(self.real_A).float()
            if self.is_train:
                self.rec_A = self.netG_B(self.fake_B).float()
                self.fake_A = self.netG_B(self.real_B).float()
                self.rec_B = self.netG_A(self.fake_A).float()

    # ---- losses -------------------------------------------------------------------------
    def compute_G_loss(self) -> tuple[torch.Tensor, dict]:
        """GAN losses of both generators + both cycle losses + both identity losses."""
        opt = self.cfg
        terms = {
            "G_A": self.criterionGAN(self.netD_A(self.fake_B), True, for_discriminator=False),
            "G_B": self.criterionGAN(self.netD_B(self.fake_A), True, for_discriminator=False),
            "cycle_A": F.l1_loss(self.rec_A, self.real_A) * opt.lambda_A,
            "cycle_B": F.l1_loss(self.rec_B, self.real_B) * opt.lambda_B,
        }
        if self.use_idt:
            self.idt_A = self.netG_A(self.real_B).float()
            self.idt_B = self.netG_B(self.real_A).float()
            terms["idt_A"] = F.l1_loss(self.idt_A, self.real_B) * opt.lambda_B * opt.lambda_identity
            terms["idt_B"] = F.l1_loss(self.idt_B, self.real_A) * opt.lambda_A * opt.lambda_identity
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}

    # ---- the step -----------------------------------------------------------------------
    def optimize_parameters(self) -> None:
        """forward -> G_A and G_B step (D frozen) -> D_A and D_B step, as published."""
        self.forward()
        discriminators = [self.netD_A, self.netD_B]
        self.set_requires_grad(discriminators, False)
        parts = self.optimizer_step(self.optimizer_G, self.compute_G_loss)
        self.set_requires_grad(discriminators, True)
        parts.update(self.optimizer_step(self.optimizer_D, self.compute_D_loss))
        self.finish_step()
        self.loss_parts = parts
