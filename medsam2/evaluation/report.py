"""``report.md``: the summary's tables and PNG plots (matplotlib, the ``eval`` extra).

Without matplotlib the report is written without plots and says so (``pip install
'medical-sam2[eval]'``); the tables and CSV files never depend on it.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from medsam2.evaluation.summary import DISTANCE_BINS

__all__ = ["write_report", "report_markdown", "have_matplotlib"]

log = logging.getLogger(__name__)


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}"


def _ms(stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{_f(stat['mean'])} ± {_f(stat['sd'])}"


def _table(title: str, headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A markdown section: title, header, separator, rows (empty when there are no rows)."""
    if not rows:
        return []
    out = ["", f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def _ci(d: dict[str, Any]) -> str:
    return f"{_f(d['mean'])} [{_f(d['ci95'][0])}, {_f(d['ci95'][1])}]"


def _sections(s: dict[str, Any]) -> list[str]:
    per_class = sorted(s["per_class"], key=lambda e: (e["class_value"], e["axis"], e["model"]))
    out = _table(
        "Per class",
        ["class", "model", "axis", "Dice", "NSD", "HD95 mm", "vol. err. mL", "n valid", "n empty", "n inf"],
        [[e["class_name"], e["model"], e["axis"], _ms(e["dice"]), _ms(e["nsd"]), _ms(e["hd95"]),
          _ms(e["volume_error_ml"]), e["n_valid"], e["n_empty"], e["n_inf"]] for e in per_class],
    )  # fmt: skip
    out += _table(
        "Per model (all classes)",
        ["model", "axis", "n", "Dice", "NSD", "over-propagation mL", "seconds"],
        [[m["model"], m["axis"], m["n"], _ms(m["dice"]), _ms(m["nsd"]), _ms(m["over_propagation_ml"]),
          _ms(m["seconds"])] for m in s["per_model"]],
    )  # fmt: skip
    out += _table(
        "Paired differences (model minus reference, same prompts; bootstrap 95% CI)",
        ["model", "reference", "n", "ΔDice [95% CI]", "ΔNSD [95% CI]", "Δover-prop. mL", "Δseconds"],
        [[p["model"], p["reference"], p["n"], _ci(p["dice"]), _ci(p["nsd"]),
          _f(p["over_propagation_ml"]["mean"]), _f(p["seconds"]["mean"], 2)] for p in s["paired_differences"]],
    )  # fmt: skip
    out += _table(
        "Slice Dice by distance from the prompt (slices)",
        ["model", "direction", "distance", "n slices", "Dice"],
        [[b["model"], b["direction"], b["bin"], b["n"], _f(b["dice"])] for b in s["distance_bins"]],
    )
    out += _table(
        "Dice after each corrective click",
        ["model", "clicks", "n", "Dice", "NSD"],
        [[c["model"], c["step"], c["n"], _f(c["dice"]), _f(c["nsd"])] for c in s["clicks"]],
    )
    return out


def report_markdown(summary: dict[str, Any], plots: list[str], note: str | None) -> str:
    cfg = summary["config"]
    head = [
        f"# Evaluation: {cfg['protocol']} on {summary['dataset']}",
        "",
        f"Models: {', '.join(summary['models'])}; axes: {', '.join(cfg['axes'])}; seed {cfg['seed']}; "
        f"NSD tolerance {cfg['tolerance_mm']} mm; {summary['cases']} cases, {len(summary['failed'])} failed.",
    ]
    if not summary["comparable"]:
        head += ["", "**NOT COMPARABLE**: " + str(summary["note"])]
    body = head + _sections(summary)
    if plots:
        body += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    if note:
        body += ["", note]
    return "\n".join(body) + "\n"


def _plots(root: Path, summary: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for e in summary["per_class"]:
        if e["dice"]["mean"] is not None:
            groups[f"{e['model']} ({e['axis']})"][e["class_name"]] = e["dice"]["mean"]
    names = sorted({c for g in groups.values() for c in g})
    width = 0.8 / max(1, len(groups))
    for n, (label, vals) in enumerate(sorted(groups.items())):
        ax.bar(
            [i + n * width for i in range(len(names))], [vals.get(c, 0.0) for c in names], width, label=label
        )
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=20)
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, root / "dice_per_class.png")
    written.append("dice_per_class.png")
    pts, ticks = _distance_points(summary["distance_bins"])
    label = "slices from the prompt (negative: backward pass)"
    written += _curve(plt, root / "dice_by_distance.png", pts, ticks, label)
    clicks = [(c["model"], float(c["step"]), c["dice"]) for c in summary["clicks"]]
    written += _curve(plt, root / "dice_by_clicks.png", clicks, None, "corrective clicks")
    return written


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    from medsam2.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _distance_points(items: list[dict[str, Any]]) -> tuple[list[tuple[str, float, float]], dict[float, str]]:
    """(model, signed bin position, Dice): backward bins left of the prompt (0), forward right."""
    order = {label: i for i, (_, _, label) in enumerate(DISTANCE_BINS)}
    sign = {"backward": -1, "prompt": 0, "forward": 1}
    pts = [(it["model"], float(sign[it["direction"]] * order[it["bin"]]), it["dice"]) for it in items]
    ticks = {float(x): ("-" if x < 0 else "") + label for label, i in order.items() for x in (i, -i)}
    return pts, ticks


def _curve(
    plt: Any, path: Path, points: list[tuple[str, float, float]], ticks: dict[float, str] | None, xlabel: str
) -> list[str]:
    """One line per model through (x, Dice) points; ``ticks`` names the x positions."""
    if not points:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for model, x, y in points:
        series[model].append((x, y))
    styles = ["-", "--", ":", "-."]
    for n, (model, pts) in enumerate(sorted(series.items())):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[n % 4], marker="o", label=model)
    if ticks:
        xs = sorted(x for x in ticks if any(x == p[1] for p in points))
        ax.set_xticks(xs, [ticks[x] for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Dice")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return [path.name]


def write_report(root: Path, summary: dict[str, Any]) -> None:
    """Write ``report.md`` (and its PNG plots when matplotlib is installed) into ``root``."""
    from medsam2.io.atomic import atomic_output

    plots: list[str] = []
    note = None
    if have_matplotlib():
        plots = _plots(root, summary)
    else:
        note = "Plots skipped: matplotlib is not installed (`pip install 'medical-sam2[eval]'`)."
        log.warning(note)
    with atomic_output(root / "report.md") as tmp:
        tmp.write_text(report_markdown(summary, plots, note))
