"""Loss-curve figure for the training web page.

matplotlib is imported inside :func:`plot_losses`, and the figure is drawn on an explicit Agg
canvas instead of through pyplot: this needs no display, and it does not switch the global
backend of a program (or notebook) that imports this module.
"""

import math

from util.image_io import atomic_path

LossHistory = dict[str, list[tuple[float, float]]]


def _use_log_scale(history: LossHistory, log_y: bool) -> bool:
    """Log scale only when asked and every plotted value is positive and finite."""
    values = [value for points in history.values() for _, value in points]
    return log_y and bool(values) and all(value > 0 and math.isfinite(value) for value in values)


def plot_losses(history: LossHistory, path: str, title: str, log_y: bool = False, dpi: int = 100) -> None:
    """Write a PNG with one line per loss against the fractional epoch.

    Args:
        history: loss name -> list of (fractional epoch, value) points, in logging order.
            Losses with no points are skipped.
        path: destination PNG (written atomically; the parent directory is created).
        title: figure title.
        log_y: use a logarithmic y axis; ignored (linear axis) unless all values are > 0.
        dpi: resolution of the 8 x 4.5 inch figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 4.5), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for name, points in history.items():
        if points:
            epochs, values = zip(*points, strict=True)
            axes.plot(epochs, values, label=name, linewidth=1.0)
    if _use_log_scale(history, log_y):
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if any(history.values()):
        axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
