"""A static HTML page of labelled image rows, built with ``dominate``.

Used by the training logger (``checkpoints/<name>/web/index.html``) and by test.py
(``results/<name>/<phase>_<epoch>/index.html``). The page does not reload itself unless asked
(``refresh > 0``): the reference reloaded every second, which fights the user's scrolling.
"""

import os

import dominate
from dominate import tags

from util.image_io import mkdirs, write_text_atomic


class HTML:
    """An HTML page in ``web_dir/index.html`` whose images live in ``web_dir/images``.

    Args:
        web_dir: directory of the page; it and its ``images`` subdirectory are created.
        title: the page title.
        refresh: if > 0, the page asks the browser to reload it every ``refresh`` seconds.
    """

    def __init__(self, web_dir: str, title: str, refresh: int = 0) -> None:
        self.web_dir = web_dir
        self.img_dir = os.path.join(web_dir, "images")
        mkdirs([self.web_dir, self.img_dir])
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                tags.meta(http_equiv="refresh", content=str(refresh))

    def get_image_dir(self) -> str:
        """The directory where the page's images are expected (``web_dir/images``)."""
        return self.img_dir

    def add_header(self, text: str) -> None:
        """Append a section heading."""
        with self.doc:
            tags.h3(text)

    def add_images(self, ims: list[str], txts: list[str], links: list[str], width: int = 256) -> None:
        """Append one row of images, each with a caption and a link.

        Args:
            ims: image paths relative to ``web_dir`` (e.g. ``images/epoch001_real_A.png``).
            txts: one caption per image.
            links: one link target per image (usually the image itself), relative to ``web_dir``.
            width: displayed width of each image in pixels.
        """
        if not len(ims) == len(txts) == len(links):
            raise ValueError(
                f"add_images needs as many captions and links as images, got {len(ims)}, {len(txts)}, {len(links)}"
            )
        row_table = tags.table(border=1, style="table-layout: fixed;")
        self.doc.add(row_table)
        with row_table, tags.tr():
            for im, txt, link in zip(ims, txts, links, strict=True):
                with tags.td(style="word-wrap: break-word;", halign="center", valign="top"), tags.p():
                    with tags.a(href=link):
                        tags.img(style=f"width:{width}px", src=im)
                    tags.br()
                    tags.p(txt)

    def render(self) -> str:
        """The page as an HTML string."""
        return self.doc.render()

    def save(self) -> None:
        """Write the page to ``web_dir/index.html`` atomically."""
        write_text_atomic(os.path.join(self.web_dir, "index.html"), self.render())
