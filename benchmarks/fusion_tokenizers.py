"""How much of a spoken digit survives a speech tokenizer: a fusion run's audio judge (trained on real speech)
classifies each tokenizer's reconstructions of held-out av-digits clips. This bounds image -> speech and
joint coherence, which the same judge scores.

    python benchmarks/fusion_tokenizers.py --run runs/bench-fusion/seed0 \
        --tokenizer runs/bench-fusion/seed0/tokenizers/audio/model:2 --tokenizer runs/gpu/audio/model:1
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, environment_line, markdown_table, write_results  # noqa: E402

from vqfuse.codec import load_model  # noqa: E402
from vqfuse.data.paired import make_paired_dataset  # noqa: E402
from vqfuse.fusion.evaluate import _spread, _stack  # noqa: E402
from vqfuse.fusion.judges import load_judge  # noqa: E402
from vqfuse.fusion.model import FusionModel  # noqa: E402
from vqfuse.fusion.tokens import encode_with_stages  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a fusion run whose audio judge (judges/audio) scores the clips")
    parser.add_argument(
        "--tokenizer",
        action="append",
        required=True,
        metavar="MODEL:N_Q",
        help="an audio tokenizer and the residual stages to use (repeatable)",
    )
    parser.add_argument("--items", type=int, default=200, help="held-out pairs, spread over the test split")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment()
    run = Path(args.run)
    model = FusionModel.from_run(run)
    judge = load_judge(run / "judges" / "audio")
    data = dict(model.description.get("data", {}))
    spec = str(data.pop("train", "av-digits"))
    data.pop("test", None)
    test = make_paired_dataset(spec, "test", **data)
    _, audio, labels = _stack(test, _spread(len(test), args.items))
    audio = model.prepare("audio", audio)
    rows, results = [["real speech (no tokenizer)", "-", f"{judge.accuracy(audio, labels):.3f}"]], {}
    results["real"] = judge.accuracy(audio, labels)
    for item in args.tokenizer:
        path, n_q = item.rsplit(":", 1)
        tok = load_model(path).eval()
        with torch.no_grad():
            rec = tok.decode_codes(encode_with_stages(tok, audio, int(n_q)))[..., : audio.shape[-1]].clamp(-1, 1)
        acc = judge.accuracy(rec, labels)
        results[item] = {"model_id": tok.model_id, "n_q": int(n_q), "judge_accuracy": acc}
        rows.append([f"`{path}` ({tok.model_id})", n_q, f"{acc:.3f}"])
    md = "\n\n".join(
        [
            "# Spoken digits through speech tokenizers, judged",
            "Command: `"
            + shlex.join(["python", "benchmarks/fusion_tokenizers.py", *(argv if argv is not None else sys.argv[1:])])
            + "`",
            environment_line(env),
            f"{len(labels)} held-out clips of `{spec}` (test voices), 1 s at {model.meta('audio')['sample_rate']} Hz; the audio judge of "
            f"`{run}` (trained on real training speech) classifies each tokenizer's reconstructions.",
            markdown_table(["audio", "stages", "judge accuracy"], rows, ["l", "r", "r"]),
        ]
    )
    write_results("fusion-tokenizers", {"environment": env, "items": len(labels), "results": results}, md)
    print(md)
    return results


if __name__ == "__main__":
    main()
