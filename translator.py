"""Use a trained model anywhere: ``Translator.load(source)``, then ``translate(image)``.

    from PIL import Image
    from translator import Translator

    translator = Translator.load("h2z")                       # checkpoints/h2z: opt.json + latest_net_G.pth
    translator.translate(Image.open("horse.jpg")).save("zebra.png")

``source`` is a run name under ``checkpoints_dir``, a run folder, a lone generator file (a published
``latest_net_G.pth``: its architecture is read from its keys, see models/networks/from_keys.py), a folder laid
out as a Hugging Face Hub repository (util/hub.py), or a Hub repository id ``owner/name`` (downloaded through the
Hub's cache). The networks are built by the model class itself from the run's options, and test.py loads
through :meth:`Translator.from_options`, so the API translates exactly as test.py does (docs/using_a_model.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any, Optional, Union

import torch
from PIL import Image

from data.image_folder import convert_image
from data.style_images import load_style_images
from data.transforms import to_tensor
from models import create_model, find_model_using_name
from models.base_model import AMP_DTYPES, BaseModel
from models.networks.from_keys import generator_options
from options.test_options import TestOptions, saved_train_options, upstream_test_model
from util import hub
from util.checkpoint import safe_load
from util.commit import committed_path
from util.errors import UserError
from util.image_io import tensor2im
from util.tiling import translate_tiled

StyleImages = Union[str, Image.Image, list]
States = dict[str, tuple[str, dict]]  # test network -> (where it was read, state_dict)


class Translator:
    """A trained model ready to translate images; build it with :meth:`load` (or :meth:`from_options`).

    Attributes: ``model`` (the model object test.py drives), ``networks`` (test network name -> plain
    nn.Module), ``generator`` (the first of them), ``model_name``, ``options`` (the architecture options),
    ``epoch``, ``source``, ``multi_output`` (one translation per style code: mmsc).
    """

    def __init__(self, model: BaseModel, opt: argparse.Namespace, *, source: str, epoch: str) -> None:
        self.model = model
        self.opt = opt
        self.model_name: str = opt.model
        self.model_class = type(model)
        self.options = {k: getattr(opt, k) for k in self.model_class.architecture_options if hasattr(opt, k)}
        self.networks = model.networks()
        self.generator = self.networks[self.model_class.test_networks[0]]
        self.multi_output: bool = self.model_class.multi_output
        self.epoch = epoch
        self.source = source

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, source: Union[str, os.PathLike], *, direction: Optional[str] = None, epoch: str = "latest",
             device: str = "cpu", amp: str = "off", checkpoints_dir: str = "./checkpoints",
             model: Optional[str] = None, options: Optional[dict] = None) -> "Translator":
        """The model at ``source`` on ``device`` ('cpu', 'cuda', 'cuda:1'), in eval mode.

        ``direction``: 'AtoB' / 'BtoA'; the other way than trained works for two-way models (cycle_gan: G_B,
        mmsc). ``epoch``: which ``<epoch>_net_*.pth`` of a run. ``amp``: 'off', 'bf16' or 'fp16' autocast.
        ``model`` and ``options`` (architecture options such as ``{"ngf": 32}``) override what the source
        records, or supply what a lone generator file cannot say. UserError (one line) on any mistake.
        """
        if direction not in (None, "AtoB", "BtoA"):
            raise UserError(f"direction {direction!r}: use 'AtoB' or 'BtoA'")
        if amp not in AMP_DTYPES:
            raise UserError(f"amp {amp!r}: use one of {', '.join(AMP_DTYPES)}")
        settings = dict(direction=direction, epoch=str(epoch), device=device, amp=amp, model=model,
                        options=dict(options or {}))
        path = os.fspath(source)
        if os.path.isfile(path):
            return cls._from_file(path, **settings)
        if os.path.isdir(path) and hub.is_hub_folder(path):
            return cls._from_hub_folder(path, path, **settings)
        if os.path.isdir(path):
            folder = os.path.abspath(path)
            return cls._from_run(os.path.dirname(folder), os.path.basename(folder), path, **settings)
        if os.path.isdir(os.path.join(checkpoints_dir, path)):
            return cls._from_run(checkpoints_dir, path, path, **settings)
        if hub.looks_like_repo_id(path):
            return cls._from_hub_folder(hub.download(path), path, **settings)
        raise UserError(f"{path}: not a run in {checkpoints_dir}, a run folder, a checkpoint file, or a Hugging "
                        "Face Hub id (owner/name)")

    @classmethod
    def from_options(cls, opt: argparse.Namespace, states: Optional[States] = None, *, source: Optional[str] = None,
                     one_way: bool = False) -> "Translator":
        """The model the parsed test options ``opt`` describe (test.py's), its networks loaded from ``states``
        or else from the run's ``<epoch>_net_<name>.pth`` files. Eval mode is left to the caller (test.py's
        ``--eval``). ``one_way``: a ``--direction`` against the trained one is an error for a one-way model
        (test.py instead swaps the data's sides, as CycleGAN does)."""
        model_class = find_model_using_name(opt.model)
        files = _network_files(model_class, opt, one_way)
        model = create_model(opt)
        if states is None:
            states = _read_run_networks(model, opt.epoch, files)
        else:
            missing = [files[name] for name in model.model_names if files[name] not in states]
            if missing:
                raise UserError(f"{source}: has no network {missing[0]}, which the {opt.model} model needs here "
                                f"(--direction {opt.direction})")
            states = {name: states[files[name]] for name in model.model_names}
        model.apply_networks(states)
        model.setup()
        return cls(model, opt, source=source or os.path.join(opt.checkpoints_dir, opt.name), epoch=str(opt.epoch))

    @classmethod
    def _build(cls, *, checkpoints_dir: str, name: str, saved: Optional[dict], states: Optional[States], source: str,
               direction: Optional[str], epoch: str, device: str, amp: str, model: Optional[str],
               options: dict) -> "Translator":
        """Parse the test options as test.py would (``saved``: the trained run's options), build, load, eval."""
        model = model or (saved or {}).get("model") or "sc"
        model_class = find_model_using_name(upstream_test_model(["--model", model])[1])
        unknown = sorted(set(options) - set(model_class.architecture_options))
        if unknown:
            raise UserError(f"options: {unknown[0]} is not an architecture option of the {model} model "
                            f"({', '.join(model_class.architecture_options)})")
        argv = ["--checkpoints_dir", checkpoints_dir, "--name", name, "--epoch", epoch, "--model", model,
                "--gpu_ids", _gpu_ids(device), "--amp", amp, "--dataroot", "."]
        argv += ["--direction", direction] if direction else []
        saved = {**(saved or {}), **options} if saved is not None or options else None
        opt = TestOptions(argv, saved=saved).parse()
        translator = cls.from_options(opt, states, source=source, one_way=True)
        translator.model.eval()
        return translator

    @classmethod
    def _from_run(cls, checkpoints_dir: str, name: str, source: str, **settings: Any) -> "Translator":
        """A run folder: opt.json when it has one; a published folder without it (``<epoch>_net_G.pth`` only)
        takes the architecture from that file's keys."""
        saved = saved_train_options(checkpoints_dir, name) or None
        lone = os.path.join(checkpoints_dir, name, f"{settings['epoch']}_net_G.pth")
        if saved is None and os.path.isfile(lone):
            saved = _inferred_options(safe_load(lone, "generator checkpoint"), lone)
        return cls._build(checkpoints_dir=checkpoints_dir, name=name, saved=saved, states=None, source=source,
                          **settings)

    @classmethod
    def _from_file(cls, path: str, **settings: Any) -> "Translator":
        """A lone generator file: the options of the run beside it (its opt.json), else read from its keys."""
        state = safe_load(path, "generator checkpoint")
        folder = os.path.dirname(os.path.abspath(path))
        saved = saved_train_options(os.path.dirname(folder), os.path.basename(folder)) or _inferred_options(state, path)
        name = settings["model"] or saved.get("model") or "sc"
        model_class = find_model_using_name(upstream_test_model(["--model", name])[1])
        if len(model_class.test_networks) != 1:
            raise UserError(f"{path}: the {name} model needs the networks {', '.join(model_class.test_networks)}; "
                            "load its run folder instead of one file")
        if model_class.reverse_networks:  # a lone file is the trained direction's generator only
            settings["direction"] = _checked_one_way(settings["direction"], saved, path)
        states = {model_class.test_networks[0]: (path, state)}
        return cls._build(checkpoints_dir=folder, name="", saved=saved, states=states, source=path, **settings)

    @classmethod
    def _from_hub_folder(cls, folder: str, source: str, **settings: Any) -> "Translator":
        """A folder laid out as a Hub repository (config.json + model.safetensors, see util/hub.py)."""
        config, tensors = hub.read_hub_folder(folder)
        states = {name: (os.path.join(folder, hub.WEIGHTS_FILE), state) for name, state in tensors.items()}
        settings["epoch"] = str(config.get("epoch", "latest"))
        saved = {**config["options"], "model": config["model"]}
        return cls._build(checkpoints_dir=folder, name="", saved=saved, states=states, source=source, **settings)

    # ---- translating ---------------------------------------------------------------------
    def translate(self, image: Union[Image.Image, torch.Tensor], *, n_styles: Optional[int] = None,
                  seed: Optional[int] = None, style_image: Optional[StyleImages] = None,
                  max_side: Optional[int] = None, tile: Optional[int] = None
                  ) -> Union[Image.Image, list[Image.Image], torch.Tensor]:
        """Translate one PIL image (any mode the data loaders read: grey, RGBA, palette, 16-bit) or a float
        tensor (N, C, H, W) in [0, 1], at its own size.

        Returns a PIL image of the input's size (mmsc: a list, one per style), or a tensor (N, C, H, W) in
        [0, 1] (mmsc: (N, K, C, H, W)). mmsc: ``n_styles`` random style codes drawn with ``seed`` (the run's
        test defaults otherwise), or ``style_image`` (a path, a PIL image or a list of them): one translation
        per reference. ``seed`` also fixes any noise the generator draws (sinsc). ``max_side``: an image
        with a longer side is translated in tiles of ``tile`` pixels (default ``max_side``) with whole-image
        normalisation statistics (util/tiling.py); ``tile`` alone tiles every image.
        """
        x, as_pil = self._input(image)
        extras = self._styles(n_styles, seed, style_image)
        tiled = tile is not None or (max_side is not None and max(x.shape[-2:]) > max_side)
        if tiled and self.multi_output:
            raise UserError(f"max_side/tile: the {self.model_name} model translates whole images only "
                            "(its decoder's AdaIN and layer norm are not tiled)")
        forks = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=forks) if seed is not None else contextlib.nullcontext():
            if seed is not None:
                torch.manual_seed(seed)
            if tiled:
                out = translate_tiled(self.generator, x.to(self.model.device), tile=tile or max_side,
                                      autocast=self.model.autocast)[:, None]
            else:
                out = self._forward(x, extras)
        if as_pil:
            images = [Image.fromarray(tensor2im(out[0, k])) for k in range(out.shape[1])]
            return images if self.multi_output else images[0]
        out = ((out.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        return out if self.multi_output else out[:, 0]

    def _input(self, image: Union[Image.Image, torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """(1 or N, input_nc, H, W) in [-1, 1], and whether the input was a PIL image."""
        channels = self.opt.input_nc
        if isinstance(image, Image.Image):
            return to_tensor(convert_image(image, channels))[None], True
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != channels \
                or not image.is_floating_point():
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise UserError(f"translate: give a PIL image or a float tensor (N, {channels}, H, W) in [0, 1], "
                            f"not {shape}")
        return image.float() * 2.0 - 1.0, False

    def _styles(self, n_styles: Optional[int], seed: Optional[int], style_image: Optional[StyleImages]) -> dict:
        """Set an mmsc model's style codes for this call; the batch entries they need ('style_B')."""
        if not self.multi_output:
            if n_styles is not None or style_image is not None:
                raise UserError(f"n_styles/style_image: the {self.model_name} model gives one translation per "
                                "image; they apply to mmsc")
            return {}
        opt = self.opt
        self.model.set_styles(opt.n_styles if n_styles is None else n_styles, opt.seed if seed is None else seed,
                              guided=style_image is not None)
        if style_image is None:
            return {}
        references = style_image if isinstance(style_image, (list, tuple)) else [style_image]
        return {"style_B": load_style_images(list(references), channels=opt.output_nc, preprocess=opt.preprocess,
                                             load_size=opt.load_size, crop_size=opt.crop_size)}

    def _forward(self, x: torch.Tensor, extras: dict) -> torch.Tensor:
        """The model's own test pass on (N, C, H, W) in [-1, 1]: (N, K, C_out, H, W) in [-1, 1]."""
        self.model.set_input({"A": x, **extras})
        self.model.test()
        cls = self.model_class
        if self.multi_output:
            count = int(self.model.style_codes.shape[0]) if "style_B" not in extras else extras["style_B"].shape[0]
            names = [cls.numbered_output(k) for k in range(1, count + 1)]
        else:
            names = [cls.output_visual]
        return torch.stack([getattr(self.model, name) for name in names], dim=1)

    def describe(self) -> str:
        """One line for a user interface: model, epoch, source and the key architecture options."""
        keys = ("ngf", "style_dim", "n_res") if self.multi_output else ("netG", "ngf")
        keys += ("direction", "input_nc", "output_nc")
        shown = ", ".join(f"{k} {self.options[k]}" for k in keys
                          if k in self.options and not (k.endswith("_nc") and self.options[k] == 3))
        return f"{self.model_name}, epoch {self.epoch}, from {self.source}: {shown}"


def _gpu_ids(device: str) -> str:
    """'cpu' -> '-1', 'cuda' -> '0', 'cuda:N' -> 'N' (the --gpu_ids the options understand)."""
    text = str(device)
    if text == "cpu":
        return "-1"
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"device {text}: no CUDA device is available here; use 'cpu'")
        return text[5:] or "0"
    raise UserError(f"device {text!r}: use 'cpu', 'cuda' or 'cuda:N'")


def _network_files(model_class: type, opt: argparse.Namespace, one_way: bool) -> dict[str, str]:
    """Test network -> the network whose file fills it: itself, or its reverse generator (cycle_gan against
    the trained direction)."""
    files = {name: name for name in model_class.test_networks}
    reverse = opt.direction != getattr(opt, "trained_direction", opt.direction)
    if not reverse:
        return files
    if model_class.reverse_networks is None:
        if one_way:
            raise UserError(f"direction {opt.direction}: the {opt.model} model translates one way only "
                            f"(trained {opt.trained_direction})")
        return files
    if model_class.reverse_networks and opt.input_nc != opt.output_nc:
        raise UserError(f"--direction {opt.direction}: the run was trained {opt.trained_direction} with --input_nc "
                        f"{opt.input_nc} and --output_nc {opt.output_nc}; the other way needs equal counts")
    return {name: model_class.reverse_networks.get(name, name) for name in files}


def _read_run_networks(model: BaseModel, tag: str, files: dict[str, str]) -> States:
    """Each test network's ``<tag>_net_<file>.pth``; a single-generator model whose own file is missing takes
    a lone ``<tag>_net_G.pth`` (CycleGAN's pretrained downloads, loaded upstream with ``--model test``)."""
    states = {}
    for name, file in files.items():
        path = model.net_path(tag, file)
        lone = model.net_path(tag, "G")
        if len(files) == 1 and file == name and not os.path.isfile(committed_path(path)) and os.path.isfile(lone):
            path = lone
        states[name] = (path, safe_load(committed_path(path), f"net_{file} checkpoint"))
    return states


def _inferred_options(state: dict, path: str) -> dict:
    """The model and architecture options of a generator file without options (see models/networks/from_keys.py):
    ``sinsc`` for a StyleGAN2 generator, ``cycle_gan`` for a ResNet one without anti-aliasing, else ``sc``."""
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state_dict of tensors")
    options = generator_options(state)
    if not options:
        return {}
    if options["netG"] == "stylegan2":
        return {"model": "sinsc", **options}
    cycle = options["no_antialias"] and options["no_antialias_up"]
    return {"model": "cycle_gan" if cycle else "sc", **options}


def _checked_one_way(direction: Optional[str], saved: dict, path: str) -> Optional[str]:
    """A lone generator file translates its trained direction only."""
    trained = saved.get("direction", "AtoB")
    if direction is not None and direction != trained:
        raise UserError(f"direction {direction}: {path} holds one generator ({trained}); the other way needs the "
                        "run folder with both generators")
    return direction
