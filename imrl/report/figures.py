"""Figures 2 and 3 of the paper: test CTR against episode on the online simulators.

Figure 2 has one panel per simulator, in the paper's order (a) VirtualTB, (b) RecoGym,
(c) RecSim, and one line per method (IMRL and the baselines; the ablation variants go
to Figure 3). Figure 3 is the ablation (IMRL, IMRL-E, IMRL-A, IMRL-KL) on VirtualTB, or,
when VirtualTB has no runs of them, on the first configured simulator that has.

Each line is the mean over seeds of the run records' ``curve`` (``{episode, ctr}``:
test CTR after each block of training episodes); the shaded band is ± one sample
standard deviation (ddof=1) over the seeds that have that episode (no band where only
one seed has it). Failed runs are in no line and are listed under the figure, as are
the paper's simulators that have no run. Lines differ by line style and marker as well
as colour, so the figure reads in greyscale. Written as PNG and PDF with matplotlib's
object API (``Figure``; no pyplot state, no display needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from imrl.io import atomic_path

#: The paper's Figure 2 panels, in order, with their printed names.
SIMULATORS = {"virtualtb": "VirtualTB", "recogym": "RecoGym", "recsim": "RecSim"}
#: Figure 3: IMRL and its ablations (IMRL-E: no empowerment, IMRL-A: no augmentation,
#: IMRL-KL: KL-divergence intrinsic signal).
ABLATION_METHODS = ["imrl", "imrl-e", "imrl-a", "imrl-kl"]
ABLATION_SIMULATOR = "virtualtb"
BAND = "± 1 sample standard deviation over seeds"
#: At most this many points per line are drawn (evenly spaced; the last one kept).
MAX_POINTS = 400
MARKERS_PER_LINE = 8
LEGEND_COLUMNS = 5
LINE_STYLES = ["-", "--", "-.", ":"]
MARKERS = ["o", "s", "^", "D", "v", "x", "P", "*", "<", ">", "h", "+"]
#: Colour-blind-safe colours (Okabe-Ito) of different lightness, so greys differ too.
COLOURS = ["#000000", "#E69F00", "#0072B2", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#999999"]


@dataclass(frozen=True)
class Band:
    method: str
    episode: np.ndarray     # sorted union of the seeds' episodes
    mean: np.ndarray
    std: np.ndarray         # NaN where fewer than two seeds have the episode
    n_seeds: int


def curve_band(runs: pd.DataFrame) -> Band:
    """Mean and spread over the ok runs (rows of ``load_runs``) of one method on one
    simulator (reading checked that each curve's arrays agree)."""
    series = []
    for run in runs.itertuples():
        curve = run.curve or {}
        series.append(pd.Series(curve.get("ctr", []), index=curve.get("episode", []), dtype=float))
    table = pd.concat(series, axis=1).sort_index() if series else pd.DataFrame()
    return Band(runs["method"].iloc[0] if len(runs) else "", table.index.to_numpy(dtype=float),
                table.mean(axis=1).to_numpy(), table.std(axis=1, ddof=1).to_numpy(), len(series))


def thinned(band: Band, max_points: int = MAX_POINTS) -> Band:
    """`band` at no more than `max_points` evenly spaced episodes."""
    if len(band.episode) <= max_points:
        return band
    keep = np.unique(np.linspace(0, len(band.episode) - 1, max_points).round().astype(int))
    return Band(band.method, band.episode[keep], band.mean[keep], band.std[keep], band.n_seeds)


def line_style(index: int) -> dict:
    """The index-th method's style: style, marker and colour all change from line to line."""
    return {"linestyle": LINE_STYLES[index % len(LINE_STYLES)], "marker": MARKERS[index % len(MARKERS)],
            "color": COLOURS[index % len(COLOURS)]}


def _draw_panel(axes, bands: Sequence[Band], styles: dict[str, dict], title: str) -> None:
    for band in bands:
        band = thinned(band)
        style = styles[band.method]
        offset = styles[band.method]["_order"] % MARKERS_PER_LINE
        every = max(1, len(band.episode) // MARKERS_PER_LINE)
        axes.plot(band.episode, band.mean, label=f"{band.method} ({band.n_seeds} seed{'s' * (band.n_seeds != 1)})",
                  linestyle=style["linestyle"], marker=style["marker"], color=style["color"],
                  markevery=(offset * every // MARKERS_PER_LINE, every), markersize=5, linewidth=1.4,
                  markerfacecolor="white", markeredgewidth=1.2)
        has_spread = ~np.isnan(band.std)
        axes.fill_between(band.episode, band.mean - band.std, band.mean + band.std, where=has_spread,
                          color=style["color"], alpha=0.15, linewidth=0)
    axes.set_title(title)
    axes.set_xlabel("Episode")
    axes.set_ylabel("CTR")
    axes.grid(True, linewidth=0.4, alpha=0.5)


def _online_ok(runs: pd.DataFrame, simulator: str, methods: Sequence[str]) -> dict[str, pd.DataFrame]:
    online = runs[(runs["setting"] == "online") & (runs["dataset"] == simulator) & (runs["status"] == "ok")]
    return {m: online[online["method"] == m] for m in methods if (online["method"] == m).any()}


def _failures(runs: pd.DataFrame, simulators: Sequence[str], methods: Sequence[str]) -> list[str]:
    online = runs[(runs["setting"] == "online") & runs["dataset"].isin(list(simulators))
                  & runs["method"].isin(list(methods))]
    lines = []
    for (simulator, method), group in online.groupby(["dataset", "method"], sort=True):
        failed = group[group["status"] == "failed"]
        if len(failed):
            first = str(failed["error_type"].iloc[0] or "error")
            lines.append(f"{method} on {SIMULATORS.get(simulator, simulator)}: {len(failed)}/{len(group)} "
                         f"seed(s) failed ({first}), left out")
    return lines


def _save(figure: Figure, out_dir: Path, stem: str) -> dict[str, Path]:
    paths = {}
    for extension in ("png", "pdf"):
        paths[extension] = out_dir / f"{stem}.{extension}"
        with atomic_path(paths[extension], suffix=f".{extension}") as tmp:
            # Fixed metadata: the same results give the same bytes.
            metadata = {"Software": None} if extension == "png" else {"CreationDate": None, "Producer": None}
            figure.savefig(tmp, format=extension, dpi=150, metadata=metadata)
    return paths


def _figure_with_notes(n_panels: int, n_methods: int, notes: list[str]) -> tuple[Figure, list, Figure]:
    """A figure of `n_panels` panels in a row above a strip for the legend and `notes`."""
    legend_rows = math.ceil(n_methods / LEGEND_COLUMNS) if n_methods else 0
    strip = 0.3 * legend_rows + 0.17 * (len(notes) + 1) + 0.15
    figure = Figure(figsize=(max(4.6 * n_panels, 5.5), 3.6 + strip), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[3.6, strip])
    return figure, top.subplots(1, max(n_panels, 1), squeeze=False)[0].tolist(), bottom


def _finish(strip: Figure, panels: list, styles: dict[str, dict], notes: list[str]) -> None:
    """Legend (one entry per method over all panels) and the notes, in the strip."""
    handles = {}
    for axes in panels:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            handles.setdefault(label.split(" (")[0], handle)
    if handles:
        ordered = sorted(handles, key=lambda m: styles[m]["_order"])
        strip.legend([handles[m] for m in ordered], ordered, loc="upper center", ncols=min(len(ordered), LEGEND_COLUMNS),
                     frameon=False, handlelength=3.2)
    text = "\n".join([f"Mean over seeds; shaded: {BAND}."] + notes)
    strip.text(0.01, 0.02, text, fontsize=7.5, ha="left", va="bottom")


def _styles(methods: Sequence[str]) -> dict[str, dict]:
    return {method: {**line_style(i), "_order": i} for i, method in enumerate(methods)}


def _empty_panel(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, wrap=True)
    axes.set_xticks([])
    axes.set_yticks([])


def figure2(runs: pd.DataFrame, methods: Sequence[str], out_dir: str | Path) -> dict[str, Path]:
    """reports/figure2.png and .pdf: one panel per simulator of the paper with ok runs of
    `methods` (ablation variants excluded), in the paper's order."""
    methods = [m for m in methods if m not in ABLATION_METHODS[1:]]
    present = [s for s in SIMULATORS if _online_ok(runs, s, methods)]
    missing = [SIMULATORS[s] for s in SIMULATORS if s not in present]
    notes = ([f"Not shown (no ok online run): {', '.join(missing)}."] if missing else []) \
        + _failures(runs, list(SIMULATORS), methods)
    styles = _styles(methods)
    figure, panels, strip = _figure_with_notes(len(present), len(methods) if present else 0, notes)
    for letter, (axes, simulator) in zip("abc", zip(panels, present)):
        bands = [curve_band(group) for group in _online_ok(runs, simulator, methods).values()]
        _draw_panel(axes, bands, styles, f"({letter}) {SIMULATORS[simulator]}")
    if not present:
        _empty_panel(panels[0], "No online runs: " + ", ".join(SIMULATORS.values()) + " not run.")
    _finish(strip, panels, styles, notes)
    return _save(figure, Path(out_dir), "figure2")


def ablation_simulator(runs: pd.DataFrame, simulators: Sequence[str]) -> str | None:
    """VirtualTB when it has ok runs of the ablation methods, else the first of
    `simulators` (config order) that has, else None."""
    for simulator in dict.fromkeys([ABLATION_SIMULATOR, *simulators]):
        if _online_ok(runs, simulator, ABLATION_METHODS):
            return simulator
    return None


def figure3(runs: pd.DataFrame, simulators: Sequence[str], out_dir: str | Path) -> dict[str, Path]:
    """reports/figure3.png and .pdf: the ablation on VirtualTB or on the configured
    simulator that has the runs; the title says which."""
    simulator = ablation_simulator(runs, simulators)
    styles = _styles(ABLATION_METHODS)
    notes = []
    if simulator is not None and simulator != ABLATION_SIMULATOR:
        notes.append(f"VirtualTB has no ok run of {', '.join(ABLATION_METHODS)}: the ablation is shown on "
                     f"{SIMULATORS.get(simulator, simulator)} instead.")
    if simulator is not None:
        groups = _online_ok(runs, simulator, ABLATION_METHODS)
        absent = [m for m in ABLATION_METHODS if m not in groups]
        if absent:
            notes.append(f"No ok run of {', '.join(absent)} on {SIMULATORS.get(simulator, simulator)}.")
        notes += _failures(runs, [simulator], ABLATION_METHODS)
    figure, panels, strip = _figure_with_notes(1, len(ABLATION_METHODS) if simulator else 0, notes)
    if simulator is None:
        _empty_panel(panels[0], "No online runs of " + ", ".join(ABLATION_METHODS) + " on any simulator.")
        panels[0].set_title("Ablation study: not run")
    else:
        bands = [curve_band(group) for group in groups.values()]
        _draw_panel(panels[0], bands, styles, f"Ablation study on {SIMULATORS.get(simulator, simulator)}")
    _finish(strip, panels, styles, notes)
    return _save(figure, Path(out_dir), "figure3")
