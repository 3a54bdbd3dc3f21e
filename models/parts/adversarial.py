"""The one discriminator loss. A model declares each discriminator's term as an :class:`Adversary` (which
network, which real and fake images, its image pool, how its parts are named and weighted) with
``BaseModel.set_adversaries``; ``compute_D_loss`` sums them with the GAN mode's criterion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from models.losses import GANLoss
from util.image_pool import query_across_ranks


@dataclass(frozen=True)
class Adversary:
    """One discriminator's term of the D loss: ``scale * (GAN(D(real), real) + GAN(D(fake'), fake))``, where
    ``fake'`` is the fakes detached and, with a ``pool``, mixed with the image pool (under torchrun as one
    process with the whole step's batch would, see util/image_pool.py)."""

    net: str  #: the discriminator's name in ``model_names`` ("D" -> ``self.netD``)
    real: str  #: the attribute holding the real images it learns to accept ("real_B")
    fake: str  #: the attribute holding the generated images it learns to reject ("fake_B")
    pool: Optional[str] = None  #: the attribute holding its ImagePool, if its fakes go through one
    part: Optional[str] = None  #: its loss part's name; None: two parts, "D_real" and "D_fake"
    scale: float = 0.5  #: the factor on the sum of the real and the fake terms
    #: reals and fakes through D in one batch (a D without statistics across the batch, MUNIT's)
    joint: bool = False
    #: D sees the reals before the fakes (CycleGAN's order; it matters only for BatchNorm's running statistics)
    real_first: bool = False


def _split(outputs: torch.Tensor | list[torch.Tensor], n: int) -> tuple:
    """The first ``n`` and the remaining entries of a D's output (a logit map, or one per scale)."""
    if isinstance(outputs, (list, tuple)):
        return [o[:n] for o in outputs], [o[n:] for o in outputs]
    return outputs[:n], outputs[n:]


class Adversarial:
    """The discriminators' loss (a part of BaseModel)."""

    adversaries: tuple[Adversary, ...] = ()
    criterionGAN: GANLoss
    device: torch.device

    def set_adversaries(self, gan_mode: str, *adversaries: Adversary) -> None:
        """Declare the discriminators' terms and the GAN mode (``--gan_mode``) their criterion uses."""
        self.criterionGAN = GANLoss(gan_mode).to(self.device)
        self.adversaries = adversaries

    def compute_D_loss(self) -> tuple[torch.Tensor, dict]:
        """The sum of every :class:`Adversary`'s term (plus :meth:`discriminator_penalty`) and its parts."""
        total, parts = None, {}
        for adversary in self.adversaries:
            net = getattr(self, "net" + adversary.net)
            real, fake = getattr(self, adversary.real), getattr(self, adversary.fake).detach()
            if adversary.pool is not None:
                fake = query_across_ranks(getattr(self, adversary.pool), fake)
            loss_real, loss_fake = self._real_and_fake(net, real, fake, adversary)
            loss = adversary.scale * (loss_real + loss_fake)
            if adversary.part is None:
                parts.update(D_real=loss_real.detach(), D_fake=loss_fake.detach())
            else:
                parts[adversary.part] = loss.detach()
            for name, value in self.discriminator_penalty(adversary, real, fake).items():
                loss = loss + value
                parts[name] = value.detach()
            total = loss if total is None else total + loss
        return total, parts

    def _real_and_fake(
        self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor, adversary: Adversary
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if adversary.joint:
            on_real, on_fake = _split(net(torch.cat([real, fake])), real.shape[0])
            return self.criterionGAN(on_real, True), self.criterionGAN(on_fake, False)
        if adversary.real_first:
            loss_real = self.criterionGAN(net(real), True)
            return loss_real, self.criterionGAN(net(fake), False)
        loss_fake = self.criterionGAN(net(fake), False)
        return self.criterionGAN(net(real), True), loss_fake

    def discriminator_penalty(self, adversary: Adversary, real: torch.Tensor, fake: torch.Tensor) -> dict:
        """Extra terms of ``adversary``'s loss (name -> tensor; a gradient penalty), given the reals and the
        (pooled) fakes its D saw in this step. None by default."""
        return {}
