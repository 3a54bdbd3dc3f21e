"""BaseModel: the contract every model keeps (set_input / forward / optimize_parameters / test ...).

Subclasses fill ``model_names`` (networks saved as ``<tag>_net_<name>.pth`` from ``self.net<name>``),
``loss_names`` (the keys of ``compute_G_loss``/``compute_D_loss`` parts, shown in logs) and
``visual_names`` (tensors shown in visdom / HTML), and build every network and optimiser in
``__init__``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import warnings
from collections import OrderedDict
from typing import Any, Callable, ClassVar, Iterable, Optional, TypeVar

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from models.schedulers import get_scheduler
from models.wrappers import compiled, distributed, unwrap
from util import dist
from util import checkpoint
from util.errors import UserError
from util.image_pool import ImagePool, query_across_ranks

T = TypeVar("T")


def frozen_config(cls: type[T], opt: argparse.Namespace) -> T:
    """The frozen dataclass ``cls`` with each field read from the options ``opt``, once, in a model's
    constructor: the step methods read this, never ``opt``. A field whose flag ``opt`` lacks (a
    training-only flag at test time) is None."""
    return cls(**{f.name: getattr(opt, f.name, None) for f in dataclasses.fields(cls)})


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def to_channels_last(net: nn.Module) -> None:
    """Store the 4-D weights and buffers of ``net`` NHWC, in place (``Module.to`` also tries 5-D ones and fails)."""
    for tensor in [*net.parameters(), *net.buffers()]:
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


class BaseModel:
    """Abstract model. See models/template_model.py for a documented example."""

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
        self.opt = opt
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
        # The non-finite guard (see begin_step): this step's verdict.
        self.nonfinite: list[str] = []
        self._skip = False
        self._scaler_steps = 0
        self._norm_buffers: Optional[list[torch.Tensor]] = None
        self._norm_backup: list[torch.Tensor] = []

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
        """One training step: zero_grad / backward / step for every network."""
        raise NotImplementedError

    def compute_visuals(self) -> None:
        """Extra visuals after forward (none by default)."""

    def setup(self, epoch: Optional[str] = None) -> None:
        """Build schedulers (training) and load networks (testing, or ``epoch`` when given)."""
        opt = self.opt
        if self.is_train:
            self.build_schedulers(opt.epoch_count if opt.epoch_count is not None else 1)
        if epoch is not None:
            self.load_networks(epoch)
        if getattr(opt, "verbose", False):
            self.print_networks()
        self.wrap_networks()

    def apply_memory_format(self) -> torch.memory_format:
        """With ``--channels_last``: store every network the model holds (each ``nn.Module`` attribute,
        the frozen VGG included) NHWC and set ``memory_format``, the format :meth:`set_input` gives the
        images. Call it at the end of ``__init__``, once every network is built. Returns the format."""
        if getattr(self.opt, "channels_last", False):
            for value in vars(self).values():
                if isinstance(value, nn.Module):
                    to_channels_last(value)
            self.memory_format = torch.channels_last
        return self.memory_format

    def adam(self, *modules: nn.Module, weight_decay: float = 0.0) -> torch.optim.Adam:
        """Adam over the parameters of ``modules`` with ``--lr``, ``--beta1``, ``--beta2`` (and an L2
        ``weight_decay``, as torch.optim.Adam applies it), kept in ``optimizers``."""
        params = [p for module in modules for p in module.parameters()]
        optimizer = torch.optim.Adam(
            params, lr=self.opt.lr, betas=(self.opt.beta1, self.opt.beta2), weight_decay=weight_decay
        )
        self.optimizers.append(optimizer)
        return optimizer

    def build_schedulers(self, first_epoch: int) -> None:
        """(Re)build every optimiser's schedule from the options, starting at epoch ``first_epoch``.

        For the epoch-based policies this also sets each optimiser's rate to that epoch's; a
        resumed run calls it again at the epoch it resumes, so it follows the options it was
        resumed with (a longer ``--n_epochs``, say), as CycleGAN does.
        """
        opt = self.opt
        self.schedulers = [
            get_scheduler(
                o,
                policy=opt.lr_policy,
                n_epochs=opt.n_epochs,
                n_epochs_decay=opt.n_epochs_decay,
                epoch_count=first_epoch,
                lr_decay_iters=opt.lr_decay_iters,
                lr_decay_gamma=getattr(opt, "lr_decay_gamma", 0.1),
            )
            for o in self.optimizers
        ]

    def wrap_networks(self) -> None:
        """--compile the networks in ``compile_names``; under torchrun, wrap each trained network in DDP.

        Afterwards ``self.net<name>`` may be a wrapper: call it as before, but reach the plain
        network (attributes, state_dict) through :meth:`networks`.
        """
        if getattr(self.opt, "compile", False):
            for name in self.compile_names:
                setattr(self, "net" + name, compiled(getattr(self, "net" + name), name))
        if not self.is_train or dist.get_world_size() == 1:
            return
        for name in self.model_names:
            net = getattr(self, "net" + name)
            if any(p.requires_grad for p in net.parameters()):
                setattr(self, "net" + name, distributed(net, self.device))

    def networks(self) -> dict[str, nn.Module]:
        """name -> plain network (no DDP / compile wrapper) for every name in model_names."""
        return {name: unwrap(getattr(self, "net" + name)) for name in self.model_names}

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision (``--amp``) for forward passes and losses; does nothing when off."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, compute_loss: Callable[[], tuple[torch.Tensor, dict]]
    ) -> dict:
        """zero_grad, ``compute_loss()`` under autocast, backward and step (fp16: through the GradScaler).

        Returns the loss parts. The step goes through :meth:`apply_step`, so a non-finite loss or
        gradient is never applied; once one is found, the step's later optimisers are skipped too
        (their losses are still computed, for the log, but not back-propagated). Call
        :meth:`finish_step` once after the step's last optimizer.
        """
        optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, parts = compute_loss()
        if self._skip:
            self.nonfinite += [name for name in _nonfinite_names(parts) if name not in self.nonfinite]
            return parts
        self.scaler.scale(loss).backward()
        self.apply_step(optimizer, loss, parts)
        return parts

    def apply_step(
        self, optimizer: torch.optim.Optimizer, loss: Optional[torch.Tensor] = None, parts: Optional[dict] = None
    ) -> None:
        """``scaler.step(optimizer)`` unless this step has a non-finite loss or gradient (one host sync).

        A non-finite ``loss`` (or, without fp16, gradient of ``optimizer``) marks the whole step as
        non-finite: this optimiser and the step's later ones do not step, and the loss names are
        kept in ``nonfinite``. With ``--amp fp16`` the gradients are the GradScaler's business: it
        skips an overflowing step and lowers its scale by itself, which is not counted here. Under
        torchrun the verdict is every process's (one small all-reduce), so the processes stay equal.
        """
        if self._skip:
            return
        checks = [] if loss is None else [loss.detach().float().reshape(-1)]
        if not self.scaler.is_enabled():
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if grads:  # the largest |entry| of each gradient: inf or NaN exactly when one entry is
                checks.append(torch.stack(torch._foreach_norm(grads, float("inf"))).float())
        if checks and not _all_finite(checks):
            self._skip = True
            names = _nonfinite_names(parts or {}) or [f"gradients of {self._optimizer_name(optimizer)}"]
            self.nonfinite += [name for name in names if name not in self.nonfinite]
            return
        self.scaler.step(optimizer)
        self._scaler_steps += 1

    def finish_step(self) -> None:
        """After the step's last optimiser: ``scaler.update()``, if the GradScaler stepped one (fp16).

        The next step starts with a clean verdict (``nonfinite`` stays readable until :meth:`begin_step`).
        """
        if self._scaler_steps:
            self.scaler.update()
        self._skip = False
        self._scaler_steps = 0

    def begin_step(self) -> None:
        """Before ``optimize_parameters``: a new verdict; the image pools and BatchNorm statistics remembered.

        train.py calls ``begin_step``, ``optimize_parameters``, then :meth:`end_step`.
        """
        self.nonfinite = []
        self._skip = False
        self._scaler_steps = 0
        for pool in self._pools():
            pool.mark()
        if self._norm_buffers is None:
            self._norm_buffers = [
                b
                for net in self.networks().values()
                for name, b in net.named_buffers()
                if name.endswith(("running_mean", "running_var")) and b.is_floating_point()
            ]
            self._norm_backup = [b.clone() for b in self._norm_buffers]
        if self._norm_buffers:
            torch._foreach_copy_(self._norm_backup, self._norm_buffers)

    def end_step(self) -> list[str]:
        """After ``optimize_parameters``: the names of the losses (or gradients) that were not finite, [] if none.

        A non-finite step's changes to the image pools and BatchNorm statistics are undone.
        """
        if self.nonfinite:
            for pool in self._pools():
                pool.undo()
            if self._norm_buffers:
                torch._foreach_copy_(self._norm_buffers, self._norm_backup)
        return self.nonfinite

    def _pools(self) -> list[ImagePool]:
        return [value for value in vars(self).values() if isinstance(value, ImagePool)]

    def _optimizer_name(self, optimizer: torch.optim.Optimizer) -> str:
        names = {
            id(value): key[len("optimizer_") :]
            for key, value in vars(self).items()
            if key.startswith("optimizer_") and isinstance(value, torch.optim.Optimizer)
        }
        return names.get(
            id(optimizer),
            f"optimiser {self.optimizers.index(optimizer)}" if optimizer in self.optimizers else "an optimiser",
        )

    def eval(self) -> None:
        for net in self.networks().values():
            net.eval()

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

    def update_learning_rate(self, metric: Optional[float] = None) -> float:
        """Step every scheduler once (at the end of an epoch); returns the new learning rate."""
        with warnings.catch_warnings():
            # A run resumed at an epoch's end steps the schedule before its first optimizer step.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for scheduler in self.schedulers:
                if self.opt.lr_policy == "plateau":
                    scheduler.step(metric if metric is not None else 0.0)
                else:
                    scheduler.step()
        return self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0

    def learning_rates(self) -> dict[str, float]:
        """The current learning rate of each optimiser, named by its attribute (``optimizer_G`` -> ``G``;
        one not held in an ``optimizer_<X>`` attribute is named by its index in ``optimizers``)."""
        names = {
            id(value): key[len("optimizer_") :]
            for key, value in vars(self).items()
            if key.startswith("optimizer_") and isinstance(value, torch.optim.Optimizer)
        }
        return {
            names.get(id(optimizer), str(index)): optimizer.param_groups[0]["lr"]
            for index, optimizer in enumerate(self.optimizers)
        }

    @staticmethod
    def set_requires_grad(nets: Iterable[nn.Module], requires_grad: bool) -> None:
        for net in nets:
            if net is not None:
                net.requires_grad_(requires_grad)
                if isinstance(net, DistributedDataParallel):
                    # A frozen network's forward must not arm DDP's all-reduce: no gradient would come.
                    net.require_backward_grad_sync = requires_grad

    # ---- saving and loading ---------------------------------------------------------------
    def net_path(self, tag: str, name: str) -> str:
        """``<save_dir>/<tag>_net_<name>.pth`` (util.checkpoint.net_path)."""
        return checkpoint.net_path(self.save_dir, tag, name)

    def network_files(self, tag: str) -> dict[str, dict]:
        """``<tag>_net_<name>.pth`` -> plain, reference-compatible state_dict (on the CPU) for each network."""
        return checkpoint.network_files(self.networks(), self.save_dir, tag)

    def save_networks(self, tag: str) -> None:
        """Write every network's file, committed together (util/commit.py; main process only)."""
        checkpoint.save_networks(self.networks(), self.save_dir, tag)

    def read_networks(self, tag: str, names: Optional[Iterable[str]] = None) -> dict[str, tuple[str, dict]]:
        """name -> (path, state_dict) of ``<tag>_net_<name>.pth`` (all of ``model_names`` by default), read
        but not applied (UserError if unreadable)."""
        return checkpoint.read_networks(self.save_dir, tag, names if names is not None else self.model_names)

    def apply_networks(self, networks: dict[str, tuple[str, dict]]) -> None:
        """Load what :meth:`read_networks` returned into the networks (strict keys)."""
        checkpoint.apply_networks({name: unwrap(getattr(self, "net" + name)) for name in networks}, networks)

    def load_networks(self, tag: str, names: Optional[Iterable[str]] = None) -> None:
        """Load ``<tag>_net_<name>.pth`` into each network (weights only, strict keys)."""
        self.apply_networks(self.read_networks(tag, names))

    def training_state(self) -> dict:
        """Optimisers, schedulers, the fp16 GradScaler (plus :meth:`extra_state`), for an exact resume."""
        return {
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict(),
            "extra": self.extra_state(),
        }

    def load_training_state(self, state: dict, first_epoch: int, saved_opt: Optional[dict] = None) -> None:
        """Restore :meth:`training_state` to resume at epoch ``first_epoch``.

        The schedules are rebuilt from the current options at that epoch (only a ``plateau``
        schedule, which depends on the losses seen, keeps its saved state). ``saved_opt``, the
        options of the saved run, lets an allowed change of ``--lr`` / ``--beta1`` / ``--beta2``
        take effect (the rates of every optimiser scale by the new ``--lr`` over the old).
        """
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        saved_opt = saved_opt or {}
        self._apply_optimiser_changes(saved_opt)
        self.build_schedulers(first_epoch)
        if self.opt.lr_policy == "plateau" and saved_opt.get("lr_policy", "plateau") == "plateau":
            for scheduler, saved in zip(self.schedulers, state["schedulers"]):
                scheduler.load_state_dict(saved)
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.load_extra_state(state.get("extra", {}))

    def _apply_optimiser_changes(self, saved_opt: dict) -> None:
        """A new ``--lr`` scales every group's base rate; new betas replace the saved ones."""
        opt = self.opt
        ratio = opt.lr / saved_opt["lr"] if saved_opt.get("lr") else 1.0
        old_betas = (saved_opt.get("beta1", opt.beta1), saved_opt.get("beta2", opt.beta2))
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                if ratio != 1.0:
                    group["initial_lr"] = group.get("initial_lr", group["lr"]) * ratio
                    group["lr"] *= ratio
                if tuple(group.get("betas", ())) == old_betas != (opt.beta1, opt.beta2):
                    group["betas"] = (opt.beta1, opt.beta2)

    def seeded_generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``--seed`` + ``offset``: each image pool has its own, so its draws
        depend on nothing else (and are saved with it)."""
        return torch.Generator().manual_seed(self.opt.seed + offset)

    def discriminator_loss(
        self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor, pool: Optional[ImagePool] = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(0.5 (GAN(D(real), real) + GAN(D(fake'), fake)), the real term, the fake term) with ``self.criterionGAN``.

        ``fake'`` is ``fake`` detached and, given a ``pool``, mixed with the image pool (under torchrun
        as one process with the whole step's batch would, see util/image_pool.py); D sees it first.
        """
        fake = fake.detach()
        if pool is not None:
            fake = query_across_ranks(pool, fake)
        loss_fake = self.criterionGAN(net(fake), False)
        loss_real = self.criterionGAN(net(real), True)
        return 0.5 * (loss_real + loss_fake), loss_real, loss_fake

    def extra_state(self) -> dict:
        """Model-specific training state: by default the state of every image pool the model holds, by
        attribute name (so a model's pools resume exactly without code of its own)."""
        pools = {name: value.state_dict() for name, value in vars(self).items() if isinstance(value, ImagePool)}
        return {"pools": pools} if pools else {}

    def load_extra_state(self, state: dict) -> None:
        """Restore :meth:`extra_state`."""
        for name, pool_state in state.get("pools", {}).items():
            pool = getattr(self, name, None)
            if isinstance(pool, ImagePool):
                pool.load_state_dict(pool_state)

    def print_networks(self) -> None:
        for name, net in self.networks().items():
            count = sum(p.numel() for p in net.parameters())
            print(net)
            print(f"[Network {name}] Total number of parameters : {count / 1e6:.3f} M")


def _all_finite(checks: list[torch.Tensor]) -> bool:
    """Whether every entry of ``checks`` (1-d tensors on one device) is finite, on every process (one host sync;
    under torchrun one small all-reduce, so all processes take the same decision: the losses are each one's own)."""
    finite = torch.isfinite(torch.cat([c.to(checks[0].device) for c in checks])).all().float().reshape(1)
    return float(dist.mean_over_ranks(finite)) == 1.0


def _nonfinite_names(parts: dict) -> list[str]:
    """The names of the loss parts that are not finite (reads them: a host sync; used once a step went wrong)."""
    return [name for name, value in parts.items() if not bool(torch.isfinite(value.detach()).all())]
