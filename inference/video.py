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

- ``'clip'`` (the default where the generator can share its statistics): the statistics of a sample of the
  clip's frames (``clip_frames`` spread evenly over it; 0: every frame), pooled over the sample in a first pass
  (``clip_exact``: gathered layer by layer instead, as tiling gathers a whole image's, about 11 passes), then
  used for every frame;
- ``'running'``: an exponential moving average of the frames' own statistics (``momentum``), one pass, for
  streams (:func:`translate_frames` on an iterator);
- ``'frame'``: every frame by its own statistics, as an image (what a frame-by-frame script gives).

docs/video.md has the measured flicker of each on camera pans, zooms and real clips (scripts/flicker.py).
"""

from __future__ import annotations

import contextlib
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

from inference.statistics import NormStatistics, instance_norms
from inference.traits import traits_of
from util.errors import UserError
from util.image_io import atomic_path

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
ENCODERS = {".webm": "libvpx-vp9"}  # every other output extension: libx264
OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm")
STATISTICS = ("clip", "running", "frame")
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
    """'clip' where the generator can share its normalisation across frames, else 'frame'."""
    traits = traits_of(translator.generator, translator.generator_name, "translated as video")
    return "clip" if traits.tiling is not None else "frame"


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
        chunk: list[np.ndarray] = []
        for image in frames():
            chunk.append(image)
            if len(chunk) == batch:
                record(generator, model_input(translator, chunk))
                chunk = []
        if chunk:
            record(generator, model_input(translator, chunk))

    with torch.no_grad(), translator.model.autocast():
        if exact:
            stats.gather(every_frame, shared=True)
        else:
            stats.gather_pooled(every_frame, shared=True)
    return stats


def evenly_spaced(frames: Iterable[Frame], count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over the stream (every frame when it is shorter), keeping at most
    2 ``count`` in memory: the stride doubles whenever the kept ones fill up."""
    kept: list[tuple[int, np.ndarray]] = []
    stride = 1
    for index, frame in enumerate(frames):
        if index % stride == 0:
            kept.append((index, frame.image))
            if len(kept) >= 2 * count:
                stride *= 2
                kept = [(i, image) for i, image in kept if i % stride == 0]
    step = max(1, len(kept) / count)
    return [kept[int(i * step)][1] for i in range(min(count, len(kept)))]


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
    statistics: "str | NormStatistics" = "running",
    momentum: float = 0.9,
    batch: int = 4,
    **options: Any,
) -> Iterator[Any]:
    """Translate a stream of frames, in order, ``batch`` at a time: uint8 (H, W, 3) arrays or PIL images give
    uint8 arrays; float tensors (3, H, W) in [0, 1] give float tensors (before any rounding). ``statistics``:
    'running' (one pass), 'frame', or the result of :func:`clip_statistics`. ``options`` go to
    ``Translator.translate`` (``tile``, ``max_side``; not with 'running')."""
    stats = frame_statistics(translator, statistics, momentum, options)
    chunk: list[Any] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == batch:
            yield from translate_chunk(translator, chunk, stats, options)
            chunk = []
    if chunk:
        yield from translate_chunk(translator, chunk, stats, options)


def translate_chunk(translator: Any, chunk: list[Any], stats: Optional[NormStatistics], options: dict) -> list[Any]:
    """One batch of equal-sized frames through ``Translator.translate``, its norms using ``stats``."""
    if isinstance(chunk[0], torch.Tensor):
        return list(translator.translate(torch.stack(chunk).to(translator.model.device), statistics=stats, **options))
    x = model_input(translator, [np.asarray(f.convert("RGB") if isinstance(f, Image.Image) else f) for f in chunk])
    return to_images(translator.translate_tensor(x, statistics=stats, **options)[:, 0])


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
    batch: int = 4,
    max_frames: Optional[int] = None,
    progress: bool = True,
    **options: Any,
) -> int:
    """Translate the clip ``source`` into ``destination`` (a video file, or a folder for numbered PNGs); returns
    the number of frames written. See the module docstring for ``statistics`` (default: 'clip' where the
    generator can share its statistics), ``clip_frames``, ``clip_exact`` (see :func:`clip_statistics`) and
    ``momentum``. ``max_frames`` cuts the clip.
    ``options`` go to ``Translator.translate`` (``tile``, ``max_side``)."""
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
        stats = (
            frame_statistics(translator, statistics, momentum, options)
            if statistics != "clip"
            else _clip_statistics_of(translator, source, clip_frames, clip_exact, batch, max_frames)
        )
        total = min(info.frames, max_frames) if info.frames and max_frames else (info.frames or max_frames)
        with tqdm(total=total or None, desc="translate", unit="frame", disable=not progress) as bar:
            _stream(translator, source, writer, info, stats, batch, max_frames, bar, options)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.count


def _clip_statistics_of(
    translator: Any, source: str, clip_frames: int, exact: bool, batch: int, max_frames: Optional[int]
) -> NormStatistics:
    """The clip statistics of ``clip_frames`` frames spread over the clip (held in memory), or of every frame
    (``clip_frames`` 0: the clip decoded once per norm layer)."""
    if clip_frames:
        sample = evenly_spaced(read_frames(source, max_frames=max_frames), clip_frames)
        return clip_statistics(translator, lambda: sample, batch, exact)
    return clip_statistics(
        translator, lambda: (f.image for f in read_frames(source, max_frames=max_frames)), batch, exact
    )


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
    stats: Optional[NormStatistics],
    batch: int,
    max_frames: Optional[int],
    bar: tqdm,
    options: dict,
) -> None:
    """Decode (a thread), translate (here, ``batch`` equal-sized frames at a time) and encode (a thread), through
    queues of a few batches; audio packets pass from the reader to the writer unchanged."""
    decoded: queue.Queue = queue.Queue(maxsize=4 * batch)
    frames = read_frames(source, packets=lambda index, p: decoded.put(("audio", (index, p))), max_frames=max_frames)
    pipeline = _Pipeline(frames, decoded, writer, 4 * batch)

    def flush(chunk: list[Frame]) -> None:
        for frame, image in zip(chunk, translate_chunk(translator, [f.image for f in chunk], stats, options)):
            pipeline.encoded.put(("video", (stored(image, info.rotation), frame.pts, frame.time_base)))
            bar.update()

    chunk: list[Frame] = []
    try:
        for kind, value in pipeline.items():
            if kind == "audio":
                pipeline.encoded.put((kind, value))
                continue
            if chunk and value.image.shape != chunk[0].image.shape:  # the stream changed size
                flush(chunk)
                chunk = []
            chunk.append(value)
            if len(chunk) == batch:
                flush(chunk)
                chunk = []
        if chunk and not pipeline.failure:
            flush(chunk)
    finally:
        pipeline.finish()
