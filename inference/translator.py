"""Use a trained model anywhere: ``Translator.load(source)``, then ``translate(image)``.

    from PIL import Image
    from inference import Translator

    translator = Translator.load("h2z")                       # checkpoints/h2z: opt.json + latest_net_G.pth
    translator.translate(Image.open("horse.jpg")).save("zebra.png")

``source`` is anything inference/sources.py resolves: a run name under ``checkpoints_dir``, a run folder, a lone
generator file, a folder laid out as a Hugging Face Hub repository, or a Hub repository id ``owner/name``. The
networks are built by the model class itself from the run's options, parsed as test.py parses them.

This is the one way in and the one loop for every entry point that translates: test.py and test_fid.py build
through :meth:`Translator.from_options` and iterate :meth:`Translator.run_dataset`; scripts/compare.py does the
same through test_fid.py's code; translate.py, app.py, export.py, scripts/push_to_hub.py and scripts/polarity.py
call :meth:`Translator.load` and :meth:`Translator.translate`, which runs the same :meth:`Translator.run` pass.
The direction (which file fills each network), the epoch, eval mode (``--eval``; the API always), the test-time
styles and the generator's noise are decided here and nowhere else (docs/using_a_model.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Union

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from data.image_folder import convert_image, load_image
from data.transforms import to_tensor
from inference.onnx_export import ORT_MISSING, ExportGraph, export_graph, run_session
from inference.statistics import NormStatistics
from inference.sources import Source, States, network_files, read_run_networks, resolve
from inference.streaming import MemoryPlan, fits_whole, memory_plan
from inference.tiling import streamable, translate_tiled
from inference.traits import traits_of
from models import create_model, find_model_using_name
from models.base_model import AMP_DTYPES, BaseModel
from options.test_options import TestOptions, upstream_test_model
from util.errors import UserError
from util.image_io import tensor2im

StyleImages = Union[str, Image.Image, list]


@dataclass
class Translation:
    """One input's result of a test pass: ``path`` (the input's file; '' for an image given to the API),
    ``outputs`` (its K translations, (C, H, W) in [-1, 1] each; K = 1 but for multi-output models) and
    ``visuals`` (every test visual of the model for it, name -> (C, H, W) in [-1, 1]: test.py's page)."""

    path: str
    outputs: list[torch.Tensor]
    visuals: dict[str, torch.Tensor]


class Translator:
    """A trained model ready to translate images; build it with :meth:`load` (or :meth:`from_options`).

    Attributes: ``model`` (the model object), ``opt`` (its test options), ``networks`` (test network name ->
    plain nn.Module), ``generator`` (the model's inference graph: what tiling and export run) and
    ``generator_name`` (how messages name it), ``model_name``,
    ``options`` (the architecture options), ``files`` (test network -> the network whose checkpoint file it
    holds), ``epoch``, ``source``, ``multi_output`` (one translation per style code: mmsc).
    """

    def __init__(self, model: BaseModel, opt: argparse.Namespace, *, source: str, files: dict[str, str]) -> None:
        self.model = model
        self.opt = opt
        self.model_name: str = opt.model
        self.model_class = type(model)
        self.options = {k: getattr(opt, k) for k in self.model_class.architecture_options if hasattr(opt, k)}
        self.networks = model.networks()
        self.generator = model.inference_graph()
        # the translating network as messages name it
        self.generator_name = f"the {self.model_name} model's generator {self.model_class.test_networks[0]}"
        self.multi_output: bool = self.model_class.multi_output
        self.files = files
        self.epoch = str(opt.epoch)
        self.source = source
        self.backend = "torch"  # or 'onnxruntime': see use_backend
        self._session: Optional[object] = None

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        source: Union[str, "os.PathLike[str]"],
        *,
        direction: Optional[str] = None,
        epoch: str = "latest",
        device: str = "cpu",
        amp: str = "off",
        checkpoints_dir: str = "./checkpoints",
        model: Optional[str] = None,
        options: Optional[dict] = None,
        backend: str = "torch",
    ) -> "Translator":
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
        found = resolve(
            str(source), checkpoints_dir=checkpoints_dir, epoch=str(epoch), direction=direction, model=model
        )
        translator = cls._build(found, device=device, amp=amp, model=model, options=dict(options or {}))
        translator.use_backend(backend)
        return translator

    @classmethod
    def _build(cls, source: Source, *, device: str, amp: str, model: Optional[str], options: dict) -> "Translator":
        """Parse the test options as test.py would (the source's recorded options beneath), build, load, eval."""
        model = model or (source.saved or {}).get("model") or "sc"
        model_class = find_model_using_name(upstream_test_model(["--model", model])[1])
        unknown = sorted(set(options) - set(model_class.architecture_options))
        if unknown:
            raise UserError(
                f"options: {unknown[0]} is not an architecture option of the {model} model "
                f"({', '.join(model_class.architecture_options)})"
            )
        argv = [
            "--checkpoints_dir",
            source.checkpoints_dir,
            "--name",
            source.name,
            "--epoch",
            source.epoch,
            "--model",
            model,
            "--gpu_ids",
            _gpu_ids(device),
            "--amp",
            amp,
            "--dataroot",
            ".",
            "--eval",
        ]
        argv += ["--direction", source.direction] if source.direction else []
        saved = {**(source.saved or {}), **options} if source.saved is not None or options else None
        opt = TestOptions(argv, saved=saved).parse()
        return cls.from_options(opt, source.states, source=source.label, one_way=True)

    @classmethod
    def from_options(
        cls,
        opt: argparse.Namespace,
        states: Optional[States] = None,
        *,
        source: Optional[str] = None,
        one_way: bool = False,
        epoch: Optional[str] = None,
    ) -> "Translator":
        """The model the parsed test options ``opt`` describe (test.py's and test_fid.py's), its networks loaded
        from ``states`` (network file -> (where, state_dict)) or else from the run's ``<epoch>_net_<file>.pth``
        files, in eval mode with ``--eval``. ``one_way``: a ``--direction`` against the trained one is an error
        for a one-way model (test.py instead swaps the data's sides, as CycleGAN does). ``epoch``: the run's
        checkpoint to load instead of ``opt.epoch`` (test_fid.py's first epoch)."""
        model_class = find_model_using_name(opt.model)
        files = network_files(model_class, opt, one_way)
        model = create_model(opt)
        if states is None:
            states = read_run_networks(model.save_dir, str(epoch or opt.epoch), files)
        else:
            missing = [files[name] for name in model.model_names if files[name] not in states]
            if missing:
                raise UserError(
                    f"{source}: has no network {missing[0]}, which the {opt.model} model needs here "
                    f"(--direction {opt.direction})"
                )
            states = {name: states[files[name]] for name in model.model_names}
        model.apply_networks(states)
        model.setup()
        if opt.eval:
            model.eval()
        translator = cls(model, opt, source=source or model.save_dir, files=files)
        translator.epoch = str(epoch or opt.epoch)
        return translator

    @staticmethod
    def epoch_network(opt: argparse.Namespace) -> str:
        """The network file that names a run's saved epochs for the test options ``opt`` (``<epoch>_net_<it>.pth``):
        the file of the first test network, G_B's for cycle_gan against its trained direction."""
        model_class = find_model_using_name(opt.model)
        return network_files(model_class, opt, one_way=False)[model_class.test_networks[0]]

    def use_backend(self, backend: str) -> None:
        """'torch' (PyTorch eager, the reference) or 'onnxruntime': whole images through the generator exported
        as export.py exports it (inference/onnx_export.py), run by onnxruntime's CPU provider, about 1.2-1.35x
        faster on a 2-core CPU (benchmarks/README.md) and equal to PyTorch within float rounding. It is exported
        on the first image (about 3 s for the default sc generator). Streamed and tiled images, clip
        statistics, style codes and generator noise stay with PyTorch; a model the graph cannot serve alone
        (mmsc's styles, sinsc's noise, a GPU device) is a UserError."""
        if backend not in ("torch", "onnxruntime"):
            raise UserError(f"backend {backend!r}: use 'torch' or 'onnxruntime'")
        if backend == "onnxruntime":
            traits = traits_of(self.generator, self.generator_name, "exported")
            if self.model.device.type != "cpu":
                raise UserError("backend onnxruntime: runs on the CPU here; use device 'cpu' or backend 'torch'")
            if self.multi_output or traits.style_dim is not None or traits.noise:
                raise UserError(
                    f"backend onnxruntime: the {self.model_name} model draws style codes or noise per call; "
                    "use backend 'torch'"
                )
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                raise UserError(ORT_MISSING) from None
        self.backend, self._session = backend, None

    def _onnx(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) in [-1, 1] through the exported graph: (N, 1, C', H, W) in [-1, 1]."""
        if self._session is None:
            import onnxruntime

            buffer = io.BytesIO()
            export_graph(ExportGraph(self.generator, self.opt.input_nc, self.generator_name).eval(), buffer)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
            options.log_severity_level = 3
            self._session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        out = run_session(self._session, [((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)])
        return (out * 2.0 - 1.0)[:, None]

    def use_epoch(self, tag: str) -> None:
        """Load the run's ``<tag>_net_<file>.pth`` into the test networks (same direction and mode)."""
        self.model.apply_networks(read_run_networks(self.model.save_dir, str(tag), self.files))
        self._session = None  # exported again with the new weights
        self.epoch = str(tag)

    # ---- the one loop --------------------------------------------------------------------
    def run(self, batch: dict) -> list[Translation]:
        """The model's own test pass on a data batch ('A' (N, C, H, W) in [-1, 1], optional 'A_paths' and,
        for mmsc with reference images, 'style_B'): one :class:`Translation` per input."""
        self.model.set_input(batch)
        self.model.test()
        outputs = self.model.test_outputs()
        visuals = self.model.get_current_visuals()
        paths = list(self.model.get_image_paths()) or [""] * outputs[0].shape[0]
        return [
            Translation(path, [out[i] for out in outputs], {k: v[i] for k, v in visuals.items()})
            for i, path in enumerate(paths)
        ]

    def run_dataset(self, dataset: Iterable[dict], limit: Optional[int] = None) -> Iterator[Translation]:
        """:meth:`run` over the batches of ``dataset`` (data.create_dataset), each input once (a split that
        brings an input round again stops there), at most ``limit`` inputs."""
        seen: set[str] = set()
        for batch in dataset:
            for result in self.run(batch):
                if (limit is not None and len(seen) >= limit) or result.path in seen:
                    return
                seen.add(result.path)
                yield result

    def translate(
        self,
        image: Union[Image.Image, torch.Tensor, str, "os.PathLike[str]"],
        *,
        n_styles: Optional[int] = None,
        seed: Optional[int] = None,
        style_image: Optional[StyleImages] = None,
        max_side: Optional[int] = None,
        tile: Optional[int] = None,
        statistics: Optional[NormStatistics] = None,
        max_memory: Optional[int] = None,
        scratch: Optional[str] = None,
    ) -> Union[Image.Image, list[Image.Image], torch.Tensor]:
        """Translate one PIL image (any mode the data loaders read: grey, RGBA, palette, 16-bit) or a float
        tensor (N, C, H, W) in [0, 1], at its own size.

        Returns a PIL image of the input's size (mmsc: a list, one per style), or a tensor (N, C, H, W) in
        [0, 1] (mmsc: (N, K, C, H, W)). mmsc: ``n_styles`` random style codes drawn with ``seed`` (the run's
        test defaults otherwise), or ``style_image`` (a path, a PIL image or a list of them): one translation
        per reference. ``seed`` also fixes any noise the generator draws (sinsc). ``max_side``: an image
        with a longer side is translated in tiles of ``tile`` pixels (default ``max_side``) with whole-image
        normalisation statistics (inference/tiling.py); ``tile`` alone tiles every image. A generator that
        declares it cannot be tiled (mmsc's) is refused with one line. ``statistics``: what the generator's
        instance norms use instead of each image's own (a clip's, inference/video.py); tiles share them as they are.
        ``max_memory``: bytes this process may hold (default: 1.5 GiB, or 512 MiB beyond what it holds already;
        inference/streaming.py): on the CPU an image whose whole pass would not fit is translated stage by
        stage in tiles within it, exactly, the maps that do not fit kept in scratch files in ``scratch``
        (default: the system's temporary folder). ``image`` may also be a path, read as translate.py reads
        files (a file that cannot be read, a decompression bomb included, is one UserError line).
        """
        if isinstance(image, (str, os.PathLike)):
            image = load_image(str(image), self.opt.input_nc)
        if isinstance(image, Image.Image) and tile is None and (max_side is None or max(image.size) <= max_side):
            photo = self._translate_bytes(image, max_memory, scratch, statistics)
            if photo is not None:
                return photo
        x, as_pil = self._input(image)
        out = self.translate_tensor(
            x,
            n_styles=n_styles,
            seed=seed,
            style_image=style_image,
            max_side=max_side,
            tile=tile,
            statistics=statistics,
            max_memory=max_memory,
            scratch=scratch,
        )
        if as_pil:
            images = [Image.fromarray(tensor2im(out[0, k])) for k in range(out.shape[1])]
            return images if self.multi_output else images[0]
        out = ((out.float() + 1.0) / 2.0).clamp(0.0, 1.0)
        return out if self.multi_output else out[:, 0]

    def translate_batch(self, images: list[Image.Image], **options: object) -> list[list[Image.Image]]:
        """Translate PIL images of one size in one batch: for each image its translations (one, or one per
        style for mmsc), as :meth:`translate` gives them one by one; ``options`` are :meth:`translate`'s."""
        sizes = {image.size for image in images}
        if len(sizes) != 1:
            raise UserError(f"translate_batch: the images differ in size ({', '.join(map(str, sorted(sizes)))})")
        x = torch.cat([self._input(image)[0] for image in images])
        out = self.translate_tensor(x, **options)
        return [[Image.fromarray(tensor2im(out[i, k])) for k in range(out.shape[1])] for i in range(out.shape[0])]

    def translate_tensor(
        self,
        x: torch.Tensor,
        *,
        n_styles: Optional[int] = None,
        seed: Optional[int] = None,
        style_image: Optional[StyleImages] = None,
        max_side: Optional[int] = None,
        tile: Optional[int] = None,
        statistics: Optional[NormStatistics] = None,
        max_memory: Optional[int] = None,
        scratch: Optional[str] = None,
    ) -> torch.Tensor:
        """:meth:`translate`'s pass in the networks' range: ``x`` (N, input_nc, H, W) in [-1, 1] -> (N, K, C_out,
        H, W) in [-1, 1] (K = 1 but for multi-output models), the options as :meth:`translate`'s."""
        batch = {"A": x, **self._styles(n_styles, seed, style_image)}
        tiled = tile is not None or (max_side is not None and max(x.shape[-2:]) > max_side)
        plan = None if tiled else self._memory_plan(x, max_memory)
        tiled = tiled or (plan is not None and not plan.whole)
        forks = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=forks) if seed is not None else contextlib.nullcontext():
            if seed is not None:
                torch.manual_seed(seed)
            if tiled:
                out = translate_tiled(
                    self.generator,
                    x.to(self.model.device),
                    tile=tile or (max_side if plan is None else None),
                    autocast=self.model.autocast,
                    name=self.generator_name,
                    known=statistics,
                    budget=plan.budget if plan is not None else None,
                    map_bytes=plan.map_bytes if plan is not None else 0,
                    folder=scratch,
                )
                return out[:, None]
            if self.backend == "onnxruntime" and statistics is None:
                return self._onnx(x)
            with statistics.attached() if statistics is not None else contextlib.nullcontext():
                return torch.stack([torch.stack(r.outputs) for r in self.run(batch)])

    def _translate_bytes(
        self,
        image: Image.Image,
        max_memory: Optional[int],
        scratch: Optional[str],
        statistics: Optional[NormStatistics],
    ) -> Optional[Image.Image]:
        """A photo too large for its whole pass, streamed from its bytes to bytes (inference/streaming.py's byte
        maps: a quarter of the float tensors' memory, the same pixels); None where that does not apply (it fits
        whole, a side is not a multiple of the size multiple, mmsc, a GPU)."""
        traits = traits_of(self.generator, self.generator_name, "translated")
        if self.multi_output or any(side % traits.size_multiple for side in image.size):
            return None
        x = TF.pil_to_tensor(convert_image(image, self.opt.input_nc))[None]
        plan = self._memory_plan(x, max_memory, value_bytes=1)
        if plan is None or plan.whole:
            return None
        out = translate_tiled(
            self.generator,
            x,
            autocast=self.model.autocast,
            name=self.generator_name,
            known=statistics,
            budget=plan.budget,
            map_bytes=plan.map_bytes,
            folder=scratch,
        )[0]
        return Image.fromarray((out if out.shape[0] == 3 else out.expand(3, -1, -1)).permute(1, 2, 0).numpy())

    def _memory_plan(self, x: torch.Tensor, max_memory: Optional[int], value_bytes: int = 4) -> Optional[MemoryPlan]:
        """On the CPU, for a generator that can be streamed (inference/streaming.py): whether ``x`` runs whole
        within ``max_memory`` or in tiles (a MemoryPlan; always in tiles under ``amp='bf16'``, the faster path);
        None where no plan applies (a GPU, mmsc, forward-tiled generators: whole images, as before)."""
        if self.model.device.type != "cpu" or self.multi_output:
            return None
        traits = traits_of(self.generator, self.generator_name, "translated")
        if traits.tiling != "layers":
            return None
        # under bf16 autocast the stages (channels last) run about twice as fast as the whole eager pass
        stream = self.opt.amp == "bf16"
        if not stream and fits_whole(self.generator, x, max_memory, value_bytes):  # no stage program needed
            return MemoryPlan(whole=True)
        program = streamable(self.generator, traits, x.shape[1], self.generator_name)
        if program is None:
            return None
        multiple = traits.size_multiple
        height, width = (-(-side // multiple) * multiple for side in x.shape[-2:])
        return memory_plan(program, x.shape[0], height, width, max_memory, value_bytes, stream=stream)

    def _input(self, image: Union[Image.Image, torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """(1 or N, input_nc, H, W) in [-1, 1], and whether the input was a PIL image."""
        channels = self.opt.input_nc
        if isinstance(image, Image.Image):
            return to_tensor(convert_image(image, channels))[None], True
        if (
            not isinstance(image, torch.Tensor)
            or image.dim() != 4
            or image.shape[1] != channels
            or not image.is_floating_point()
        ):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise UserError(
                f"translate: give a PIL image or a float tensor (N, {channels}, H, W) in [0, 1], not {shape}"
            )
        return image.float() * 2.0 - 1.0, False

    def _styles(self, n_styles: Optional[int], seed: Optional[int], style_image: Optional[StyleImages]) -> dict:
        """Set an mmsc model's style codes for this call; the batch entries they need ('style_B')."""
        if not self.multi_output:
            if n_styles is not None or style_image is not None:
                raise UserError(
                    f"n_styles/style_image: the {self.model_name} model gives one translation per "
                    "image; they apply to mmsc"
                )
            return {}
        opt = self.opt
        self.model.set_styles(
            opt.n_styles if n_styles is None else n_styles,
            opt.seed if seed is None else seed,
            guided=style_image is not None,
        )
        if style_image is None:
            return {}
        references = style_image if isinstance(style_image, (list, tuple)) else [style_image]
        return type(self.model).batch_extras(argparse.Namespace(**vars(opt) | {"style_image": list(references)}))

    def describe(self) -> str:
        """One line for a user interface: model, epoch, source and the key architecture options."""
        keys = ("ngf", "style_dim", "n_res") if self.multi_output else ("netG", "ngf")
        keys += ("direction", "input_nc", "output_nc")
        shown = ", ".join(
            f"{k} {self.options[k]}"
            for k in keys
            if k in self.options and not (k.endswith("_nc") and self.options[k] == 3)
        )
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
