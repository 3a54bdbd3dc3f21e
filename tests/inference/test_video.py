"""Video (inference/video.py, translate.py): clips made here from the repository's real photo, with sound.

A tiny sc run translates camera pans over datasets/single_demo/trainA/home.jpg. The round trips check what a
clip keeps (frame count, rate, timestamps, size, rotation flag, the audio packets byte for byte); the
statistics tests check that clip statistics make a pan's output frames shifted copies of each other in the
interior (and per-frame statistics do not); the rest checks the bad inputs and an interrupted write.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import translate as translate_script
from helpers import PAINTING
from helpers import photo_pan as pan
from helpers import run_script, train_tiny_runs, write_clip, write_images
from inference import Translator
from util.errors import UserError
from inference.video import (
    STILL_SPREAD,
    VideoWriter,
    clip_statistics,
    shot_statistics,
    translate_frames,
    translate_video,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("video")
    root = base / "data"
    for i, split in enumerate(["trainA", "trainB"]):
        write_images(root / split, 1, seed=i)
    train_tiny_runs(["sc"], root, base / "ck")
    return base / "ck"


def video_facts(path: Path) -> dict:
    """Frame count and times (s), rate, stored size, rotation, the audio codec and packets' bytes."""
    with av.open(str(path)) as clip:
        stream = clip.streams.video[0]
        rate = stream.average_rate  # read while the file is open
        frames = list(clip.decode(stream))
    with av.open(str(path)) as clip:
        audio = clip.streams.audio[0] if clip.streams.audio else None
        packets = [bytes(p) for p in clip.demux(audio) if p.size] if audio else []
        codec = audio.codec_context.name if audio else None
    return {
        "count": len(frames),
        "times": [round(float(f.time), 4) for f in frames],
        "rate": rate,
        "size": (frames[0].width, frames[0].height),
        "rotation": int(frames[0].rotation or 0),
        "audio": codec,
        "audio_packets": packets,
    }


def translate_py(argv, monkeypatch) -> int:
    return run_script(translate_script, [str(a) for a in argv], monkeypatch)


def test_a_clip_round_trips_with_its_frames_rate_times_size_and_sound(run, tmp_path, monkeypatch):
    source, target = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    write_clip(source, pan(12, 2))
    assert translate_py(["--name", "sc", "--checkpoints_dir", run, source, target], monkeypatch) == 0
    before, after = video_facts(source), video_facts(target)
    assert after["count"] == before["count"] == 12 and after["rate"] == before["rate"] == 25
    assert after["times"] == before["times"] and after["size"] == before["size"] == (96, 64)
    assert after["audio"] == "aac" and after["audio_packets"] == before["audio_packets"]  # copied, not re-encoded
    assert not list(tmp_path.glob(".*partial*"))


def test_an_avi_with_mpeg4_and_ac3_at_23976_fps_round_trips(run, tmp_path, monkeypatch):
    """The kind of file users have: MPEG-4 Part 2 video and AC-3 sound in AVI, NTSC film rate."""
    source, target = tmp_path / "clip.avi", tmp_path / "out.mp4"
    write_clip(source, pan(10, 2), codec="mpeg4", audio="ac3", rate=Fraction(24000, 1001))
    assert translate_py(["--name", "sc", "--checkpoints_dir", run, source, target], monkeypatch) == 0
    before, after = video_facts(source), video_facts(target)
    assert before["count"] == after["count"] == 10 and after["rate"] == Fraction(24000, 1001)
    assert after["size"] == (96, 64) and after["audio"] == "ac3"
    assert after["audio_packets"] == before["audio_packets"]


def test_variable_frame_times_and_the_rotation_flag_are_kept(run, tmp_path, monkeypatch):
    source, target = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    times = [Fraction(t, 100) for t in (0, 4, 8, 20, 24, 40, 44, 60)]
    write_clip(source, pan(8, 2), times=times, rotation=90, audio=None)
    assert translate_py(["--name", "sc", "--checkpoints_dir", run, source, target], monkeypatch) == 0
    after = video_facts(target)
    assert after["times"] == [float(t) for t in times] and after["rotation"] == 90 and after["size"] == (96, 64)
    assert after["audio"] is None
    # translated upright: the stored output frame is the upright translation turned back
    translator = Translator.load("sc", checkpoints_dir=str(run))
    with av.open(str(source)) as clip:
        first = next(clip.decode(video=0)).to_ndarray(format="rgb24")
    upright = np.rot90(first, k=1)
    expected = np.rot90(np.asarray(translator.translate(Image.fromarray(np.ascontiguousarray(upright)))), k=-1)
    with av.open(str(target)) as clip:
        got = next(clip.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    wrong_way = np.asarray(translator.translate(Image.fromarray(first))).astype(int)
    assert np.abs(got - expected).mean() < np.abs(got - wrong_way).mean()  # H.264 is lossy: closer, not equal


def test_a_folder_output_gets_numbered_pngs(run, tmp_path, monkeypatch):
    source = tmp_path / "clip.mp4"
    write_clip(source, pan(5, 2), audio=None)
    assert (
        translate_py(
            [
                "--name",
                "sc",
                "--checkpoints_dir",
                run,
                source,
                tmp_path / "frames",
                "--statistics",
                "frame",
                "--batch",
                "1",
            ],
            monkeypatch,
        )
        == 0
    )
    files = sorted((tmp_path / "frames").glob("*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(1, 6)]
    translator = Translator.load("sc", checkpoints_dir=str(run))
    with av.open(str(source)) as clip:
        decoded = [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]
    # per-frame statistics, one frame a pass: each frame exactly as the image API gives it (a batch of several
    # runs other convolution kernels, which may round a pixel the other way)
    for file, frame in zip(files, decoded):
        np.testing.assert_array_equal(
            np.asarray(Image.open(file)), np.asarray(translator.translate(Image.fromarray(frame)))
        )


def shifted_difference(outputs: list[torch.Tensor], step: int, margin: int) -> float:
    """The largest |out_(t+1)(y, x) - out_t(y, x + step)| over the frames' interior (``margin`` from the edges)."""
    worst = 0.0
    for a, b in zip(outputs, outputs[1:]):
        h, w = a.shape[-2:]
        later = b[:, margin : h - margin, margin : w - margin - step]
        earlier = a[:, margin : h - margin, margin + step : w - margin]
        worst = max(worst, float((later - earlier).abs().max()))
    return worst


def test_clip_statistics_make_a_pan_shifted_copies_and_per_frame_statistics_do_not(run):
    """A pan by a multiple of the generator's stride (4) with clip statistics: every output frame is the
    previous one shifted, away from the borders (the receptive radius, about 90 pixels for the 9-block
    generator), within 1e-5. Each frame's own statistics change with its content and break that."""
    translator = Translator.load("sc", checkpoints_dir=str(run))
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in pan(4, 8, size=(224, 384), scale=1)]
    stats = clip_statistics(translator, lambda: [np.asarray(f.permute(1, 2, 0) * 255, dtype=np.uint8) for f in frames])
    clip = list(translate_frames(translator, frames, statistics=stats))
    per_frame = list(translate_frames(translator, frames, statistics="frame"))
    assert shifted_difference(clip, 8, 96) < 1e-5
    assert shifted_difference(per_frame, 8, 96) > 1e-3
    # running statistics with no memory are each frame's own
    running = list(translate_frames(translator, frames, statistics="running", momentum=0.0))
    assert max(float((a - b).abs().max()) for a, b in zip(running, per_frame)) < 1e-5


def test_phase_averaging_makes_a_pan_by_any_whole_number_of_pixels_shifted_copies(run):
    """A pan by 3 pixels (not a multiple of the stride) with clip statistics: the strided generator's frames are
    not shifted copies of each other, but averaged over the 16 phases of its grid they are, within 1e-5."""
    translator = Translator.load("sc", checkpoints_dir=str(run))
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in pan(3, 3, size=(224, 320), scale=1)]
    stats = clip_statistics(translator, lambda: [np.asarray(f.permute(1, 2, 0) * 255, dtype=np.uint8) for f in frames])
    with torch.no_grad():
        plain = list(translate_frames(translator, frames, statistics=stats))
        averaged = list(translate_frames(translator, frames, statistics=stats, phase_average=True))
    assert shifted_difference(plain, 3, 96) > 1e-3
    assert shifted_difference(averaged, 3, 96) < 1e-5
    with pytest.raises(UserError, match="statistics running: phase averaging"):
        list(translate_frames(translator, frames, statistics="running", phase_average=True))


def test_frames_too_large_for_one_pass_are_tiled_with_the_clip_statistics(run):
    """Tiling still applies to video frames: with the clip's statistics given, tiles share them as they are and
    the tiled frame equals the whole one within 1e-5."""
    translator = Translator.load("sc", checkpoints_dir=str(run))
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in pan(2, 8, size=(160, 224), scale=1)]
    stats = clip_statistics(translator, lambda: [np.asarray(f.permute(1, 2, 0) * 255, dtype=np.uint8) for f in frames])
    whole = list(translate_frames(translator, frames, statistics=stats))
    tiled = list(translate_frames(translator, frames, statistics=stats, tile=96))
    assert max(float((a - b).abs().max()) for a, b in zip(whole, tiled)) < 1e-5
    with pytest.raises(UserError, match="statistics running: tiles would update"):
        list(translate_frames(translator, frames, statistics="running", tile=96))


def test_clip_statistics_pooled_and_exact_against_the_moments_by_hand(run):
    """The first instance norm's clip statistics are the mean and variance of its input over every pixel of every
    frame (numpy, float64), both ways of gathering; the exact way's deeper layers differ from the pooled ones."""
    translator = Translator.load("sc", checkpoints_dir=str(run))
    frames = pan(3, 8, size=(64, 96), scale=2)
    layer0 = translator.generator.model[2]  # ReflectionPad2d, Conv2d, InstanceNorm2d
    with torch.no_grad():
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
        conv = translator.generator.model[:2](x).double().numpy()  # (N, C, H, W)
    want_mean = conv.mean(axis=(0, 2, 3))
    want_var = conv.var(axis=(0, 2, 3))
    pooled = clip_statistics(translator, lambda: frames)
    exact = clip_statistics(translator, lambda: frames, exact=True)
    for stats in (pooled, exact):
        mean, var = stats.known[id(layer0)]
        np.testing.assert_allclose(mean[0].numpy(), want_mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(var[0].numpy(), want_var, rtol=1e-4, atol=1e-6)
    last = stats.layers[-1]
    assert float((pooled.known[id(last)][0] - exact.known[id(last)][0]).abs().max()) > 1e-6


def first_conv(translator: Translator, frames: list[np.ndarray]) -> np.ndarray:
    """The first instance norm's input for each frame, (N, C, H, W) float64: the generator's reflection pad and
    convolution run on their own (sc's ResnetGenerator: ReflectionPad2d, Conv2d, InstanceNorm2d)."""
    with torch.no_grad():
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
        return translator.generator.model[:2](x).double().numpy()


def as_tensors(frames: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames]


def two_shots() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A pan over the photo, then (a cut) a pan over the painting: real images, 64 x 96."""
    return pan(5, 4), pan(5, 4, scale=6, image=PAINTING)


def test_cuts_are_found_and_every_shot_gets_the_statistics_of_its_own_frames(run):
    """The cut between the two shots is found where it is; each shot's first-norm statistics are the moments of
    its own frames' first-norm input (numpy), so the second shot comes out as it does translated alone. One set
    over the whole clip (no cut detection) leaves the second shot far from that."""
    translator = Translator.load("sc", checkpoints_dir=str(run))
    photo, painting = two_shots()
    shots = shot_statistics(translator, photo + painting, "clip")
    assert [shot.start for shot in shots] == [0, 5]
    layer0 = translator.generator.model[2]
    for shot, frames in zip(shots, (photo, painting)):
        conv = first_conv(translator, frames)
        mean, var = shot.stats.known[id(layer0)]
        np.testing.assert_allclose(mean[0].numpy(), conv.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(var[0].numpy(), conv.var(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)
    frames = as_tensors(photo + painting)
    with torch.no_grad():
        by_shot = list(translate_frames(translator, frames, statistics=shots))
        alone = list(translate_frames(translator, frames[5:], statistics=clip_statistics(translator, lambda: painting)))
        one_set = shot_statistics(translator, photo + painting, "clip", cut_threshold=1.0)
        whole = list(translate_frames(translator, frames, statistics=one_set))
    assert len(one_set) == 1
    assert max(float((a - b).abs().max()) for a, b in zip(by_shot[5:], alone)) < 1e-5
    assert min(float((a - b).abs().mean()) for a, b in zip(whole[5:], alone)) > 1e-3


def test_auto_leaves_a_still_shot_its_frames_own_statistics_and_shares_a_pans(run):
    """'auto': a still shot (one crop of the photo, its brightness flickering by a level) is translated with
    each frame's own statistics, exactly the per-frame output; a pan over the photo shares its statistics. The
    spread that decides is checked against numpy: per channel, the standard deviation over the frames of their
    first-norm means over the standard deviation of every value, averaged over channels."""
    translator = Translator.load("sc", checkpoints_dir=str(run))
    base = pan(1, 0)[0].astype(int)
    still = [np.clip(base + d, 0, 255).astype(np.uint8) for d in (0, 1, -1, 1, 0, -1)]
    moving = pan(6, 8, scale=2)
    spreads = {}
    for name, frames in (("still", still), ("pan", moving)):
        (shot,) = shot_statistics(translator, frames, "auto")
        conv = first_conv(translator, frames)
        means = conv.mean(axis=(2, 3))  # (N, C)
        pooled = conv.transpose(1, 0, 2, 3).reshape(conv.shape[1], -1).std(axis=1)
        np.testing.assert_allclose(shot.spread, (means.std(axis=0) / pooled).mean(), rtol=1e-5)
        spreads[name] = shot
    assert spreads["still"].spread < STILL_SPREAD < spreads["pan"].spread
    assert spreads["still"].stats is None and spreads["pan"].stats is not None
    with torch.no_grad():
        auto = list(translate_frames(translator, as_tensors(still), statistics=[spreads["still"]]))
        per_frame = list(translate_frames(translator, as_tensors(still), statistics="frame"))
    assert all(torch.equal(a, b) for a, b in zip(auto, per_frame))


def test_running_statistics_start_afresh_at_a_cut(run):
    """After the cut the running average restarts from the new shot's first frame (so that frame is normalised
    by its own statistics, as per frame); without cut detection it carries the first shot's over."""
    translator = Translator.load("sc", checkpoints_dir=str(run))
    frames = as_tensors(sum(two_shots(), []))
    with torch.no_grad():
        per_frame = list(translate_frames(translator, frames, statistics="frame", batch=1))
        running = list(translate_frames(translator, frames, statistics="running", batch=1))
        carried = list(translate_frames(translator, frames, statistics="running", batch=1, cut_threshold=1.0))
    assert float((running[5] - per_frame[5]).abs().max()) < 1e-5
    assert float((running[6] - per_frame[6]).abs().max()) > 1e-3  # the average goes on within the shot
    assert float((carried[5] - per_frame[5]).abs().mean()) > 1e-3


def test_an_interrupted_write_leaves_no_file_under_the_output_name(run, tmp_path, monkeypatch):
    source, target = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    write_clip(source, pan(8, 2))
    write = VideoWriter.write
    calls = []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        write(self, *args)

    monkeypatch.setattr(VideoWriter, "write", interrupted)
    translator = Translator.load("sc", checkpoints_dir=str(run))
    with pytest.raises(KeyboardInterrupt):
        translate_video(translator, str(source), str(target), progress=False)
    assert not target.exists() and not list(tmp_path.glob(".*partial*"))


def write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*sound.encode(frame), *sound.encode()]:
            out.mux(packet)


def write_no_frames(path: Path) -> None:
    """A video track without a frame, beside a little sound (a file of headers alone is not readable)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*sound.encode(frame), *sound.encode()]:
            out.mux(packet)


@pytest.mark.parametrize(
    "case,message",
    [
        ("unreadable", "not a readable video file"),
        ("no_video", "has no video stream"),
        ("no_frames", "holds no frame"),
        ("missing_folder", "output: the folder"),
        ("bad_option", "--momentum 1.5: must be in [0, 1)"),
        ("bad_cut", "--cut_threshold 0.0: must be in (0, 1] (1: no cuts)"),
        ("exact_every_frame", "--clip_exact: gathering layer by layer needs a sample of each shot"),
        ("phase_average_image", "--phase_average: for video inputs"),
        ("webm_aac", "the clip's sound cannot be stored in .webm unchanged"),
    ],
)
def test_bad_video_input_is_one_line_and_writes_nothing(case, message, run, tmp_path, monkeypatch, capsys):
    source, target = tmp_path / "clip.mp4", tmp_path / "out" / "out.mp4"
    (tmp_path / "out").mkdir()
    extra = []
    if case == "unreadable":
        source.write_bytes(b"not a video at all" * 100)
    elif case == "no_video":
        write_audio_only(source)
    elif case == "no_frames":
        source = tmp_path / "clip.mkv"  # Matroska keeps an empty track (MP4 drops it)
        write_no_frames(source)
    elif case == "phase_average_image":
        source = tmp_path / "photo.png"
        Image.fromarray(pan(1, 0)[0]).save(source)
        target, extra = tmp_path / "out" / "photo.png", ["--phase_average"]
    elif case == "webm_aac":
        write_clip(source, pan(3, 2))
        target = tmp_path / "out" / "out.webm"
    else:
        write_clip(source, pan(3, 2), audio=None)
        if case == "missing_folder":
            target = tmp_path / "nowhere" / "out.mp4"
        else:
            extra = {
                "bad_option": ["--momentum", "1.5"],
                "bad_cut": ["--cut_threshold", "0"],
                "exact_every_frame": ["--clip_exact", "--clip_frames", "0"],
            }[case]
    assert translate_py(["--name", "sc", "--checkpoints_dir", run, source, target, *extra], monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not list((tmp_path / "out").iterdir())
