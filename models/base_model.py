"""BaseModel: the contract every model keeps (set_input / forward / optimize_parameters / test ...).

Subclasses fill ``model_names`` (networks saved as ``<tag>_net_<name>.pth`` from ``self.net<name>``),
``loss_names`` (the keys of ``compute_G_loss``/``compute_D_loss`` parts, shown in logs) and
``visual_names`` (tensors shown in visdom / HTML), and build every network and optimiser in
``__init__``, reading the options there and only there (into frozen dataclasses: ``frozen_config``).
The shared machinery lives in models/parts/, one job per file.
"""

from __future__ import annotations

import argparse
import os
from collections import OrderedDict
from typing import Any, ClassVar, Optional

import torch
import torch.nn as nn

from models.parts.adversarial import Adversarial, Adversary
from models.parts.checkpoints import Checkpoints
from models.parts.config import CommonConfig, frozen_config
from models.parts.devices import AMP_DTYPES, Devices, to_channels_last
from models.parts.schedules import Schedules
from models.parts.step_guard import StepGuard
from util import dist
from util.errors import UserError

__all__ = ["AMP_DTYPES", "Adversary", "BaseModel", "frozen_config", "to_channels_last"]


class BaseModel(Devices, Schedules, StepGuard, Adversarial, Checkpoints):
    """Abstract model. See models/template_model.py for a documented example; the parts it is made of are in
    models/parts/ (devices, schedules, the non-finite step guard, the discriminator loss, checkpoints)."""

    # ---- what the model means to the tools (test.py, test_fid.py, scripts/), declared per class ----
    #: Options that fix the test-time networks: a test run takes them from the trained run's opt.json
    #: unless given on its command line (options/test_options.py), so ``--ngf 32`` need not be repeated.
    architecture_options: ClassVar[tuple[str, ...]] = (
        "netG",
        "ngf",
        "normG",
        "norm",
        "no_dropout",
        "no_antialias",
        "no_antialias_up",
        "input_nc",
        "output_nc",
        "direction",
    )
    #: The networks a test-time checkpoint holds (``<tag>_net_<name>.pth``); the first names the saved epochs.
    test_networks: ClassVar[tuple[str, ...]] = ("G",)
    #: The test visual holding the translation; a multi-output model numbers its K outputs
    #: ``<output_visual>_1`` ... ``<output_visual>_K`` (see :meth:`output_names`).
    output_visual: ClassVar[str] = "fake_B"
    #: Whether the model gives several translations per input at test time.
    multi_output: ClassVar[bool] = False
    #: How a test run translates against the trained ``--direction``: None, one way only (the data's sides
    #: are swapped, the networks kept); {} the model's own test pass reverses (it reads ``trained_direction``);
    #: {test network: file network} the reverse generator's file loads into each test network (cycle_gan).
    reverse_networks: ClassVar[Optional[dict[str, str]]] = None
    #: Options for a seconds-long smoke run at 32-pixel crops with 8 filters (the test suite's size) that the
    #: model's own defaults do not fit: its conformance tests train with them. () when the defaults fit.
    smoke_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def output_names(cls, opt: argparse.Namespace) -> list[str]:
        """The test visuals holding the translations of one input under the test options ``opt``, in order."""
        if cls.multi_output:
            return [cls.numbered_output(k) for k in range(1, cls.output_count(opt) + 1)]
        return [cls.output_visual]

    @classmethod
    def output_count(cls, opt: argparse.Namespace) -> int:
        """How many translations per input the test options ``opt`` ask for (1 for a single-output model)."""
        return 1

    @classmethod
    def numbered_output(cls, k: int) -> str:
        """The name of a multi-output model's ``k``-th output (1-based): ``fake_B_3``."""
        return f"{cls.output_visual}_{k}"

    @classmethod
    def output_number(cls, name: str) -> Optional[int]:
        """``k`` when ``name`` is :meth:`numbered_output` ``(k)`` (a visual or a results folder), else None."""
        prefix = cls.output_visual + "_"
        rest = name[len(prefix) :] if name.startswith(prefix) else ""
        return int(rest) if rest.isdigit() and rest[0] != "0" else None

    def inference_graph(self) -> nn.Module:
        """The test pass as one module for the inference tools (tiling, ONNX export): forward(image (N, C, H, W)
        in [-1, 1][, style]) -> (N, C', H, W) in [-1, 1], carrying its ``inference`` traits
        (models/networks/traits.py). Default: the first test network, as loaded for the test direction."""
        return self.networks()[self.test_networks[0]]

    def test_outputs(self) -> list[torch.Tensor]:
        """The translations of the last :meth:`test` pass, one (N, C, H, W) tensor in [-1, 1] per output (K for
        a multi-output model, in order). Default: the ``output_visual``."""
        return [getattr(self, self.output_visual)]

    @classmethod
    def batch_extras(cls, opt: argparse.Namespace) -> dict:
        """What every batch carries besides its samples under the options ``opt`` (name -> tensor, the same for
        every batch; data.create_dataset adds them). None by default."""
        return {}

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add model-specific flags or change defaults; return the parser."""
        return parser

    @staticmethod
    def preset_defaults(known: argparse.Namespace, is_train: bool) -> dict:
        """Defaults that depend on the model's own flags as given (a named variant such as
        ``--CUT_mode FastCUT``): option -> default, applied before the final parse, so options
        given on the command line still win. None by default."""
        return {}

    def __init__(self, opt: argparse.Namespace) -> None:
        self.common = frozen_config(CommonConfig, opt)
        self.is_train = opt.is_train
        self.device = dist.device_for(opt.gpu_ids)
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.loss_names: list[str] = []
        self.model_names: list[str] = []
        self.visual_names: list[str] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[Any] = []
        self.image_paths: list[str] = []
        self.loss_parts: dict[str, torch.Tensor] = {}
        self.compile_names: list[str] = []  # networks that --compile compiles (set by subclasses)
        self.memory_format = torch.preserve_format  # of the input images; see apply_memory_format
        self.amp_dtype = AMP_DTYPES[getattr(opt, "amp", "off")]
        if self.amp_dtype is torch.bfloat16 and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("--amp bf16: this GPU has no bfloat16 support; use --amp fp16")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        self._reset_guard()

    # ---- the interface train.py and test.py use -------------------------------------------
    def set_input(self, batch: dict) -> None:
        """Unpack a batch from the data loader onto the device, in ``memory_format`` (NHWC with ``--channels_last``).

        batch: 'A' (B, C, H, W) in [-1, 1], optional 'B', 'A_aug', 'B_aug' (absent ones become None) and
        'A_paths'. A model with other keys overrides this and calls it.
        """

        def get(key: str) -> Optional[torch.Tensor]:
            # non_blocking: from the loader's pinned memory (CUDA) the copy overlaps the GPU's work.
            return (
                batch[key].to(self.device, memory_format=self.memory_format, non_blocking=True)
                if key in batch
                else None
            )

        self.real_A, self.real_B = get("A"), get("B")
        self.real_A_aug, self.real_B_aug = get("A_aug"), get("B_aug")
        self.image_paths = batch.get("A_paths", [])

    def forward(self) -> None:
        """Run the generator(s)."""
        raise NotImplementedError

    def optimize_parameters(self) -> None:
        """One training step: zero_grad / backward / step for every network, each through ``optimizer_step``."""
        raise NotImplementedError

    def compute_visuals(self) -> None:
        """Extra visuals after forward (none by default)."""

    def setup(self, epoch: Optional[str] = None) -> None:
        """Build schedulers (training) and load networks (testing, or ``epoch`` when given)."""
        if self.is_train:
            self.build_schedulers(self.common.epoch_count if self.common.epoch_count is not None else 1)
        if epoch is not None:
            self.load_networks(epoch)
        if self.common.verbose:
            self.print_networks()
        self.wrap_networks()

    def test(self) -> None:
        """Forward without gradients, then compute_visuals."""
        with torch.no_grad():
            self.forward()
            self.compute_visuals()

    def get_image_paths(self) -> list[str]:
        return self.image_paths

    def get_current_visuals(self) -> "OrderedDict[str, torch.Tensor]":
        """name -> (B, C, H, W) image tensor in [-1, 1], for the visuals that exist."""
        visuals = OrderedDict()
        for name in self.visual_names:
            value = getattr(self, name, None)
            if isinstance(value, torch.Tensor):
                visuals[name] = value
        return visuals

    def get_current_losses(self) -> "OrderedDict[str, float]":
        """name -> value of the latest step's losses (only those computed), averaged over all processes."""
        losses = {k: float(self.loss_parts[k]) for k in self.loss_names if k in self.loss_parts}
        return OrderedDict(dist.average_across_ranks(losses))

    def seeded_generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``--seed`` + ``offset``: each image pool has its own, so its draws
        depend on nothing else (and are saved with it)."""
        return torch.Generator().manual_seed(self.common.seed + offset)

    def print_networks(self) -> None:
        for name, net in self.networks().items():
            count = sum(p.numel() for p in net.parameters())
            print(net)
            print(f"[Network {name}] Total number of parameters : {count / 1e6:.3f} M")
