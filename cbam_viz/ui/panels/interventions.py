"""Gate interventions on the page: the spec the pickers spell, and what switching the gates off changed.

The engine does the work (``analysis.analyze(..., interventions=[spec])``, hooks owned by the capture); this module
turns the page's pickers into one spec (the CLI's own grammar, shown in an editable box, so the page teaches the
CLI) and draws the results: top-5 before and after, the change of the explained class's probability, the CAM
before and after on one colour scale with their correlation, and the per-stage sweep.
"""

from __future__ import annotations

import math

from PIL import Image

from cbam_viz.analysis.intervene import Intervention
from cbam_viz.analysis.results import Analysis, ModelResult
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import class_name, listed, text
from cbam_viz.imaging.decode import display_image
from cbam_viz.render import fonts
from cbam_viz.render import overlay as render
from cbam_viz.ui.i18n import number
from cbam_viz.vocab import STAGE_DEPTHS, STAGES, block_name, quote

WHERE_CHOICES = ("block", "stage", "all")  # the page's words: the catalogue's ``where.<choice>``
HOWS = ("one", "mean", "shuffle", "keep-top-k")  # the page's words: the catalogue's ``how.<choice>``
DEFAULT_SPEC = "layer4:channel=one"
MATTERS = 0.01  # a drop of the explained class's probability smaller than this is read as "not needed"


def spec_from_controls(gate: str, where: str, stage: int, block_index: int | None, how: str, k: float | None) -> str:
    """The pickers as one canonical spec, e.g. ``layer3:spatial=one`` (one-line errors for impossible picks)."""
    if where not in WHERE_CHOICES:
        raise CbamVizError(text("error.iv_where", choices=listed(WHERE_CHOICES), where=quote(where)))
    if where == "all":
        place = "all"
    else:
        if stage not in STAGES:
            raise CbamVizError(text("error.stage", stage=quote(stage)))
        place = f"layer{stage}"
        if where == "block":
            depth = STAGE_DEPTHS[int(stage) - 1]
            index = depth - 1 if block_index in (None, "") else int(block_index)
            if not 0 <= index < depth:
                raise CbamVizError(text("error.iv_block", stage=stage, last=depth - 1, index=index))
            place = block_name(int(stage), index)
    if how == "keep-top-k":
        if k is None or (isinstance(k, float) and not math.isfinite(k)):
            raise CbamVizError(text("error.iv_k"))
        how = f"keep-top-k:{int(k)}"
    return Intervention.parse(f"{place}:{gate}={how}").spec


def top5_markdown(result: ModelResult, demo: bool = False) -> str:
    """The intervened top-5 beside the original's, and how the explained class's probability moved; the demo's
    shapes named in the page's language, as everywhere else."""
    if result.intervention_notes and not result.interventions:
        return "\n".join(f"_{note}_" for note in result.intervention_notes.values())
    if not result.interventions:
        return ""
    done = result.interventions[0]
    labels = result.intervention_labels
    rows = [text("intervene.head"), "|---|---|---|"]
    for rank, (before, after) in enumerate(zip(result.top5, done.top5, strict=False), start=1):
        index, prob = after
        name = class_name(labels[index], demo) if index in labels else text("intervene.class", index=index)
        rows.append(f"| {rank} | {class_name(before[0], demo)} ({before[1]:.1%}) | {name} ({prob:.1%}) |")
    change = done.target_prob_change
    arrow = "▼" if change < 0 else "▲" if change > 0 else "="
    target = class_name(result.target_label, demo)
    summary = (
        f"`{done.spec}`: p(“{target}”) {result.target_prob:.1%} → {done.target_prob:.1%} "
        f"(**Δp = {change:+.3f}** {arrow})"
    )
    return summary + "\n\n" + "\n".join(rows)


def cam_pair(analysis: Analysis, result: ModelResult, cmap: str, alpha: float) -> Image.Image | None:
    """The CAM before and after the intervention, side by side on one colour scale, with one colour bar."""
    if not result.interventions:
        return None
    done = result.interventions[0]
    (low, high), _ = render.colour_limits([result.cam, done.cam], True)
    view = analysis.view_for(result)
    base = display_image(analysis.image, 320)
    before = render.overlay(base, result.cam, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)
    after = render.overlay(base, done.cam, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)
    gap = 8
    bar = render.colorbar_image(
        cmap, low, high, width=before.width * 2 + gap, label=fonts.words("picture.cam_value_shared")
    )
    sheet = Image.new("RGB", (before.width * 2 + gap, before.height + bar.height), (255, 255, 255))
    sheet.paste(before, (0, 0))
    sheet.paste(after, (before.width + gap, 0))
    sheet.paste(bar, (0, before.height))
    return sheet


def cam_caption(result: ModelResult) -> str:
    """The intervention's spec, and how closely the CAM after it follows the one before."""
    done = result.interventions[0]
    return text("intervene.cam_caption", spec=done.spec, correlation=number(done.cam_correlation))


def sweep_markdown(result: ModelResult, demo: bool = False) -> str:
    """Δp of the explained class when each stage's gates of one kind are set to ``one``."""
    sweep = result.sweep
    if sweep is None:
        notes = [note for spec, note in result.intervention_notes.items() if spec == "sweep"]
        return f"_{notes[0]}_" if notes else ""
    kinds = [kind for kind in ("channel", "spatial") if any(e.gate == kind for e in sweep.entries)]
    columns = " | ".join(text("sweep.column", kind=text(f"gate.kind.{kind}")) for kind in kinds)
    header = f"| {text('sweep.stage')} | {columns} |"
    rows = [header, "|---|" + "---|" * len(kinds)]
    strongest = min(sweep.entries, key=lambda entry: entry.change)
    for stage in STAGES:
        cells = []
        for kind in kinds:
            change = sweep.change(stage, kind)
            bar = "█" * min(10, round(abs(change) * 10))
            mark = " ◀" if (stage, kind) == (strongest.stage, strongest.gate) and strongest.change <= -MATTERS else ""
            cells.append(f"{change:+.3f} {bar}{mark}")
        rows.append(f"| {stage} | " + " | ".join(cells) + " |")
    lead = text("sweep.lead", label=class_name(result.target_label, demo), prob=f"{sweep.base_prob:.1%}")
    if strongest.change > -MATTERS:
        lead += text("sweep.none_needed", threshold=MATTERS)
    else:
        lead += text("sweep.depends", gate=text(f"gate.kind.{strongest.gate}"), stage=strongest.stage)
    return lead + "\n\n" + "\n".join(rows)
