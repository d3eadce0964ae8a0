"""The GPU check's no-CUDA path, the backend override it relies on, and app.py's ZeroGPU wrapper (`_gpu`)
as far as it runs off a Space: handlers decorated, callable, no CUDA initialised at import."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _no_gpu_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADSPLAT_", "SPACES_"))}
    env.update(CUDA_VISIBLE_DEVICES="", **extra)  # hides every GPU, also on a machine that has one
    return env


def _assert_fails_fast(cmd, env, reason_part: str):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    elapsed = time.monotonic() - t0
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1, r.stdout  # one line: the reason, as JSON
    out = json.loads(lines[0])
    assert out == {"check": "gpu", "ok": False, "stage": "preflight", "reason": out["reason"]}
    assert out["reason"].startswith("no CUDA GPU: ") and reason_part in out["reason"] and "\n" not in out["reason"]
    assert elapsed < 10, f"took {elapsed:.1f} s"
    return out


def test_gpu_check_without_cuda_fails_fast_and_clearly(tmp_path):
    venv = tmp_path / "venv"
    _assert_fails_fast([sys.executable, str(SCRIPT), "--venv", str(venv)], _no_gpu_env(), "CUDA_VISIBLE_DEVICES")
    assert not venv.exists()  # nothing installed before the GPU is known to be there


def test_gpu_check_shell_wrapper_without_cuda(tmp_path):
    _assert_fails_fast(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--venv", str(tmp_path / "v")],
                       _no_gpu_env(PYTHON=sys.executable), "CUDA_VISIBLE_DEVICES")


def test_gpu_check_with_a_driver_tool_but_no_gpu(tmp_path):
    """nvidia-smi present but failing (driver not loaded, container without the device): one clear line."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                    "driver.\"\nexit 9\n")
    fake.chmod(0o755)
    env = _no_gpu_env(PATH=f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("CUDA_VISIBLE_DEVICES")
    out = _assert_fails_fast([sys.executable, str(SCRIPT), "--venv", str(tmp_path / "v")], env, "nvidia-smi -L")
    assert "couldn't communicate with the NVIDIA driver" in out["reason"]


def test_gpu_check_picks_the_torch_build_for_the_driver(monkeypatch):
    sys.path.insert(0, str(ROOT))
    from benchmarks import gpu_check
    monkeypatch.delenv("HEADSPLAT_TORCH_INDEX", raising=False)
    assert gpu_check.torch_index("13.0").endswith("/cu130")
    assert gpu_check.torch_index("12.9").endswith("/cu128")
    assert gpu_check.torch_index("12.6").endswith("/cu126")
    assert gpu_check.torch_index("12.2") is None and gpu_check.torch_index(None) is None
    monkeypatch.setenv("HEADSPLAT_TORCH_INDEX", "https://example.invalid/whl/cu999")
    assert gpu_check.torch_index("12.2") == "https://example.invalid/whl/cu999"


def test_render_benchmark_grid_cli():
    from benchmarks.render import main
    assert main(["--backend", "cpu", "--gaussians", "300,600", "--size", "32", "--frames", "1"]) == 0
    assert main(["--backend", "cpu", "--gaussians", "300", "--size", "32", "--frames", "1", "--raster-only"]) == 1
    with pytest.raises(SystemExit):
        main(["--gaussians", "100,x"])


def test_headsplat_backend_overrides_auto(monkeypatch):
    from model.core.render import available_backends, render
    from tests.test_render import mixed_scene
    g, cam = mixed_scene(5, sh_degree=0)
    monkeypatch.setenv("HEADSPLAT_BACKEND", "cpu")
    np.testing.assert_array_equal(render(g, cam).rgb, render(g, cam, backend="cpu").rgb)
    monkeypatch.setenv("HEADSPLAT_BACKEND", "vulkan")
    with pytest.raises(ValueError, match="HEADSPLAT_BACKEND"):
        render(g, cam)
    render(g, cam, backend="cpu")  # an explicit backend is never overridden
    monkeypatch.setenv("HEADSPLAT_BACKEND", "auto")
    render(g, cam)
    if "gsplat" not in available_backends():
        monkeypatch.setenv("HEADSPLAT_BACKEND", "gsplat")
        with pytest.raises(RuntimeError, match="CUDA"):  # forced, not silently the CPU
            render(g, cam)


# ------------------------------------------------------------------ ZeroGPU wrapper (app._gpu)

FAKE_SPACES = '''
"""Stand-in for Hugging Face's `spaces` (ZeroGPU): GPU as a decorator that records calls."""
import functools
calls = []
decorated = []

def GPU(task=None, *, duration=None, size=None):
    def deco(fn):
        decorated.append(fn.__name__)
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            calls.append(fn.__name__)
            return fn(*args, **kwargs)
        wrapper.zerogpu = None  # as the real decorator marks its wrappers
        return wrapper
    return deco(task) if callable(task) else deco
'''

PROBE = textwrap.dedent('''
    import inspect, json, sys
    import app
    import gradio as gr
    out = {"torch_imported_at_import": "torch" in sys.modules}
    if "torch" in sys.modules:
        out["cuda_initialized_at_import"] = sys.modules["torch"].cuda.is_initialized()
    spaces = sys.modules.get("spaces")
    out["spaces_file"] = getattr(spaces, "__file__", None)
    inner = getattr(app.reconstruct, "__wrapped__", None)  # user_errors -> the GPU wrapper
    out["reconstruct_wrapped"] = inner is not None and hasattr(inner, "zerogpu")
    out["turntable_wrapped"] = hasattr(getattr(app.turntable, "__wrapped__", None), "zerogpu")
    out["drive_wrapped"] = hasattr(getattr(app.drive, "__wrapped__", None), "zerogpu")
    out["progress_param_kept"] = "progress" in inspect.signature(app.reconstruct).parameters
    try:  # no photo: the handler returns without touching any model
        res = app.reconstruct(None, "ours", None)
        out["reconstruct_call"] = "ok: %d outputs" % len(res)
    except gr.Error as e:
        out["reconstruct_call"] = "gr.Error: %s" % e
    try:
        app.turntable(None)
        out["turntable_call"] = "ok"
    except gr.Error as e:
        out["turntable_call"] = "gr.Error: %s" % e
    out["calls"] = list(getattr(spaces, "calls", []))
    if "torch" in sys.modules:
        out["cuda_initialized_after_calls"] = sys.modules["torch"].cuda.is_initialized()
    print(json.dumps(out))
''')


def _probe_app(env_extra: dict, pythonpath: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADSPLAT_", "SPACES_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_zero_gpu_wrapper_with_a_stand_in_spaces(tmp_path):
    """The real `spaces` only runs a decorated handler on a ZeroGPU Space (it schedules a GPU through the
    Space's device API): a stand-in on sys.path checks app.py's side — each heavy handler is wrapped, stays
    callable with its signature, and importing the app initialises no CUDA (torch is not even imported)."""
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "__init__.py").write_text(FAKE_SPACES)
    out = _probe_app({"SPACES_ZERO_GPU": "true"}, [str(tmp_path)])
    assert out["spaces_file"] == str(tmp_path / "spaces" / "__init__.py")
    assert out["reconstruct_wrapped"] and out["turntable_wrapped"] and out["drive_wrapped"]
    assert out["progress_param_kept"]
    assert out["torch_imported_at_import"] is False
    assert out["reconstruct_call"] == "ok: 8 outputs"
    assert out["turntable_call"].startswith("gr.Error") and "create an avatar first" in out["turntable_call"]
    assert out["calls"] == ["reconstruct", "turntable"]
    # without SPACES_ZERO_GPU nothing is wrapped (gradio itself may import an installed `spaces`)
    out = _probe_app({}, [str(tmp_path)])
    assert not out["reconstruct_wrapped"] and out["calls"] == [] and out["reconstruct_call"] == "ok: 8 outputs"


def _torch_has_cuda_build() -> bool:
    import torch
    return torch.version.cuda is not None


@pytest.mark.skipif(importlib.util.find_spec("spaces") is None,
                    reason="the PyPI `spaces` package is not installed (pip install --no-deps spaces==0.51.3)")
@pytest.mark.skipif(not _torch_has_cuda_build(),
                    reason="`spaces` 0.51 in ZeroGPU mode needs a CUDA build of torch to import "
                           "(spaces/zero/torch/static.py reads torch.version.cuda); this torch is CPU-only")
def test_zero_gpu_wrapper_with_the_real_spaces_package():
    """With Hugging Face's own `spaces` (0.51.x) off a Space: it imports torch and patches its CUDA entry
    points, but initialises no CUDA; handlers are its ZeroGPU wrappers. Calling one asks the Space's device
    API for a GPU, which off a Space is unreachable: the app's error handler reports it, it does not crash."""
    out = _probe_app({"SPACES_ZERO_GPU": "true", "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9/"}, [])
    assert out["reconstruct_wrapped"] and out["turntable_wrapped"] and out["drive_wrapped"]
    assert out["progress_param_kept"]
    assert out.get("cuda_initialized_at_import") in (None, False)
    assert out.get("cuda_initialized_after_calls") in (None, False)
    assert out["reconstruct_call"].startswith("ok") or "internal error" in out["reconstruct_call"]
