"""Write docs/json.md from ``ANALYSIS_JSON_SCHEMA``, so the JSON reference cannot drift from what the tests validate.

The shape (keys, types, ranges, which keys are required) comes from the schema alone; the notes below add what a
schema cannot say (where a number comes from, when a key appears). A note on a path the schema does not have is an
error, so a renamed key cannot leave a stale note behind.

    python scripts/json_docs.py > docs/json.md     # regenerate after changing cbam_viz/analysis/schema.py
    python scripts/json_docs.py --check            # exit 1 when docs/json.md is not what the schema gives
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cbam_viz.analysis.schema import ANALYSIS_JSON_SCHEMA, JSON_SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "json.md"

# what an open object's keys are, by the object's own key (or its path, when the key alone is ambiguous)
KEY_NAMES = {
    "models": "<model>",
    "agreement": "<model>|<model>",
    "channel_attention": "<block>",
    "spatial_attention": "<block>",
    "metrics": "<metric>",
    "pointing.models.<model>.spatial": "<stage>",
    "blocks": "<block>",
    "deletion": "<order>",
    "insertion": "<order>",
    "maps": "<model>",
}
# the shapes of a ``oneOf``, by the path of the value that takes them
VARIANT_NAMES = {"models.<model>.interventions[]": ("result", "note")}

NOTES = {
    "schema_version": "Raised whenever the shape changes (2: `image.notes`; 3: `interventions` and `sweep`; "
    "4: `pointing`, `sanity`, `deletion_insertion`; 5: `view.cell_offset`, several randomised draws and other classes; "
    "6: `models` keyed by model id, each with its `family` and `title`).",
    "image": "The picture as the user sees it (EXIF applied).",
    "image.width": "Of the picture as the user sees it (EXIF applied).",
    "image.display_width": "Of the display image the maps are drawn on (longest side at most 1024).",
    "image.notes": "What decoding did, in plain words: `turned upright (EXIF orientation 6)`, "
    "`16-bit image scaled to 8 bit`, `first frame used`, ...",
    "view": "What the models saw: the whole picture resized, or the weights' evaluation centre crop.",
    "view.box": "`[left, top, right, bottom]` of the part of the image the model saw, as shares (0-1) of its width "
    "and height.",
    "view.note": "The same in plain words.",
    "method": "The CAM method.",
    "stage": "The stage whose output the CAM explains.",
    "weights.note": "One line: which weights answered and why.",
    "device": "`cpu` or `cuda:0`.",
    "models": "One entry per model asked for, keyed by model id, in the lineup's order: the architecture for the "
    "paper's models (resnet50, se_resnet50, cbam_resnet50), the card's id for a model card's (docs/own-models.md).",
    "models.<model>.family": "The model's architecture: resnet50, se_resnet50 or cbam_resnet50.",
    "models.<model>.title": "The model's name as the page shows it (a model card's title).",
    "models.<model>.weights": "One-line description of the model's weights.",
    "models.<model>.top5": "Most likely first.",
    "models.<model>.target": "The class the CAM explains: the model's own top-1, or the one class asked for.",
    "models.<model>.cam": "Statistics of the CAM on its native grid (feature-map cells), raw: ReLU'd, not min-max "
    "scaled, so models can be compared.",
    "models.<model>.channel_attention": "SE and CBAM: each block's channel gate `Mc` (`layerS.B`, e.g. `layer3.1`).",
    "models.<model>.spatial_attention": "CBAM: each block's spatial gate `Ms` on its native grid.",
    "models.<model>.metrics": "`target_prob`; for CBAM `cam_spatial_correlation` and `cam_spatial_top20_iou` (its CAM "
    "against the last spatial map of the CAM's stage); with `--faithfulness` (or `faithfulness=True`) grad-cam's "
    "ROAD scores `faithfulness_morf`, `faithfulness_lerf`, `faithfulness_road`. `null` where a number is undefined.",
    "models.<model>.view": "Only when this model saw the image differently from the top-level `view`.",
    "models.<model>.interventions": "With `interventions=[SPEC, ...]` (Python), `--intervene` (CLI) or `/intervene` "
    "(HTTP): one entry per SPEC, in the order asked.",
    "models.<model>.interventions[] (result).target": "The same class as the un-intervened analysis explains.",
    "models.<model>.interventions[] (result).target_prob_change": "Against this model's own `target_prob`.",
    "models.<model>.interventions[] (result).cam.correlation": "Pearson correlation with the un-intervened CAM; "
    "`null` when either map is constant.",
    "models.<model>.interventions[] (note)": "A model without the gate the SPEC names, while another chosen model "
    "has it: one line (`SE-ResNet-50 has no spatial gate ...`) so that a comparison still runs.",
    "models.<model>.sweep": "With `sweep` among the interventions (`/sweep`, `--intervene sweep`): each stage's "
    "gates set to `one` in turn.",
    "models.<model>.sweep.entries[].change": "Change of the target class's probability against `base_prob`.",
    "models.<model>.sweep.entries[].top1": "The class the model then predicts.",
    "agreement": "Each pair of models, keyed `resnet50|cbam_resnet50`: correlation and top-20 % IoU of their CAMs.",
    "pointing": "With a box (`--box`, `box=` on `/analyze`, the page's two clicks): the pointing game.",
    "pointing.region.box": "`[x0, y0, x1, y1]` in pixels of the displayed picture, edges included; a pixel counts "
    "as inside when its centre does.",
    "pointing.region.area_share": "The region's share of the pixels the model saw: the energy a map blind to the "
    "region would get.",
    "pointing.region.kind": "`mask` when a true object mask is used (the example shapes on the page, `mask_game`).",
    "pointing.models.<model>.cam.hit": "Does the CAM's peak (on the picture, via `map_to_image`) fall inside?",
    "pointing.models.<model>.cam.energy": "The share of the CAM's mass inside.",
    "pointing.models.<model>.spatial": "CBAM: each stage's last spatial map (keys `1`-`4`).",
    "pointing.models.<model>.blocks": "CBAM: every block's spatial map.",
    "sanity": "With `--sanity`, `/sanity` or the page's button: model-parameter randomisation and the random-logit "
    "test. Also carries `batchnorm` (`reset`: BatchNorm layers get their default init, running statistics included) "
    "and `grids` (`spearman` on the native grid, `ssim` on the model input).",
    "sanity.cascade_order": '`["fc", "layer4", "layer3", "layer2", "layer1", "stem"]`: randomised from the head down.',
    "sanity.models.<model>": "Also carries `seconds`, the time the checks took.",
    "sanity.models.<model>.cascading": "From the head down: `step` (e.g. `layer4`) and every layer `randomised` so "
    'far (`["fc", "layer4"]`).',
    "sanity.models.<model>.cascading[].spearman": "Rank correlation of the randomised model's CAM (ReLU'd, as shown) "
    "with the trained one, on the native grid; `null` when the map became flat (`cam_empty`).",
    "sanity.models.<model>.cascading[].spearman_abs": "The same on the absolute value of the signed (pre-ReLU) CAM; "
    "`null` for Score-CAM.",
    "sanity.models.<model>.cascading[].ssim": "SSIM on the model input's grid.",
    "sanity.models.<model>.independent": "One layer at a time from the trained weights (with `independent=True`, "
    "the CLI's `--sanity`, `/sanity`); entries as in `cascading`.",
    "sanity.models.<model>.random_logit": "The CAM of a random other class: `index`, `label`, `prob`, `spearman`, "
    "`spearman_abs`, `ssim`, `class_dependent` (false for EigenCAM, the same map for every class), `cam_empty`.",
    "deletion_insertion": "With `--deletion-insertion`, `/deletion_insertion` or the page's button: deletion and "
    "insertion curves by each model's CAM and by a random pixel order. Also carries `blur` (the blur's sigma as a "
    "share of the shorter input side) and `weights`.",
    "deletion_insertion.steps": "20 by default: `steps + 1` points.",
    "deletion_insertion.fractions": "`[0.0, 0.05, ..., 1.0]`: the share of pixels deleted or revealed at each point.",
    "deletion_insertion.deletion_fill": "`blur` (or `grey`).",
    "deletion_insertion.models.<model>.deletion": "`cam` (pixels in the CAM's order) and `random` (a seeded random "
    "order, the baseline): the target's probability at each point and the area under the curve (lower is better "
    "for deletion).",
    "deletion_insertion.models.<model>.insertion": "As `deletion`, revealing pixels on a blurred picture (higher is "
    "better).",
    "source": "CLI only: the input file.",
    "maps": "CLI only: where each model's maps went, `<stem>.npz:<key>` (read with "
    '`numpy.load("<stem>.npz")["<key>"]`) or `<stem>/<key>.npy`.',
}

INTRO = f"""# The analysis JSON

<!-- Generated by scripts/json_docs.py from ANALYSIS_JSON_SCHEMA (cbam_viz/analysis/schema.py); do not edit. -->

One analysis as JSON: `Analysis.to_json()` in Python, the CLI's `<stem>.json`, the first answer of the app's
`/analyze` (and of `/intervene`, `/sweep`, `/sanity`, `/deletion_insertion`), and the page's Export. The JSON Schema
(draft 2020-12) is `ANALYSIS_JSON_SCHEMA` in `cbam_viz/analysis/schema.py`; the tests validate every output against
it. This page is generated from it (`python scripts/json_docs.py > docs/json.md`). Schema version
{JSON_SCHEMA_VERSION}.

Numbers that are undefined (a correlation of a constant map, NaN) are `null`. Keys in angle brackets stand for any
key of that kind: `<model>` is a model id (`resnet50`, `se_resnet50` or `cbam_resnet50`, or a model card's id),
`<block>` is `layerS.B` (`layer3.1`), `[]` is every item of an array. "Closed" objects have no keys besides those
listed.
"""


def _key_name(path: str) -> str:
    return KEY_NAMES.get(path, KEY_NAMES.get(path.rsplit(".", 1)[-1], "<key>"))


def _type(schema: dict[str, Any]) -> str:
    """The value's kind in a few words: type, range, allowed values."""
    if "const" in schema:
        return f"always `{schema['const']}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if "oneOf" in schema:
        return f"one of {len(schema['oneOf'])} shapes"
    kinds = schema.get("type", "any")
    text = " or ".join(kinds) if isinstance(kinds, list) else kinds
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        text += f" {low} to {high}"
    elif low is not None:
        text += f" >= {low}"
    if text == "array":
        items = schema.get("items", {})
        count = schema.get("minItems"), schema.get("maxItems")
        size = f"{count[0]} " if count[0] is not None and count[0] == count[1] else ""
        if count[0] != count[1] and count[1] is not None:
            size = f"{count[0] or 0}-{count[1]} "
        inner = _type(items) if items and "properties" not in items and "oneOf" not in items else "object"
        text = f"array of {size}{inner}"
    if text == "object" and schema.get("additionalProperties") is False:
        text = "object, closed"
    return text


def _rows(schema: dict[str, Any], path: str, required: bool) -> list[tuple[str, str, bool]]:
    """(path, type, required) of ``schema`` and everything inside it, depth first."""
    found = [(path, _type(schema), required)] if path else []
    if "oneOf" in schema:
        names = VARIANT_NAMES.get(path, tuple(f"shape {n + 1}" for n in range(len(schema["oneOf"]))))
        for name, variant in zip(names, schema["oneOf"], strict=True):
            found += _rows(variant, f"{path} ({name})", True)
        return found
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        items = schema["items"]
        if "properties" in items or "oneOf" in items or "additionalProperties" in items:
            found += _rows(items, f"{path}[]", True)
        return found
    needed = schema.get("required", [])
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    prefix = f"{path}." if path else ""
    # declared keys in their order; keys only required (typed by additionalProperties) where the schema lists them
    order = [*properties, *(key for key in needed if key not in properties)]
    if any(key not in properties for key in needed):
        order = [*needed, *(key for key in properties if key not in needed)]
    for key in order:
        child = properties.get(key, extra if isinstance(extra, dict) else {})
        found += _rows(child, prefix + key, key in needed)
    if isinstance(extra, dict):
        found += _rows(extra, prefix + _key_name(path), False)
    return found


def render() -> str:
    """The whole of docs/json.md."""
    rows = _rows(ANALYSIS_JSON_SCHEMA, "", True)
    paths = {path for path, _, _ in rows}
    unknown = sorted(set(NOTES) - paths)
    if unknown:
        raise SystemExit(f"scripts/json_docs.py: notes on paths the schema does not have: {', '.join(unknown)}")
    lines = [INTRO]
    for top in ANALYSIS_JSON_SCHEMA["properties"]:
        lines += [f"## `{top}`", "", "| key | value | required | notes |", "|---|---|---|---|"]
        for path, kind, required in rows:
            if path == top or path.startswith((f"{top}.", f"{top}[")):
                notes = NOTES.get(path, "").replace("|", "\\|")
                key = path.replace("|", "\\|")
                lines.append(
                    f"| `{key}` | {kind.replace('|', chr(92) + '|')} | {'yes' if required else ''} | {notes} |"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/json.md from ANALYSIS_JSON_SCHEMA.")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/json.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if not args.check:
        sys.stdout.write(text)
        return 0
    if TARGET.exists() and TARGET.read_text(encoding="utf-8") == text:
        return 0
    print("docs/json.md is out of date: run python scripts/json_docs.py > docs/json.md", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
