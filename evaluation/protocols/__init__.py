"""Evaluation protocols (each versioned) and the runner that writes result files.

One module per protocol, the shared pieces and the job loop on their own; this package re-exports the
names other code imports from `evaluation.protocols`:
- common: Settings, the Protocol base and its Output, the run's Context, image/camera helpers, the shared
  rendering rules (its docstring);
- input_view, sweep360, multiview_gt, reenactment (self-, cross- and the older mediapipe reenactment);
- catalog: PROTOCOLS by id, resolve_protocols, the protocols' own metrics (EXTRA_METRICS, higher_is_better);
- jobs: Job, evaluate_job (what an engine's worker runs), run_evaluation (plans jobs, writes results).
"""
from __future__ import annotations

from evaluation.protocols.catalog import (EXTRA_METRICS, NEUTRAL_METRICS, PROTOCOLS, higher_is_better,
                                          resolve_protocols)
from evaluation.protocols.common import (MASK_DILATE, WHITE, Context, Identity, Output, Protocol, Settings,
                                         face_mask, fit_size, orbit_cameras, resize_image)
from evaluation.protocols.input_view import InputView
from evaluation.protocols.jobs import (THUMB_PX, WORKER_PRELOAD, Job, JobOutput, MethodLoadError, WorkerState,
                                       evaluate_job, method_record, run_evaluation, save_thumbnail,
                                       thumbnail_jpeg)
from evaluation.protocols.multiview_gt import MultiviewGT
from evaluation.protocols.reenactment import CrossReenactment, Reenactment, SelfReenactment
from evaluation.protocols.sweep360 import WIDE_YAW_DEG, Sweep360, hole_fraction, view_name

__all__ = [
    "EXTRA_METRICS", "NEUTRAL_METRICS", "PROTOCOLS", "higher_is_better", "resolve_protocols",
    "MASK_DILATE", "WHITE", "Context", "Identity", "Output", "Protocol", "Settings", "face_mask", "fit_size",
    "orbit_cameras", "resize_image",
    "InputView", "Sweep360", "MultiviewGT", "Reenactment", "SelfReenactment", "CrossReenactment",
    "WIDE_YAW_DEG", "hole_fraction", "view_name",
    "THUMB_PX", "WORKER_PRELOAD", "Job", "JobOutput", "MethodLoadError", "WorkerState", "evaluate_job",
    "method_record", "run_evaluation", "save_thumbnail", "thumbnail_jpeg",
]
