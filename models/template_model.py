"""A template for new models: copy to ``models/<name>_model.py`` and rename the class ``<Name>Model``.

This one learns a paired L1 regression ``G(A) ~ B`` (use it with ``--dataset_mode aligned``). A
model fills four lists and builds everything in ``__init__``:

- ``loss_names``: keys of the ``parts`` dicts that ``compute_*_loss`` return (printed and plotted);
- ``visual_names``: attributes holding (B, C, H, W) images in [-1, 1] (shown and saved);
- ``model_names``: ``X`` for each network ``self.netX`` (saved as ``<tag>_net_X.pth``);
- ``optimizers``: one per trained network (schedulers are made from them by ``setup``).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from models.base_model import BaseModel
from models.networks import define_G


class TemplateModel(BaseModel):
    """Paired L1 regression A -> B with a ResNet generator."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        parser.set_defaults(dataset_mode="aligned")
        if is_train:
            parser.add_argument("--lambda_regression", type=float, default=1.0, help="weight of the L1 loss")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.loss_names = ["G"]
        self.visual_names = ["real_A", "fake_B", "real_B"]
        self.model_names = list(self.test_networks)
        self.netG = define_G(opt.netG, opt.input_nc, opt.output_nc, opt.ngf, opt.normG, not opt.no_dropout,
                             opt.init_type, opt.init_gain, opt.no_antialias, opt.no_antialias_up).to(self.device)
        if self.is_train:
            self.optimizer = torch.optim.Adam(self.netG.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2))
            self.optimizers = [self.optimizer]

    def set_input(self, batch: dict) -> None:
        """batch: 'A', 'B' (B, C, H, W) in [-1, 1] and 'A_paths'."""
        # non_blocking: batches come in pinned memory on CUDA, so the copy overlaps the GPU's work.
        self.real_A = batch["A"].to(self.device, non_blocking=True)
        self.real_B = batch["B"].to(self.device, non_blocking=True) if "B" in batch else None
        self.image_paths = batch.get("A_paths", [])

    def forward(self) -> None:
        self.fake_B = self.netG(self.real_A)

    def compute_G_loss(self) -> tuple[torch.Tensor, dict]:
        """L1 between fake_B and real_B, times --lambda_regression."""
        loss = F.l1_loss(self.fake_B, self.real_B) * self.opt.lambda_regression
        return loss, {"G": loss.detach()}

    def optimize_parameters(self) -> None:
        """forward, then zero_grad / backward / step through ``optimizer_step`` (which never applies a
        non-finite loss or gradient), then ``finish_step`` after the step's last optimiser."""
        self.forward()
        self.loss_parts = self.optimizer_step(self.optimizer, self.compute_G_loss)
        self.finish_step()
