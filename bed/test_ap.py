"""Tests of bed/ap.py on hand-computed cases (pytest, or `python bed/test_ap.py`)."""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ap import average_precision, iou, mean_ap  # noqa: E402


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def test_iou():
    assert close(iou([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0, 0], 1 / 7)
    assert close(iou([[0, 0, 2, 2]], [[0, 0, 2, 2]])[0, 0], 1.0)
    assert iou([[0, 0, 1, 1]], [[2, 2, 3, 3]])[0, 0] == 0.0


def test_average_precision_hand_cases():
    assert close(average_precision([0.9, 0.8], [1, 1], 2), 1.0)
    # TP, FP, TP over 2 ground truths: precision 1 at recall .5, 2/3 at recall 1
    assert close(average_precision([0.9, 0.8, 0.7], [1, 0, 1], 2), 0.5 * 1 + 0.5 * 2 / 3)
    # FP first: interpolated precision 1/2 at recall .5 and 2/3 at recall 1 -> 2/3 both
    assert close(average_precision([0.9, 0.8, 0.7], [0, 1, 1], 2), 2 / 3)
    # a missed ground truth caps recall at 1/2
    assert close(average_precision([0.9], [1], 2), 0.5)
    assert average_precision([], [], 3) == 0.0
    assert math.isnan(average_precision([0.5], [0], 0))


def test_mean_ap_matching():
    gts = [([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])]
    # class 0: a duplicate of the same box counts once (the second is a FP); class 1: a box at
    # IoU 2/3 is a TP at threshold .5 and a FP at .75
    dets = [([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 35]], [0.9, 0.8, 0.7], [0, 0, 1])]
    m50, per = mean_ap(dets, gts, 3, 0.5)
    assert close(per[0], 1.0) and close(per[1], 1.0) and math.isnan(per[2])
    assert close(m50, 1.0)
    m75, per = mean_ap(dets, gts, 3, 0.75)
    assert close(per[1], 0.0) and close(m75, 0.5)
    # a detection of the wrong class is no TP for either
    m, per = mean_ap([([[0, 0, 10, 10]], [0.9], [1])], [([[0, 0, 10, 10]], [0])], 2, 0.5)
    assert close(per[0], 0.0) and math.isnan(per[1])


if __name__ == "__main__":
    for name, f in sorted(globals().items()):
        if name.startswith("test_"):
            f()
            print("ok ", name)
