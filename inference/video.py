"""Video through a trained model: decoded, translated and encoded frame by frame, stable in time.

    translator = Translator.load("h2z")
    translate_video(translator, "horse.mp4", "zebra.mp4")          # the sound copied, the frame times kept
    translate_video(translator, "horse.mp4", "frames/")            # numbered PNG files instead

Decoding and encoding go through PyAV (FFmpeg's libraries, from PyPI). The clip is streamed: a reader thread
decodes while the model translates and a writer thread encodes, each through a short queue, so memory does not
grow with the clip's length. The output keeps every frame's timestamp (so the frame rate, variable rates
included), the size, the rotation flag (frames are translated upright and stored as they came) and the audio
streams, whose packets are copied, not re-encoded. ``.mp4`` (the default; H.264, yuv420p: plays in browsers),
``.mov``, ``.m4v`` and ``.mkv`` get H.264, ``.webm`` VP9. The file is written under a temporary name beside the
destination and renamed at the end, so an interrupted run leaves no half file under the output name.

Instance norm normalises every frame by its own statistics, so a camera pan or a bright object entering shifts
every frame's colours and contrast: flicker. ``statistics`` chooses what the norms use (inference/statistics.py):

- ``'auto'`` (the default where the generator can share its statistics): the clip is split into shots at its
  cuts (:class:`CutDetector`), and each shot's frames share the statistics of a sample of them (``clip_frames``
  spread evenly over the shot; 0: every frame), pooled over the sample in a first pass (``clip_exact``: gathered
  layer by layer instead, as tiling gathers a whole image's, about 11 passes), except in a shot whose frames'
  own statistics hardly move (a still camera), where each frame keeps its own;
- ``'clip'``: the same, every shot with its shared statistics;
- ``'running'``: an exponential moving average of the frames' own statistics (``momentum``), started afresh at
  each cut, one pass, for streams (:func:`translate_frames` on an iterator);
- ``'frame'``: every frame by its own statistics, as an image (what a frame-by-frame script gives).

``phase_average=True`` translates each frame at every phase of the generator's sampling grid and averages
(:func:`phase_average`; 16 passes for a stride of 4): the output then follows a pan by any whole number of
pixels, not only by multiples of the stride.

docs/video.md has the measured flicker of each on camera pans, zooms and real clips (scripts/flicker.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from inference.statistics import NormStatistics, input_moments, instance_norms, statistics_spread
from inference.traits import traits_of
from models.networks.layers import pad2d
from util.errors import UserError
from util.image_io import atomic_path
from util.metrics import colour_histogram

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
ENCODERS = {".webm": "libvpx-vp9"}  # every other output extension: libx264
OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm")
STATISTICS = ("auto", "clip", "running", "frame")
SHOT_STATISTICS = ("auto", "clip")  # gathered per shot in a first pass (shot_statistics)
CUT_THRESHOLD = 0.2  # CutDetector: docs/video.md has the measurements it sits between
STILL_SPREAD = 0.025  # 'auto': docs/video.md (a still camera's frames 0.013, camera pans' 0.05 to 0.09)
PYAV_MISSING = "video needs PyAV, which is not installed; install it with: pip install av"


def is_video_file(path: str) -> bool:
    """Whether ``path`` names a video by its extension."""
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise UserError(PYAV_MISSING) from None
    return av


@dataclass
class ClipInfo:
    """What :func:`probe` reads of a clip: the video stream's stored size, frame rate, time base, rotation
    (counter-clockwise degrees for display), frame count (the container's, or an estimate from its duration; 0
    when unknown) and its number of audio streams."""

    path: str
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    rotation: int
    frames: int
    audio_streams: int


def _open(path: str) -> Any:
    """The input container; UserError (one line) when the file is missing or not a readable media file."""
    av = _av()
    if not os.path.isfile(path):
        raise UserError(f"input: {path} does not exist")
    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise UserError(f"{path}: not a readable video file ({exc})") from None


def probe(path: str) -> ClipInfo:
    """The clip's :class:`ClipInfo`, after decoding its first frame; UserError for a file without a video
    stream, with a codec this FFmpeg cannot decode, or with no frame."""
    av = _av()
    with _open(path) as container:
        if not container.streams.video:
            raise UserError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise UserError(f"{path}: its video codec cannot be decoded by this FFmpeg build")
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise UserError(f"{path}: its video cannot be decoded ({exc})") from None
        if first is None:
            raise UserError(f"{path}: its video stream holds no frame")
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = stream.frames or (int(float(stream.duration * stream.time_base) * rate) if stream.duration else 0)
        return ClipInfo(
            path,
            first.width,
            first.height,
            Fraction(rate),
            Fraction(stream.time_base),
            int(first.rotation or 0) % 360,
            int(frames),
            len(container.streams.audio),
        )


@dataclass
class Frame:
    """One decoded frame: ``image`` (H, W, 3) uint8 RGB, upright; its presentation time ``pts`` in ``time_base``."""

    image: np.ndarray
    pts: Optional[int]
    time_base: Fraction


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """A stored frame as displayed: turned ``rotation`` degrees counter-clockwise."""
    return np.ascontiguousarray(np.rot90(image, k=(rotation // 90) % 4))


def stored(image: np.ndarray, rotation: int) -> np.ndarray:
    """The inverse of :func:`upright`."""
    return np.ascontiguousarray(np.rot90(image, k=(-rotation // 90) % 4))


def read_frames(
    path: str, packets: Optional[Callable[[int, Any], None]] = None, max_frames: Optional[int] = None
) -> Iterator[Frame]:
    """Every frame of the clip's first video stream, upright; ``packets``, when given, receives every packet
    of its audio streams in file order, as ``packets(stream index, packet)`` (to be copied; the index is read
    here, while the input is open)."""
    av = _av()
    with _open(path) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        streams = [video] + (list(container.streams.audio) if packets else [])
        count = 0
        try:
            for packet in container.demux(*streams):
                if packet.stream is not video:
                    if packet.dts is not None:
                        packets(packet.stream.index, packet)
                    continue
                for frame in packet.decode():
                    if max_frames is not None and count >= max_frames:
                        return
                    count += 1
                    yield Frame(
                        upright(frame.to_ndarray(format="rgb24"), int(frame.rotation or 0)),
                        frame.pts,
                        Fraction(frame.time_base or video.time_base),
                    )
        except av.error.FFmpegError as exc:
            raise UserError(f"{path}: decoding failed after {count} frames ({exc})") from None


class VideoWriter:
    """Encodes frames (uint8 (H, W, 3), stored orientation) into ``path`` under a temporary name, with the audio
    streams of ``source`` copied; :meth:`close` renames it into place, :meth:`abort` removes it."""

    def __init__(self, path: str, source: ClipInfo, width: int, height: int, audio_from: Any = None) -> None:
        av = _av()
        folder, name = os.path.split(os.path.abspath(path))
        stem, ext = os.path.splitext(name)
        self.path, self.temporary = path, os.path.join(folder, f".{stem}.partial{ext}")
        self.container = av.open(self.temporary, "w")
        self.stream = self.container.add_stream(ENCODERS.get(ext.lower(), "libx264"), rate=source.rate)
        self.stream.width, self.stream.height = width - width % 2, height - height % 2  # yuv420p: even sides
        self.stream.pix_fmt = "yuv420p"
        # the source's time base in the encoder too: the frames' own times pass unrounded (variable rates)
        self.stream.time_base = self.stream.codec_context.time_base = source.time_base
        self.stream.options = {"crf": "18"} if ext.lower() != ".webm" else {"crf": "24", "b": "0"}
        if source.rotation:
            self.stream.set_display_rotation(source.rotation)
        self.count = 0
        try:
            self.audio = {s.index: self.container.add_stream_from_template(s) for s in (audio_from or [])}
        except (ValueError, av.error.FFmpegError) as exc:
            self.abort()
            raise UserError(
                f"output {path}: the clip's sound cannot be stored in {ext} unchanged ({exc}); write "
                ".mkv (any codec) or .mp4"
            ) from None

    def write(self, image: np.ndarray, pts: Optional[int], time_base: Fraction) -> None:
        av = _av()
        frame = av.VideoFrame.from_ndarray(image[: self.stream.height, : self.stream.width], format="rgb24")
        frame.pts, frame.time_base = (pts if pts is not None else self.count), time_base
        self.count += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def copy(self, index: int, packet: Any) -> None:
        """Mux an audio packet of the source's stream ``index`` unchanged; UserError when the container cannot
        hold its codec."""
        av = _av()
        stream = self.audio[index]
        packet.stream = stream
        try:
            self.container.mux(packet)
        except av.error.FFmpegError as exc:
            ext = os.path.splitext(self.path)[1]
            raise UserError(
                f"output {self.path}: its {stream.codec_context.name} sound cannot be stored in {ext} "
                f"unchanged ({exc}); write .mkv (any codec) or .mp4"
            ) from None

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        self.container.close()
        if os.path.exists(self.temporary):
            os.remove(self.temporary)


class FolderWriter:
    """Writes frames as ``<folder>/000001.png`` ... (each file atomically), upright."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder, self.count = folder, 0

    def write(self, image: np.ndarray, pts: Optional[int], time_base: Fraction) -> None:
        self.count += 1
        with atomic_path(os.path.join(self.folder, f"{self.count:06d}.png")) as tmp:
            Image.fromarray(image).save(tmp, format="PNG")

    def copy(self, index: int, packet: Any) -> None:
        """Frames only: the sound has nowhere to go."""

    def close(self) -> None:
        """Every file is already in place."""

    def abort(self) -> None:
        """Complete frames stay; no half file was ever under a frame's name."""


# ---- normalisation statistics across frames -----------------------------------------------------------------
def shareable_norms(translator: Any, statistics: str) -> list[torch.nn.InstanceNorm2d]:
    """The instance norms whose statistics ``statistics`` sets for the translator's generator ([] for 'frame',
    or a generator without instance norms); UserError when its normalisation cannot be shared across frames."""
    if statistics not in STATISTICS:
        raise UserError(f"statistics {statistics!r}: use one of {', '.join(STATISTICS)}")
    if statistics == "frame":
        return []
    traits = traits_of(translator.generator, translator.generator_name, "given clip statistics")
    if traits.tiling is None:
        raise UserError(
            f"statistics {statistics}: {translator.generator_name} cannot share its normalisation "
            f"across frames ({traits.untileable}); use statistics 'frame'"
        )
    return instance_norms(translator.generator)


def default_statistics(translator: Any) -> str:
    """'auto' where the generator can share its normalisation across frames, else 'frame'."""
    traits = traits_of(translator.generator, translator.generator_name, "translated as video")
    return "auto" if traits.tiling is not None else "frame"


def model_input(translator: Any, images: list[np.ndarray]) -> torch.Tensor:
    """uint8 RGB frames as the networks take them: (N, input_nc, H, W) in [-1, 1] on the translator's device,
    converted exactly as an image given to the API is (data.transforms.to_tensor; a grey model gets PIL's
    convert("L"))."""
    if translator.opt.input_nc == 1:
        images = [np.asarray(Image.fromarray(image).convert("L"))[..., None] for image in images]
    x = torch.from_numpy(np.stack(images)).to(translator.model.device).permute(0, 3, 1, 2)
    return x.float().div_(127.5).sub_(1.0)


def to_images(out: torch.Tensor) -> list[np.ndarray]:
    """(N, C, H, W) in [-1, 1] -> uint8 (H, W, 3) frames, rounded as util.image_io.tensor2im rounds an image."""
    values = torch.floor((out.detach().to("cpu", torch.float64).nan_to_num(nan=-1.0) + 1.0) * 127.5 + 0.5)
    values = values.clamp(0.0, 255.0).to(torch.uint8)
    return list((values.expand(-1, 3, -1, -1) if values.shape[1] == 1 else values).permute(0, 2, 3, 1).numpy())


def clip_statistics(
    translator: Any, frames: Callable[[], Iterable[np.ndarray]], batch: int = 4, exact: bool = False
) -> NormStatistics:
    """The clip statistics of the translator's generator over ``frames()`` (a sample held in memory, or a fresh
    decode of the clip; called once, or once per norm layer when ``exact``): pooled over the frames in one pass
    (NormStatistics.gather_pooled), or ``exact``ly, one layer per pass as tiling gathers a whole image's (about
    half a pass per norm layer: 11.5 passes for the 9-block generator)."""
    layers = shareable_norms(translator, "clip")
    stats = NormStatistics(layers)
    generator = translator.generator

    def every_frame(record: Callable[..., None]) -> None:
        for chunk in _batches(frames(), batch):
            record(generator, model_input(translator, chunk))

    with torch.no_grad(), translator.model.autocast():
        if exact:
            stats.gather(every_frame, shared=True)
        else:
            stats.gather_pooled(every_frame, shared=True)
    return stats


def _batches(items: Iterable[Any], batch: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class CutDetector:
    """Whether each frame, given in order, starts a new shot: the total-variation distance (0..1) between its
    colour histogram (8 levels a channel, over every 4th pixel of every 4th row) and the previous frame's is
    above ``threshold`` (1: never). Measured on real footage (docs/video.md): consecutive frames of pans, zooms
    and a static camera differ by at most 0.14, unrelated photos by 0.26 to 0.99."""

    def __init__(self, threshold: float = CUT_THRESHOLD) -> None:
        self.threshold = threshold
        self.previous: Optional[np.ndarray] = None

    def __call__(self, image: np.ndarray) -> bool:
        histogram = colour_histogram(np.asarray(image)[::4, ::4])
        cut = self.previous is not None and 0.5 * float(np.abs(histogram - self.previous).sum()) > self.threshold
        self.previous = histogram
        return cut


class _Sample:
    """``count`` items spread evenly over a stream of unknown length, keeping at most 2 ``count``: the stride
    doubles whenever the kept ones fill up."""

    def __init__(self, count: int) -> None:
        self.count, self.stride, self.seen = count, 1, 0
        self.kept: list[tuple[int, Any]] = []

    def add(self, item: Any) -> None:
        if self.seen % self.stride == 0:
            self.kept.append((self.seen, item))
            if len(self.kept) >= 2 * self.count:
                self.stride *= 2
                self.kept = [(i, kept) for i, kept in self.kept if i % self.stride == 0]
        self.seen += 1

    def items(self) -> list[Any]:
        step = max(1, len(self.kept) / self.count)
        return [self.kept[int(i * step)][1] for i in range(min(self.count, len(self.kept)))]


@dataclass
class Shot:
    """A run of frames between cuts: the index of its first frame, the statistics its frames are normalised with
    (None: each frame its own) and how far its sampled frames' own statistics spread (statistics_spread, at the
    first norm layer)."""

    start: int
    stats: Optional[NormStatistics]
    spread: float


def shot_statistics(
    translator: Any,
    frames: Iterable[np.ndarray],
    statistics: str = "auto",
    *,
    clip_frames: int = 16,
    exact: bool = False,
    batch: int = 4,
    cut_threshold: float = CUT_THRESHOLD,
) -> list[Shot]:
    """The shots of a clip (its frames in order, one pass) and the statistics of each: ``clip_frames`` frames
    spread evenly over the shot (at most twice as many held at once; 0: every frame, pooled as they come), pooled
    in one pass or gathered ``exact``ly (:func:`clip_statistics`). ``statistics`` 'auto': a shot whose frames'
    own statistics hardly move (spread below STILL_SPREAD: a still camera) keeps each frame's own ('frame');
    'clip': every shot its own fixed statistics."""
    layers = shareable_norms(translator, statistics)
    if exact and not clip_frames:
        raise UserError("clip_exact: gathering layer by layer needs a sample of each shot (clip_frames above 0)")
    generator = translator.generator
    detector = CutDetector(cut_threshold)
    shots: list[Shot] = []

    def moments_of(images: list[np.ndarray]) -> torch.Tensor:
        return input_moments(generator, layers[0], model_input(translator, images))

    def close(start: int, sample: Any, stream: NormStatistics, moments: list[torch.Tensor], pending: list) -> None:
        if clip_frames:
            images = sample.items()
            stats = clip_statistics(translator, lambda: images, batch, exact)
            moments = [moments_of(chunk) for chunk in _batches(images, batch)]
        else:
            if pending:
                record(stream, moments, pending)
            stream.adopt()
            stats = stream
        spread = statistics_spread(torch.cat(moments))
        shots.append(Shot(start, None if statistics == "auto" and spread < STILL_SPREAD else stats, spread))

    def record(stream: NormStatistics, moments: list[torch.Tensor], images: list[np.ndarray]) -> None:
        x = model_input(translator, images)
        moments.append(input_moments(generator, layers[0], x))
        stream.record_pooled(generator, x)

    with torch.no_grad(), translator.model.autocast():
        start, sample, stream, moments, pending = 0, _Sample(clip_frames), NormStatistics(layers), [], []
        for index, image in enumerate(frames):
            if detector(image):
                close(start, sample, stream, moments, pending)
                start, sample, stream, moments, pending = index, _Sample(clip_frames), NormStatistics(layers), [], []
            if clip_frames:
                sample.add(image)
                continue
            pending.append(image)
            if len(pending) == batch:
                record(stream, moments, pending)
                pending = []
        close(start, sample, stream, moments, pending)
    return shots


def frame_statistics(
    translator: Any, statistics: "str | NormStatistics", momentum: float, options: dict
) -> Optional[NormStatistics]:
    """What the norms use for a stream of frames: the given clip statistics, fresh running ones, or None (each
    frame its own)."""
    if isinstance(statistics, NormStatistics):
        return statistics
    layers = shareable_norms(translator, statistics)
    if statistics != "running" or not layers:
        return None
    if options.get("phase_average"):
        raise UserError(
            "statistics running: phase averaging translates each frame several times, which would update the "
            "running statistics each time; use statistics 'auto', 'clip' or 'frame'"
        )
    if options.get("tile") or options.get("max_side"):
        raise UserError(
            "statistics running: tiles would update the running statistics once per tile; use "
            "statistics 'clip' or 'frame' with tiling"
        )
    return NormStatistics(layers, momentum=momentum)


def translate_frames(
    translator: Any,
    frames: Iterable[Any],
    *,
    statistics: "str | NormStatistics | list[Shot]" = "running",
    momentum: float = 0.9,
    batch: int = 4,
    cut_threshold: float = CUT_THRESHOLD,
    **options: Any,
) -> Iterator[Any]:
    """Translate a stream of frames, in order, ``batch`` at a time: uint8 (H, W, 3) arrays or PIL images give
    uint8 arrays; float tensors (3, H, W) in [0, 1] give float tensors (before any rounding). ``statistics``:
    'running' (one pass; started afresh at every cut that ``cut_threshold`` finds), 'frame', the result of
    :func:`clip_statistics` (for every frame), or :func:`shot_statistics`' shots of these frames. ``options`` go
    to ``Translator.translate`` (``tile``, ``max_side``; not with 'running')."""
    shots = statistics if isinstance(statistics, list) else None
    stats = None if shots else frame_statistics(translator, statistics, momentum, options)
    detector = CutDetector(cut_threshold) if stats is not None and stats.momentum is not None else None
    for chunk, chunk_stats in _shot_chunks(frames, batch, shots, stats, detector, _image_of):
        yield from translate_chunk(translator, chunk, chunk_stats, options)


def _image_of(frame: Any) -> np.ndarray:
    """A frame as cut detection sees it: uint8 (H, W, 3)."""
    if isinstance(frame, torch.Tensor):
        return (frame.detach().float().clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
    return np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame)


def _shot_chunks(
    frames: Iterable[Any],
    batch: int,
    shots: Optional[list[Shot]],
    stats: Optional[NormStatistics],
    detector: Optional[CutDetector],
    image_of: Callable[[Any], np.ndarray],
) -> Iterator[tuple[list[Any], Optional[NormStatistics]]]:
    """The frames in chunks of at most ``batch`` equal-sized frames of one shot, each with the statistics its
    norms use: its shot's (``shots``), or ``stats``, running statistics started afresh at each cut ``detector``
    finds."""
    chunk: list[Any] = []
    starts = [shot.start for shot in shots[1:]] if shots else []
    for index, frame in enumerate(frames):
        new_shot = bool(starts) and index == starts[0]
        cut = detector is not None and detector(image_of(frame))
        if chunk and (new_shot or cut or _size(image_of, frame) != _size(image_of, chunk[0])):
            yield chunk, stats
            chunk = []
        if new_shot:
            starts.pop(0)
        if shots is not None and (new_shot or index == 0):
            stats = shots[len(shots) - 1 - len(starts)].stats
        if cut:
            stats.known.clear()
        chunk.append(frame)
        if len(chunk) == batch:
            yield chunk, stats
            chunk = []
    if chunk:
        yield chunk, stats


def _size(image_of: Callable[[Any], np.ndarray], frame: Any) -> tuple[int, int]:
    """A frame's height and width (without converting a tensor or PIL image)."""
    if isinstance(frame, torch.Tensor):
        return tuple(frame.shape[-2:])
    if isinstance(frame, Image.Image):
        return frame.height, frame.width
    return image_of(frame).shape[:2]


def translate_chunk(translator: Any, chunk: list[Any], stats: Optional[NormStatistics], options: dict) -> list[Any]:
    """One batch of equal-sized frames through ``Translator.translate``, its norms using ``stats`` (averaged over
    the grid's phases with ``options['phase_average']``: :func:`phase_average`)."""
    options = dict(options)
    if options.pop("phase_average", False):
        multiple = traits_of(translator.generator, translator.generator_name, "phase-averaged").size_multiple
        average = functools.partial(phase_average, multiple=multiple)
    else:
        average = _once
    if isinstance(chunk[0], torch.Tensor):
        x = torch.stack(chunk).to(translator.model.device)
        return list(average(lambda t: translator.translate(t, statistics=stats, **options), x))
    x = model_input(translator, [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f) for f in chunk])
    return to_images(average(lambda t: translator.translate_tensor(t, statistics=stats, **options), x)[:, 0])


def _once(translate: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return translate(x)


def phase_average(translate: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int) -> torch.Tensor:
    """The mean of ``translate`` over the ``multiple``² placements of ``x`` (N, C, H, W) on the generator's
    sampling grid (``multiple``: its stride): ``x`` padded by reflection with a and ``multiple`` - a columns
    (b and ``multiple`` - b rows), translated, and cropped back, for a, b in 0 .. ``multiple`` - 1. A strided
    generator's output shifts with its input only for shifts by multiples of its stride; every integer shift of
    ``x`` turns this set of placements into itself, so the mean shifts with the input by any whole number of
    pixels (away from the borders, and with statistics that do not change: shared across the frames).
    ``multiple``² passes."""
    h, w = x.shape[-2:]
    total = None
    for b in range(multiple):
        for a in range(multiple):
            padded = pad2d(x, (a, multiple - a, b, multiple - b), "reflect")
            out = translate(padded)[..., b : b + h, a : a + w]
            total = out if total is None else total + out
    return total / multiple**2


# ---- the clip -----------------------------------------------------------------------------------------------
def translate_video(
    translator: Any,
    source: str,
    destination: str,
    *,
    statistics: Optional[str] = None,
    clip_frames: int = 16,
    clip_exact: bool = False,
    momentum: float = 0.9,
    cut_threshold: float = CUT_THRESHOLD,
    batch: int = 4,
    max_frames: Optional[int] = None,
    progress: bool = True,
    **options: Any,
) -> int:
    """Translate the clip ``source`` into ``destination`` (a video file, or a folder for numbered PNGs); returns
    the number of frames written. See the module docstring for ``statistics`` (default: 'auto' where the
    generator can share its statistics), ``clip_frames``, ``clip_exact`` and ``cut_threshold`` (see
    :func:`shot_statistics`) and ``momentum``. ``max_frames`` cuts the clip. ``options`` go to
    ``Translator.translate`` (``tile``, ``max_side``), but ``phase_average=True``: each frame averaged over the
    generator's grid phases (:func:`phase_average`)."""
    info = probe(source)
    statistics = statistics or default_statistics(translator)
    shareable_norms(translator, statistics)
    if translator.multi_output:
        raise UserError(
            f"video: the {translator.model_name} model gives several translations per frame; "
            "translate the frames as images (one folder per style) instead"
        )
    writer = _writer(destination, info)
    try:
        shots, stats = None, None
        if statistics in SHOT_STATISTICS:
            frames = (
                f.image
                for f in tqdm(
                    read_frames(source, max_frames=max_frames),
                    desc="shots",
                    unit="frame",
                    total=_total(info, max_frames),
                    disable=not progress,
                    leave=False,
                )
            )
            shots = shot_statistics(
                translator,
                frames,
                statistics,
                clip_frames=clip_frames,
                exact=clip_exact,
                batch=batch,
                cut_threshold=cut_threshold,
            )
        else:
            stats = frame_statistics(translator, statistics, momentum, options)
        detector = CutDetector(cut_threshold) if stats is not None else None
        with tqdm(total=_total(info, max_frames), desc="translate", unit="frame", disable=not progress) as bar:
            _stream(translator, source, writer, info, (shots, stats, detector), batch, max_frames, bar, options)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.count


def _total(info: ClipInfo, max_frames: Optional[int]) -> Optional[int]:
    """The frames the progress bars count to (None: unknown)."""
    total = min(info.frames, max_frames) if info.frames and max_frames else (info.frames or max_frames)
    return total or None


def _writer(destination: str, info: ClipInfo) -> Any:
    """A VideoWriter for a video file name, else a FolderWriter; UserError for a missing parent folder."""
    ext = os.path.splitext(destination)[1].lower()
    folder = os.path.dirname(os.path.abspath(destination))
    if not os.path.isdir(folder):
        raise UserError(f"output: the folder {folder} does not exist")
    if ext in VIDEO_EXTENSIONS and ext not in OUTPUT_EXTENSIONS:
        raise UserError(f"output: {destination}: write {', '.join(OUTPUT_EXTENSIONS)} (or a folder for PNG frames)")
    if ext not in OUTPUT_EXTENSIONS:
        return FolderWriter(destination)
    with _open(info.path) as container:  # the audio streams' codec parameters, as templates
        return VideoWriter(destination, info, info.width, info.height, audio_from=list(container.streams.audio))


class _Pipeline:
    """A reader thread decoding into one queue, a writer thread encoding from another; a failure in either is
    kept for the main thread, and the writer keeps draining so the main thread never blocks on it."""

    def __init__(self, frames: Iterator[Frame], audio: queue.Queue, writer: Any, size: int) -> None:
        self.decoded: queue.Queue = audio
        self.encoded: queue.Queue = queue.Queue(maxsize=size)
        self.writer, self.failure = writer, []
        self.done = object()
        self.stopped = False
        self.threads = [
            threading.Thread(target=self._read, args=(frames,), daemon=True),
            threading.Thread(target=self._write, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _read(self, frames: Iterator[Frame]) -> None:
        try:
            for frame in frames:
                if self.stopped:
                    break
                self.decoded.put(("video", frame))
        except BaseException as exc:  # handed to the main thread
            self.failure.append(exc)
        finally:
            self.decoded.put(self.done)

    def _write(self) -> None:
        while (item := self.encoded.get()) is not self.done:
            if self.failure:
                continue
            try:
                kind, value = item
                self.writer.copy(*value) if kind == "audio" else self.writer.write(*value)
            except BaseException as exc:
                self.failure.append(exc)

    def items(self) -> Iterator[tuple[str, Any]]:
        """What the reader decoded, in file order, until it is done or something failed."""
        while (item := self.decoded.get()) is not self.done and not self.failure:
            yield item

    def finish(self) -> None:
        """Stop the reader, wait for the writer; raise what failed."""
        self.stopped = True
        while self.threads[0].is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self.decoded.get(timeout=0.1)
        self.encoded.put(self.done)
        self.threads[1].join()
        if self.failure:
            raise self.failure[0]


def _stream(
    translator: Any,
    source: str,
    writer: Any,
    info: ClipInfo,
    norms: tuple[Optional[list[Shot]], Optional[NormStatistics], Optional[CutDetector]],
    batch: int,
    max_frames: Optional[int],
    bar: tqdm,
    options: dict,
) -> None:
    """Decode (a thread), translate (here, ``batch`` equal-sized frames of one shot at a time, with what
    ``norms`` gives: :func:`_shot_chunks`) and encode (a thread), through queues of a few batches; audio packets
    pass from the reader to the writer unchanged."""
    decoded: queue.Queue = queue.Queue(maxsize=4 * batch)
    frames = read_frames(source, packets=lambda index, p: decoded.put(("audio", (index, p))), max_frames=max_frames)
    pipeline = _Pipeline(frames, decoded, writer, 4 * batch)

    def video_frames() -> Iterator[Frame]:
        for kind, value in pipeline.items():
            if kind == "audio":
                pipeline.encoded.put((kind, value))
            else:
                yield value

    try:
        shots, stats, detector = norms
        for chunk, chunk_stats in _shot_chunks(video_frames(), batch, shots, stats, detector, lambda f: f.image):
            if pipeline.failure:
                break
            for frame, image in zip(chunk, translate_chunk(translator, [f.image for f in chunk], chunk_stats, options)):
                pipeline.encoded.put(("video", (stored(image, info.rotation), frame.pts, frame.time_base)))
                bar.update()
    finally:
        pipeline.finish()
