"""A web page to try trained models on your own images (Gradio), served from this machine.

    python app.py --name h2z                                  # checkpoints/h2z
    python app.py --name h2z --name ./checkpoints/mmsc_run    # a menu of models in the page
    python app.py --name owner/repo --server_name 0.0.0.0     # a Hugging Face Hub model, reachable on the LAN

Upload or paste an image: the translation appears beside it, at the input's full size (the download
button gives the PNG). A multi-modal model (mmsc) also gets a number of styles, a seed, a gallery of
the outputs and an optional style image (example-guided). The page names the model, epoch and options
behind the output. Models load through :class:`inference.Translator` (any source it takes: a run name,
run folder, checkpoint file, Hub-layout folder or Hub id). The page needs nothing from the internet:
Gradio's analytics are switched off and its fonts and scripts are served by this process (docs/web_app.md).
Needs the optional requirements: ``pip install -r requirements-app.txt``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Sequence
from typing import Any, Optional

from PIL import Image, ImageOps

from options.base_options import OptionParser
from util.errors import UserError, run_cli

INSTALL_HINT = "pip install -r requirements-app.txt"
DEFAULT_MAX_PIXELS = 16_000_000  # a 16-megapixel phone photo; larger ones are refused with a message
MAX_STYLES = 12
MAX_FILE_SIZE = "100mb"  # uploads larger than this are refused by Gradio, with a message in the page
DEFAULT_MAX_FRAMES = 300  # a video tab upload is translated up to this many frames


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line: which models to serve, where, and the limits on uploads."""
    parser = OptionParser(
        description="Serve a web page that translates uploaded images with trained models (Gradio).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--name",
        action="append",
        required=True,
        help="model to serve: a run name under --checkpoints_dir, a run folder, a checkpoint "
        "file, a Hub-layout folder or a Hugging Face Hub id; repeat it to offer several",
    )
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where run names are looked up")
    parser.add_argument("--epoch", default="latest", help="which saved epoch of a run to load")
    parser.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        default=None,
        help="translate this way (default: the way each model was trained)",
    )
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--amp", default="off", help="autocast on the GPU: 'off', 'bf16' or 'fp16'")
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse uploads with more pixels than this (width x height), with a message",
    )
    parser.add_argument(
        "--max_side",
        type=int,
        default=None,
        help="translate images with a longer side in tiles of this many pixels (bounds memory; not for mmsc)",
    )
    parser.add_argument(
        "--max_video_frames",
        type=int,
        default=DEFAULT_MAX_FRAMES,
        help="the video tab translates at most this many frames of an upload (and says so)",
    )
    parser.add_argument(
        "--server_name",
        default=None,
        help="address to listen on; 0.0.0.0 serves other machines too (default: "
        "$GRADIO_SERVER_NAME, else 127.0.0.1: this machine only)",
    )
    parser.add_argument(
        "--server_port",
        type=int,
        default=None,
        help="port to listen on (default: $GRADIO_SERVER_PORT, else the first free one from 7860)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also make a temporary public gradio.live link (needs internet)"
    )
    args = parser.parse_args(argv)
    if args.max_pixels < 1:
        parser.error(f"--max_pixels {args.max_pixels}: give a positive number of pixels")
    if args.max_video_frames < 1:
        parser.error(f"--max_video_frames {args.max_video_frames}: give at least 1")
    if args.max_side is not None and args.max_side < 16:
        parser.error(f"--max_side {args.max_side}: give at least 16 pixels")
    return args


def import_gradio() -> Any:
    """The gradio module, with its usage analytics off (no request leaves the machine), or one line
    saying how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise UserError(f"the web page needs gradio, which is not installed: {INSTALL_HINT}") from None
    return gradio


def load_translators(names: Sequence[str], **settings: Any) -> dict:
    """``{label: Translator}`` for every ``--name``, loaded once at start so that a wrong name fails
    before the server starts. ``settings`` go to :meth:`Translator.load`."""
    from inference import Translator

    translators = {}
    for name in names:
        if name in translators:
            raise UserError(f"--name {name}: given twice")
        translators[name] = Translator.load(name, **settings)
    return translators


def read_upload(payload: Any, what: str, max_pixels: int, error: type) -> Image.Image:
    """The uploaded file ``payload`` (Gradio's file data: a dict or object with ``path``) as an upright
    PIL image. Anything that is not a readable image, or has more than ``max_pixels`` pixels, raises
    ``error`` (gr.Error: its message appears in the page) naming ``what`` was wrong; the size is checked
    from the file's header, before the pixels are decoded."""
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", None)
    if not path:
        raise error(f"{what}: upload or paste an image first")
    name = (payload.get("orig_name") if isinstance(payload, dict) else None) or os.path.basename(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise error(
                    f"{what} {name}: {width}x{height} is {width * height:,} pixels; this page takes at "
                    f"most {max_pixels:,} (app.py --max_pixels)"
                )
            image.load()
            return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise error(
            f"{what} {name}: too many pixels to open safely; this page takes at most "
            f"{max_pixels:,} (app.py --max_pixels)"
        ) from None
    except Image.UnidentifiedImageError:
        raise error(f"{what} {name}: not an image this page can read (PNG, JPEG, WebP, BMP, TIFF ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise error(f"{what} {name}: a damaged image file ({exc})") from None


class TranslateHandler:
    """The page's one action: read the uploads, translate with the chosen model, report what was done.

    One translation runs at a time (a lock): a model object holds per-call state (the style codes of
    an mmsc model), and on a shared CPU two at once are not faster than one after the other.
    """

    def __init__(self, translators: dict, *, max_pixels: int, max_side: Optional[int], error: type) -> None:
        self.translators = translators
        self.max_pixels = max_pixels
        self.max_side = max_side
        self.error = error
        self.lock = threading.Lock()

    def __call__(
        self, label: str, image: Any, n_styles: Any, seed: Any, style: Any
    ) -> tuple[Image.Image, list[Image.Image], str]:
        """(first output, every output, status line) for the raw inputs of the page's components."""
        if label not in self.translators:
            raise self.error(f"model {label!r}: choose one of {', '.join(self.translators)}")
        translator = self.translators[label]
        photo = read_upload(image, "input image", self.max_pixels, self.error)
        options: dict = {"max_side": self.max_side}
        if translator.multi_output:
            options["n_styles"] = int(n_styles)
            options["seed"] = int(seed)
            if style is not None:
                options["style_image"] = read_upload(style, "style image", self.max_pixels, self.error)
        start = time.perf_counter()
        try:
            with self.lock:
                result = translator.translate(photo, **options)
        except UserError as exc:
            raise self.error(str(exc)) from None
        outputs = result if isinstance(result, list) else [result]
        seconds = time.perf_counter() - start
        if translator.multi_output:
            how = "example-guided" if "style_image" in options else f"seed {options['seed']}"
            done = f"{len(outputs)} translation{'s' if len(outputs) > 1 else ''} ({how})"
        else:
            done = "translated"
        status = f"{photo.width}x{photo.height}: {done} in {seconds:.2f} s with {label}"
        return outputs[0], outputs, status


class VideoHandler:
    """The video tab's action: translate an uploaded clip (at most ``max_frames`` frames, sound kept) into an
    MP4 beside it in Gradio's cache; one at a time, sharing the image tab's lock."""

    def __init__(
        self, translators: dict, *, max_frames: int, max_side: Optional[int], error: type, lock: threading.Lock
    ) -> None:
        self.translators, self.max_frames, self.max_side = translators, max_frames, max_side
        self.error, self.lock = error, lock

    def __call__(self, label: str, video: Any) -> tuple[str, str]:
        """(the translated clip's path, status line)."""
        from inference.video import probe, translate_video

        if label not in self.translators:
            raise self.error(f"model {label!r}: choose one of {', '.join(self.translators)}")
        path = (
            video.get("path")
            if isinstance(video, dict)
            else (video if isinstance(video, str) else getattr(video, "path", None))
        )
        if not path:
            raise self.error("input video: upload a clip first")
        translator = self.translators[label]
        start = time.perf_counter()
        try:
            info = probe(path)
            target = os.path.join(os.path.dirname(path), os.path.splitext(os.path.basename(path))[0] + "_out.mp4")
            with self.lock:
                count = translate_video(
                    translator, path, target, max_frames=self.max_frames, progress=False, max_side=self.max_side
                )
        except UserError as exc:
            raise self.error(str(exc)) from None
        cut = f" (the first {count} of {info.frames}: app.py --max_video_frames)" if info.frames > count else ""
        status = (
            f"{info.width}x{info.height}: {count} frames translated{cut} in "
            f"{time.perf_counter() - start:.1f} s with {label}"
        )
        return target, status


def model_panel(translator: Any) -> str:
    """The Markdown line that says which model, epoch and options produce the outputs."""
    return f"**Model:** {translator.describe()}"


def build_demo(
    translators: dict,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: Optional[int] = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> Any:
    """The page (a gr.Blocks) serving ``translators`` (``{label: Translator}``, the first is shown first).

    Inputs reach the handler unprocessed (``preprocess=False``) so that a file that is not an image, or
    one too large, gives this page's own message rather than Gradio's bare "Error".
    """
    gr = import_gradio()
    handler = TranslateHandler(translators, max_pixels=max_pixels, max_side=max_side, error=gr.Error)
    video_handler = VideoHandler(
        translators, max_frames=max_frames, max_side=max_side, error=gr.Error, lock=handler.lock
    )
    labels = list(translators)
    first = translators[labels[0]]

    # Uploads and outputs live in Gradio's cache folder; files older than an hour are removed hourly.
    with gr.Blocks(title="F-LSeSim translation", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "## Unpaired image-to-image translation\nUpload or paste an image (PNG, JPEG, WebP ...); "
            "the translation has the input's size, and its download button gives the PNG."
        )
        choice = gr.Dropdown(labels, value=labels[0], label="model", visible=len(labels) > 1, elem_id="model")
        info = gr.Markdown(model_panel(first), elem_id="model-info")
        with gr.Tab("image", elem_id="image-tab"):
            with gr.Row():
                source = gr.Image(
                    label="input",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    elem_id="input-image",
                )
                output = gr.Image(
                    label="translation",
                    type="pil",
                    format="png",
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    elem_id="output-image",
                )
            with gr.Group(visible=first.multi_output) as styles:
                with gr.Row():
                    n_styles = gr.Slider(1, MAX_STYLES, value=4, step=1, label="number of styles", elem_id="n-styles")
                    seed = gr.Number(0, precision=0, label="seed", elem_id="seed")
                style = gr.Image(
                    label="style image (optional: translate in its style instead of random ones)",
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    elem_id="style-image",
                )
                gallery = gr.Gallery(label="all styles", format="png", columns=4, elem_id="gallery")
            button = gr.Button("Translate", variant="primary", elem_id="translate")
            status = gr.Textbox(label="status", interactive=False, elem_id="status")

            inputs = [choice, source, n_styles, seed, style]
            outputs = [output, gallery, status]
            button.click(handler, inputs, outputs, preprocess=False, api_name="translate")
            source.upload(handler, inputs, outputs, preprocess=False, api_name=False)

        with gr.Tab("video", elem_id="video-tab"):
            gr.Markdown(
                f"Upload a short clip (MP4, MOV, WebM, AVI ...): it comes back translated as MP4 with its "
                f"sound, frame times and rotation, at most {max_frames} frames."
            )
            with gr.Row():
                clip = gr.Video(label="input clip", sources=["upload"], elem_id="input-video")
                clip_out = gr.Video(label="translation", interactive=False, elem_id="output-video")
            video_button = gr.Button("Translate the clip", variant="primary", elem_id="translate-video")
            video_status = gr.Textbox(label="status", interactive=False, elem_id="video-status")
            video_button.click(
                video_handler, [choice, clip], [clip_out, video_status], preprocess=False, api_name="translate_video"
            )

        def show_model(label: str) -> tuple:
            translator = translators[label]
            return model_panel(translator), gr.Group(visible=translator.multi_output)

        choice.change(show_model, choice, [info, styles], api_name=False)
    return demo


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    import_gradio()  # before loading models: a missing gradio is said at once
    translators = load_translators(
        args.name,
        checkpoints_dir=args.checkpoints_dir,
        epoch=args.epoch,
        direction=args.direction,
        device=args.device,
        amp=args.amp,
    )
    for label, translator in translators.items():
        print(f"{label}: {translator.describe()}")
    demo = build_demo(translators, max_pixels=args.max_pixels, max_side=args.max_side, max_frames=args.max_video_frames)
    try:
        demo.launch(
            server_name=args.server_name, server_port=args.server_port, share=args.share, max_file_size=MAX_FILE_SIZE
        )
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise UserError(f"--server_name/--server_port: {exc}") from None


if __name__ == "__main__":
    run_cli(main)
