#!/usr/bin/env python3
"""The Python reference for `attendansee bench`'s whole-photo comparison: the same work per photo
as AttendanSee's path, done the usual Python way — cv2.imread (libjpeg-turbo, EXIF orientation
applied), letterbox to 640x640, OpenCV's YuNet (cv2.FaceDetectorYN), OpenCV alignment
(cv2.estimateAffinePartial2D + cv2.warpAffine onto the ArcFace template) and onnxruntime
MobileFaceNet embeddings, every face. One thread each (cv2.setNumThreads(1), one intra-op thread),
as a worker has one core.

Usage: photo_bench.py YUNET.onnx RECOGNIZER.onnx THRESHOLD ROUNDS IMAGE...
Prints one JSON object: {"seconds": [best time per image over the rounds], "faces": [count per image]}.
Models are loaded (and run once) before timing.
"""
import json
import sys
import time

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
    s = min(size / w, size / h, 1.0)
    nw, nh = max(1, min(size, int(w * s))), max(1, min(size, int(h * s)))
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:nh, :nw] = img if (nw, nh) == (w, h) else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, nh / h


def photo(path, detector, session, input_name):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    canvas, scale = letterbox(bgr)
    _, found = detector.detect(canvas)
    crops = []
    for row in [] if found is None else found:
        landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(landmarks, TEMPLATE, method=cv2.LMEDS)
        if matrix is None:
            continue
        crop = cv2.warpAffine(bgr, matrix, (112, 112))
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        crops.append(((rgb - MEAN) / STD).transpose(2, 0, 1))
    for crop in crops:  # the model has a fixed batch of 1
        out = session.run(None, {input_name: crop[None]})[0][0]
        _ = out / np.linalg.norm(out)
    return len(crops)


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    yunet, recognizer, threshold, rounds, images = (
        sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
    cv2.setNumThreads(1)
    detector = cv2.FaceDetectorYN.create(yunet, "", (640, 640), threshold, 0.3, 5000)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(recognizer, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    photo(images[0], detector, session, input_name)  # warm-up
    best = [float("inf")] * len(images)
    faces = [0] * len(images)
    for _ in range(max(1, rounds)):
        for i, path in enumerate(images):
            start = time.perf_counter()
            faces[i] = photo(path, detector, session, input_name)
            best[i] = min(best[i], time.perf_counter() - start)
    print(json.dumps({"seconds": best, "faces": faces}))


if __name__ == "__main__":
    main()
