"""The ``mmsc`` model: multi-modal translation with the spatially-correlative loss (F-LSeSim's third mode).

    python train.py --dataroot ./datasets/summer2winter_yosemite --name s2w_mmsc --model mmsc
    python test.py  --dataroot ./datasets/summer2winter_yosemite --name s2w_mmsc --model mmsc --n_styles 8

MUNIT's content/style networks (models/networks/munit.py) trained in both directions at once, as
MUNIT trains them, with the paper's change: the spatially-correlative loss between each input and
each of its translations (real_A vs fake_B, real_B vs fake_A) keeps the structure, in place of
MUNIT's pixel-level cycle term. ``G_A`` is the auto-encoder of the source domain (the data's ``'A'``),
``G_B`` of the target domain; ``D_A`` judges A images and ``D_B`` B images (MUNIT's naming, not
CycleGAN's). One step, with style codes drawn fresh from N(0, I):

    c_a, s_a' = E_A(real_A)          c_b, s_b' = E_B(real_B)
    rec_A  = G_A(c_a, s_a')          rec_B  = G_B(c_b, s_b')      image reconstruction  (lambda_rec_x)
    fake_A = G_A(c_b, s_a)           fake_B = G_B(c_a, s_b)       translations
    c_b~, s_a~ = E_A(fake_A)         c_a~, s_b~ = E_B(fake_B)     content / style recon (lambda_rec_c, _s)
    [cyc_A = G_A(c_a~, s_a')          cyc_B = G_B(c_b~, s_b')]    style-augmented cycle (lambda_cycle, off)
    [idt_A = G_A(E_B(real_A), s_a')   idt_B = G_B(E_A(real_B), s_b')] identity (lambda_identity, off)

G's loss sums, over both directions, the lsgan terms of the multi-scale discriminators, the L1
reconstructions and lambda_spatial * spatial(real, its translation). The published defaults
(MUNIT's configs): lambda_rec_x 10, lambda_rec_s 1, lambda_rec_c 1, lambda_cycle 0, GAN 1, Adam
lr 1e-4, betas (0.5, 0.999), weight decay 1e-4, batch 1, no image pool; the generators use
Kaiming init, the discriminators N(0, 0.02). The step order is MUNIT's, D then G, with one
difference (documented): the generators run once per step and D trains on those (detached)
translations, where MUNIT's D step draws its own style codes and runs the generators a second time.

``--lambda_identity`` (this project's addition, off by default as in the paper and MUNIT) is CycleGAN's
identity term in MUNIT's terms: the translation A->B is G_B's decoder after G_A's content encoder, so an
image of B passed through it with its own style code should come back unchanged (and the same the other
way). The spatially-correlative loss cannot tell a translation from its luminance inverse, and without
this term some seeds invert light and dark (docs/polarity.md); each identity image rides in the batches
of the encoders and decoders the step runs anyway.

``--learned_attn`` trains LSeSim heads as the ``sc`` model does (real vs detached translation vs the
other domain's real image rotated by 180 degrees, plus colour-jittered copies with ``--augment``);
the heads are shared by both directions.

Test: ``--n_styles K`` translations per input from K style codes drawn once from N(0, I) with
``--seed`` (the same codes for every input, so the columns are comparable), or
``--style_image PATH [PATH ...]``: one translation per reference image with its encoded style
(example-guided). ``--direction`` opposite to the one trained with translates the other way (E_B,
then G_A's decoder). Images whose sides are not multiples of 4 are reflect-padded and cropped back.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from data.style_images import load_style_images
from models.base_model import Adversary, BaseModel, frozen_config
from models.networks import init_weights
from models.networks.munit import MultiScaleImageDiscriminator, MUNITGenerator, MUNITTranslation, draw_style_codes
from models.networks.traits import pad_to_multiple
from models.wrappers import unwrap
from models.spatial import add_spatial_options, build_spatial_loss, needs_other, parse_attn_layers, rot180, vgg_features
from util import dist
from util.errors import UserError


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """Grey (B, 1, H, W) images as RGB (a view), so both domains share one VGG batch; RGB unchanged."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@dataclass(frozen=True)
class MMSCConfig:
    """What the mmsc step reads from the options (resolved in the constructor; None: a training-only
    flag at test time)."""

    style_dim: int
    learned_attn: bool
    loss_mode: str
    lambda_spatial: float
    lambda_GAN: Optional[float]
    lambda_rec_x: Optional[float]
    lambda_rec_s: Optional[float]
    lambda_rec_c: Optional[float]
    lambda_cycle: Optional[float]
    lambda_identity: Optional[float]


class MMSCModel(BaseModel):
    """Multi-modal translation A <-> B: MUNIT networks with the spatially-correlative loss."""

    # one residual block, a 16-unit style MLP, 2 discriminator scales of 3 layers, 16 queries in windows of 4
    smoke_options = (
        *("--n_res", "1", "--mlp_dim", "16", "--n_layers_D", "3", "--n_scales_D", "2"),
        *("--patch_nums", "16", "--patch_size", "4"),
    )

    architecture_options = BaseModel.architecture_options + (
        "style_dim",
        "n_downsample",
        "n_res",
        "mlp_dim",
        "mlp_layers",
    )
    test_networks = ("G_A", "G_B")
    multi_output = True
    reverse_networks = {}  # the other --direction: E_B then G_A's decoder (see translate)

    @classmethod
    def output_count(cls, opt: argparse.Namespace) -> int:
        """One translation per ``--style_image``, else ``--n_styles``."""
        return len(opt.style_image) if opt.style_image else opt.n_styles

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        g = add_spatial_options(parser.add_argument_group("mmsc model"))
        g.add_argument("--style_dim", type=int, default=8, help="length of the style code")
        g.add_argument("--n_downsample", type=int, default=2, help="stride-2 convs of the content encoder")
        g.add_argument("--n_res", type=int, default=4, help="residual blocks of content encoder and decoder")
        g.add_argument("--mlp_dim", type=int, default=256, help="width of the MLP from style code to AdaIN")
        g.add_argument("--mlp_layers", type=int, default=3, help="layers of that MLP")
        g.add_argument("--n_scales_D", type=int, default=3, help="scales of the multi-scale discriminator")
        parser.set_defaults(init_type="kaiming", n_layers_D=4)
        if is_train:
            g.add_argument("--lambda_GAN", type=float, default=1.0, help="adversarial weight (MUNIT gan_w)")
            g.add_argument("--lambda_rec_x", type=float, default=10.0, help="image reconstruction (MUNIT recon_x_w)")
            g.add_argument("--lambda_rec_s", type=float, default=1.0, help="style reconstruction (MUNIT recon_s_w)")
            g.add_argument("--lambda_rec_c", type=float, default=1.0, help="content reconstruction (MUNIT recon_c_w)")
            g.add_argument(
                "--lambda_cycle",
                type=float,
                default=0.0,
                help="style-augmented cycle A->B->A, B->A->B (MUNIT recon_x_cyc_w); 0: off, as in the paper",
            )
            g.add_argument(
                "--lambda_identity",
                type=float,
                default=0.0,
                help="L1 of G_B(E_A(real_B), its style) vs real_B and the same for A: keeps light and dark (0: off)",
            )
            g.add_argument("--weight_decay", type=float, default=1e-4, help="Adam's L2 weight decay")
            parser.set_defaults(lr=0.0001, beta1=0.5, beta2=0.999, gan_mode="lsgan", pool_size=0)
        else:
            g.add_argument("--n_styles", type=int, default=10, help="translations per input, random style codes")
            g.add_argument(
                "--style_image",
                nargs="+",
                default=None,
                help="example-guided: one translation per image, with its style code",
            )
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.cfg = frozen_config(MMSCConfig, opt)
        self.attn_layers = parse_attn_layers(opt.attn_layers)
        gen = dict(
            ngf=opt.ngf,
            style_dim=opt.style_dim,
            n_downsample=opt.n_downsample,
            n_res=opt.n_res,
            mlp_dim=opt.mlp_dim,
            mlp_layers=opt.mlp_layers,
        )
        for key, least in {"style_dim": 1, "n_res": 1, "mlp_dim": 1, "mlp_layers": 2, "n_scales_D": 1}.items():
            if getattr(opt, key) < least:
                raise UserError(f"--{key} {getattr(opt, key)}: must be at least {least}")
        self.netG_A = init_weights(MUNITGenerator(opt.input_nc, **gen), opt.init_type, opt.init_gain).to(self.device)
        self.netG_B = init_weights(MUNITGenerator(opt.output_nc, **gen), opt.init_type, opt.init_gain).to(self.device)
        self.model_names = list(self.test_networks)
        self.compile_names = ["G_A", "G_B"]
        self.multiple = 2**opt.n_downsample
        if self.is_train:
            self._build_training(opt)
        else:
            self._build_test(opt)
        self.apply_memory_format()

    # ---- construction -------------------------------------------------------------------
    def _build_training(self, opt: argparse.Namespace) -> None:
        if opt.crop_size % self.multiple:
            raise UserError(
                f"--crop_size {opt.crop_size}: --model mmsc needs a multiple of {self.multiple} (2 ** --n_downsample)"
            )
        d_args = dict(ndf=opt.ndf, n_layers=opt.n_layers_D, n_scales=opt.n_scales_D)
        self.netD_A = init_weights(MultiScaleImageDiscriminator(opt.input_nc, **d_args), "normal", opt.init_gain)
        self.netD_B = init_weights(MultiScaleImageDiscriminator(opt.output_nc, **d_args), "normal", opt.init_gain)
        self.netD_A, self.netD_B = self.netD_A.to(self.device), self.netD_B.to(self.device)
        if opt.crop_size < self.netD_A.min_size:
            raise UserError(
                f"--crop_size {opt.crop_size}: the {opt.n_scales_D}-scale discriminator with "
                f"--n_layers_D {opt.n_layers_D} needs at least {self.netD_A.min_size}"
            )
        if opt.augment and not opt.learned_attn:
            print("Note: --augment only feeds the learned heads; without --learned_attn it has no effect.")
        self.use_spatial = opt.lambda_spatial > 0 or opt.learned_attn
        self.use_cycle = opt.lambda_cycle > 0
        self.use_idt = opt.lambda_identity > 0
        if self.use_idt and opt.input_nc != opt.output_nc:
            raise UserError(
                f"--lambda_identity {opt.lambda_identity} needs --input_nc equal to --output_nc "
                f"(got {opt.input_nc} and {opt.output_nc}); or set --lambda_identity 0"
            )
        self.loss_names = (
            [
                "D_A",
                "D_B",
                "G_A",
                "G_B",
                "rec_x_A",
                "rec_x_B",
                "rec_s_A",
                "rec_s_B",
                "rec_c_A",
                "rec_c_B",
            ]
            + (["cycle_A", "cycle_B"] if self.use_cycle else [])
            + (["idt_A", "idt_B"] if self.use_idt else [])
        )
        self.loss_names += (["G_s"] if opt.lambda_spatial > 0 else []) + (["spatial"] if opt.learned_attn else [])
        self.visual_names = ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]
        self.visual_names += ["cyc_A", "cyc_B"] if self.use_cycle else []
        self.visual_names += ["idt_A", "idt_B"] if self.use_idt else []
        self.model_names += ["D_A", "D_B"] + (["F"] if opt.learned_attn else [])
        self.compile_names = ["G_A", "G_B", "D_A", "D_B"]
        if self.use_spatial:
            self.vgg, self.netF = build_spatial_loss(opt, self.attn_layers, self.device)
        # MUNIT's D loss: GAN(D(real), real) + GAN(D(fake), fake) summed over scales (no factor 0.5), times
        # --lambda_GAN; reals and fakes go through D in one batch (it has no normalisation across the batch).
        self.set_adversaries(
            opt.gan_mode,
            Adversary("D_A", real="real_A", fake="fake_A", part="D_A", scale=opt.lambda_GAN, joint=True),
            Adversary("D_B", real="real_B", fake="fake_B", part="D_B", scale=opt.lambda_GAN, joint=True),
        )
        self.optimizer_G = self.adam(self.netG_A, self.netG_B, weight_decay=opt.weight_decay)
        self.optimizer_D = self.adam(self.netD_A, self.netD_B, weight_decay=opt.weight_decay)
        if opt.learned_attn:
            self.optimizer_F = self.adam(self.netF)

    def _build_test(self, opt: argparse.Namespace) -> None:
        # the direction the run was trained with: the options code reads it from the run's opt.json
        trained = getattr(opt, "trained_direction", None) or opt.direction
        self.reverse = trained != opt.direction
        if self.reverse and opt.input_nc != opt.output_nc:
            raise UserError(
                f"--direction {opt.direction}: the run was trained {trained} with --input_nc "
                f"{opt.input_nc} and --output_nc {opt.output_nc}; the other way needs equal counts"
            )
        self.set_styles(opt.n_styles, opt.seed, guided=bool(opt.style_image))
        count = self.output_count(opt)
        self.visual_names = ["real_A"] + self.output_names(opt)
        self.visual_names += [f"style_B_{k + 1}" for k in range(count)] if opt.style_image else []

    def set_styles(self, n_styles: int, seed: int, guided: bool) -> None:
        """Test: translate with ``n_styles`` style codes drawn from N(0, I) with ``seed`` (the same codes for every
        input), or, ``guided``, with the codes of the reference images each batch brings as 'style_B'
        (see :meth:`set_input`). test.py sets them once from the options; translator.py per call."""
        if n_styles < 1:
            raise UserError(f"--n_styles {n_styles}: must be at least 1")
        self.style_codes = draw_style_codes(n_styles, self.cfg.style_dim, seed).to(self.device)
        self.guided = guided
        self.style_images: Optional[torch.Tensor] = None

    # ---- data and forward ---------------------------------------------------------------
    @classmethod
    def batch_extras(cls, opt: argparse.Namespace) -> dict:
        """``--style_image`` given: 'style_B', the references (K, C, H, W) in [-1, 1], images of the
        translation's target domain (``--output_nc`` channels; a reversed test needs ``--input_nc`` equal)."""
        paths = getattr(opt, "style_image", None)
        if not paths:
            return {}
        references = load_style_images(
            list(paths),
            channels=opt.output_nc,
            preprocess=opt.preprocess,
            load_size=opt.load_size,
            crop_size=opt.crop_size,
        )
        return {"style_B": references}

    def set_input(self, batch: dict) -> None:
        """The base keys, and at test time with ``--style_image`` the references 'style_B' (K, C, H, W)
        in [-1, 1] that :meth:`batch_extras` adds to every batch."""
        super().set_input(batch)
        if not self.is_train and self.guided:
            if "style_B" not in batch:
                raise ValueError(
                    "--style_image: the batch has no 'style_B' references; "
                    "build the data with data.create_dataset(opt, extras=models.batch_extras(opt))"
                )
            self.style_images = batch["style_B"].to(self.device, memory_format=self.memory_format)

    def forward(self) -> None:
        """The training pass of the docstring; each encoder and each decoder runs its batches at once."""
        if not self.is_train:
            self.translate()
            return
        n = self.real_A.shape[0]
        with self.autocast():
            s_a, s_b = self._style_noise(n), self._style_noise(n)
            idt = self.use_idt  # then the other domain's real goes through each encoder and decoder too
            encoded_A = self.netG_A(torch.cat([self.real_A, self.real_B]) if idt else self.real_A)
            encoded_B = self.netG_B(torch.cat([self.real_B, self.real_A]) if idt else self.real_B)
            (c_a, *c_idt_B), (s_a_prime, *_) = (t.split(n) for t in encoded_A)
            (c_b, *c_idt_A), (s_b_prime, *_) = (t.split(n) for t in encoded_B)
            styles_A = torch.cat([s_a_prime, s_a] + [s_a_prime] * idt)
            styles_B = torch.cat([s_b_prime, s_b] + [s_b_prime] * idt)
            self.rec_A, self.fake_A, *idt_A = self.netG_A(torch.cat([c_a, c_b, *c_idt_A]), styles_A).float().split(n)
            self.rec_B, self.fake_B, *idt_B = self.netG_B(torch.cat([c_b, c_a, *c_idt_B]), styles_B).float().split(n)
            if idt:
                self.idt_A, self.idt_B = idt_A[0], idt_B[0]
            c_b_rec, s_a_rec = self.netG_A(self.fake_A)
            c_a_rec, s_b_rec = self.netG_B(self.fake_B)
            if self.use_cycle:
                self.cyc_A = self.netG_A(c_a_rec, s_a_prime).float()
                self.cyc_B = self.netG_B(c_b_rec, s_b_prime).float()
        self.codes = {
            "c_a": c_a,
            "c_b": c_b,
            "s_a": s_a,
            "s_b": s_b,
            "c_a_rec": c_a_rec,
            "c_b_rec": c_b_rec,
            "s_a_rec": s_a_rec,
            "s_b_rec": s_b_rec,
        }

    def _style_noise(self, n: int) -> torch.Tensor:
        """(n, style_dim, 1, 1) codes from N(0, I). Under torchrun every process (seeded alike) draws the
        codes of the whole step's batch and keeps its own share, so N processes draw what one
        process with N times the batch draws."""
        rank, world = dist.get_rank(), dist.get_world_size()
        codes = torch.randn(n * world, self.cfg.style_dim, 1, 1, device=self.device)
        return codes[rank * n : (rank + 1) * n]

    def translate(self) -> None:
        """Test: ``fake_B_k`` for each style code (or reference image) for the whole input batch."""
        encoder, decoder = self._translation_pair()
        h, w = self.real_A.shape[2:]
        real = pad_to_multiple(self.real_A, self.multiple)
        with self.autocast():
            content, _ = encoder(real)
            if self.style_images is not None:
                codes = decoder(self.style_images)[1]
            else:
                codes = self.style_codes
            n, k = content.shape[0], codes.shape[0]
            # every input with every code in one decoder batch: input-major order (i * k + j)
            out = decoder(content.repeat_interleave(k, dim=0), codes.repeat(n, 1, 1, 1)).float()
        out = out[:, :, :h, :w]
        out = out.reshape(n, k, *out.shape[1:])
        self.outputs = list(out.unbind(1))
        for j in range(k):
            setattr(self, self.numbered_output(j + 1), out[:, j])
            if self.style_images is not None:
                style = self.style_images[j : j + 1]
                setattr(self, f"style_B_{j + 1}", style.expand(n, *style.shape[1:]))

    def _translation_pair(self) -> tuple[MUNITGenerator, MUNITGenerator]:
        """(encoder, decoder) of the test direction: E_A then G_B's decoder, or E_B then G_A's the other way."""
        return (self.netG_B, self.netG_A) if self.reverse else (self.netG_A, self.netG_B)

    def inference_graph(self) -> MUNITTranslation:
        """The test pass of one (image, style code) pair as one module, for export (see BaseModel)."""
        encoder, decoder = self._translation_pair()
        return MUNITTranslation(unwrap(encoder), unwrap(decoder))

    def test_outputs(self) -> list[torch.Tensor]:
        """The K translations of the last test pass, (N, C, H, W) each, in style order."""
        return self.outputs

    # ---- losses -------------------------------------------------------------------------
    def _spatial_feats(self) -> None:
        """VGG16 features, once per step: the reals (and jittered copies) without gradients, the
        translations with; the two directions share each VGG pass (each entry is [A side, B side])."""
        other = needs_other(self.cfg)
        augment = self.cfg.learned_attn and self.real_A_aug is not None and self.real_B_aug is not None
        pairs = {"src": (self.real_A, self.real_B)}
        pairs.update({"other": (rot180(self.real_B), rot180(self.real_A))} if other else {})
        pairs.update(
            {"aug": (self.real_A_aug, self.real_B_aug), "other_aug": (rot180(self.real_B_aug), rot180(self.real_A_aug))}
            if augment
            else {}
        )
        with torch.no_grad():
            self.feats = vgg_features(
                self.vgg, {k: torch.cat([_rgb(a), _rgb(b)]) for k, (a, b) in pairs.items()}, self.attn_layers
            )
        self.feats.setdefault("other", None)
        self.feats.setdefault("aug", None)
        self.feats.setdefault("other_aug", None)
        fakes = {"tgt": torch.cat([_rgb(self.fake_B), _rgb(self.fake_A)])}
        self.feats.update(vgg_features(self.vgg, fakes, self.attn_layers))

    def compute_F_loss(self) -> tuple[torch.Tensor, dict]:
        """Contrastive head loss: each real vs its translation (detached) vs the other domain's real, rotated."""
        tgt = [t.detach() for t in self.feats["tgt"]]
        other = self.feats["other"]
        if self.feats["aug"] is not None:
            tgt = [torch.cat([t, a]) for t, a in zip(tgt, self.feats["aug"])]
            other = [torch.cat([o, a]) for o, a in zip(other, self.feats["other_aug"])]
        loss = self.netF(self.feats["src"], tgt, other)
        return loss, {"spatial": loss.detach()}

    def compute_G_loss(self) -> tuple[torch.Tensor, dict]:
        opt, c = self.cfg, self.codes
        terms = {
            "G_A": self.criterionGAN(self.netD_A(self.fake_A), True, for_discriminator=False) * opt.lambda_GAN,
            "G_B": self.criterionGAN(self.netD_B(self.fake_B), True, for_discriminator=False) * opt.lambda_GAN,
            "rec_x_A": F.l1_loss(self.rec_A, self.real_A) * opt.lambda_rec_x,
            "rec_x_B": F.l1_loss(self.rec_B, self.real_B) * opt.lambda_rec_x,
            "rec_s_A": F.l1_loss(c["s_a_rec"], c["s_a"]) * opt.lambda_rec_s,
            "rec_s_B": F.l1_loss(c["s_b_rec"], c["s_b"]) * opt.lambda_rec_s,
            "rec_c_A": F.l1_loss(c["c_a_rec"], c["c_a"]) * opt.lambda_rec_c,
            "rec_c_B": F.l1_loss(c["c_b_rec"], c["c_b"]) * opt.lambda_rec_c,
        }
        if self.use_cycle:
            terms["cycle_A"] = F.l1_loss(self.cyc_A, self.real_A) * opt.lambda_cycle
            terms["cycle_B"] = F.l1_loss(self.cyc_B, self.real_B) * opt.lambda_cycle
        if self.use_idt:
            terms["idt_A"] = F.l1_loss(self.idt_A, self.real_A) * opt.lambda_identity
            terms["idt_B"] = F.l1_loss(self.idt_B, self.real_B) * opt.lambda_identity
        if opt.lambda_spatial > 0:
            other = self.feats["other"] if opt.loss_mode == "info" else None
            # the loss averages over the batch of both directions: x2 gives the sum of the two means
            terms["G_s"] = self.netF(self.feats["src"], self.feats["tgt"], other) * (2 * opt.lambda_spatial)
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}

    # ---- the step -----------------------------------------------------------------------
    def optimize_parameters(self) -> None:
        """forward G_A, G_B -> [head step] -> D_A and D_B step -> G_A and G_B step (D frozen)."""
        self.forward()
        parts = {}
        if self.use_spatial:
            with self.autocast():
                self._spatial_feats()
        if self.cfg.learned_attn:
            self.set_requires_grad([self.netF], True)
            parts.update(self.optimizer_step(self.optimizer_F, self.compute_F_loss))
        discriminators = [self.netD_A, self.netD_B]
        self.set_requires_grad(discriminators, True)
        parts.update(self.optimizer_step(self.optimizer_D, self.compute_D_loss))
        self.set_requires_grad(discriminators + ([self.netF] if self.cfg.learned_attn else []), False)
        parts.update(self.optimizer_step(self.optimizer_G, self.compute_G_loss))
        self.finish_step()
        self.loss_parts = parts
        self.feats, self.codes = {}, {}
