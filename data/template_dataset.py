"""Template for a new dataset mode; copy it to ``data/<mode>_dataset.py`` and fill it in.

How a mode is found: ``--dataset_mode my_mode`` imports ``data/my_mode_dataset.py`` and uses the
class whose lower-cased name is ``mymodedataset`` and that subclasses ``BaseDataset``
(e.g. ``MyModeDataset``). You implement:

- ``modify_commandline_options(parser, is_train)`` (optional): add this mode's flags or change
  defaults. Only add flags and call ``parser.set_defaults``; never parse here.
- ``__init__(self, opt)``: call ``super().__init__(opt)`` and ``self.init_preprocess(opt)``, find the
  files, and copy the options you need onto ``self`` (``opt`` is read only here, never written).
- ``__len__``: the number of samples per epoch.
- ``__getitem__(index)``: one sample as a dict of tensors and paths. Draw every random choice from
  ``self.sample_generator(index)`` (never ``random``, ``numpy.random`` or the global torch RNG), so
  that a sample depends only on (``--seed``, epoch, index) and a resumed run sees the same data.

This template reads the images of ``<dataroot>/<phase>`` and returns each one as both A and B.
"""

import argparse
import os
from typing import Any

from data.base_dataset import BaseDataset
from data.image_folder import load_image, make_dataset


class TemplateDataset(BaseDataset):
    """Example mode: each image of ``<dataroot>/<phase>`` is returned as A and as B.

    Each item holds ``'A'``: (input_nc, H, W) and ``'B'``: (output_nc, H, W), both in [-1, 1] and
    cropped identically, plus ``'A_paths'`` / ``'B_paths'``.
    """

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add a (here unused) example flag and change a default."""
        parser.add_argument("--new_dataset_option", type=float, default=1.0, help="an example option")
        parser.set_defaults(max_dataset_size=10)
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        """Find the images; reading ``opt`` is allowed here and nowhere else."""
        super().__init__(opt)
        self.init_preprocess(opt)
        self.paths = make_dataset(os.path.join(opt.dataroot, opt.phase), opt.max_dataset_size)
        self.channels_A: int = opt.input_nc
        self.channels_B: int = opt.output_nc

    def __len__(self) -> int:
        """Number of images."""
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image ``index`` as A and B, with one random crop/flip drawn from the sample generator."""
        generator = self.sample_generator(index)
        path = self.paths[index]
        img = load_image(path, 3)
        params = self.draw_params(img.size, generator)
        A = self.apply_transform(img, self.channels_A, params)
        B = self.apply_transform(img, self.channels_B, params)
        return {"A": A, "B": B, "A_paths": path, "B_paths": path}
