"""A template for new models: copy to ``models/<name>_model.py`` and rename the class ``<Name>Model``.

This one is a small paired model (use it with ``--dataset_mode aligned``, its default): ``G(A) ~ B``
by an L1 loss plus a GAN loss from a PatchGAN ``D`` that is trained on real B against pooled fakes.
Everything shared comes from :class:`~models.base_model.BaseModel`: ``set_input`` (with the
``--channels_last`` memory format), ``adam`` (optimisers with ``--lr``/``--beta1``/``--beta2``,
scheduled and resumed by the base class), ``optimizer_step`` (autocast under ``--amp``, the fp16
GradScaler, and never applying a non-finite loss or gradient), ``compute_D_loss`` from the declared
``Adversary`` terms (with the image pool and ``--gan_mode``), and the pool's saved state (``extra_state``),
so resuming is bit-exact. A model:

- declares on its class what the tools need: ``architecture_options`` (what test.py inherits from the
  trained run's opt.json), ``test_networks`` (the networks of a test checkpoint) and its outputs
  (``output_visual``, ``multi_output``);
- fills, in ``__init__``: ``loss_names`` (keys of the ``parts`` dicts that ``compute_*_loss`` return,
  printed and plotted), ``visual_names`` (attributes holding (B, C, H, W) images in [-1, 1], shown and
  saved), ``model_names`` (``X`` for each network ``self.netX``, saved as ``<tag>_net_X.pth``) and
  ``compile_names`` (the networks ``--compile`` compiles);
- builds every network, then calls ``self.apply_memory_format()`` (``--channels_last``);
- reads its options in ``__init__`` (here into ``self.lambda_L1``), not in the step methods.

tests/models/test_conformance.py trains, resumes, saves, loads and tests every model file, this one included.
"""

from __future__ import annotations

import argparse

import torch.nn.functional as F

from models.base_model import Adversary, BaseModel
from models.networks import build_discriminator, build_generator, discriminator_settings, generator_settings
from util.image_pool import ImagePool


class TemplateModel(BaseModel):
    """Paired translation A -> B: L1 + GAN, with a ResNet generator and a PatchGAN discriminator."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(dataset_mode="aligned")
        if is_train:
            parser.add_argument("--lambda_L1", type=float, default=10.0, help="weight of the L1 loss")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.visual_names = ["real_A", "fake_B", "real_B"]
        self.model_names = list(self.test_networks)
        self.compile_names = list(self.model_names)
        self.netG = build_generator(**generator_settings(opt)).to(self.device)
        if self.is_train:
            self.loss_names = ["G_GAN", "G_L1", "D_real", "D_fake"]
            self.model_names += ["D"]
            self.compile_names += ["D"]
            self.lambda_L1 = opt.lambda_L1
            self.netD = build_discriminator(**discriminator_settings(opt, opt.output_nc)).to(self.device)
            self.fake_pool = ImagePool(opt.pool_size, generator=self.seeded_generator())
            # D's loss, 0.5 (GAN(D(real_B), real) + GAN(D(pooled fake_B), fake)), is BaseModel.compute_D_loss's.
            self.set_adversaries(opt.gan_mode, Adversary("D", real="real_B", fake="fake_B", pool="fake_pool"))
            self.optimizer_G, self.optimizer_D = self.adam(self.netG), self.adam(self.netD)
        self.apply_memory_format()

    def forward(self) -> None:
        """fake_B = G(real_A), under autocast with ``--amp`` (the image itself in float32)."""
        with self.autocast():
            self.fake_B = self.netG(self.real_A).float()

    def compute_G_loss(self) -> tuple:
        """GAN(D(fake_B), real) + lambda_L1 |fake_B - real_B|."""
        terms = {
            "G_GAN": self.criterionGAN(self.netD(self.fake_B), True, for_discriminator=False),
            "G_L1": F.l1_loss(self.fake_B, self.real_B) * self.lambda_L1,
        }
        return sum(terms.values()), {k: v.detach() for k, v in terms.items()}

    def optimize_parameters(self) -> None:
        """forward -> D step -> G step (D frozen), each through ``optimizer_step``; then ``finish_step``."""
        self.forward()
        self.set_requires_grad([self.netD], True)
        parts = self.optimizer_step(self.optimizer_D, self.compute_D_loss)
        self.set_requires_grad([self.netD], False)
        parts.update(self.optimizer_step(self.optimizer_G, self.compute_G_loss))
        self.finish_step()
        self.loss_parts = parts
