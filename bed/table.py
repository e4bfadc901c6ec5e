"""Markdown tables of bed/results/ablation.jsonl: `python bed/table.py`.

Screen: seed 0, mAP@0.5 / mAP@0.75 per optimizer. Over seeds: every variant run with two or more seeds,
mean mAP and [min, max] over the seeds, per optimizer and bed configuration."""

import argparse
import json
import os
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    rows = OrderedDict()
    for line in open(path):
        r = json.loads(line)
        rows[r["key"]] = r
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(HERE, "results", "ablation.jsonl"))
    args = ap.parse_args()
    rows = load(args.results)
    groups = OrderedDict()
    for k, r in rows.items():
        bed, tag, name, opt, seed = k.split("|")
        groups.setdefault((bed, tag, name), {}).setdefault(opt, {})[int(seed)] = r
    cpu = sum(r["cpu_s"] for r in rows.values())
    print(f"{len(rows)} runs, {cpu / 60:.1f} CPU-minutes of training and evaluation "
          f"({cpu / len(rows):.0f} s a run)\n")

    print("### Screen (seed 0): mAP@0.5 / mAP@0.75\n")
    print("| bed | variant | branch | SGD | AdamW |")
    print("|---|---|---|---:|---:|")
    for (bed, tag, name), by in sorted(groups.items(), key=lambda kv: kv[0][0] != "main"):
        cells = []
        for o in ("sgd", "adamw"):
            r = by.get(o, {}).get(0)
            cells.append(f"{r['map50']:.3f} / {r['map75']:.3f}" if r else "-")
        label = name if tag == "cls" else f"focal + {name}"
        print(f"| {bed} | {label} | {'classification' if tag == 'cls' else 'box'} | {cells[0]} | {cells[1]} |")

    print("\n### Over seeds: mean mAP@0.5 [min, max], mean mAP@0.75\n")
    print("| bed | variant | seeds | SGD mAP@0.5 | SGD mAP@0.75 | AdamW mAP@0.5 | AdamW mAP@0.75 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (bed, tag, name), by in sorted(groups.items(), key=lambda kv: kv[0][0] != "main"):
        n = min(len(by.get(o, {})) for o in ("sgd", "adamw"))
        if n < 2:
            continue
        cells = []
        for o in ("sgd", "adamw"):
            seeds = sorted(by[o])[:n]
            v50 = [by[o][s]["map50"] for s in seeds]
            v75 = [by[o][s]["map75"] for s in seeds]
            cells.append(f"{sum(v50) / len(v50):.3f} [{min(v50):.3f}, {max(v50):.3f}]")
            cells.append(f"{sum(v75) / len(v75):.3f}")
        label = name if tag == "cls" else f"focal + {name}"
        print(f"| {bed} | {label} | {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
