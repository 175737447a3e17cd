"""The studies a server may show, and a study put into the page's words: its tables, its paired comparisons in
sentences, its disagreements as gallery items, and one of its pictures as a file for the picture input.

Only folders on the server's allow-list are ever read: the bundled study of the demo set (``BUNDLED``) and those
given at start-up (``python app.py --study DIR``). A visitor names a study by its key in that list, never by a path,
and nothing here starts a study.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import class_name, text
from cbam_viz.render import fonts
from cbam_viz.study import figures as study_figures
from cbam_viz.study import sources
from cbam_viz.ui.errors import escape
from cbam_viz.ui.gallery import _write_atomically, example_root
from cbam_viz.ui.uploads import safe_stem
from cbam_viz.vocab import ARCH_TITLES, STAGES, Lineup, method_label, quote, recorded_lineup
from cbam_viz.weights.files import WEIGHTS_DIR

BUNDLED = WEIGHTS_DIR / "demo" / "study"  # ``python -m cbam_viz study shapes --weights demo``, shipped with the repo
BUNDLED_KEY = "demo"
SUMMARY = "summary.json"
SIGNIFICANCE = 0.05
PER_CLASS_ROWS = 100
MINUS = "\u2212"


# ------------------------------------------------------------------------------------------------- the allow-list


@dataclass(frozen=True)
class Shelf:
    """The studies this server may show, by key (the dropdown's values): the bundled one, then ``--study`` folders."""

    folders: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def of(cls, extra: Iterable[Path] = (), bundled: Path | None = BUNDLED) -> Shelf:
        """The bundled study (when it is here) and ``extra``; a folder without ``summary.json`` is a one-line error."""
        folders: dict[str, Path] = {}
        if bundled is not None and (bundled / SUMMARY).is_file():
            folders[BUNDLED_KEY] = bundled.resolve()
        for folder in extra:
            folder = Path(folder).expanduser().resolve()
            if not (folder / SUMMARY).is_file():
                raise CbamVizError(
                    f"--study {folder}: no {SUMMARY} there (run `python -m cbam_viz study DATA --out {folder}` first)"
                )
            if folder in folders.values():
                continue
            key, number = folder.name or "study", 2
            while key in folders:
                key, number = f"{folder.name}-{number}", number + 1
            folders[key] = folder
        return cls(folders)

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) per study, for the dropdown: its key and how many images it holds."""
        return [(f"{key}: {_image_count(folder)}", key) for key, folder in self.folders.items()]

    def first(self) -> str | None:
        return next(iter(self.folders), None)

    def open(self, key: Any) -> Study:
        """The study listed under ``key``; anything else, a path included, is refused in one line."""
        if not isinstance(key, str) or key not in self.folders:
            raise CbamVizError(text("error.study_not_listed", name=quote(str(key), 60)))
        folder = self.folders[key]
        try:
            summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CbamVizError(text("error.study_unreadable", name=quote(key), reason=str(error)[:120])) from None
        return Study(key, folder, summary)


def _image_count(folder: Path) -> str:
    try:
        count = json.loads((folder / SUMMARY).read_text(encoding="utf-8")).get("count")
    except (OSError, ValueError):
        count = None
    return "?" if count is None else f"{count} images"


@dataclass(frozen=True)
class Study:
    """One study's ``summary.json`` (``study.summary``), opened from the allow-list."""

    key: str
    folder: Path
    summary: dict[str, Any]

    @property
    def options(self) -> dict[str, Any]:
        return self.summary.get("study", {})

    @property
    def lineup(self) -> Lineup:
        """The studied models in the summary's own order, with the families and titles it records (an older summary:
        its keys are the architectures)."""
        models = self.summary.get("models")
        return recorded_lineup(models if isinstance(models, dict) else {})

    @property
    def models(self) -> list[str]:
        return list(self.lineup.ids)

    def title(self, model_id: str) -> str:
        """A studied model's title (the card's, or the architecture's)."""
        return self.lineup.title(model_id)

    def family(self, model_id: str) -> str:
        """A studied model's architecture (the key itself for a model the summary does not hold)."""
        return self.lineup.family(model_id) if model_id in self.lineup.ids else model_id

    @property
    def is_demo(self) -> bool:
        return self.options.get("data") == sources.SHAPES or self.options.get("weights") == "demo"

    def pairs(self) -> list[str]:
        """The comparisons' keys (``<A>|<B>``, A the model with more attention), the first one of a CBAM model and a
        plain ResNet-50 first."""
        keys = [key for key in self.summary.get("comparisons", {}) if key.count("|") == 1]

        def headline(key: str) -> bool:
            first, second = key.split("|")
            return (self.family(first), self.family(second)) != ("cbam_resnet50", "resnet50")

        return sorted(keys, key=headline)

    def disagreements(self, pair: Any) -> list[dict[str, Any]]:
        comparison = self.summary.get("comparisons", {}).get(pair) if isinstance(pair, str) else None
        return list(comparison.get("disagreements", [])) if comparison else []


# ---------------------------------------------------------------------------------------------------- the words


def percent(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}"


def signed(points: float) -> str:
    """A difference in points with its sign: +0.4, −0.8 (a true minus), 0.0."""
    rounded = round(points, 1)
    if rounded == 0:
        return "0.0"
    return f"+{rounded:.1f}" if rounded > 0 else f"{MINUS}{-rounded:.1f}"


def with_interval(measure: Mapping[str, Any] | None) -> str:
    """``97.0 % (95.1–98.3)``, or a dash when nothing was measured."""
    if not measure or measure.get("value") is None:
        return "—"
    low, high = (measure.get("ci") or [None, None])[:2]
    interval = f" ({percent(low)}–{percent(high)})" if low is not None and high is not None else ""
    return f"{percent(measure['value'])} %{interval}"


def significant(comparison: Mapping[str, Any]) -> bool:
    """A paired difference is significant when its 95 % interval leaves out 0 and, where McNemar's test was made, its
    p-value is below 0.05: the interval and the test must agree."""
    low, high = (comparison.get("ci") or [None, None])[:2]
    if low is None or high is None or low <= 0 <= high:
        return False
    p_value = comparison.get("p_value")
    return p_value is None or p_value < SIGNIFICANCE


def p_words(p_value: float) -> str:
    """``= 0.62``, ``= 0.003`` or ``< 0.001``."""
    return "< 0.001" if p_value < 0.001 else f"= {p_value:.3f}" if p_value < 0.01 else f"= {p_value:.2f}"


def model_name(study: Study, model_id: str) -> str:
    """A model as a sentence names it: the paper's three by the catalogue's short words ("the baseline", "SE",
    "CBAM"), a model card's by its title."""
    title = study.title(model_id)
    return text(f"study.model.{model_id}") if ARCH_TITLES.get(model_id) == title else escape(title)


def short_title(study: Study, model_id: str) -> str:
    """A model in a narrow cell: the paper's three without "-ResNet-50" (SE, CBAM), a card's by its title."""
    title = study.title(model_id)
    return title.removesuffix("-ResNet-50") if ARCH_TITLES.get(model_id) == title else title


def capitalised(words: str) -> str:
    return words[:1].upper() + words[1:]


def comparison_words(study: Study, pair: str, metric: str) -> str:
    """One sentence: the two models' values, the difference in points, its interval and whether it is significant."""
    first, second = pair.split("|")
    comparison = study.summary["comparisons"][pair].get(metric) or {}
    models = study.summary["models"]
    names = {"first": model_name(study, first), "second": model_name(study, second)}
    if comparison.get("difference") is None:
        return capitalised(text("study.no_pair", **names))
    low, high = comparison["ci"]
    p_value = comparison.get("p_value")
    words = text(
        f"study.words.{metric}",
        **names,
        first_value=percent(models[first][metric]["value"]),
        second_value=percent(models[second][metric]["value"]),
        difference=signed(comparison["difference"] * 100),
        low=signed(low * 100),
        high=signed(high * 100),
        verdict=text("study.significant" if significant(comparison) else "study.not_significant"),
        test=text("study.mcnemar", p=p_words(p_value)) if p_value is not None else "",
    )
    return capitalised(words)


def about(study: Study) -> str:
    """The line above the tables: what was studied, with which weights, method, stage and view."""
    options = study.options
    data = options.get("data", "?")
    data_words = text("study.data_shapes") if data == sources.SHAPES else f"`{escape(Path(str(data)).name)}`"
    view = options.get("view", "crop")
    weights = str(options.get("weights", "?"))
    weights = Path(weights).name if weights.endswith(".toml") else weights  # a model card by its name, not its path
    return text(
        "study.about",
        count=study.summary.get("count", 0),
        data=data_words,
        weights=escape(weights),
        method=method_label(str(options.get("method", "gradcam"))),
        stage=options.get("stage", 4),
        view=text(f"view.{view}") if view in ("whole", "crop") else escape(str(view)),
        skipped=study.summary.get("skipped", 0),
    )


def summary_table(study: Study) -> str:
    """The models' table: top-1, top-5, pointing, energy and MaxBoxAccV2, each with its 95 % interval (Markdown)."""
    columns = ["model", "top1", "top5", "pointing", "energy", "maxbox"]
    lines = [
        "| " + " | ".join(text(f"study.col.{column}") for column in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    localised = 0
    for arch in study.models:
        model = study.summary["models"][arch]
        localised = max(localised, int(model.get("localised") or 0))
        cells = [escape(study.title(arch))]
        cells += [with_interval(model.get(key)) for key in ("top1", "top5", "pointing", "energy", "maxboxacc_v2")]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [text("study.localised", count=localised)]
    published = {arch: study.summary["models"][arch].get("published") for arch in study.models}
    figures = [f"{escape(study.title(key))} {percent(known['top1'], 2)} %" for key, known in published.items() if known]
    if figures:
        transform = next(known["eval_transform"] for known in published.values() if known)
        notes.append(text("study.published", transform=escape(transform), figures=", ".join(figures)))
    return "\n".join(lines) + "\n\n<small>" + " ".join(notes) + "</small>"


def all_comparison_words(study: Study) -> str:
    """Every pair's sentences (pointing, top-1, energy), one paragraph per pair."""
    paragraphs = []
    for pair in study.pairs():
        sentences = [comparison_words(study, pair, metric) for metric in ("pointing", "top1", "energy")]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def per_class_table(study: Study) -> str:
    """Per class: images, then top-1, pointing and energy of every model (plain means, Markdown)."""
    per_class = study.summary.get("per_class", {})
    models = study.models
    titles = " / ".join(escape(short_title(study, arch)) for arch in models)
    metrics = [("top1", "study.col.top1"), ("pointing", "study.col.pointing"), ("energy", "study.col.energy")]
    header = [text("study.col.class"), text("study.col.images")]
    header += [text("study.per_class_models", metric=text(key), models=titles) for _, key in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    names = sorted(per_class)
    for name in names[:PER_CLASS_ROWS]:
        rows = per_class[name]
        count = max((int(rows[arch].get("n", 0)) for arch in models if arch in rows), default=0)
        cells = [escape(class_name(name, study.is_demo)), str(count)]
        for metric, _ in metrics:
            cells.append(" / ".join(percent(rows.get(arch, {}).get(metric), 0) for arch in models))
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    if len(names) > PER_CLASS_ROWS:
        table += "\n\n<small>" + text("study.per_class_cut", shown=PER_CLASS_ROWS, count=len(names)) + "</small>"
    return table


def sweep_table(study: Study) -> str:
    """The gates-off sweep over the dataset (``--sweep``): per stage and gate kind, each gated model's top-1 and mean
    true-class probability with those gates set to one, and their change from the gates as they are (Markdown); ""
    for a study without it."""
    swept = {
        arch: study.summary["models"][arch]["sweep"]
        for arch in study.models
        if study.summary["models"][arch].get("sweep")
    }
    if not swept:
        return ""
    header = [text("study.col.gates")]
    for arch in swept:
        title = escape(study.title(arch))
        header += [text("study.sweep.top1", model=title), text("study.sweep.probability", model=title)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = [text("study.sweep.base")]
    for numbers in swept.values():
        base += [f"{percent(numbers['base']['top1'])} %", f"{percent(numbers['base']['mean_probability'])} %"]
    lines.append("| " + " | ".join(base) + " |")
    gates = [
        gate
        for gate in ("channel", "spatial")
        if any(gate in n.get(str(s), {}) for n in swept.values() for s in STAGES)
    ]
    for stage in STAGES:
        for gate in gates:
            cells = [text("study.sweep.row", stage=stage, gate=text(f"gate.which.{gate}"))]
            for numbers in swept.values():
                one = numbers.get(str(stage), {}).get(gate)
                if one is None:
                    cells += ["—", "—"]
                    continue
                for key, change in (("top1", "top1_change"), ("mean_probability", "probability_change")):
                    cells.append(f"{percent(one[key])} % ({signed(one[change] * 100)})")
            lines.append("| " + " | ".join(cells) + " |")
    count = max(int(numbers.get("images", 0)) for numbers in swept.values())
    return text("study.sweep.intro", count=count) + "\n\n" + "\n".join(lines)


def figures(study: Study) -> dict[str, np.ndarray]:
    """The study's figures (``study.figures``: accuracy, localisation, atlas, excitation) drawn in the page's language,
    from its folder's ``summary.json``, ``atlas.npz`` and class names."""
    names = study_figures.read_names(study.folder)

    def name_of(label: int) -> str:
        return fonts.class_name(str(names.get(label, label)), study.is_demo)

    return study_figures.draw(study.summary, study_figures.read_means(study.folder), name_of)


def pair_choices(study: Study) -> list[tuple[str, str]]:
    return [(" / ".join(study.title(model_id) for model_id in pair.split("|")), pair) for pair in study.pairs()]


# ------------------------------------------------------------------------------------------------- the pictures


def _mark(numbers: Mapping[str, Any]) -> str:
    hit = numbers.get("pointing")
    return "?" if hit is None else "✓" if hit else "✗"


def _energy(numbers: Mapping[str, Any]) -> str:
    energy = numbers.get("energy")
    return "" if energy is None else f"{energy * 100:.0f} %"


def picture_file(study: Study, image_id: str, parent: Path | None = None) -> str:
    """The picture ``image_id`` of ``study`` as a PNG in the app's private examples folder (made once), for the
    picture input and the gallery; the file is named after the id, so the results name it too."""
    folder = example_root(parent) / f"study-{safe_stem(study.key, 40)}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_stem(image_id, 80)}.png"
    if not path.is_file() or path.is_symlink():
        try:
            picture = sources.picture_of(str(study.options.get("data", "")), image_id)
        except (CbamVizError, OSError) as error:
            raise CbamVizError(text("error.study_picture", reason=str(error))) from None
        _write_atomically(path, lambda handle: _save_png(picture, handle))
    return str(path)


def _save_png(picture: Image.Image, handle: Any) -> None:
    picture.save(handle, format="PNG")


def gallery_items(study: Study, pair: Any, parent: Path | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """The pair's disagreements as (file, caption), which model points at the object (✓/✗) and its energy there;
    and their image ids, in the gallery's order (a picture that cannot be drawn again is left out of both)."""
    if not isinstance(pair, str) or "|" not in pair:
        return [], []
    first, second = pair.split("|")
    items, ids = [], []
    for row in study.disagreements(pair):
        try:
            path = picture_file(study, row["image_id"], parent)
        except CbamVizError:
            continue  # a folder study whose pictures moved: the rest of the gallery still shows
        caption = text(
            "study.caption",
            label=class_name(str(row.get("label_name", "")), study.is_demo),
            first=short_title(study, first),
            second=short_title(study, second),
            first_mark=_mark(row.get(first, {})),
            second_mark=_mark(row.get(second, {})),
            first_energy=_energy(row.get(first, {})),
            second_energy=_energy(row.get(second, {})),
        )
        items.append((path, caption))
        ids.append(str(row["image_id"]))
    return items, ids


def analysis_settings(
    study: Study, weight_choices: Sequence[str], offered: Sequence[str] | None = None
) -> dict[str, Any]:
    """The picture input's neighbours set as the study measured: its models, method, stage, view and (when this
    server has them) its weights. ``offered``: the model ids this server's pickers hold (None: any); a study of models
    it does not offer (a model card's on a server of the paper's three, or the other way round) leaves them be."""
    options = study.options
    settings: dict[str, Any] = {}
    if offered is None or all(model_id in offered for model_id in study.models):
        settings["models"] = study.models
    for name in ("method", "stage", "view"):
        if options.get(name) is not None:
            settings[name] = options[name]
    if options.get("weights") in weight_choices:
        settings["weights"] = options["weights"]
    return settings
