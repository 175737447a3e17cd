"""Every panel of the page, declared once: a ``Panel`` says what it shows, for which models, and when it redraws.

To add a view, write its render function and append one ``Panel`` to ``PANELS``; its section (``ui.sections``) builds
its row (a heading, its "What am I looking at?" text, one cell per model) and redraws it on the events it names.
A render function takes the cached ``Analysis`` and the ``Display`` options and returns ``{arch: Shown}`` for the
models that have something to show (or ``{PAGE: Shown}`` for a page-wide panel). Nothing else has to be touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from cbam_viz.analysis.results import Analysis, ModelResult
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import class_name, current, has, said, text
from cbam_viz.imaging.decode import display_image
from cbam_viz.render import attention, fonts, overlay
from cbam_viz.ui.errors import escape
from cbam_viz.ui.i18n import T, number
from cbam_viz.ui.panels import gate as gate_view
from cbam_viz.ui.panels import interventions as intervene_view
from cbam_viz.ui.panels import trust as trust_view
from cbam_viz.ui.panels.gate import GatePick
from cbam_viz.vocab import (
    CAM_METHODS,
    STAGE_DEPTHS,
    STAGES,
    ModelSpec,
    has_channel_attention,
    has_spatial_attention,
    method_label,
    quote,
    split_block,
)

PAGE = "page"  # the key of a page-wide panel's single cell
COLORMAPS = ("jet", "turbo", "inferno", "viridis", "magma", "cividis")
DISPLAY_SIDE = 512  # overlays are drawn at most this large: a third of a page, crisp on high-DPI screens
IMAGE_HEIGHT = 360  # px: an explicit height keeps image cells from collapsing to 0 px in stacked (narrow) layouts

# What redraws panels: a new analysis, a display control, an accordion's own controls, and the runs that fill one
# section's panels (an intervention or the sweep, a check, a scored box).
Event = Literal["analysis", "display", "drill", "gate", "intervene", "sweep", "trust", "sanity", "curves", "box"]


@dataclass(frozen=True)
class Display:
    """The display-only controls: changing them redraws from the cached analysis, never re-runs a model."""

    cmap: str = "jet"
    opacity: float = 0.5
    shared_scale: bool = False
    drill_stage: int = 4
    gate: GatePick = GatePick()  # the gate "Inside the gate" opens

    @classmethod
    def checked(
        cls, cmap: str, opacity: float, shared_scale: bool, drill_stage: int | None = 4, gate: GatePick | None = None
    ) -> Display:
        """The display controls as the page or the API sent them, checked; bad values get a one-line error."""
        if cmap not in COLORMAPS:
            raise CbamVizError(f"unknown colormap {quote(cmap)}: choose one of {', '.join(COLORMAPS)}")
        try:
            opacity = float(opacity)
        except (TypeError, ValueError):
            raise CbamVizError(f"opacity must be a number between 0 and 1, got {quote(opacity)}") from None
        if not 0.0 <= opacity <= 1.0:
            raise CbamVizError(f"opacity must be between 0 and 1, got {opacity:g}")
        stage = 4 if drill_stage in (None, "") else drill_stage
        if stage not in STAGES:
            raise CbamVizError(f"stage must be 1, 2, 3 or 4 (got {quote(drill_stage)})")
        return cls(cmap, opacity, bool(shared_scale), int(stage), gate or GatePick())


@dataclass(frozen=True)
class Shown:
    """What one cell shows: its value and the caption above it (which always names the model)."""

    value: Any
    caption: str
    stage: int | None = None  # the stage an image shows, for its download name (None: several stages)


@dataclass(frozen=True)
class Panel:
    """One view of the analysis: a row of cells, one per model (or one for the page)."""

    key: str
    heading: str  # catalogue key of the row's heading ("": none)
    explanation: str | None  # the panel's "What am I looking at?" text: catalogue key ``explain.<this>``
    kind: Literal["image", "label", "markdown"]
    render: Callable[[Analysis, Display], dict[str, Shown]]
    redraw_on: frozenset[Event]
    section: str = "results"  # the key of the page section that shows it (``ui.sections.SECTIONS``)
    applies: Callable[[str], bool] = lambda family: True  # of a model's family (architecture)
    missing: Callable[[str], str] = lambda family: ""  # catalogue key of the note in place of a panel a model lacks
    page_wide: bool = False
    height: int = IMAGE_HEIGHT  # px of an image cell (a page-wide figure of many strips needs more)
    # a figure with words: the cell takes the figure's own height, and never shows it narrower than this many px
    # (its words would fall under render.text.READABLE_PX): a phone scrolls it sideways instead (ui.style)
    readable_width: int | None = None
    progress: bool = False  # its cells carry the progress bar of the runs that fill them
    method_note: bool = False  # the CAM method's note sits under its row

    def component(self, spec: ModelSpec | None) -> gr.components.Component:
        """The value component of one cell, for one model (None: the page's one), created inside the layout's
        Blocks context; its element id is ``<panel>-<model id>``."""
        if spec is None or self.page_wide:
            elem_id = self.key
        else:
            elem_id = f"{self.key}-{spec.id}"
            if not self.applies(spec.family):
                return gr.Markdown(T(self.missing(spec.family)), elem_id=elem_id, elem_classes="panel-missing")
        if self.kind == "image":
            return gr.Image(
                visible=False,  # until there is a picture to show: no large empty box before an analysis
                interactive=False,
                show_label=False,
                buttons=["download", "fullscreen"],
                height=self.height,
                elem_id=elem_id,
                elem_classes="panel-image",
            )
        if self.kind == "label":
            return gr.Label(num_top_classes=5, show_label=False, elem_id=elem_id)
        return gr.Markdown(elem_id=elem_id, latex_delimiters=[{"left": "$", "right": "$", "display": False}])


def model_caption(title: str, detail: str = "") -> str:
    """The line above every cell: the model's name (``ModelSpec.title``) first, so a stacked phone layout still says
    whose it is."""
    return f"**{escape(title)}**" + (f" · {escape(detail)}" if detail else "")


# ----------------------------------------------------------------------------------------------- render functions


def render_header(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """Which weights each model runs."""
    return {
        arch: Shown(f"<small>{escape(said(result.weights))}</small>", model_caption(analysis.title(arch)))
        for arch, result in analysis.models.items()
    }


def render_top5(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """Each model's five most likely classes, named in the page's language."""
    demo = analysis.is_demo
    caption = "caption.top5" if demo or analysis.is_card or current() == "en" else "caption.top5_imagenet"
    return {
        arch: Shown(
            {class_name(label, demo): float(prob) for label, prob in result.top5},
            model_caption(analysis.title(arch), text(caption)),
        )
        for arch, result in analysis.models.items()
    }


def cam_title(analysis: Analysis, result: ModelResult) -> str:
    """What the CAM shows; a class-independent method (EigenCAM) does not pretend to explain one class."""
    method = method_label(analysis.method)
    if not CAM_METHODS[analysis.method].class_dependent:
        return text("caption.cam_any_class", method=method, stage=analysis.stage)
    label = class_name(result.target_label, analysis.is_demo)
    return text("caption.cam", method=method, stage=analysis.stage, label=label, prob=f"{result.target_prob:.1%}")


def render_cam(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The CAM laid over the picture with its colour bar; one colour scale for all models when asked."""
    base = display_image(analysis.image, DISPLAY_SIDE)
    results = list(analysis.models.values())
    limits = overlay.colour_limits([result.cam for result in results], display.shared_scale)
    shown = {}
    for result, (low, high) in zip(results, limits, strict=True):
        picture = overlay.overlay(
            base, result.cam, analysis.view_for(result), cmap=display.cmap, alpha=display.opacity, vmin=low, vmax=high
        )
        # the colour bar's words follow the page's language (English only where no face has Chinese: fonts.words)
        key = "picture.cam_value_shared" if display.shared_scale else "picture.cam_value"
        legend = overlay.colorbar_image(display.cmap, low, high, width=picture.width, label=fonts.words(key))
        title = cam_title(analysis, result)
        if display.shared_scale:  # the shared range, and this map's own min and max beside it
            title = "; ".join([title, *overlay.scale_words(low, high, result.cam)])
        caption = model_caption(result.title, title)
        shown[result.model_id] = Shown(_stack(picture, legend), caption, analysis.stage)
    return shown


def _spatial(analysis: Analysis, display: Display, stage: int | None) -> dict[str, Shown]:
    shown = {}
    for arch, result in analysis.models.items():
        if not result.spatial_attention:
            continue
        grid = attention.spatial_attention_grid(
            result.spatial_attention,
            analysis.view_for(result),
            analysis.image,
            stage=stage,
            cmap=display.cmap,
            alpha=display.opacity,
            shared_scale=display.shared_scale,
            tile=220,
            columns=2 if stage is None else 3,
        )
        where = text("caption.spatial_each_stage") if stage is None else text("caption.spatial_blocks", stage=stage)
        shown[arch] = Shown(grid, model_caption(analysis.title(arch), where), stage)
    return shown


def _channel(analysis: Analysis, stage: int) -> dict[str, Shown]:
    shown = {}
    for arch, result in analysis.models.items():
        if not result.channel_attention:
            continue
        plot = attention.channel_attention_plot(result.channel_attention, stage, width_px=720)
        blocks = STAGE_DEPTHS[stage - 1]
        shown[arch] = Shown(
            plot, model_caption(analysis.title(arch), text("caption.channel", stage=stage, blocks=blocks)), stage
        )
    return shown


def render_spatial(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """CBAM's spatial attention at the last block of every stage."""
    return _spatial(analysis, display, None)


def render_channel(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The channel gates of the analysed stage."""
    return _channel(analysis, analysis.stage)


def render_drill_spatial(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """CBAM's spatial attention at every block of the drill-down's stage."""
    return _spatial(analysis, display, display.drill_stage)


def render_drill_channel(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The channel gates of the drill-down's stage."""
    return _channel(analysis, display.drill_stage)


def metric_label(name: str) -> str:
    """A metric's words on the page (the catalogue's ``metric.<name>``), or its JSON name if it has none."""
    return text(f"metric.{name}") if has(f"metric.{name}") else name


def render_numbers(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The model's own numbers as a short list (the explanation sits in the row's "what am I looking at")."""
    return {
        arch: Shown(
            "\n".join(f"- {metric_label(name)}: **{number(value, 3)}**" for name, value in result.metrics.items()),
            model_caption(analysis.title(arch), text("caption.numbers")),
        )
        for arch, result in analysis.models.items()
    }


def render_agreement(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """Pairwise CAM agreement as a table; one model alone has nothing to agree with."""
    if not analysis.agreement:
        return {PAGE: Shown(text("agreement.one_model"), "")}
    rows = []
    for pair, values in analysis.agreement.items():
        first, second = pair.split("|")
        rows.append(
            f"| {text('agreement.pair', first=analysis.title(first), second=analysis.title(second))} "
            f"| {number(values.get('cam_correlation'))} "
            f"| {number(values.get('top20_iou'))} |"
        )
    table = text("agreement.table_head") + "\n|---|---|---|\n" + "\n".join(rows)
    return {PAGE: Shown(table, "")}


def _gate(analysis: Analysis, display: Display, draw: Callable[..., Any]) -> dict[str, Shown]:
    """One gate-view cell for the picked gate; a gate that cannot be shown says why in its caption."""
    pick = display.gate
    try:
        result, steps = gate_view.steps_for(analysis, pick)
    except CbamVizError as error:
        return {PAGE: Shown(None, f"⚠️ {escape(str(error))}")}
    return {PAGE: draw(analysis, result, steps, gate_view.chosen_channel(steps, pick), display)}


def render_gate_channel(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The picked channel gate, step by step."""

    def draw(analysis: Analysis, result: ModelResult, steps: Any, channel: int, display: Display) -> Shown:
        what = text("caption.se_steps" if steps.channel.kind == "se" else "caption.channel_steps")
        image = gate_view.channel_figure(steps, channel)
        return Shown(image, model_caption(result.title, f"{steps.block}: {what}"), split_block(steps.block)[0])

    return _gate(analysis, display, draw)


def render_gate_spatial(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The picked spatial gate, step by step (a model without one says so)."""

    def draw(analysis: Analysis, result: ModelResult, steps: Any, channel: int, display: Display) -> Shown:
        image = gate_view.spatial_figure(steps, analysis, result, display.cmap, display.opacity)
        if image is None:
            return Shown(None, model_caption(result.title, text("caption.no_spatial_gate")))
        caption = model_caption(result.title, f"{steps.block}: {text('caption.spatial_steps')}")
        return Shown(image, caption, split_block(steps.block)[0])

    return _gate(analysis, display, draw)


def render_gate_equations(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The picked gate's equations with this picture's numbers."""

    def draw(analysis: Analysis, result: ModelResult, steps: Any, channel: int, display: Display) -> Shown:
        caption = model_caption(result.title, text("caption.equations"))
        return Shown(gate_view.equations_markdown(steps, channel), caption)

    return _gate(analysis, display, draw)


def render_intervene_top5(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The top five before and after the intervention."""
    caption = text("caption.intervene_top5")
    return {
        arch: Shown(
            intervene_view.top5_markdown(result, analysis.is_demo), model_caption(analysis.title(arch), caption)
        )
        for arch, result in analysis.models.items()
        if result.interventions or result.intervention_notes
    }


def render_intervene_cam(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The CAM before and after the intervention."""
    shown = {}
    for arch, result in analysis.models.items():
        pair = intervene_view.cam_pair(analysis, result, display.cmap, display.opacity)
        if pair is not None:
            shown[arch] = Shown(
                pair, model_caption(analysis.title(arch), intervene_view.cam_caption(result)), analysis.stage
            )
    return shown


def render_sweep(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The sweep's table: what switching each stage's gates off does."""
    return {
        arch: Shown(
            intervene_view.sweep_markdown(result, analysis.is_demo),
            model_caption(analysis.title(arch), text("caption.sweep")),
        )
        for arch, result in analysis.models.items()
        if result.sweep is not None
    }


def render_sanity(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """Each model's CAM as its weights are randomised from the head down, and for another class."""
    if analysis.sanity is None:
        return {}
    shown = {}
    for arch, report in analysis.sanity.models.items():
        result = analysis.models.get(arch)
        if result is None:
            continue
        tiles = trust_view.sanity_tiles(analysis, result, report, display.cmap, display.opacity)
        shown[arch] = Shown(
            tiles,
            model_caption(analysis.title(arch), trust_view.sanity_markdown(report, analysis.is_demo)),
            analysis.sanity.stage,
        )
    return shown


def render_curves(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """The deletion and insertion curves of every model (or what to press to get them)."""
    if analysis.curves is None:
        return {PAGE: Shown(None, text("curves.press"))}
    caption = text("curves.caption", steps=analysis.curves.steps)
    return {PAGE: Shown(trust_view.curves_figure(analysis.curves, analysis.title), caption)}


def render_pointing(analysis: Analysis, display: Display) -> dict[str, Shown]:
    """Where each model's maps point, against the box or the shape's outline."""
    if analysis.pointing is None:
        return {}
    return {
        arch: Shown(
            trust_view.pointing_markdown(analysis.pointing, arch),
            model_caption(analysis.title(arch), text("caption.pointing")),
        )
        for arch in analysis.models
    }


def _stack(top: Any, bottom: Any) -> Any:
    from PIL import Image

    sheet = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height), (255, 255, 255))
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, (0, top.height))
    return sheet


def _no_gates(arch: str) -> str:
    return "missing.no_gates"


def _no_attention(kind: str) -> Callable[[str], str]:
    def note(arch: str) -> str:
        return f"missing.{'resnet' if arch == 'resnet50' else 'se'}.{kind}"

    return note


ON_ANALYSIS = frozenset({"analysis"})
ON_DISPLAY = frozenset({"analysis", "display"})
ON_GATE = frozenset({"analysis", "gate"})
ON_GATE_DISPLAY = frozenset({"analysis", "gate", "display"})
ON_INTERVENE = frozenset({"intervene"})
ON_TRUST = frozenset({"analysis", "trust"})
ON_SWEEP = frozenset({"sweep"})

PANELS: tuple[Panel, ...] = (
    Panel("header", "", None, "markdown", render_header, ON_ANALYSIS),
    Panel("top5", "heading.top5", "top5", "label", render_top5, ON_ANALYSIS),
    Panel("cam", "heading.cam", "gradcam", "image", render_cam, ON_DISPLAY, progress=True, method_note=True),
    Panel(
        "spatial",
        "heading.spatial",
        "spatial",
        "image",
        render_spatial,
        ON_DISPLAY,
        applies=has_spatial_attention,
        missing=_no_attention("spatial"),
    ),
    Panel(
        "channel",
        "heading.channel",
        "channel",
        "image",
        render_channel,
        ON_ANALYSIS,
        applies=has_channel_attention,
        missing=_no_attention("channel"),
    ),
    Panel("numbers", "heading.numbers", "numbers", "markdown", render_numbers, ON_ANALYSIS),
    Panel("agreement", "heading.agreement", "agreement", "markdown", render_agreement, ON_ANALYSIS, page_wide=True),
    Panel(
        "drill_spatial",
        "",
        None,
        "image",
        render_drill_spatial,
        frozenset({"analysis", "display", "drill"}),
        section="drill",
        applies=has_spatial_attention,
        missing=_no_attention("spatial"),
    ),
    Panel(
        "drill_channel",
        "",
        None,
        "image",
        render_drill_channel,
        frozenset({"analysis", "drill"}),
        section="drill",
        applies=has_channel_attention,
        missing=_no_attention("channel"),
    ),
    Panel("gate_equations", "", None, "markdown", render_gate_equations, ON_GATE, section="gate", page_wide=True),
    Panel(
        "gate_channel",
        "",
        None,
        "image",
        render_gate_channel,
        ON_GATE,
        section="gate",
        page_wide=True,
        height=640,
        readable_width=gate_view.CHANNEL_READABLE_WIDTH,
    ),
    Panel(
        "gate_spatial",
        "",
        None,
        "image",
        render_gate_spatial,
        ON_GATE_DISPLAY,
        section="gate",
        page_wide=True,
        height=760,
        readable_width=gate_view.SPATIAL_READABLE_WIDTH,
    ),
    Panel(
        "intervene_top5",
        "",
        None,
        "markdown",
        render_intervene_top5,
        ON_INTERVENE,
        section="intervene",
        applies=has_channel_attention,
        missing=_no_gates,
    ),
    Panel(
        "intervene_cam",
        "",
        None,
        "image",
        render_intervene_cam,
        ON_INTERVENE,
        section="intervene",
        applies=has_channel_attention,
        missing=_no_gates,
    ),
    Panel(
        "sweep",
        "",
        None,
        "markdown",
        render_sweep,
        ON_SWEEP,
        section="intervene",
        applies=has_channel_attention,
        missing=_no_gates,
    ),
    Panel(
        "pointing",
        "heading.pointing",
        "pointing",
        "markdown",
        render_pointing,
        ON_TRUST | {"box"},
        section="trust",
    ),
    Panel(
        "sanity",
        "heading.sanity",
        "sanity",
        "image",
        render_sanity,
        ON_TRUST | {"sanity"},
        section="trust",
        progress=True,
        readable_width=trust_view.SANITY_READABLE_WIDTH,
    ),
    Panel(
        "curves",
        "heading.curves",
        "curves",
        "image",
        render_curves,
        ON_TRUST | {"curves"},
        section="trust",
        page_wide=True,
        height=420,
        progress=True,
        readable_width=trust_view.CURVES_READABLE_WIDTH,
    ),
)


def panels_in(section: str, panels: Iterable[Panel] = PANELS) -> list[Panel]:
    """The panels a section shows, in the registry's order."""
    return [panel for panel in panels if panel.section == section]


def redrawn_by(event: Event, section: str | None = None, panels: Iterable[Panel] = PANELS) -> list[Panel]:
    """The panels an event redraws (a display change redraws only what depends on the display)."""
    return [panel for panel in panels if event in panel.redraw_on and (section is None or panel.section == section)]


def render_all(
    analysis: Analysis, display: Display, event: Event = "analysis", panels: Iterable[Panel] = PANELS
) -> dict[str, dict[str, Shown]]:
    """Every panel an event redraws, off the page: what benchmarks and soak runs draw (panel key -> cells)."""
    return {panel.key: panel.render(analysis, display) for panel in redrawn_by(event, panels=panels)}
