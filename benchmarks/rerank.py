"""Best-of-N reranking: coherence against the number of candidates, on one fusion run's held-out pairs.

Each held-out condition gets `--max-n` candidates, scored once by the prior (`FusionModel.coherence_score`: the
pointwise mutual information of the pair under the prior, for cross-modal and joint pairs alike);
best-of-n uses the first n of them, so every n is measured on the same draws. The run's judges (trained on real
data) score every candidate, which also gives the oracle (some candidate right) as the ceiling reranking
could reach.

    python benchmarks/rerank.py --run runs/bench-fusion-gpucodec/seed0 --items 100 --max-n 16
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, environment_line, markdown_table, write_results  # noqa: E402

from vqfuse.data.paired import make_paired_dataset  # noqa: E402
from vqfuse.fusion.evaluate import _spread, _stack  # noqa: E402
from vqfuse.fusion.judges import load_judge  # noqa: E402
from vqfuse.fusion.model import FusionModel  # noqa: E402
from vqfuse.prior.scoring import pick_best  # noqa: E402


def best_of(correct: torch.Tensor, scores: torch.Tensor, n: int) -> float:
    """correct (N, B) bool and scores (N, B): accuracy of the best-scored among the first n candidates."""
    return float(pick_best(correct[:n], scores[:n]).float().mean())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a fusion run with judges/ (made by vqfuse evaluate)")
    parser.add_argument("--items", type=int, default=100, help="held-out pairs, spread over the test split")
    parser.add_argument("--max-n", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="rerank", help="results file stem under benchmarks/results/")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment()
    run = Path(args.run)
    model = FusionModel.from_run(run)
    judges = {m: load_judge(run / "judges" / m) for m in model.names}
    data = dict(model.description.get("data", {}))
    spec = str(data.pop("train", "av-digits"))
    data.pop("test", None)
    test = make_paired_dataset(spec, "test", **data)
    images, audio, labels = _stack(test, _spread(len(test), args.items))
    signals = {"image": images, "audio": audio}
    g = torch.Generator().manual_seed(args.seed)
    ns = [n for n in (1, 2, 4, 8, 16, 32) if n <= args.max_n]
    results: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for to in model.names:  # speech -> image, then image -> speech
            source = model.other(to)
            cond = model.encode(source, signals[source])  # (B, n_from)
            correct, scores = [], []
            for _ in range(args.max_n):
                cand = model.generate_tokens(cond, to, rerank=1, generator=g)
                scores.append(model.coherence_score({source: cond, to: cand}))
                correct.append(judges[to].predict(model.decode(to, cand)) == labels)
            c, s = torch.stack(correct), torch.stack(scores)
            name = f"{source}_to_{to}".replace("audio", "speech")
            results[name] = {f"best_of_{n}": best_of(c, s, n) for n in ns} | {"oracle": float(c.any(0).float().mean())}
        correct, scores = [], []
        for _ in range(args.max_n):
            codes = model.sample_joint_tokens(len(labels), rerank=1, generator=g)
            scores.append(model.coherence_score(codes))
            correct.append(
                judges["image"].predict(model.decode("image", codes["image"]))
                == judges["audio"].predict(model.decode("audio", codes["audio"]))
            )
        c, s = torch.stack(correct), torch.stack(scores)
        results["joint"] = {f"best_of_{n}": best_of(c, s, n) for n in ns} | {"oracle": float(c.any(0).float().mean())}
    env["load_average_end"] = environment()["load_average_start"]
    sampling = {k: v for k, v in model.sampling.items() if k != "rerank"}
    rows = [[task] + [f"{r[f'best_of_{n}']:.3f}" for n in ns] + [f"{r['oracle']:.3f}"] for task, r in results.items()]
    md = "\n\n".join(
        [
            "# Best-of-N reranking by the prior's own coherence score (`FusionModel.coherence_score`)",
            "Command: `"
            + shlex.join(["python", "benchmarks/rerank.py", *(argv if argv is not None else sys.argv[1:])])
            + "`",
            environment_line(env),
            f"Run `{run}`, {len(labels)} held-out conditions (test images and voices), sampling {sampling}. Candidates are "
            f"drawn once ({args.max_n} per condition); best of n reranks the first n. Oracle: some candidate of the "
            f"{args.max_n} is judged right (the ceiling of any reranker). Joint: both judges agree on the pair.",
            markdown_table(
                ["task"] + [f"best of {n}" for n in ns] + [f"oracle ({args.max_n})"],
                rows,
                ["l"] + ["r"] * (len(ns) + 1),
            ),
        ]
    )
    write_results(
        args.name,
        {"environment": env, "run": str(run), "items": len(labels), "sampling": sampling, "results": results},
        md,
    )
    print(md)
    return results


if __name__ == "__main__":
    main()
