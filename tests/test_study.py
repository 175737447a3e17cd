"""``cbam_viz.study``: a study's rows equal the single-picture analysis, runs resume, bad input is listed, not fatal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cbam_viz.checks.pointing import mask_game
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import CLASSES, render_sample
from cbam_viz.errors import CbamVizError
from cbam_viz.model.resnet import ARCHS
from cbam_viz.pipeline import analyze
from cbam_viz.study import sources
from cbam_viz.study.engine import run_study
from cbam_viz.vocab import STAGES
from tests.helpers import models as _models

ARCH_LIST = tuple(ARCHS)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo set of random 1/8-width models at 48 px (fast), in the real demo set's layout."""
    return _models.tiny_demo_set(tmp_path_factory.mktemp("weights"))


def _study(demo_root: Path, data: str | Path, out: Path, **options):
    options.setdefault("models", ARCH_LIST)
    options.setdefault("weights", "demo")
    return run_study(str(data), out, weights_dir=demo_root, device="cpu", progress=False, **options)


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "images.parquet").to_pylist()


def _write_shape(path: Path, index: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A held-out shape as a picture file; returns its mask."""
    sample = render_sample(HELDOUT_SEED, index, *size)
    Image.fromarray(sample.image).save(path)
    return sample.mask


def test_shapes_rows_equal_the_single_picture_analysis(demo_root: Path, tmp_path: Path) -> None:
    result = _study(demo_root, "shapes", tmp_path / "s", limit=5, batch_size=3)
    rows = _rows(tmp_path / "s")
    assert result.measured == 5 and len(rows) == 15 and result.summary["count"] == 5
    for index in range(3):
        sample = render_sample(HELDOUT_SEED, index, sources.SHAPES_SIZE)
        analysis = analyze(
            Image.fromarray(sample.image), weights="demo", weights_dir=demo_root, target=sample.label, view="crop"
        )
        pointing = mask_game(analysis, sample.mask).models
        for arch, model in analysis.models.items():
            (row,) = [r for r in rows if r["arch"] == arch and r["image_id"] == f"shapes-{HELDOUT_SEED}-{index:06d}"]
            assert row["label"] == sample.label and row["label_name"] == CLASSES[sample.label]
            assert row["target_prob"] == pytest.approx(model.target_prob, abs=1e-5)
            assert [CLASSES[i] for i in row["top5"]] == [label for label, _ in model.top5]
            assert np.allclose(row["top5_probs"], [p for _, p in model.top5], atol=1e-5)
            assert row["top1_correct"] == (model.top5[0][0] == CLASSES[sample.label])
            assert row["pointing"] == pointing[arch]["cam"]["hit"]
            assert row["energy"] == pytest.approx(pointing[arch]["cam"]["energy"], abs=1e-5)
            for stage in STAGES:
                spatial = pointing[arch]["spatial"].get(str(stage))
                if spatial is None:
                    assert row[f"spatial_energy_{stage}"] is None
                else:
                    assert row[f"spatial_energy_{stage}"] == pytest.approx(spatial["energy"], abs=1e-5)
                    assert row[f"spatial_pointing_{stage}"] == spatial["hit"]


def test_folder_with_boxes_equals_the_box_pointing_game(demo_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for folder in ("circle", "3", "Triangle"):
        (data / folder).mkdir(parents=True)
    _write_shape(data / "circle" / "a.png", 0, (64, 48))
    _write_shape(data / "3" / "b.jpg", 1, (40, 56))
    mask = _write_shape(data / "Triangle" / "c.png", 2, (50, 50))
    Image.fromarray(mask.astype(np.uint8) * 255).save(data / "Triangle" / "c.mask.png")
    (data / "boxes.csv").write_text(
        "image,x0,y0,x1,y1,class\ncircle/a.png,10,5,40,30,circle\nb.jpg,-5,4,30,70,\nb.jpg,1,1,5,5,ring\n"
    )
    _study(demo_root, data, tmp_path / "out", batch_size=4, view="whole")
    rows = _rows(tmp_path / "out")
    by_id = {(r["image_id"], r["arch"]): r for r in rows}
    assert {r["image_id"] for r in rows} == {"circle/a.png", "3/b.jpg", "Triangle/c.png"}
    assert {r["image_id"]: r["label"] for r in rows} == {"circle/a.png": 0, "3/b.jpg": 3, "Triangle/c.png": 2}
    assert by_id[("Triangle/c.png", "resnet50")]["region"] == "mask"
    assert "clipped" in by_id[("3/b.jpg", "resnet50")]["note"]  # the box reached outside the 40x56 picture
    for image_id, box in (("circle/a.png", (10, 5, 40, 30)), ("3/b.jpg", (-5, 4, 30, 70))):
        analysis = analyze(
            data / image_id,
            weights="demo",
            weights_dir=demo_root,
            target=by_id[(image_id, "resnet50")]["label"],
            box=box,
        )
        for arch, scored in analysis.pointing.models.items():
            row = by_id[(image_id, arch)]
            assert row["region"] == "box" and row["pointing"] == scored["cam"]["hit"]
            assert row["energy"] == pytest.approx(scored["cam"]["energy"], abs=1e-5)
            assert row["target_prob"] == pytest.approx(analysis.models[arch].target_prob, abs=1e-5)


def test_an_interrupted_study_continues_and_ends_with_the_same_table(demo_root: Path, tmp_path: Path) -> None:
    whole = _study(demo_root, "shapes", tmp_path / "whole", limit=7, shard_size=3, models=("resnet50",))
    assert whole.shards_run == 3
    parts = tmp_path / "parts"
    first = _study(demo_root, "shapes", parts, limit=7, shard_size=3, models=("resnet50",), stop_after=1)
    assert first.shards_run == 1 and not (parts / "summary.json").exists()
    assert sorted(p.name for p in (parts / "shards").glob("*.parquet")) == ["part-00000.parquet"]
    rest = _study(demo_root, "shapes", parts, limit=7, shard_size=3, models=("resnet50",))
    assert rest.shards_run == 2
    assert _rows(parts) == _rows(tmp_path / "whole")
    best = whole.summary["models"]["resnet50"]["maxboxacc_v2"]["best_threshold"]["50"]
    for row in _rows(parts):  # the IoU at the dataset's best threshold for IoU 50 %
        assert row["box_iou"] == pytest.approx(row["box_ious"][round(best * 100)])
    assert json.loads((parts / "summary.json").read_text())["models"] == whole.summary["models"]
    again = _study(demo_root, "shapes", parts, limit=7, shard_size=3, models=("resnet50",))
    assert again.shards_run == 0 and again.measured == 7  # a finished study is only summarised again
    with pytest.raises(CbamVizError, match=r"holds a different study \(limit 7 there, 8 now"):
        _study(demo_root, "shapes", parts, limit=8, shard_size=3, models=("resnet50",))


def test_bad_pictures_are_listed_and_skipped(demo_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "ring").mkdir(parents=True)
    _write_shape(data / "ring" / "good.png", 4)
    (data / "ring" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (data / "ring" / "empty.png").write_bytes(b"")
    (data / "ring" / "notes.txt").write_text("not a picture, not picked up")
    result = _study(demo_root, data, tmp_path / "out", models=("cbam_resnet50",))
    assert result.measured == 1 and result.skipped == 2 and result.summary["skipped"] == 2
    with (tmp_path / "out" / "skipped.csv").open() as handle:
        skipped = list(csv.reader(handle))
    assert skipped[0] == ["image_id", "reason"]
    assert sorted(row[0] for row in skipped[1:]) == ["ring/broken.jpg", "ring/empty.png"]
    assert all(row[1] and "\n" not in row[1] for row in skipped[1:])
    assert _rows(tmp_path / "out")[0]["region"] is None  # no box, no mask: accuracy only
    assert result.summary["models"]["cbam_resnet50"]["pointing"]["value"] is None


@pytest.mark.parametrize(
    ("layout", "options", "message"),
    [
        ({"nonsense": ["a.png"]}, {}, "class folder 'nonsense' matches no class"),
        ({"n01440764": ["a.png"]}, {}, "is a WordNet id, but it is none of the 10 classes"),
        ({"circle": ["a.png"], "ring": ["b.png", "c.png"]}, {"per_class": 2}, "--per-class 2 is more than"),
        ({"circle": ["a.png"]}, {"boxes": "image,x0,y0,x1,y1\nmissing.png,1,2,3,4\n"}, "names 1 picture"),
        ({"circle": ["a.png"]}, {"boxes": "image,x0,y0,x1,y1\ncircle/a.png,1,2,three,4\n"}, "boxes.csv line 2 is not"),
    ],
)
def test_dataset_mistakes_are_one_line_errors_before_any_picture(
    demo_root: Path, tmp_path: Path, layout: dict, options: dict, message: str
) -> None:
    data = tmp_path / "data"
    for folder, names in layout.items():
        (data / folder).mkdir(parents=True)
        for name in names:
            _write_shape(data / folder / name, 0)
    if "boxes" in options:
        (data / "boxes.csv").write_text(options.pop("boxes"))
    with pytest.raises(CbamVizError, match=message) as raised:
        _study(demo_root, data, tmp_path / "out", **options)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()  # refused before the study folder was even made


def test_class_folders_by_wordnet_id_index_and_name() -> None:
    imagenet = tuple(f"class {i}" for i in range(1000))
    assert sources.imagenet_wnids()[0] == "n01440764" and len(sources.imagenet_wnids()) == 1000
    assert sources.class_index("n01440764", imagenet) == 0
    assert sources.class_index("n15075141", imagenet) == 999
    assert sources.class_index("7", CLASSES) == 7 and sources.class_index("Ring", CLASSES) == CLASSES.index("ring")


def test_per_class_subsets_are_stratified_and_seeded(demo_root: Path) -> None:
    first = sources.shapes_items(CLASSES, None, 3)
    assert len(first) == 30 and all(sum(i.label == c for i in first) == 3 for c in range(len(CLASSES)))
    assert first == sources.shapes_items(CLASSES, None, 3)
    with pytest.raises(CbamVizError, match="needs the demo weights"):
        sources.shapes_items(tuple(f"c{i}" for i in range(10)), 5, None)


@pytest.mark.slow
def test_shapes_accuracy_and_pointing_equal_the_demo_evaluation(tmp_path: Path) -> None:
    """On the bundled demo set: the study's top-1 and pointing game are ``train-demo --eval-only``'s numbers."""
    from cbam_viz.demo.evaluate import _generator_sample, evaluate

    count = 6
    result = run_study("shapes", tmp_path / "s", models=ARCH_LIST, limit=count, device="cpu", progress=False)
    expected = evaluate(_generator_sample(HELDOUT_SEED, sources.SHAPES_SIZE), count, "demo", progress=False)
    for arch in ARCH_LIST:
        assert result.summary["models"][arch]["top1"]["value"] == pytest.approx(expected[arch]["top1"])
        assert result.summary["models"][arch]["pointing"]["value"] == pytest.approx(expected[arch]["pointing_game"])


def test_worker_processes_give_the_same_table(demo_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "star").mkdir(parents=True)
    for index in range(5):
        _write_shape(data / "star" / f"{index}.png", index)
    (data / "star" / "bad.gif").write_bytes(b"GIF89a broken")
    inline = _study(demo_root, data, tmp_path / "inline", models=("se_resnet50",), batch_size=2, shard_size=4)
    pooled = _study(
        demo_root, data, tmp_path / "pooled", models=("se_resnet50",), batch_size=2, shard_size=4, workers=2
    )
    assert inline.skipped == pooled.skipped == 1 and pooled.measured == 5
    assert _rows(tmp_path / "inline") == _rows(tmp_path / "pooled")
    assert (tmp_path / "inline" / "skipped.csv").read_text() == (tmp_path / "pooled" / "skipped.csv").read_text()


def test_imagenet_val_as_kaggle_ships_it(tmp_path: Path) -> None:
    imagenet = tuple(f"class {i}" for i in range(1000))
    val = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True)
    for number in (1, 2, 3):
        _write_shape(val / f"ILSVRC2012_val_{number:08d}.JPEG", number)
    solution = tmp_path / "LOC_val_solution.csv"
    solution.write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n01751748 10 20 30 40 n01751748 1 2 3 4 \n"
        "ILSVRC2012_val_00000002,n15075141 0 0 63 47\n"
        "ILSVRC2012_val_00000003,n01440764 5 5 20 20\n"
        "ILSVRC2012_val_00049999,n01440764 5 5 20 20\n"  # not in this folder: a subset of val is fine
    )
    items = sources.list_items(str(val), imagenet, limit=None, per_class=None)
    assert [(i.image_id, i.label) for i in items] == [  # by class, then name
        ("ILSVRC2012_val_00000003.JPEG", 0),
        ("ILSVRC2012_val_00000001.JPEG", 65),
        ("ILSVRC2012_val_00000002.JPEG", 999),
    ]
    assert items[1].boxes == ((10.0, 20.0, 30.0, 40.0), (1.0, 2.0, 3.0, 4.0))
    assert len(sources.list_items(str(val), imagenet, limit=None, per_class=1)) == 3
    with pytest.raises(CbamVizError, match="labels ImageNet's 1000 classes; these weights have 10"):
        sources.list_items(str(val), CLASSES, limit=None, per_class=None)
    _write_shape(val / "ILSVRC2012_val_00000004.JPEG", 4)
    with pytest.raises(CbamVizError, match="names no class for 1 picture"):
        sources.list_items(str(val), imagenet, limit=None, per_class=None)
    solution.write_text("ImageId,PredictionString\nILSVRC2012_val_00000004,n01440764 5 5\n")
    with pytest.raises(CbamVizError, match="line 2 is not ImageId"):
        sources.list_items(str(val), imagenet, limit=None, per_class=None)


def test_hostile_files_never_stop_a_study(demo_root: Path, tmp_path: Path) -> None:
    """Every hostile file of the imaging tests in one class folder: each decodable one is measured, each other one is
    listed in skipped.csv with its one-line reason (the decoder's own), and the study finishes."""
    from tests.helpers import hostile

    data = tmp_path / "data"
    written = hostile.write_hostile_files(data / "circle")
    picked = {key: p for key, p in written.items() if p.suffix.lower() in sources.IMAGE_SUFFIXES}
    result = _study(demo_root, data, tmp_path / "out", models=("cbam_resnet50",), batch_size=8)
    with (tmp_path / "out" / "skipped.csv").open() as handle:
        reasons = {row["image_id"]: row["reason"] for row in csv.DictReader(handle)}
    measured = {row["image_id"] for row in _rows(tmp_path / "out")}
    assert result.measured + result.skipped == len(picked) and result.skipped >= 1
    for key, path in picked.items():
        image_id = f"circle/{path.name}"
        if hostile.EXPECTED[key].decodes:
            assert image_id in measured, key
        else:
            assert hostile.EXPECTED[key].error.lower() in reasons[image_id].lower(), (key, reasons.get(image_id))


def test_a_study_folder_is_only_ever_this_study(tmp_path: Path) -> None:
    from cbam_viz.study.engine import STUDY_FILE, StudyOptions, claim_folder

    options = StudyOptions("shapes", ("resnet50",), "demo", limit=3)
    items = sources.shapes_items(CLASSES, 3, None)
    claim_folder(tmp_path / "s", options, items)
    claim_folder(tmp_path / "s", options, items)  # the same study: continues
    written = json.loads((tmp_path / "s" / STUDY_FILE).read_text())
    assert written.pop("sweep") is False
    (tmp_path / "s" / STUDY_FILE).write_text(json.dumps(written))  # as studies made before --sweep existed
    claim_folder(tmp_path / "s", options, items)  # still this study: it had no sweep
    with pytest.raises(CbamVizError, match=r"different study \(sweep False there, True now\)"):
        claim_folder(tmp_path / "s", StudyOptions("shapes", ("resnet50",), "demo", limit=3, sweep=True), items)
    with pytest.raises(CbamVizError, match=r"different study \(method 'gradcam' there, 'layercam' now\)"):
        claim_folder(tmp_path / "s", StudyOptions("shapes", ("resnet50",), "demo", method="layercam", limit=3), items)
    with pytest.raises(CbamVizError, match="different study"):  # the same options, other pictures
        claim_folder(tmp_path / "s", options, sources.shapes_items(CLASSES, 4, None)[1:])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.pdf").write_bytes(b"%PDF")
    with pytest.raises(CbamVizError, match="is not empty and holds no study"):
        claim_folder(tmp_path / "other", options, items)
    (tmp_path / "s" / STUDY_FILE).write_text("{broken")
    with pytest.raises(CbamVizError, match="is unreadable"):
        claim_folder(tmp_path / "s", options, items)


def test_pascal_voc_annotations_beside_the_pictures(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "star").mkdir(parents=True)
    _write_shape(data / "star" / "a.png", 0)
    _write_shape(data / "star" / "b.png", 1)
    _write_shape(data / "star" / "c.png", 2)
    (data / "star" / "a.xml").write_text(
        "<annotation><object><name>Star</name><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>30</xmax><ymax>40</ymax>"
        "</bndbox></object><object><name>person</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
        "<ymax>9</ymax></bndbox></object><object><name>5</name><bndbox><xmin>50</xmin><ymin>10</ymin>"
        "<xmax>60</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    (data / "star" / "b.xml").write_text("<annotation><object><name>star</name><bndbox><xmin>3</xmin>")
    (data / "star" / "c.xml").write_text("<html></html>")
    items = {item.image_id: item for item in sources.list_items(str(data), CLASSES, limit=None, per_class=None)}
    assert sources.load(items["star/a.png"]).boxes == ((3.0, 4.0, 30.0, 40.0), (50.0, 10.0, 60.0, 20.0))
    broken = sources.load(items["star/b.png"])
    assert broken.boxes == () and "boxes of b.xml not used" in broken.notes[0]
    assert "not <annotation>" in sources.load(items["star/c.png"]).notes[0]


@pytest.mark.parametrize("method", ["gradcam++", "eigencam"])
def test_other_cam_methods_equal_the_single_picture_analysis(demo_root: Path, tmp_path: Path, method: str) -> None:
    """A method with gradients and one without (EigenCAM: no backward in the batched pass)."""
    _study(
        demo_root, "shapes", tmp_path / "s", limit=2, batch_size=2, method=method, stage=3, models=("cbam_resnet50",)
    )
    rows = _rows(tmp_path / "s")
    for index, row in enumerate(rows):
        sample = render_sample(HELDOUT_SEED, index, sources.SHAPES_SIZE)
        analysis = analyze(
            Image.fromarray(sample.image),
            weights="demo",
            weights_dir=demo_root,
            models=("cbam_resnet50",),
            target=sample.label,
            view="crop",
            method=method,
            stage=3,
        )
        scored = mask_game(analysis, sample.mask).models["cbam_resnet50"]["cam"]
        assert row["pointing"] == scored["hit"] and row["energy"] == pytest.approx(scored["energy"], abs=1e-5)


def test_the_gates_off_sweep_over_the_dataset_equals_the_intervention_per_picture(
    demo_root: Path, tmp_path: Path
) -> None:
    """Each stage's gates set to ``one``: the study's top-1 and mean true-class probability are those of the same
    intervention (``intervene.replacements`` through ``capture_pass``) run on each picture by hand."""
    from cbam_viz.analysis.capture import capture_pass
    from cbam_viz.analysis.intervene import replacements
    from cbam_viz.analysis.metrics import softmax
    from cbam_viz.analysis.models import get_models
    from cbam_viz.analysis.options import Intervention
    from cbam_viz.imaging.decode import decode_image
    from cbam_viz.imaging.view import prepare_input

    count = 5
    result = _study(demo_root, "shapes", tmp_path / "s", limit=count, batch_size=3, sweep=True)
    assert "sweep" not in result.summary["models"]["resnet50"]  # no gates to set
    assert set(result.summary["models"]["se_resnet50"]["sweep"]["2"]) == {"channel"}
    models = get_models(ARCH_LIST, "demo", "cpu", weights_dir=demo_root).models
    samples = [render_sample(HELDOUT_SEED, index, sources.SHAPES_SIZE) for index in range(count)]
    for arch, gate in (("se_resnet50", "channel"), ("cbam_resnet50", "channel"), ("cbam_resnet50", "spatial")):
        model, swept = models[arch], result.summary["models"][arch]["sweep"]
        replace = replacements(Intervention.parse(f"layer2:{gate}=one"), model)
        hits, probabilities, base = [], [], []
        for sample in samples:
            picture = decode_image(Image.fromarray(sample.image))
            tensor, _ = prepare_input(picture, model.weights_info.preprocess, "crop")
            for store, how in ((base, None), (probabilities, replace)):
                logits = capture_pass(model, tensor, target=sample.label, gradients=False, replace=how).logits
                store.append(float(softmax(logits)[sample.label]))
                if how is not None:
                    hits.append(int(logits.argmax()) == sample.label)
        assert swept["images"] == count and swept["how"] == "one"
        assert swept["2"][gate]["spec"] == f"layer2:{gate}=one"
        assert swept["2"][gate]["top1"] == pytest.approx(np.mean(hits), abs=1e-5)
        assert swept["2"][gate]["mean_probability"] == pytest.approx(np.mean(probabilities), abs=1e-5)
        assert swept["base"]["mean_probability"] == pytest.approx(np.mean(base), abs=1e-5)
        assert swept["base"]["top1"] == result.summary["models"][arch]["top1"]["value"]
        assert abs(np.mean(probabilities) - np.mean(base)) > 1e-6  # the gates set to one change the answer
        assert swept["2"][gate]["probability_change"] == pytest.approx(np.mean(probabilities) - np.mean(base), abs=1e-5)
    with pytest.raises(CbamVizError, match=r"holds a different study \(sweep True there, False now"):
        _study(demo_root, "shapes", tmp_path / "s", limit=count, batch_size=3)
    assert (tmp_path / "s" / "shards" / "part-00000.sweep.json").is_file()
    drawn = {path.name for path in (tmp_path / "s").glob("figure-*.png")}  # finish drew a figure per section
    assert drawn == {"figure-accuracy.png", "figure-localisation.png", "figure-atlas.png", "figure-excitation.png"}


def _fake_devkit(devkit: Path, truth: str) -> None:
    """An ILSVRC2012 devkit as its tarball unpacks: ``data/meta.mat`` in the real structure (a struct array
    ``synsets``; ILSVRC2012_ID 1-1000 in the devkit's own order, not the sorted one, then a parent synset) and
    ``data/ILSVRC2012_validation_ground_truth.txt``."""
    from scipy.io import savemat

    wnids = sources.imagenet_wnids()
    rows = [(number, wnids[1000 - number], f"class {number}", 0) for number in range(1, 1001)]
    rows.append((1001, "n00001740", "entity", 3))
    fields = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    synsets = np.zeros((len(rows), 1), dtype=fields)
    for i, (number, wnid, words, children) in enumerate(rows):
        synsets[i, 0] = (np.array([[number]], dtype=np.uint16), wnid, words, np.array([[children]], dtype=np.uint16))
    (devkit / "data").mkdir(parents=True)
    savemat(devkit / "data" / "meta.mat", {"synsets": synsets})
    (devkit / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text(truth)


def test_imagenet_val_with_the_ilsvrc2012_devkit(tmp_path: Path) -> None:
    imagenet = tuple(f"class {i}" for i in range(1000))
    wnids = sources.imagenet_wnids()
    val = tmp_path / "val"
    val.mkdir()
    for number in (1, 2, 3):
        _write_shape(val / f"ILSVRC2012_val_{number:08d}.JPEG", number)
    devkit = tmp_path / "ILSVRC2012_devkit_t12"
    _fake_devkit(devkit, "1\n1000\n500\n")
    (val / "ILSVRC2012_val_00000002.xml").write_text(  # as ILSVRC2012_bbox_val_v3.tgz has them
        f"<annotation><filename>ILSVRC2012_val_00000002</filename><object><name>{wnids[0]}</name><bndbox>"
        "<xmin>5</xmin><ymin>6</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object><object><name>n01443537</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>"
    )
    items = sources.list_items(str(val), imagenet, limit=None, per_class=None)
    # ID 1 is wnids[999] in this devkit, ID 1000 wnids[0], ID 500 wnids[500]: by class, then name
    assert [(i.image_id, i.label) for i in items] == [
        ("ILSVRC2012_val_00000002.JPEG", 0),
        ("ILSVRC2012_val_00000003.JPEG", 500),
        ("ILSVRC2012_val_00000001.JPEG", 999),
    ]
    assert sources.load(items[0]).boxes == ((5.0, 6.0, 30.0, 40.0),)  # only the true class's object
    assert sources.load(items[1]).boxes == ()
    with pytest.raises(
        CbamVizError, match="the ILSVRC2012 devkit labels ImageNet's 1000 classes; these weights have 10"
    ):
        sources.list_items(str(val), CLASSES, limit=None, per_class=None)
    _write_shape(val / "ILSVRC2012_val_00000004.JPEG", 4)
    with pytest.raises(CbamVizError, match=r"has 3 lines, but 'ILSVRC2012_val_00000004.JPEG' is picture 4"):
        sources.list_items(str(val), imagenet, limit=None, per_class=None)
    (devkit / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n1001\n500\n7\n")
    with pytest.raises(CbamVizError, match="line 2 is not an ILSVRC2012_ID from 1 to 1000: '1001'"):
        sources.list_items(str(val), imagenet, limit=None, per_class=None)
    (devkit / "data" / "meta.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(CbamVizError, match="is not the devkit's meta.mat") as raised:
        sources.list_items(str(val), imagenet, limit=None, per_class=None)
    (devkit / "data" / "meta.mat").unlink()
    with pytest.raises(CbamVizError, match=r"ILSVRC2012_devkit_t12 has no data/meta.mat") as missing:
        sources.list_items(str(val), imagenet, limit=None, per_class=None)
    assert "\n" not in str(raised.value) + str(missing.value)


def test_a_second_run_into_a_folder_in_use_is_refused_in_one_line(demo_root: Path, tmp_path: Path) -> None:
    """Two terminals, one --out: the second run is refused while the first writes, and continues it afterwards."""
    from cbam_viz.study.engine import open_study

    def plan():
        return open_study(
            "shapes", tmp_path / "s", models=("resnet50",), weights="demo", weights_dir=demo_root, device="cpu", limit=4
        )

    first = plan()
    with pytest.raises(CbamVizError, match="^another study is writing into .*: wait for it to end") as refused:
        plan()
    assert "\n" not in str(refused.value)
    first.lock.close()  # the first run ended
    assert plan().lock is not None
    result = _study(demo_root, "shapes", tmp_path / "s", models=("resnet50",), limit=4)
    assert result.measured == 4 and _study(demo_root, "shapes", tmp_path / "s", models=("resnet50",), limit=4)


def test_a_gpu_batch_is_what_its_free_memory_holds_and_the_cpu_keeps_sixteen(demo_root: Path, tmp_path: Path) -> None:
    from cbam_viz.study import engine

    assert engine.gpu_batch_size(8 * 2**30, 100 * 2**20) == 49  # 60 % of 8 GiB in 100 MiB images
    assert engine.gpu_batch_size(10 * 2**20, 100 * 2**20) == 1
    assert engine.gpu_batch_size(80 * 2**30, 2**20) == engine.MAX_GPU_BATCH
    plan = engine.open_study(
        "shapes", tmp_path / "s", models=ARCH_LIST, weights="demo", weights_dir=demo_root, device="cpu", limit=20
    )
    assert plan.batch_note == "" and [len(indices) for _, indices in plan.batches] == [16, 4]

    calls: list[str] = []

    class Gpu:  # torch.cuda as the probe reads it: 2 images took 100 MiB above what was allocated before
        def synchronize(self) -> None:
            calls.append("sync")

        def reset_peak_memory_stats(self) -> None:
            calls.append("reset")

        def memory_allocated(self) -> int:
            return 7

        def max_memory_allocated(self) -> int:
            calls.append("peak")
            return 7 + 100 * 2**20

        def mem_get_info(self) -> tuple[int, int]:
            return 2**30, 2 * 2**30

    preprocesses = plan.preprocesses
    size, note = engine.probe_batch_size(
        plan.items, plan.model_set.models, preprocesses, "crop", method="gradcam", stage=4,
        categories=plan.categories, sweep=True, memory=Gpu(),
    )  # fmt: skip
    assert size == int(2**30 * 0.6) // (50 * 2**20) == 12
    assert calls == ["sync", "reset", "sync", "peak"]
    assert note.startswith("batch size 12, chosen by the GPU's free memory (1.0 GiB free, about 50 MiB per image)")
