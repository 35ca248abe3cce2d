"""pq_compute (panopticapi drop-in): parity with hotcoco, the real COCO sample, errors, CLI, decoders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nerfseg import evaluation
from nerfseg.evaluation.metrics import frame as frame_mod
from nerfseg.evaluation.metrics.frame import read_panoptic_ids
from nerfseg.evaluation.pq_cli import pq_compute_command
from nerfseg.evaluation.pq_compute import format_table, pq_compute
from nerfseg.errors import InputError
from nerfseg.io import id2rgb, read_panoptic_png, write_png
from tests.evaluation.test_metrics_panoptic import assert_parity, hotcoco_pq, make_coco_case

COCO_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "coco_panoptic_sample"  # real COCO GT, see its README


def test_exported_from_the_package():
    assert evaluation.pq_compute is pq_compute


@pytest.mark.parametrize("workers", [1, 2])
def test_parity_with_hotcoco(tmp_path, workers):
    case = make_coco_case(tmp_path, n_images=30, seed=20 + workers)
    ours = pq_compute(case["gt_json"], case["pred_json"], workers=workers)  # folders default to JSON minus .json
    assert_parity(ours, hotcoco_pq(case["gt_json"], case["pred_json"]), panopticapi_shape=True)


def test_explicit_folders_and_extra_predictions(tmp_path):
    case = make_coco_case(tmp_path / "a", n_images=6, seed=5)
    shutil.move(tmp_path / "a" / "pred", tmp_path / "elsewhere")
    data = json.loads(Path(case["pred_json"]).read_text())
    data["annotations"].append({"image_id": 999, "file_name": "missing.png", "segments_info": []})  # ignored
    Path(case["pred_json"]).write_text(json.dumps(data))
    ours = pq_compute(case["gt_json"], case["pred_json"], pred_folder=tmp_path / "elsewhere", workers=2)
    hot = hotcoco_pq(case["gt_json"], case["pred_json"], pred_folder=tmp_path / "elsewhere")
    assert_parity(ours, hot, panopticapi_shape=True)


def _perturb_coco(src: Path, dst: Path) -> tuple[Path, Path]:
    """Copy the real COCO sample as GT and write a perturbed prediction: shifted, merged, class-swapped,
    dropped and spurious segments, some void."""
    gt_json = json.loads((src / "panoptic_examples.json").read_text())
    (dst / "gt").mkdir(parents=True)
    (dst / "pred").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pred_anns = []
    cat_ids = [c["id"] for c in gt_json["categories"]]
    for ann in gt_json["annotations"]:
        shutil.copy(src / "panoptic_examples" / ann["file_name"], dst / "gt" / ann["file_name"])
        ids = read_panoptic_png(src / "panoptic_examples" / ann["file_name"]).astype(np.int64)
        segs = {s["id"]: s for s in ann["segments_info"]}
        pred = ids.copy()
        cats = {i: s["category_id"] for i, s in segs.items()}
        order = sorted(segs)
        for n, sid in enumerate(order):
            r = n % 6
            if r == 1:  # shifted
                mask = ids == sid
                pred[mask] = 0
                pred[np.roll(mask, 7, axis=1)] = sid
            elif r == 2:  # class swap
                cats[sid] = int(rng.choice(cat_ids))
            elif r == 3 and n > 0:  # merged into the previous segment
                pred[ids == sid] = order[n - 1]
            elif r == 4:  # dropped
                pred[ids == sid] = 0
        pred[40:90, 50:120] = 1234567  # spurious
        cats[1234567] = cat_ids[0]
        pred[rng.random(pred.shape) < 0.01] = 0
        present = [int(i) for i in np.unique(pred) if i]
        write_png(dst / "pred" / ann["file_name"], id2rgb(pred))
        pred_anns.append(
            {
                "image_id": ann["image_id"],
                "file_name": ann["file_name"],
                "segments_info": [{"id": i, "category_id": cats[i]} for i in present],
            }
        )
    (dst / "gt.json").write_text(json.dumps(gt_json))
    (dst / "pred.json").write_text(json.dumps({"images": gt_json["images"], "annotations": pred_anns, "categories": gt_json["categories"]}))
    return dst / "gt.json", dst / "pred.json"


def test_real_coco_sample_against_a_perturbed_copy(tmp_path):
    gt_json, pred_json = _perturb_coco(COCO_SAMPLE, tmp_path)
    assert any(s["iscrowd"] for a in json.loads(gt_json.read_text())["annotations"] for s in a["segments_info"])
    ours = pq_compute(gt_json, pred_json, workers=2)
    assert_parity(ours, hotcoco_pq(gt_json, pred_json), panopticapi_shape=True)
    assert 0.0 < ours["All"]["pq"] < 1.0
    # and the GT against itself is perfect
    same = pq_compute(gt_json, gt_json, pred_folder=tmp_path / "gt", workers=1)
    gt_data = json.loads(gt_json.read_text())
    n_cats = len({s["category_id"] for a in gt_data["annotations"] for s in a["segments_info"] if not s["iscrowd"]})
    assert same["All"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": n_cats}


def test_errors_name_the_file(tmp_path):
    case = make_coco_case(tmp_path, n_images=3, seed=1)
    data = json.loads(Path(case["pred_json"]).read_text())
    data["annotations"][1]["segments_info"] = data["annotations"][1]["segments_info"][1:]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"pred/000001\.png.*in the prediction PNG but not in its JSON"):
        pq_compute(case["gt_json"], bad, pred_folder=tmp_path / "pred", workers=2)
    data["annotations"] = data["annotations"][:1]
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="no prediction for the image with id 1"):
        pq_compute(case["gt_json"], bad, pred_folder=tmp_path / "pred")
    with pytest.raises(InputError, match="PNG folder"):
        pq_compute(case["gt_json"], case["pred_json"], pred_folder=tmp_path / "nowhere")
    (tmp_path / "pred" / "000002.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"000002\.png.*(corrupt|not a PNG)"):
        pq_compute(case["gt_json"], case["pred_json"], workers=1)


def test_empty_split_is_none_and_table_prints_it(tmp_path):
    case = make_coco_case(tmp_path, n_images=2, seed=9)
    data = json.loads(Path(case["gt_json"]).read_text())
    stuff = {c["id"] for c in data["categories"] if not c["isthing"]}
    for name in ("gt.json", "pred.json"):
        d = json.loads((tmp_path / name).read_text())
        for ann in d["annotations"]:
            for s in ann["segments_info"]:
                if s["category_id"] in stuff:
                    s["category_id"] = 1
        (tmp_path / name).write_text(json.dumps(d))
    out = pq_compute(case["gt_json"], case["pred_json"], workers=1)
    assert out["Stuff"] == {"pq": None, "sq": None, "rq": None, "n": 0}
    assert out["per_class"][100]["pq"] == 0.0  # panopticapi's value for a skipped category
    table = format_table(out)
    assert table.splitlines()[0].split() == ["|", "PQ", "SQ", "RQ", "N"]
    assert "Stuff     |     -      -      -     0" in table


def test_cli_prints_the_table_and_writes_json(tmp_path):
    case = make_coco_case(tmp_path, n_images=4, seed=3)
    out_json = tmp_path / "out" / "pq.json"
    res = CliRunner().invoke(
        pq_compute_command,
        ["--gt-json", str(case["gt_json"]), "--pred-json", str(case["pred_json"]), "--workers", "1", "--output", str(out_json)],
    )
    assert res.exit_code == 0, res.output
    expected = pq_compute(case["gt_json"], case["pred_json"], workers=1)
    assert f"All       | {100 * expected['All']['pq']:5.1f}" in res.output
    saved = json.loads(out_json.read_text())
    assert saved["All"]["pq"] == pytest.approx(expected["All"]["pq"]) and "1" in saved["per_class"]


def test_decoders_agree(tmp_path, rng, monkeypatch):
    ids = rng.integers(0, 1 << 24, size=(13, 17))
    write_png(tmp_path / "a.png", id2rgb(ids))
    rgba = np.concatenate([id2rgb(ids), np.full((13, 17, 1), 255, np.uint8)], axis=2)
    write_png(tmp_path / "b.png", rgba)
    for name in ("a.png", "b.png"):
        assert (read_panoptic_ids(tmp_path / name) == ids).all()
        monkeypatch.setenv("NERFSEG_PNG_DECODER", "pil")
        assert frame_mod.png_decoder() == "pil"
        assert (read_panoptic_ids(tmp_path / name) == ids).all()
        monkeypatch.delenv("NERFSEG_PNG_DECODER")
    write_png(tmp_path / "gray.png", ids.astype(np.uint8))
    with pytest.raises(InputError, match="expected an RGB panoptic PNG"):
        read_panoptic_ids(tmp_path / "gray.png")
    with pytest.raises(InputError, match="not found"):
        read_panoptic_ids(tmp_path / "nope.png")
