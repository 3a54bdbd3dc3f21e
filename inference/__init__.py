"""Using a trained model: one loader and one translation loop for every entry point (docs/using_a_model.md).

- translator.py: :class:`Translator` (``load``, ``from_options``, ``run``/``run_dataset``, ``translate``);
- sources.py: run names, run folders, lone generator files, Hub folders and Hub ids, and which checkpoint file
  fills each test network (the direction);
- from_keys.py: the architecture of a published generator file, read from its keys;
- tiling.py: images too large for one pass, in tiles with the whole image's normalisation statistics;
- onnx_export.py: ONNX graphs with the image scaling and padding inside, and their check;
- hub.py: the Hugging Face Hub folder layout, reading it and downloading it;
- traits.py: reading what a network declares for inference (models/networks/traits.py).

The package sits above models/ and data/ (it builds models through them); util/ imports nothing of it.
"""

from inference.translator import Translation, Translator

__all__ = ["Translation", "Translator"]
