"""The ``cut`` model: CUT and FastCUT (Park, Efros, Zhang & Zhu, ECCV 2020) on this framework's networks.

    python train.py --dataroot ./datasets/horse2zebra --name h2z_cut --model cut                      # CUT
    python train.py --dataroot ./datasets/horse2zebra --name h2z_fastcut --model cut --CUT_mode FastCUT

The generator keeps the structure of its input through PatchNCE (models/patchnce.py): features of
``G(real_A)`` taken from G's own encoder (``--nce_layers``, indices into the ResNet generator's
``model``) must match the features of ``real_A`` at the same location better than at other
locations. The published defaults: layers 0,4,8,12,16, 256 patches per layer, an MLP head of 256
units per layer (``net_F``), temperature 0.07, lambda_GAN 1, lambda_NCE 1, identity NCE on real_B,
no image pool, lr 2e-4, 200 + 200 epochs. ``--CUT_mode FastCUT`` changes the defaults to
lambda_NCE 10, no identity NCE, flip-equivariance and 150 + 50 epochs (any of them given on the
command line wins). Checkpoints ``net_G``, ``net_D``, ``net_F`` have the published key names.

One step: forward G (on [real_A, real_B] with identity NCE; on a horizontally flipped batch with
probability 0.5 under flip-equivariance) -> D step -> G and F step together. The keys' encoder
pass runs without autograd (the published loss detaches them anyway).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from models.base_model import Adversary, BaseModel, frozen_config
from models.wrappers import unwrap
from models.networks import build_discriminator, build_generator, discriminator_settings, generator_settings
from models.networks.init import init_weights
from models.patchnce import PatchSampleMLP, patch_nce
from util.errors import UserError
from util.image_pool import ImagePool


@dataclass(frozen=True)
class CUTConfig:
    """What the cut step reads from the options (resolved in the constructor)."""

    flip_equivariance: bool
    num_patches: int
    nce_T: float
    lambda_NCE: float
    lambda_GAN: float


CUT_MODES = ("CUT", "cut", "FastCUT", "fastcut")


def parse_nce_layers(value: str) -> list[int]:
    """'0,4,8,12,16' -> [0, 4, 8, 12, 16] (sorted, as the published encoder returns them)."""
    try:
        layers = sorted({int(v) for v in str(value).replace(" ", "").split(",") if v != ""})
    except ValueError:
        raise UserError(f"--nce_layers {value}: give comma-separated indices into the generator's layers") from None
    if not layers or layers[0] < 0:
        raise UserError(f"--nce_layers {value}: give non-negative indices such as 0,4,8,12,16")
    return layers


class CUTModel(BaseModel):
    """Contrastive unpaired translation: GAN + PatchNCE between real_A and G(real_A)."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        g = parser.add_argument_group("cut")
        g.add_argument(
            "--CUT_mode",
            default="CUT",
            choices=CUT_MODES,
            help="CUT, or FastCUT: lambda_NCE 10, no identity NCE, flip-equivariance, 150 + 50 epochs",
        )
        g.add_argument("--lambda_GAN", type=float, default=1.0, help="weight of the GAN loss")
        g.add_argument("--lambda_NCE", type=float, default=1.0, help="weight of PatchNCE (FastCUT: 10)")
        g.add_argument(
            "--nce_idt",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="also PatchNCE between real_B and G(real_B) (FastCUT: off)",
        )
        g.add_argument("--nce_layers", default="0,4,8,12,16", help="generator layers PatchNCE compares")
        g.add_argument(
            "--netF",
            default="mlp_sample",
            choices=["mlp_sample", "sample"],
            help="patch features through a learned MLP head per layer, or as they are",
        )
        g.add_argument("--netF_nc", type=int, default=256, help="width of the MLP heads")
        g.add_argument("--nce_T", type=float, default=0.07, help="temperature of PatchNCE")
        g.add_argument("--num_patches", type=int, default=256, help="patches per layer")
        g.add_argument(
            "--flip_equivariance",
            action=argparse.BooleanOptionalAction,
            default=False,
            help="translate a horizontally flipped batch half the time (FastCUT: on)",
        )
        if is_train:
            parser.set_defaults(pool_size=0, lr=0.0002, n_epochs=200, n_epochs_decay=200)
        return parser

    @staticmethod
    def preset_defaults(known: argparse.Namespace, is_train: bool) -> dict:
        """FastCUT's defaults; options given on the command line still win."""
        if known.CUT_mode.lower() != "fastcut":
            return {}
        presets = {"lambda_NCE": 10.0, "nce_idt": False, "flip_equivariance": True}
        return presets | ({"n_epochs": 150, "n_epochs_decay": 50} if is_train else {})

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.cfg = frozen_config(CUTConfig, opt)
        self.nce_layers = parse_nce_layers(opt.nce_layers)
        self.use_idt = self.is_train and opt.nce_idt and opt.lambda_NCE > 0
        self.visual_names = ["real_A", "fake_B", "real_B"] + (["idt_B"] if self.use_idt else [])
        self.model_names = list(self.test_networks)
        self.compile_names = ["G", "D"] if self.is_train else ["G"]
        self.netG = build_generator(**generator_settings(opt)).to(self.device)
        self.flipped = False
        if self.is_train:
            self._build_training(opt)
        self.apply_memory_format()  # --channels_last: the networks NHWC, and set_input's images

    def _build_training(self, opt: argparse.Namespace) -> None:
        if not hasattr(self.netG, "encode"):
            raise UserError(
                f"--model cut --netG {opt.netG}: PatchNCE needs a ResNet generator (resnet_9blocks or resnet_6blocks)"
            )
        try:
            channels = self.netG.layer_channels(self.nce_layers)
        except ValueError as exc:
            raise UserError(f"--nce_layers {opt.nce_layers}: {exc}") from None
        self.loss_names = ["G_GAN", "D_real", "D_fake", "G", "NCE"] + (["NCE_Y"] if self.use_idt else [])
        self.model_names += ["F", "D"]
        self.netF = init_weights(
            PatchSampleMLP(channels, opt.netF_nc, use_mlp=opt.netF == "mlp_sample"), opt.init_type, opt.init_gain
        ).to(self.device)
        self.netD = build_discriminator(**discriminator_settings(opt, opt.output_nc)).to(self.device)
        self.fake_pool = ImagePool(opt.pool_size, generator=self.seeded_generator())
        self.set_adversaries(opt.gan_mode, Adversary("D", real="real_B", fake="fake_B", pool="fake_pool"))
        self.optimizer_G, self.optimizer_D = self.adam(self.netG), self.adam(self.netD)
        self.optimizer_F = None
        if opt.lambda_NCE > 0 and opt.netF == "mlp_sample":
            self.optimizer_F = self.adam(self.netF)

    # ---- data and forward ---------------------------------------------------------------
    def forward(self) -> None:
        """fake_B = G(real_A) (and idt_B = G(real_B)) in one G call; flipped half the time under FastCUT."""
        real = torch.cat([self.real_A, self.real_B]) if self.use_idt else self.real_A
        self.flipped = self.is_train and self.cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        if self.flipped:
            real = torch.flip(real, dims=[3])
        with self.autocast():
            fake = self.netG(real).float()
        count = self.real_A.shape[0]
        self.fake_B = fake[:count]
        if self.use_idt:
            self.idt_B = fake[count:]

    # ---- losses -------------------------------------------------------------------------
    def nce_loss(self, source: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
        """lambda_NCE * PatchNCE of (B, C, H, W) translations (queries) against their sources (keys)."""
        encoder = unwrap(self.netG)
        queries = encoder.encode(translated, self.nce_layers)
        if self.flipped:
            queries = [torch.flip(q, dims=[3]) for q in queries]
        with torch.no_grad():
            keys = encoder.encode(source, self.nce_layers)
        patch_ids = unwrap(self.netF).sample_ids(keys, self.cfg.num_patches)
        with torch.no_grad():
            keys = self.netF(keys, patch_ids)
        queries = self.netF(queries, patch_ids)
        return patch_nce(queries, keys, self.cfg.nce_T) * self.cfg.lambda_NCE

    def compute_G_loss(self) -> tuple[torch.Tensor, dict]:
        """lambda_GAN GAN(D(fake_B), real) + NCE (the mean of NCE and NCE_Y with identity NCE)."""
        opt = self.cfg
        zero = torch.zeros((), device=self.device)
        gan = (
            self.criterionGAN(self.netD(self.fake_B), True, for_discriminator=False) * opt.lambda_GAN
            if opt.lambda_GAN > 0
            else zero
        )
        nce = self.nce_loss(self.real_A, self.fake_B) if opt.lambda_NCE > 0 else zero
        parts = {"G_GAN": gan, "NCE": nce}
        nce_both = nce
        if self.use_idt:
            parts["NCE_Y"] = self.nce_loss(self.real_B, self.idt_B)
            nce_both = 0.5 * (nce + parts["NCE_Y"])
        total = gan + nce_both
        parts["G"] = total
        return total, {k: v.detach() for k, v in parts.items()}

    # ---- the step -----------------------------------------------------------------------
    def optimize_parameters(self) -> None:
        """forward G -> D step -> G and F step (one backward for both)."""
        self.forward()
        self.set_requires_grad([self.netD], True)
        parts = self.optimizer_step(self.optimizer_D, self.compute_D_loss)
        self.set_requires_grad([self.netD], False)
        if self.optimizer_F is not None:
            self.optimizer_F.zero_grad(set_to_none=True)
        parts.update(self.optimizer_step(self.optimizer_G, self.compute_G_loss))
        if self.optimizer_F is not None:
            self.apply_step(self.optimizer_F)
        self.finish_step()
        self.loss_parts = parts
