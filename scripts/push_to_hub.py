"""Publish a trained model on the Hugging Face Hub: weights as safetensors, its config, and a model card.

    python scripts/push_to_hub.py --name h2z --repo_id user/h2z-lsesim
    python scripts/push_to_hub.py --name h2z --repo_id user/h2z-lsesim --dry_run hub_h2z   # build only

Builds the folder a Hub model repository holds (inference/hub.py describes the format) from checkpoints/<name>:

- ``model.safetensors``: every tensor of the test networks (``G``; ``G_A`` and ``G_B`` for mmsc, and for
  cycle_gan, whose second generator translates the other way) under ``<network>.<state_dict key>``;
- ``config.json``: the model, its architecture options (the direction included) and the networks;
- ``README.md``: the model card, with the Hub's metadata block (library, tags, pipeline), how to load it, the
  training command (rebuilt from the run's opt.json: every option that differs from train.py's default), the
  test_fid scores when ``<results_dir>/<name>/fid_<phase>/fid.csv`` exists, and a sample;
- ``sample.png``: a test image beside its translation, made with the translation API.

The networks and options come from ``Translator.load`` (inference/translator.py), so the folder holds exactly what the
API loads; ``Translator.load(folder)`` and ``Translator.load("<repo_id>")`` read it back. Without ``--dry_run``
the folder is built in a temporary directory and uploaded with huggingface_hub (``create_repo`` and
``upload_folder``; log in first with ``hf auth login`` or set ``HF_TOKEN``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import tempfile
from typing import Optional

from PIL import Image

from data.image_folder import make_dataset
from options.test_options import saved_train_options
from inference import Translator
from inference import hub
from util.errors import UserError, run_cli

CARD_FILE = "README.md"
SAMPLE_FILE = "sample.png"
SAMPLE_SIDE = 256  # the longer side of the sample's input, pixels
SAMPLE_STYLES = 3  # translations shown for a multi-modal model
# what each model is, for the card
MODEL_SUMMARIES = {
    "sc": "unpaired image-to-image translation with the spatially-correlative loss (F-LSeSim, CVPR 2021)",
    "sinsc": "single-image translation with the spatially-correlative loss (F-LSeSim's single-image mode)",
    "mmsc": "multi-modal unpaired translation (MUNIT networks) with the spatially-correlative loss (F-LSeSim)",
    "cut": "unpaired translation with contrastive learning (CUT / FastCUT, ECCV 2020)",
    "cycle_gan": "unpaired translation with cycle consistency (CycleGAN, ICCV 2017)",
}
# opt.json entries that are no command-line options or say nothing about the training
NOT_OPTIONS = {"is_train", "gpu_ids", "checkpoints_dir", "name", "dataroot", "model"}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the run: checkpoints/<name>")
    parser.add_argument("--repo_id", required=True, help="the Hub repository, owner/name (created if missing)")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where the run's folder is")
    parser.add_argument("--epoch", default="latest", help="which checkpoint: latest or an epoch number")
    parser.add_argument("--results_dir", default="./results/", help="where test_fid.py wrote fid_<phase>/fid.csv")
    parser.add_argument("--phase", default="test", help="the split test_fid.py scored (fid_<phase>)")
    parser.add_argument(
        "--sample_image",
        default=None,
        help="the sample's input image (default: the first test image of the run's --dataroot)",
    )
    parser.add_argument("--license", default=None, help="the card's license, a Hub identifier such as mit or cc-by-4.0")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--dry_run", default=None, metavar="DIR", help="build the folder in DIR and upload nothing")
    return parser.parse_args(argv)


# ---- the folder ---------------------------------------------------------------------------------
def hub_networks(translator: Translator, checkpoints_dir: str, name: str, epoch: str) -> dict[str, dict]:
    """{network: state_dict} to upload: the translator's test networks, and for a model whose other direction
    loads other files (cycle_gan's G_B, see ``reverse_networks``) those too, read through a second
    Translator loaded the other way."""
    states = {net: module.state_dict() for net, module in translator.networks.items()}
    reverse = getattr(translator.model_class, "reverse_networks", None)
    if reverse:
        other = "BtoA" if translator.options.get("direction", "AtoB") == "AtoB" else "AtoB"
        backward = Translator.load(name, direction=other, epoch=epoch, checkpoints_dir=checkpoints_dir)
        states.update(
            {reverse[net]: module.state_dict() for net, module in backward.networks.items() if net in reverse}
        )
    return states


def hub_config(translator: Translator, networks: list[str]) -> dict:
    """config.json: what ``Translator.load`` needs to rebuild the networks (inference/hub.py)."""
    return {
        "library": hub.LIBRARY,
        "model": translator.model_name,
        "options": dict(translator.options),
        "networks": networks,
        "epoch": str(translator.epoch),
    }


def write_weights(states: dict[str, dict], path: str) -> None:
    """model.safetensors: the tensors of each network under ``<network>.<key>`` (no pickle)."""
    from safetensors.torch import save_file

    save_file(hub.flatten_networks(states), path, metadata={"format": "pt"})


def training_command(saved: dict) -> str:
    """``python train.py ...`` that gives the options ``saved`` (a run's opt.json): every option whose value
    differs from train.py's default for that model. Defaults that depend on other flags (a model's presets
    such as ``--CUT_mode FastCUT``) are re-read with the flags found so far until nothing changes."""
    from options.train_options import TrainOptions

    base = [
        "--dataroot",
        str(saved.get("dataroot", ".")),
        "--name",
        str(saved.get("name", "run")),
        "--model",
        str(saved.get("model", "sc")),
    ]
    flags: dict[str, list[str]] = {}
    for _ in range(4):
        parser_owner = TrainOptions(base + [a for args in flags.values() for a in args])
        defaults = vars(parser_owner.gather_options())
        changed = False
        for key, value in saved.items():
            if key in NOT_OPTIONS or key not in defaults or _same(defaults[key], value):
                continue
            args = _as_arguments(parser_owner.parser, key, value)
            if args is not None and flags.get(key) != args:
                flags[key], changed = args, True
        if not changed:
            break
    argv = base + [a for key in sorted(flags) for a in flags[key]]
    return "python train.py " + shlex.join(argv)


def _same(default: object, value: object) -> bool:
    """Whether an opt.json value equals the parser's default (JSON turns tuples into lists)."""
    if isinstance(default, tuple):
        default = list(default)
    return default == value


def _as_arguments(parser: argparse.ArgumentParser, key: str, value: object) -> Optional[list[str]]:
    """The command-line arguments that set option ``key`` to ``value``, or None when no flag can (None values)."""
    for action in parser._actions:  # argparse exposes no public list of its actions
        if action.dest != key or not action.option_strings:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):  # --flag / --no-flag
            return [flag if value else action.option_strings[1]] if isinstance(value, bool) else None
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if action.const == value:
                return [flag]
            continue
        if value is None:
            return None
        if isinstance(value, list):
            return [flag, *[str(v) for v in value]]
        return [flag, str(value)]
    return None


def fid_rows(results_dir: str, name: str, phase: str) -> tuple[Optional[str], list[dict]]:
    """(path, rows) of the run's test_fid.py table ``<results_dir>/<name>/fid_<phase>/fid.csv``; (None, [])
    without one."""
    path = os.path.join(results_dir, name, f"fid_{phase}", "fid.csv")
    if not os.path.isfile(path):
        return None, []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return path, rows


def default_sample_image(saved: dict) -> Optional[str]:
    """The first image of the run's test (else train) folder on its source side (testA for AtoB), if any."""
    side = "B" if saved.get("direction") == "BtoA" else "A"
    for phase in ("test", "train"):
        folder = os.path.join(str(saved.get("dataroot", "")), f"{phase}{side}")
        if os.path.isdir(folder):
            images = sorted(make_dataset(folder))
            if images:
                return images[0]
    return None


def write_sample(translator: Translator, image_path: str, path: str) -> None:
    """sample.png: the input (longer side SAMPLE_SIDE) beside its translation (mmsc: SAMPLE_STYLES of them)."""
    try:
        with Image.open(image_path) as opened:
            image = opened.convert("RGB")
    except OSError as exc:
        raise UserError(f"--sample_image {image_path}: cannot read it as an image ({exc})") from None
    scale = SAMPLE_SIDE / max(image.size)
    if scale < 1:
        image = image.resize(
            (max(8, round(image.width * scale)), max(8, round(image.height * scale))), Image.Resampling.BICUBIC
        )
    out = (
        translator.translate(image, n_styles=SAMPLE_STYLES, seed=0)
        if translator.multi_output
        else [translator.translate(image, seed=0)]
    )
    panels = [image] + [o.convert("RGB") for o in out]
    sheet = Image.new("RGB", (sum(p.width for p in panels), image.height), "white")
    left = 0
    for panel in panels:
        sheet.paste(panel, (left, 0))
        left += panel.width
    sheet.save(path)


def model_card(
    *,
    repo_id: str,
    config: dict,
    saved: dict,
    command: str,
    fid_path: Optional[str],
    fid: list[dict],
    sample: bool,
    license: Optional[str],
    parameters: dict[str, int],
) -> str:
    """README.md: the Hub's YAML metadata block, then what the model is, how to use it, how it was trained and
    scored."""
    from huggingface_hub import ModelCardData

    model = config["model"]
    tags = ["image-to-image", "unpaired-image-translation", model, "pytorch", "safetensors"]
    tags += ["spatially-correlative-loss", "f-lsesim"] if model in ("sc", "sinsc", "mmsc") else []
    metadata = ModelCardData(library_name=hub.LIBRARY, pipeline_tag="image-to-image", tags=tags, license=license)
    options = config["options"]
    direction = options.get("direction", "AtoB")
    dataset = os.path.basename(os.path.normpath(str(saved.get("dataroot", "")))) or "unknown"
    lines = [
        "---",
        metadata.to_yaml(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"The `{model}` model of the sesim framework: {MODEL_SUMMARIES.get(model, 'image-to-image translation')}. "
        f"Trained on `{dataset}`, {direction} ({'A to B' if direction == 'AtoB' else 'B to A'}), "
        f"checkpoint epoch `{config['epoch']}`.",
        "",
    ]
    if sample:
        caption = (
            "input, then translations with 3 random style codes (seed 0)" if model == "mmsc" else "input, translation"
        )
        lines += [f"![sample]({SAMPLE_FILE})", "", f"*{caption}*", ""]
    lines += [
        "## Use",
        "",
        "With the sesim framework's translation API (its repository root on `sys.path`):",
        "",
        "```python",
        "from PIL import Image",
        "from inference import Translator",
        "",
        f'translator = Translator.load("{repo_id}")  # downloads once into the Hugging Face cache',
        'translator.translate(Image.open("photo.jpg")).save("translated.png")',
        "```",
        "",
        "or from its command line:",
        "",
        "```bash",
        f"python translate.py --name {repo_id} photo.jpg out/",
        "```",
        "",
        "After the first download it also loads offline (`HF_HUB_OFFLINE=1`). The framework's `export.py` "
        "turns the loaded model into an ONNX graph.",
        "",
        "## Files",
        "",
        f"- `{hub.WEIGHTS_FILE}`: the networks' tensors (safetensors, no pickle): "
        + ", ".join(f"`{net}` ({count / 1e6:.2f} M parameters)" for net, count in parameters.items())
        + ";",
        f"- `{hub.CONFIG_FILE}`: the model and its architecture options:",
        "",
        "```json",
        json.dumps(options, indent=1, sort_keys=True),
        "```",
        "",
        "## Training",
        "",
        "The run's options as a command (every option that differs from `train.py`'s "
        "default; rebuilt from its `opt.json`):",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    if fid:
        lines += [
            "## Evaluation",
            "",
            f"`test_fid.py` scores of the run (`{os.path.basename(fid_path)}`), one row per "
            "scored epoch; lower FID and KID are better:",
            "",
        ]
        columns = list(fid[0])
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in fid]
        lines.append("")
    else:
        lines += ["## Evaluation", "", "No `test_fid.py` scores were recorded for this run.", ""]
    return "\n".join(lines)


def build_folder(args: argparse.Namespace, folder: str) -> dict:
    """Write the Hub folder for the run ``args.name`` into ``folder``; returns its config."""
    translator = Translator.load(args.name, epoch=args.epoch, checkpoints_dir=args.checkpoints_dir)
    saved = saved_train_options(args.checkpoints_dir, args.name)
    states = hub_networks(translator, args.checkpoints_dir, args.name, args.epoch)
    config = hub_config(translator, list(states))
    os.makedirs(folder, exist_ok=True)
    write_weights(states, os.path.join(folder, hub.WEIGHTS_FILE))
    with open(os.path.join(folder, hub.CONFIG_FILE), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=1, sort_keys=True)
    sample_input = args.sample_image or default_sample_image(saved)
    if sample_input:
        write_sample(translator, sample_input, os.path.join(folder, SAMPLE_FILE))
    else:
        print(f"no sample: {saved.get('dataroot')} has no test image; give one with --sample_image")
    fid_path, fid = fid_rows(args.results_dir, args.name, args.phase)
    command = training_command(saved) if saved else "(the run has no opt.json)"
    parameters = {net: sum(t.numel() for t in state.values() if t.is_floating_point()) for net, state in states.items()}
    card = model_card(
        repo_id=args.repo_id,
        config=config,
        saved=saved,
        command=command,
        fid_path=fid_path,
        fid=fid,
        sample=bool(sample_input),
        license=args.license,
        parameters=parameters,
    )
    with open(os.path.join(folder, CARD_FILE), "w", encoding="utf-8") as handle:
        handle.write(card)
    return config


def upload(folder: str, repo_id: str, private: bool) -> str:
    """Create the model repository (if missing) and upload the folder as one commit; returns its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="model",
            commit_message="Upload the generator, its config and the model card",
        )
    except HfHubHTTPError as exc:
        raise UserError(
            f"--repo_id {repo_id}: the upload failed ({exc}); log in with `hf auth login` or set HF_TOKEN"
        ) from None
    return str(url)


def main() -> None:
    args = parse_args()
    if not hub.looks_like_repo_id(args.repo_id):
        raise UserError(f"--repo_id {args.repo_id}: give owner/name, as the Hub spells repository ids")
    if not os.path.isdir(os.path.join(args.checkpoints_dir, args.name)):
        raise UserError(f"--name {args.name}: no run folder {os.path.join(args.checkpoints_dir, args.name)}")
    if args.dry_run:
        config = build_folder(args, args.dry_run)
        print(f"built {args.dry_run} ({', '.join(config['networks'])}); nothing uploaded (--dry_run)")
        return
    with tempfile.TemporaryDirectory() as folder:
        build_folder(args, folder)
        url = upload(folder, args.repo_id, args.private)
    print(f"uploaded to {url}")


if __name__ == "__main__":
    run_cli(main)
