"""The translation API's old import path: ``from translator import Translator`` (it lives in inference/)."""

from inference.translator import Translation, Translator  # noqa: F401
