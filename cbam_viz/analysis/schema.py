"""The JSON Schema of ``Analysis.to_json()``: the one written description of the document's shape.

``JSON_SCHEMA_VERSION`` goes up whenever a field is added or changes meaning; docs/json.md is generated from this
schema, and tests validate real documents against it. Method and view names come from ``vocab``.
"""

from __future__ import annotations

from cbam_viz.vocab import ARCH_ORDER, CAM_METHODS, VIEWS

# 2: image.notes; 3: models.<arch>.interventions and .sweep; 4: pointing, sanity, curves; 5: view.cell_offset, the
# sanity checks over several randomised networks (draws, spread) and several random other classes (classes, spread);
# 6: models keyed by model id (a model card's ids, or the architectures), each with its family and title
JSON_SCHEMA_VERSION = 6


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STATS = {"mean": _NUMBER_OR_NULL, "min": _NUMBER_OR_NULL, "max": _NUMBER_OR_NULL}
_VIEW_SCHEMA = {
    "type": "object",
    "required": ["mode", "input_width", "input_height", "box", "note"],
    "additionalProperties": False,
    "properties": {
        "mode": {"enum": list(VIEWS)},
        "input_width": {"type": "integer", "minimum": 1},
        "input_height": {"type": "integer", "minimum": 1},
        "box": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "note": {"type": "string"},
        # where cell j of a stage lies: input pixel cell_offset + j * stride (0, or 2 for the Caffe stem pool)
        "cell_offset": {"type": "number"},
    },
}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
_CHANGE = {"type": ["number", "null"], "minimum": -1, "maximum": 1}
# one intervention (an ``options.Intervention`` spec) in one model: its top-5, the target (the analysis's own)
# and the CAM after it
_INTERVENTION_SCHEMA = {
    "type": "object",
    "required": ["spec", "top5", "target", "target_prob", "target_prob_change", "cam"],
    "additionalProperties": False,
    "properties": {
        "spec": {"type": "string"},
        "top5": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "label", "prob"],
                "additionalProperties": False,
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "label": {"type": "string"},
                    "prob": _PROBABILITY,
                },
            },
        },
        "target": {
            "type": "object",
            "required": ["index", "label"],
            "additionalProperties": False,
            "properties": {"index": {"type": "integer", "minimum": 0}, "label": {"type": "string"}},
        },
        "target_prob": _PROBABILITY,
        "target_prob_change": _CHANGE,
        "cam": {
            "type": "object",
            "required": ["height", "width", "mean", "min", "max", "correlation"],
            "additionalProperties": False,
            "properties": {
                "height": {"type": "integer", "minimum": 1},
                "width": {"type": "integer", "minimum": 1},
                **_STATS,
                "correlation": _NUMBER_OR_NULL,  # Pearson, with the un-intervened CAM; null when either is constant
            },
        },
    },
}
# a spec this model has no gate for, while another chosen model has it: one line instead of a result
_INTERVENTION_NOTE_SCHEMA = {
    "type": "object",
    "required": ["spec", "note"],
    "additionalProperties": False,
    "properties": {"spec": {"type": "string"}, "note": {"type": "string"}},
}
_SWEEP_SCHEMA = {
    "type": "object",
    "required": ["target_index", "base_prob", "base_top1", "entries"],
    "additionalProperties": False,
    "properties": {
        "target_index": {"type": "integer", "minimum": 0},
        "base_prob": _PROBABILITY,
        "base_top1": {"type": "integer", "minimum": 0},
        "entries": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["stage", "gate", "spec", "target_prob", "change", "top1"],
                "additionalProperties": False,
                "properties": {
                    "stage": {"type": "integer", "minimum": 1, "maximum": 4},
                    "gate": {"enum": ["channel", "spatial"]},
                    "spec": {"type": "string"},
                    "target_prob": _PROBABILITY,
                    "change": _CHANGE,
                    "top1": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}
_MODEL_SCHEMA = {
    "type": "object",
    "required": [
        "family",
        "title",
        "weights",
        "top5",
        "target",
        "cam",
        "channel_attention",
        "spatial_attention",
        "metrics",
    ],
    "additionalProperties": False,
    "properties": {
        "family": {"enum": list(ARCH_ORDER)},  # the architecture; the model's key is its id
        "title": {"type": "string"},
        "weights": {"type": "string"},
        "top5": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5,
            "items": {
                "type": "object",
                "required": ["label", "prob"],
                "additionalProperties": False,
                "properties": {"label": {"type": "string"}, "prob": _PROBABILITY},
            },
        },
        "target": {
            "type": "object",
            "required": ["index", "label", "prob"],
            "additionalProperties": False,
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "label": {"type": "string"},
                "prob": _PROBABILITY,
            },
        },
        "cam": {
            "type": "object",
            "required": ["stage", "height", "width", "mean", "min", "max"],
            "additionalProperties": False,
            "properties": {
                "stage": {"type": "integer", "minimum": 1, "maximum": 4},
                "height": {"type": "integer", "minimum": 1},
                "width": {"type": "integer", "minimum": 1},
                **_STATS,
            },
        },
        "channel_attention": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["channels", "mean", "min", "max"],
                "additionalProperties": False,
                "properties": {"channels": {"type": "integer", "minimum": 1}, **_STATS},
            },
        },
        "spatial_attention": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["height", "width", "mean", "min", "max"],
                "additionalProperties": False,
                "properties": {
                    "height": {"type": "integer", "minimum": 1},
                    "width": {"type": "integer", "minimum": 1},
                    **_STATS,
                },
            },
        },
        "metrics": {"type": "object", "required": ["target_prob"], "additionalProperties": _NUMBER_OR_NULL},
        "view": _VIEW_SCHEMA,
        "interventions": {"type": "array", "items": {"oneOf": [_INTERVENTION_SCHEMA, _INTERVENTION_NOTE_SCHEMA]}},
        "sweep": _SWEEP_SCHEMA,
    },
}
_HIT = {
    "type": "object",
    "required": ["hit", "energy"],
    "additionalProperties": False,
    "properties": {"hit": {"type": ["boolean", "null"]}, "energy": _NUMBER_OR_NULL},
}
# the pointing game on a box (checks.pointing.box_game): does each map's peak fall in it, which share of its
# mass lies there
_POINTING_SCHEMA = {
    "type": "object",
    "required": ["region", "models"],
    "additionalProperties": False,
    "properties": {
        "region": {
            "type": "object",
            "required": ["kind", "area_share"],
            "properties": {
                "kind": {"enum": ["box", "mask"]},
                "box": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
                "area_share": _NUMBER_OR_NULL,
            },
        },
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["cam", "spatial", "blocks"],
                "additionalProperties": False,
                "properties": {
                    "cam": _HIT,
                    "spatial": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["block", "hit", "energy"],
                            "properties": {"block": {"type": "string"}, **_HIT["properties"]},
                        },
                    },
                    "blocks": {"type": "object", "additionalProperties": _HIT},
                },
            },
        },
    },
}
_TARGET = {
    "type": "object",
    "required": ["index", "label", "prob"],
    "properties": {"index": {"type": "integer"}, "label": {"type": "string"}, "prob": _NUMBER_OR_NULL},
}
_SPREAD = {  # one number over the draws (randomised networks) or the random classes: sd null below two values
    "type": "object",
    "required": ["mean", "sd", "min", "max", "finite", "values"],
    "additionalProperties": False,
    "properties": {
        "mean": _NUMBER_OR_NULL,
        "sd": _NUMBER_OR_NULL,
        "min": _NUMBER_OR_NULL,
        "max": _NUMBER_OR_NULL,
        "finite": {"type": "integer", "minimum": 0},
        "values": {"type": "array", "items": _NUMBER_OR_NULL},
    },
}
_SPREADS = {
    "type": "object",
    "required": ["spearman", "spearman_abs", "ssim"],
    "additionalProperties": False,
    "properties": {"spearman": _SPREAD, "spearman_abs": _SPREAD, "ssim": _SPREAD},
}
# one randomisation step: means over the draws; cam_empty is draw 0's map (the one drawn), empty_share over draws
_COMPARISON = {
    "type": "object",
    "required": [
        "step",
        "randomised",
        "draws",
        "spearman",
        "spearman_abs",
        "ssim",
        "target_prob",
        "cam_empty",
        "empty_share",
        "spread",
    ],
    "additionalProperties": False,
    "properties": {
        "step": {"type": "string"},
        "randomised": {"type": "array", "items": {"type": "string"}},
        "draws": {"type": "integer", "minimum": 1},
        "spearman": _NUMBER_OR_NULL,
        "spearman_abs": _NUMBER_OR_NULL,
        "ssim": _NUMBER_OR_NULL,
        "target_prob": _NUMBER_OR_NULL,
        "cam_empty": {"type": "boolean"},
        "empty_share": {"type": "number", "minimum": 0, "maximum": 1},
        "spread": _SPREADS,
    },
}
_OTHER_CLASS = {
    "type": "object",
    "required": ["index", "label", "prob", "spearman", "spearman_abs", "ssim", "cam_empty"],
    "additionalProperties": False,
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "label": {"type": "string"},
        "prob": _NUMBER_OR_NULL,
        "spearman": _NUMBER_OR_NULL,
        "spearman_abs": _NUMBER_OR_NULL,
        "ssim": _NUMBER_OR_NULL,
        "cam_empty": {"type": "boolean"},
    },
}
# random other classes: index/label/prob/cam_empty of the first (the map drawn); the numbers are means over classes
_RANDOM_LOGIT = {
    "type": "object",
    "required": ["index", "label", "prob", "count", "spearman", "spearman_abs", "ssim", "class_dependent", "classes"],
    "additionalProperties": False,
    "properties": {
        **_OTHER_CLASS["properties"],
        "count": {"type": "integer", "minimum": 1},
        "class_dependent": {"type": "boolean"},
        "classes": {"type": "array", "minItems": 1, "items": _OTHER_CLASS},
        "spread": _SPREADS,
    },
}
# sanity.SanityReport.to_json(): cascading and independent randomisation, the random-logit test (/sanity, --sanity)
_SANITY_SCHEMA = {
    "type": "object",
    "required": ["method", "stage", "seed", "weights", "cascade_order", "draws", "other_classes", "seeds", "models"],
    "properties": {
        "draws": {"type": "integer", "minimum": 1},
        "other_classes": {"type": "integer", "minimum": 0},
        "seeds": {"type": "string"},
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["target", "draws", "cascading"],
                "properties": {
                    "target": _TARGET,
                    "draws": {"type": "integer", "minimum": 1},
                    "cascading": {"type": "array", "items": _COMPARISON},
                    "independent": {"type": "array", "items": _COMPARISON},
                    "random_logit": {"oneOf": [_RANDOM_LOGIT, {"type": "null"}]},
                },
            },
        },
    },
}
_CURVE = {
    "type": "object",
    "required": ["probs", "auc"],
    "properties": {"probs": {"type": "array", "items": _NUMBER_OR_NULL}, "auc": _NUMBER_OR_NULL},
}
# sanity.CurvesReport.to_json(): deletion and insertion by each model's CAM and by a random order
_CURVES_SCHEMA = {
    "type": "object",
    "required": ["steps", "fractions", "seed", "deletion_fill", "models"],
    "properties": {
        "fractions": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["target", "deletion", "insertion"],
                "properties": {
                    "target": _TARGET,
                    "deletion": {"type": "object", "required": ["cam"], "additionalProperties": _CURVE},
                    "insertion": {"type": "object", "required": ["cam"], "additionalProperties": _CURVE},
                },
            },
        },
    },
}
# JSON Schema (draft 2020-12) of ``Analysis.to_json()``; the CLI adds "source" and "maps" (see cli.analyze), and
# "sanity" and "deletion_insertion" when asked for (also the answers of the app's /sanity and /deletion_insertion).
ANALYSIS_JSON_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cbam_viz analysis",
    "type": "object",
    "required": ["schema_version", "image", "view", "method", "stage", "weights", "device", "models", "agreement"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": JSON_SCHEMA_VERSION},
        "image": {
            "type": "object",
            "required": ["width", "height", "display_width", "display_height", "notes"],
            "additionalProperties": False,
            "properties": {
                **{
                    key: {"type": "integer", "minimum": 1}
                    for key in ("width", "height", "display_width", "display_height")
                },
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "view": _VIEW_SCHEMA,
        "method": {"enum": list(CAM_METHODS)},
        "stage": {"type": "integer", "minimum": 1, "maximum": 4},
        "weights": {
            "type": "object",
            "required": ["set", "note"],
            "additionalProperties": False,
            "properties": {"set": {"type": "string"}, "note": {"type": "string"}},
        },
        "device": {"type": "string"},
        "models": {"type": "object", "minProperties": 1, "additionalProperties": _MODEL_SCHEMA},
        "agreement": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["cam_correlation", "top20_iou"],
                "additionalProperties": False,
                "properties": {"cam_correlation": _NUMBER_OR_NULL, "top20_iou": _NUMBER_OR_NULL},
            },
        },
        "pointing": _POINTING_SCHEMA,
        "sanity": _SANITY_SCHEMA,
        "deletion_insertion": _CURVES_SCHEMA,
        "source": {"type": "string"},
        "maps": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}
