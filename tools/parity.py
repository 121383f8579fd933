#!/usr/bin/env python3
"""Independent reference for the face engine's parity tests: OpenCV's own YuNet detector
(cv2.FaceDetectorYN), OpenCV alignment (cv2.estimateAffinePartial2D + cv2.warpAffine) and
onnxruntime embeddings of those OpenCV-aligned crops.

Pre-processing mirrors AttendanSee's so that only the implementations differ: the image is
letterboxed to 640x640 (cv2.resize INTER_LINEAR to fit, never enlarged, top-left on black), faces are mapped back
by the vertical scale, the ArcFace template is used for 112x112 crops, and MobileFaceNet takes RGB
(x/255 - ImageNet mean) / ImageNet std.

Usage: parity.py YUNET.onnx RECOGNIZER.onnx THRESHOLD CROP_DIR IMAGE...
Prints one JSON line per image: {"image", "faces": [{"bbox", "score", "landmarks", "matrix",
"crop", "embedding"}]}, the crop written as CROP_DIR/<n>_<k>.png.
"""
import json
import os
import sys

import cv2
import numpy as np
import onnxruntime as ort

TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def letterbox(img, size=640):
    h, w = img.shape[:2]
    s = min(size / w, size / h, 1.0)  # never enlarged, as in AttendanSee
    nw, nh = max(1, min(size, int(w * s))), max(1, min(size, int(h * s)))
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:nh, :nw] = img if (nw, nh) == (w, h) else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, nh / h


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    yunet, recognizer, threshold, crop_dir, images = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5:]
    os.makedirs(crop_dir, exist_ok=True)
    detector = cv2.FaceDetectorYN.create(yunet, "", (640, 640), threshold, 0.3, 5000)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(recognizer, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for n, path in enumerate(images):
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        canvas, scale = letterbox(bgr)
        _, found = detector.detect(canvas)
        faces = []
        for k, row in enumerate([] if found is None else found):
            row = row.astype(np.float64)
            bbox = (row[:4] / scale).tolist()
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
            # Every landmark an inlier, so the final Levenberg-Marquardt refinement gives the
            # least-squares similarity (InsightFace's skimage SimilarityTransform), not a robust subset fit.
            matrix, _ = cv2.estimateAffinePartial2D(landmarks, TEMPLATE, method=cv2.RANSAC, ransacReprojThreshold=1e6, refineIters=100)
            crop_bgr = cv2.warpAffine(bgr, matrix, (112, 112), flags=cv2.INTER_LINEAR, borderValue=0)
            crop_path = os.path.join(crop_dir, f"{n}_{k}.png")
            cv2.imwrite(crop_path, crop_bgr)
            rgb = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            blob = ((rgb - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
            embedding = session.run(None, {input_name: blob})[0][0]
            embedding = embedding / np.linalg.norm(embedding)
            faces.append({
                "bbox": bbox,
                "score": float(row[14]),
                "landmarks": landmarks.tolist(),
                "matrix": matrix.tolist(),
                "crop": crop_path,
                "embedding": embedding.tolist(),
            })
        print(json.dumps({"image": path, "faces": faces}), flush=True)


if __name__ == "__main__":
    main()
