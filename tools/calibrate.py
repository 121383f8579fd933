#!/usr/bin/env python3
"""Calibrate a recognizer's match threshold on the labelled photos of ../shared/faces.

Embeds every single-person labelled photo with `attendansee embed` (the same detector, alignment
and model as the server), then compares every pair of photos *within* a folder: same identity =
genuine pair, different identity = impostor pair. Prints both distributions and the threshold
and margin this project uses: see docs/calibration.md for the policy.

    python3 tools/calibrate.py --binary target/release/attendansee --model mobilefacenet \
        --model-dir ../shared/models ../shared/faces
"""
import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

# The same person under the different spellings of one folder's labels.
ALIASES = {"obama": "barack_obama", "biden": "joe_biden"}


def identity(label):
    name = label.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(name, name)


def labelled_files(folder):
    """(path, identity) of the folder's single-person photos, one per distinct file content."""
    seen, out = set(), []
    with open(os.path.join(folder, "labels.csv"), newline="") as f:
        for row in csv.DictReader(f):
            label = row.get("identity") or row.get("identities") or ""
            if not label or ";" in label:
                continue  # unlabelled, or a group photo
            path = os.path.join(folder, row["file"])
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
            if digest in seen:
                continue  # the same file under two names would be a perfect "genuine" pair
            seen.add(digest)
            out.append((path, identity(label)))
    return out


def embed(binary, model, model_dir, paths):
    cmd = [binary, "--model-dir", model_dir, "embed", "--model", model, *paths]
    out = subprocess.run(cmd, capture_output=True, text=True)
    vectors = {}
    for line in out.stdout.splitlines():
        record = json.loads(line)
        if record.get("embedding"):
            vectors[record["file"]] = np.array(record["embedding"], dtype=np.float32)
    return vectors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/release/attendansee")
    parser.add_argument("--model", default="mobilefacenet")
    parser.add_argument("--model-dir", default="../shared/models")
    parser.add_argument("root", nargs="?", default="../shared/faces")
    args = parser.parse_args()

    genuine, impostor, faces, missed, folders = [], [], 0, [], []
    for name in sorted(os.listdir(args.root)):
        folder = os.path.join(args.root, name)
        if not os.path.isfile(os.path.join(folder, "labels.csv")):
            continue
        files = labelled_files(folder)
        vectors = embed(args.binary, args.model, args.model_dir, [p for p, _ in files])
        found = [(vectors[p], who) for p, who in files if p in vectors]
        missed += [p for p, _ in files if p not in vectors]
        folders.append(found)
        faces += len(found)
        for i in range(len(found)):
            for j in range(i + 1, len(found)):
                similarity = float(found[i][0] @ found[j][0])
                (genuine if found[i][1] == found[j][1] else impostor).append(similarity)
    genuine, impostor = np.array(genuine), np.array(impostor)

    def pct(a, q):
        return float(np.percentile(a, q))

    print(f"model {args.model}: {faces} faces, {len(genuine)} genuine pairs, {len(impostor)} impostor pairs")
    if missed:
        print(f"no face found in: {', '.join(missed)}")
    print(f"genuine : min {genuine.min():.3f}  p5 {pct(genuine, 5):.3f}  median {np.median(genuine):.3f}")
    print(f"impostor: median {np.median(impostor):.3f}  p99 {pct(impostor, 99):.3f}  "
          f"p99.9 {pct(impostor, 99.9):.3f}  max {impostor.max():.3f}")
    for t in np.arange(0.20, 0.75, 0.05):
        far = float((impostor >= t).mean())
        frr = float((genuine < t).mean())
        print(f"  threshold {t:.2f}: false accepts {far:.4%}  false rejects {frr:.2%}")
    # The policy (docs/calibration.md): automatic assignment must not accept any of these impostor
    # pairs, so the threshold is the first multiple of 0.05 above the highest impostor similarity;
    # faces between the impostors' p99 (rounded up) and the threshold are only *suggested*.
    threshold = float(np.ceil(impostor.max() / 0.05) * 0.05)
    suggest = float(np.ceil(pct(impostor, 99) / 0.05) * 0.05)
    frr = float((genuine < threshold).mean())
    print(f"chosen: threshold {threshold:.2f} (false rejects here {frr:.2%}), suggestions from {suggest:.2f}")
    open_set(folders, threshold)


def open_set(folders, threshold, margin=0.05):
    """Would a rule that accepts lower similarities when the runner-up is far behind be safe?

    Each face is a query against the other faces of its folder, grouped by identity (a student's
    score is the best over their faces, as the server does): once with its own identity enrolled
    (a genuine query: is the best the right one?) and once without it (a stranger: anything
    accepted is a false accept)."""
    genuine, strangers = [], []
    for found in folders:
        if len({who for _, who in found}) < 3:
            continue  # a best and a runner-up are needed even without the query's identity
        for q, (vector, who) in enumerate(found):
            def ranked(without):
                best = {}
                for i, (other, name) in enumerate(found):
                    if i != q and name != without:
                        best[name] = max(best.get(name, -1.0), float(vector @ other))
                return sorted(((s, name) for name, s in best.items()), reverse=True)
            with_own = ranked(None)
            if any(name == who for _, name in with_own):
                genuine.append((with_own[0][0], with_own[0][0] - with_own[1][0], with_own[0][1] == who))
            without = ranked(who)
            strangers.append((without[0][0], without[0][0] - without[1][0]))
    genuine, strangers = np.array(genuine), np.array(strangers)
    print(f"open set: {len(genuine)} genuine queries (best match right: {genuine[:, 2].mean():.1%}), "
          f"{len(strangers)} stranger queries (highest best {strangers[:, 0].max():.3f}, "
          f"largest lead over the runner-up {strangers[:, 1].max():.3f})")
    policy = (genuine[:, 0] >= threshold) & (genuine[:, 1] >= margin)
    print(f"  policy (best >= {threshold:.2f}, lead >= {margin:.2f}): genuine accepted "
          f"{policy.mean():.1%}, strangers accepted {((strangers[:, 0] >= threshold) & (strangers[:, 1] >= margin)).sum()}")
    for low, lead in [(0.25, 0.15), (0.30, 0.20), (0.40, 0.25)]:
        also = policy | ((genuine[:, 0] >= low) & (genuine[:, 1] >= lead))
        wrong = (((strangers[:, 0] >= threshold) & (strangers[:, 1] >= margin))
                 | ((strangers[:, 0] >= low) & (strangers[:, 1] >= lead))).sum()
        print(f"  ... or best >= {low:.2f} with a lead >= {lead:.2f}: genuine accepted {also.mean():.1%}, "
              f"strangers accepted {wrong} of {len(strangers)}")

if __name__ == "__main__":
    sys.exit(main())
