"""Two CPU processes (gloo) through accelerate: DDP generator + discriminator, gathered logs, per-process
RNG states in checkpoints, and an exact resume. Slow (process start-up): run with `pytest -m slow`."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vqfuse.io.weights import load_json, load_weights

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    sys.path.insert(0, {root!r})
    torch.set_num_threads(1)
    from tests.helpers.configs import GAN_LOSS, tiny_config
    from vqfuse.train.trainer import Trainer

    out, resume, kill = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    config = tiny_config(out, loss=GAN_LOSS, train={{"steps": 6, "checkpoint_every": 3, "sample_every": 3, "batch_size": 4}})

    class Killed(Exception):
        pass

    class Interrupted(Trainer):
        def train_step(self, x):
            if self.step == kill:  # every process stops at the same step
                raise Killed
            return super().train_step(x)

    trainer = Interrupted(config, resume=resume, progress=False)
    assert trainer.accelerator.num_processes == 2
    try:
        trainer.run()
    except Killed:
        sys.exit(0)
    """
)


def _launch(script: Path, out: Path, resume: bool, kill: int = -1) -> None:
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(out),
        "1" if resume else "0",
        str(kill),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its workers
        output, _ = proc.communicate()
    assert proc.returncode == 0, output[-4000:]


@pytest.mark.slow
def test_two_processes_train_and_resume_exactly(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    _launch(script, tmp_path / "straight", resume=False)
    _launch(script, tmp_path / "resumed", resume=False, kill=4)  # dies after the checkpoint at 3 steps
    _launch(script, tmp_path / "resumed", resume=True)
    last_a, last_b = tmp_path / "straight" / "checkpoints" / "last", tmp_path / "resumed" / "checkpoints" / "last"
    for name in ("model.safetensors", "ema.safetensors", "disc.safetensors", "optim.safetensors"):
        a, b = load_weights(last_a / name), load_weights(last_b / name)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{name}:{k}")
    state = load_json(last_b / "state.json")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert load_weights(last_b / "rng.safetensors")["torch_cpu"].shape[0] == 2
    metrics = load_json(tmp_path / "resumed" / "metrics.json")
    assert metrics["processes"] == 2 and metrics["heldout"]["n_items"] == 12  # every held-out item, once
