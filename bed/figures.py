"""Figures of the test bed from bed/results/traces.jsonl (written by `bed/run.py ablation`):

    python bed/figures.py [--variants "BCE,focal,GHM-C ref (per batch),..."]

docs/bed-gradient-share.svg: for each loss, the share of the classification gradient
(sum of |dL/dlogit|) coming from each region of the gradient norm g = |p - t| (10 regions of
width 0.1), every 25 iterations of training (seed 0, SGD and AdamW).
docs/bed-gradient-norm-density.svg: at the end of training, the fraction of elements in each
region (the gradient-norm density of the trained model) and each region's share of the
gradient, per loss.
"""

import argparse
import json
import os

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(os.path.dirname(HERE), "docs")
plt.rcParams["svg.hashsalt"] = "ghm-bed"
plt.rcParams["svg.fonttype"] = "none"


def load(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        out[r["key"]] = r
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", default=os.path.join(HERE, "results", "traces.jsonl"))
    ap.add_argument("--variants", default="BCE,focal,GHM-C ref (per batch)")
    args = ap.parse_args()
    tr = load(args.traces)
    names = args.variants.split(",")
    opts = ("sgd", "adamw")
    cmap = plt.get_cmap("viridis")

    fig, axes = plt.subplots(len(opts), len(names), figsize=(3.2 * len(names), 5.6), sharey=True, squeeze=False)
    for i, o in enumerate(opts):
        for j, n in enumerate(names):
            ax = axes[i][j]
            t = tr.get(f"main|cls|{n}|{o}|0")
            if t is None:
                ax.set_title(f"{n} ({o}): no trace", fontsize=8)
                continue
            its = [r["it"] for r in t["trace"]]
            g = np.array([r["grad"] for r in t["trace"]])
            tot = np.maximum(g.sum(axis=1), 1e-300)
            groups = [g[:, :1].sum(1), g[:, 1:5].sum(1), g[:, 5:9].sum(1), g[:, 9:].sum(1)]
            ax.stackplot(its, *[x / tot for x in groups], colors=[cmap(v) for v in (0.0, 0.35, 0.7, 0.95)],
                         labels=["g < 0.1", "0.1 <= g < 0.5", "0.5 <= g < 0.9", "g >= 0.9"], alpha=0.85)
            pos = np.array([sum(r["grad_pos"]) for r in t["trace"]]) / tot
            ax.plot(its, pos, "k--", lw=1.2, label="positives (any g)")
            ax.set_ylim(0, 1)
            ax.set_title(f"{n} ({'SGD' if o == 'sgd' else 'AdamW'})", fontsize=9)
            if i == len(opts) - 1:
                ax.set_xlabel("iteration")
            if j == 0:
                ax.set_ylabel("share of |dL/dlogit|")
    axes[0][-1].legend(fontsize=6, loc="upper right", framealpha=0.9)
    fig.suptitle("Share of the classification gradient per gradient-norm region over training (seed 0)", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(DOCS, "bed-gradient-share.svg"), metadata={"Date": None})

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    x = (np.arange(10) + 0.5) / 10
    for j, n in enumerate(names):
        t = tr.get(f"main|cls|{n}|adamw|0")
        if t is None:
            continue
        last = t["trace"][-1]
        c = np.array(last["count"], dtype=float)
        g = np.array(last["grad"])
        a1.plot(x, np.maximum(c / c.sum(), 1e-9), "o-", label=n, lw=1.2, ms=3)
        a2.plot(x, np.maximum(g / g.sum(), 1e-9), "o-", label=n, lw=1.2, ms=3)
    a1.set_yscale("log")
    a1.set_xlabel("gradient norm g = |p - t|")
    a1.set_ylabel("fraction of elements")
    a1.set_title("Gradient-norm density of each trained model", fontsize=9)
    a2.set_yscale("log")
    a2.set_xlabel("gradient norm g = |p - t|")
    a2.set_ylabel("share of |dL/dlogit|")
    a2.set_title("Each region's share of the gradient", fontsize=9)
    a2.legend(fontsize=7)
    fig.suptitle(f"End of training (AdamW, seed 0, iteration {last['it']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(DOCS, "bed-gradient-norm-density.svg"), metadata={"Date": None})


if __name__ == "__main__":
    main()
