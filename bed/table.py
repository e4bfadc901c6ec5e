"""Markdown tables of bed/results/ablation.jsonl: `python bed/table.py`.

Screen: seed 0, mAP@0.5 / mAP@0.75 per optimizer. Seeds: every variant with three seeds,
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

    print("### Screen (main bed, seed 0): mAP@0.5 / mAP@0.75\n")
    print("| variant | branch | SGD | AdamW |")
    print("|---|---|---:|---:|")
    for (bed, tag, name), by in groups.items():
        if bed != "main":
            continue
        cells = []
        for o in ("sgd", "adamw"):
            r = by.get(o, {}).get(0)
            cells.append(f"{r['map50']:.3f} / {r['map75']:.3f}" if r else "-")
        label = name if tag == "cls" else f"focal + {name}"
        print(f"| {label} | {'classification' if tag == 'cls' else 'box'} | {cells[0]} | {cells[1]} |")

    print("\n### Three seeds: mean mAP@0.5 [min, max], mean mAP@0.75\n")
    print("| bed | variant | SGD mAP@0.5 | SGD mAP@0.75 | AdamW mAP@0.5 | AdamW mAP@0.75 |")
    print("|---|---|---:|---:|---:|---:|")
    for (bed, tag, name), by in groups.items():
        if not all(len(by.get(o, {})) >= 3 for o in ("sgd", "adamw")):
            continue
        cells = []
        for o in ("sgd", "adamw"):
            v50 = [by[o][s]["map50"] for s in sorted(by[o])]
            v75 = [by[o][s]["map75"] for s in sorted(by[o])]
            cells.append(f"{sum(v50) / len(v50):.3f} [{min(v50):.3f}, {max(v50):.3f}]")
            cells.append(f"{sum(v75) / len(v75):.3f}")
        label = name if tag == "cls" else f"focal + {name}"
        print(f"| {bed} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
