#!/usr/bin/env python3
"""Calibrate the face-quality limits (too small, blurred, profile) on the labelled photos of
../shared/faces: how small, how blurred and how turned a face may be before MobileFaceNet stops
identifying it.

Every single-person labelled photo (as tools/calibrate.py picks them) is embedded at full size:
that is the gallery. Then each photo is degraded and asked as a query against the gallery of its
folder without itself, as the server assigns: the best student (best similarity over their
photos) is taken when it reaches the threshold and leads the runner-up by the margin. A query is
*right* (assigned to its own identity), *wrong* (assigned to someone else) or *left* (not
assigned). Degradations:

* shrink: the photo is scaled down (cv2.INTER_AREA, as a camera's sensor averages) so that the
  face's box has a given short side, and placed in the middle of a 640x640 canvas, as a
  small face in a larger photo (the margins repeat the photo's edge pixels);
* blur: a Gaussian blur of the full-size photo (surrounded as above, to twice its size), sigma
  in units of the face's box side / 100;
* pose: not synthesisable; the yaw proxy of the full-size faces is reported with their outcome.

Detection, alignment and embedding are tools/parity.py's (OpenCV YuNet, OpenCV alignment to the
ArcFace template, onnxruntime), which the parity tests hold equal to AttendanSee's; the measures
are AttendanSee's: the box's short side, the eye distance, the Laplacian variance of the aligned
crop (grey 0.299/0.587/0.114, 4-neighbour kernel) and the yaw proxy of
attendansee_recognition::quality.

    .local/venv/bin/python tools/calibrate_quality.py --model-dir ../shared/models ../shared/faces
"""
import argparse
import os
import sys

import cv2
import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calibrate import labelled_files  # noqa: E402
from parity import MEAN, STD, TEMPLATE, letterbox  # noqa: E402

THRESHOLD, MARGIN = 0.50, 0.05  # mobilefacenet's calibrated matching (docs/calibration.md)
SIZES = [96, 80, 64, 56, 48, 40, 36, 32, 28, 24, 20, 16]
SIGMAS = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]


class Engine:
    def __init__(self, model_dir):
        self.detector = cv2.FaceDetectorYN.create(
            os.path.join(model_dir, "face_detection_yunet_2023mar.onnx"), "", (640, 640), 0.5, 0.3, 5000)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(model_dir, "MobileFaceNet.onnx"), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def face(self, bgr):
        """The largest face: (box w, h, landmarks, aligned crop, embedding), or None."""
        canvas, scale = letterbox(bgr)
        _, found = self.detector.detect(canvas)
        if found is None or len(found) == 0:
            return None
        row = max(found, key=lambda r: r[2] * r[3]).astype(np.float64)
        box = row[:4] / scale
        landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(
            landmarks, TEMPLATE, method=cv2.RANSAC, ransacReprojThreshold=1e6, refineIters=100)
        crop = cv2.warpAffine(bgr, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderValue=0)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        blob = ((rgb.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
        vector = self.session.run(None, {self.input: blob})[0][0]
        return box[2], box[3], landmarks, rgb, vector / np.linalg.norm(vector)


def sharpness(rgb):
    """AttendanSee's imageops::face_sharpness: the Laplacian variance of the crop's middle."""
    h, w = rgb.shape[:2]
    rgb = rgb[h * 3 // 10:h - h // 10, w // 4:w - w // 4].astype(np.float64)
    grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def yaw(landmarks):
    """attendansee_recognition::quality's yaw proxy: the nose's offset from the eyes' midpoint
    along the eye line, in half eye distances (0 frontal, 1 the nose in front of an eye)."""
    left, right, nose = landmarks[0], landmarks[1], landmarks[2]
    eyes = right - left
    d2 = float(eyes @ eyes)
    if d2 <= 0:
        return float("inf")
    return abs(float((nose - (left + right) / 2) @ eyes)) * 2 / d2


def decide(vector, gallery, own):
    """right / wrong / left, as the server's assignment would, against the gallery without `own`."""
    best = {}
    for i, (other, who) in enumerate(gallery):
        if i != own:
            best[who] = max(best.get(who, -1.0), float(vector @ other))
    ranked = sorted(((s, who) for who, s in best.items()), reverse=True) + [(-1.0, None)]
    (s1, who1), (s2, _) = ranked[0], ranked[1]
    if s1 >= THRESHOLD and s1 - s2 >= MARGIN:
        return "right" if who1 == gallery[own][1] else "wrong"
    return "left"


def surrounded(bgr, side):
    """The photo in the middle of a `side`-wide canvas whose margins repeat its edge pixels: a
    face in a larger photo, without the hard edges of a flat frame (nor a mirrored second face)."""
    h, w = bgr.shape[:2]
    top, left = max(0, (side - h) // 2), max(0, (side - w) // 2)
    return cv2.copyMakeBorder(bgr, top, max(0, side - h - top), left, max(0, side - w - left),
                              cv2.BORDER_REPLICATE)


def placed(bgr, factor):
    return surrounded(cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), 640)


def table(title, rows, key, buckets):
    print(f"\n{title}")
    print(f"{'bucket':>14} {'n':>5} {'right':>7} {'wrong':>6} {'left':>6} {'undetected':>10}")
    for low, high in buckets:
        inside = [r for r in rows if r[key] is not None and low <= r[key] < high]
        lost = [r for r in rows if r[key] is None and low <= r.get("target", -1) < high]
        n = len(inside)
        if n == 0 and not lost:
            continue
        count = lambda o: sum(1 for r in inside if r["outcome"] == o)  # noqa: E731
        share = lambda o: f"{count(o) / n:.0%}" if n else "-"  # noqa: E731
        print(f"{f'[{low:g}, {high:g})':>14} {n:>5} {share('right'):>7} {count('wrong'):>6} "
              f"{count('left'):>6} {len(lost):>10}")


MAX_YAW = 1.0  # not calibrated: see docs/calibration.md


def limit(rows, key, buckets):
    """The lower edge of the lowest bucket from which up every bucket has >= 80% right and no wrong."""
    edge = buckets[0][0]
    for low, high in reversed(buckets):
        inside = [r for r in rows if r[key] is not None and low <= r[key] < high]
        if not inside:
            continue
        right = sum(r["outcome"] == "right" for r in inside) / len(inside)
        if right < 0.8 or any(r["outcome"] == "wrong" for r in inside):
            return high
        edge = low
    return edge


def verdict(row, min_size, min_sharpness):
    """attendansee_recognition::QualityLimits::verdict."""
    if not row["size"] >= min_size:
        return "too_small"
    if not row["yaw"] <= MAX_YAW:
        return "profile"
    if not row["blur"] >= min_sharpness:
        return "blurred"
    return None


def share(rows):
    return f"{sum(r['outcome'] == 'right' for r in rows) / len(rows):.0%}" if rows else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="../shared/models")
    parser.add_argument("root", nargs="?", default="../shared/faces")
    args = parser.parse_args()
    engine = Engine(args.model_dir)
    full, shrunk, blurred = [], [], []
    for name in sorted(os.listdir(args.root)):
        folder = os.path.join(args.root, name)
        if not os.path.isfile(os.path.join(folder, "labels.csv")):
            continue
        photos = []
        for path, who in labelled_files(folder):
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            face = None if bgr is None else engine.face(bgr)
            if face is not None:
                photos.append((path, who, bgr, face))
        gallery = [(face[4], who) for _, who, _, face in photos]
        if len({who for _, who in gallery}) < 2:
            continue
        for own, (path, who, bgr, (w, h, marks, crop, vector)) in enumerate(photos):
            base = {"folder": name, "size": min(w, h), "eyes": float(np.linalg.norm(marks[1] - marks[0])),
                    "blur": sharpness(crop), "yaw": yaw(marks)}
            full.append({**base, "outcome": decide(vector, gallery, own)})
            for target in SIZES:
                factor = target / min(w, h)
                if factor >= 1:
                    continue
                face = engine.face(placed(bgr, factor))
                row = {"target": target, "size": None, "eyes": None, "blur": None, "yaw": None}
                if face is not None:
                    fw, fh, fm, fc, fv = face
                    row = {"target": target, "size": min(fw, fh), "eyes": float(np.linalg.norm(fm[1] - fm[0])),
                           "blur": sharpness(fc), "yaw": yaw(fm), "outcome": decide(fv, gallery, own)}
                shrunk.append(row)
            for sigma in SIGMAS:
                s = sigma * min(w, h) / 100
                big = surrounded(bgr, 2 * max(bgr.shape[:2]))
                face = engine.face(cv2.GaussianBlur(big, (0, 0), s))
                if face is not None:
                    fw, fh, fm, fc, fv = face
                    blurred.append({"sigma": sigma, "size": min(fw, fh), "blur": sharpness(fc), "yaw": yaw(fm),
                                    "outcome": decide(fv, gallery, own)})
    print(f"{len(full)} labelled faces at full size; box short side median {np.median([r['size'] for r in full]):.0f} px")
    table("full size, by box short side (px)", full, "size", [(0, 60), (60, 100), (100, 200), (200, 10000)])
    size_buckets = [(0, 12), (12, 16), (16, 20), (20, 24), (24, 28), (28, 32), (32, 36), (36, 40), (40, 48),
                    (48, 56), (56, 64), (64, 80), (80, 100), (100, 10000)]
    table("shrunk, by the detected box's short side (px)", shrunk, "size", size_buckets)
    table("shrunk, by eye distance (px)", shrunk, "eyes",
          [(0, 6), (6, 8), (8, 10), (10, 12), (12, 14), (14, 16), (16, 20), (20, 24), (24, 32), (32, 1000)])
    lap = [(0, 5), (5, 10), (10, 15), (15, 20), (20, 30), (30, 40), (40, 60), (60, 100), (100, 200), (200, 1e9)]
    table("blurred (full-size faces), by the aligned crop's Laplacian variance", blurred, "blur", lap)
    big = [r for r in shrunk if r["size"] is not None and r["size"] >= 40]
    table("shrunk but >= 40 px, by the aligned crop's Laplacian variance", big, "blur", lap)
    table("full size, by Laplacian variance", full, "blur", lap)
    table("full size, by yaw proxy", full, "yaw", [(0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0), (1.0, 99)])
    # The policy (docs/calibration.md): a limit is the bucket edge below which identification
    # falls under 80% of the faces or some face went to the wrong person.
    size = limit(shrunk, "size", size_buckets)
    eyes = limit(shrunk, "eyes", [(0, 6), (6, 8), (8, 10), (10, 12), (12, 14), (14, 16), (16, 20), (20, 1000)])
    sharp = limit(blurred, "blur", lap)
    print(f"\nlimits: box side >= {size} px (eye distance >= {eyes} px), sharpness >= {sharp}, yaw <= {MAX_YAW}")
    for title, rows in [("full size", full), ("shrunk", shrunk), ("blurred", blurred)]:
        judged = [(verdict(r, size, sharp), r) for r in rows if r["size"] is not None]
        kept = [r for v, r in judged if v is None]
        print(f"{title}: {len(kept)} kept, right {share(kept)}; flagged:", ", ".join(
            f"{reason} {sum(v == reason for v, _ in judged)} (right {share([r for v, r in judged if v == reason])})"
            for reason in ("too_small", "profile", "blurred")))
    for sigma in SIGMAS:
        rows = [r for r in blurred if r["sigma"] == sigma]
        right = sum(r["outcome"] == "right" for r in rows) / max(1, len(rows))
        print(f"sigma {sigma:>3} x side/100: n {len(rows):>3}, right {right:.0%}, "
              f"wrong {sum(r['outcome'] == 'wrong' for r in rows)}, Laplacian median {np.median([r['blur'] for r in rows]):.1f}")


if __name__ == "__main__":
    sys.exit(main())
