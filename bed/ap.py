"""Mean average precision of detections (all-point interpolated, per class, then averaged).

A detection is a true positive when its IoU with a not yet matched ground-truth box of its
class is at least the threshold (greedy in descending score, as PASCAL VOC and COCO do); AP
is the area under the interpolated precision-recall curve (precision made monotone from the
right). A class with no ground truth is left out of the mean.
"""

import numpy as np


def iou(a, b):
    """IoU matrix of boxes a [N,4] and b [M,4] (x1, y1, x2, y2)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def average_precision(scores, tp, n_gt):
    """AP from detections' scores, their true-positive flags, and the number of ground truths."""
    if n_gt == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = np.asarray(tp, dtype=np.float64)[order]
    if tp.size == 0:
        return 0.0
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1.0 - tp)
    recall = ctp / n_gt
    precision = ctp / (ctp + cfp)
    r = np.concatenate([[0.0], recall])
    p = np.concatenate([[0.0], precision])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def mean_ap(detections, ground_truths, num_classes, iou_threshold=0.5):
    """detections: per image (boxes [N,4], scores [N], labels [N]); ground_truths: per image
    (boxes [M,4], labels [M]). Returns (mAP over classes with ground truth, per-class APs)."""
    per_class = []
    for c in range(num_classes):
        scores, tps, n_gt = [], [], 0
        for (db, ds, dl), (gb, gl) in zip(detections, ground_truths):
            db, ds, dl = np.asarray(db).reshape(-1, 4), np.asarray(ds).reshape(-1), np.asarray(dl).reshape(-1)
            gb, gl = np.asarray(gb).reshape(-1, 4), np.asarray(gl).reshape(-1)
            g = gb[gl == c]
            n_gt += len(g)
            m = dl == c
            d, s = db[m], ds[m]
            order = np.argsort(-s, kind="stable")
            d, s = d[order], s[order]
            used = np.zeros(len(g), dtype=bool)
            ov = iou(d, g) if len(g) and len(d) else np.zeros((len(d), len(g)))
            for i in range(len(d)):
                best, j = -1.0, -1
                for k in range(len(g)):
                    if not used[k] and ov[i, k] > best:
                        best, j = ov[i, k], k
                if j >= 0 and best >= iou_threshold:
                    used[j] = True
                    tps.append(1.0)
                else:
                    tps.append(0.0)
                scores.append(float(s[i]))
        per_class.append(average_precision(scores, tps, n_gt))
    valid = [a for a in per_class if not np.isnan(a)]
    return (float(np.mean(valid)) if valid else 0.0), per_class
