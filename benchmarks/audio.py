"""Speech codec benchmark: held-out voices at 16 kHz, vqfuse tokens at every bitrate vs Opus in the same run.

The clips are the `speech` dataset's test split (voices never heard in training), whole utterances at
16 kHz mono. The model is measured through the public codec API (Tokenizer.encode_item -> .vqf bytes ->
Tokenizer.decode_item) at each number of residual stages; Opus is encoded and decoded by libsndfile through
soundfile (Ogg Opus, ``compression_level`` calibrated on these clips to payload bitrates near the
targets), and by libopus through PyAV with the bit rate set to exactly 3, 6 and 12 kbit/s (libsndfile cannot
go below about 6.4); both anchors come from `vqfuse.baselines.audio`. All are scored by the package's own
metrics: SI-SNR, log-mel L1 and MR-STFT per clip, STOI per voice (its clips joined, as pystoi needs ~0.4 s
of speech). Also: codebook usage per residual stage, the real-time factor of encode + decode on `--threads`
torch threads, and example WAVs.

    python benchmarks/audio.py --steps 3000                         # trains the preset into --runs, then measures
    python benchmarks/audio.py --model runs/gpu/audio --note "..."  # measure an existing run or model directory
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS_DIR,
    contention,
    cpu_snapshot,
    environment,
    environment_line,
    load_average,
    markdown_table,
    verdict,
    write_results,
)

from vqfuse.baselines.audio import (  # noqa: E402
    OPUS_RATES,
    align,
    calibrate_sndfile_opus,
    opus_at_kbps,
    opus_settings,
    sndfile_opus_decode,
    sndfile_opus_encode,
    sndfile_opus_rates,
)
from vqfuse.codec import load_model  # noqa: E402
from vqfuse.io.tokenfile import decode_tokens, encode_tokens  # noqa: E402
from vqfuse.metrics.audio import log_mel_l1, mr_stft_distance, si_snr, stoi  # noqa: E402
from vqfuse.modalities import get_modality  # noqa: E402

PRESET = "audio-speech16k"
METRICS = ("stoi", "si_snr", "log_mel_l1", "mr_stft")
MAX_LAG_S = 0.03  # Opus output is searched for a delay of up to +-30 ms before scoring
EXAMPLES = "audio-examples"  # folder under the results directory


# ---- clips ----------------------------------------------------------------------------------------------


def held_out_clips(sample_rate: int, n: int) -> tuple[list[torch.Tensor], list[dict]]:
    """`n` whole utterances of the speech test split (held-out voices), evenly spread over the split
    (every voice and utterance kind represented); each (1, T) float32. Returns (clips, info per clip)."""
    ds = get_modality("audio").dataset("speech", "test", {"sample_rate": sample_rate, "segment_seconds": None})
    idx = sorted(set(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int).tolist()))
    clips = [ds[i] for i in idx]
    info = [{"index": i, "voice": ds.voices[i], "kind": ds.kinds[i], "text": ds.texts[i]} for i in idx]
    return clips, info


# ---- scoring --------------------------------------------------------------------------------------------


PER_VOICE = ("stoi",)  # metrics scored on each voice's clips joined end to end, not per clip


def score(est: torch.Tensor, ref: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Per-clip metrics, (1, T) each; the estimate clamped to [-1, 1] (what a file holds)."""
    e, r = est.float().clamp(-1, 1)[None], ref.float()[None]  # (1, 1, T)
    return {
        "si_snr": float(si_snr(e, r)),
        "log_mel_l1": float(log_mel_l1(e, r, sample_rate)),
        "mr_stft": float(mr_stft_distance(e, r)),
    }


MIN_GROUP_S = 1.5


def stoi_groups(clips: list[torch.Tensor], info: list[dict], sample_rate: int) -> list[list[int]]:
    """Clip indices per voice, a voice with under MIN_GROUP_S seconds of clips joined with the next one."""
    voices = list(dict.fromkeys(c["voice"] for c in info))
    groups: list[list[int]] = []
    seconds = lambda g: sum(clips[i].shape[-1] for i in g) / sample_rate  # noqa: E731
    for v in voices:
        g = [i for i, c in enumerate(info) if c["voice"] == v]
        if groups and seconds(groups[-1]) < MIN_GROUP_S:
            groups[-1] += g
        else:
            groups.append(g)
    if len(groups) > 1 and seconds(groups[-1]) < MIN_GROUP_S:
        groups[-2] += groups.pop()
    return groups


def score_all(
    outputs: list[torch.Tensor], clips: list[torch.Tensor], groups: list[list[int]], sample_rate: int
) -> dict:
    """{"clips": [per-clip metrics], "voices": [per-voice metrics]}.

    STOI is computed per voice on its clips joined end to end (estimates joined the same way): pystoi needs
    about 0.4 s of speech and returns ~0 for shorter signals, and many held-out utterances (single digits)
    are shorter than that. Each clip was still encoded and decoded on its own.
    """
    per_clip = [score(y, x, sample_rate) for y, x in zip(outputs, clips)]
    per_voice = []
    for g in groups:
        e = torch.cat([outputs[i].float().clamp(-1, 1) for i in g], dim=-1)[None]  # (1, 1, T)
        r = torch.cat([clips[i].float() for i in g], dim=-1)[None]
        per_voice.append({"stoi": float(stoi(e, r, sample_rate))})
    return {"clips": per_clip, "voices": per_voice}


def high_band_ratio(
    outputs: list[np.ndarray], clips: list[np.ndarray], sample_rate: int, cutoff: float = 4000.0
) -> float:
    """Share of the energy above `cutoff` Hz in the outputs over that share in the originals (1: as much
    high band as the input; ~0: band-limited, e.g. narrowband Opus), all clips together."""

    def share(xs: list[np.ndarray]) -> float:
        hi = total = 0.0
        for x in xs:
            p = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
            f = np.fft.rfftfreq(len(x), 1 / sample_rate)
            hi, total = hi + p[f > cutoff].sum(), total + p.sum()
        return hi / total

    return share(outputs) / share(clips)


def _values(scores: dict, metric: str) -> list[float]:
    return [c[metric] for c in scores["voices" if metric in PER_VOICE else "clips"]]


def ci95(xs: list[float]) -> float:
    return 1.96 * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")


def summarise(scores: dict) -> dict[str, dict[str, float]]:
    """Mean, standard deviation and 95% CI of the mean of every metric (over clips, or voices for STOI)."""
    out = {}
    for m in METRICS:
        xs = _values(scores, m)
        out[m] = {
            "mean": statistics.fmean(xs),
            "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "ci95": ci95(xs),
            "n": len(xs),
        }
    return out


def paired(a: dict, b: dict, metric: str) -> dict[str, float]:
    """Mean and 95% CI of a - b for `metric`, paired over the same clips (or voices)."""
    d = [x - y for x, y in zip(_values(a, metric), _values(b, metric))]
    return {"diff": statistics.fmean(d), "ci95": ci95(d)}


# ---- the model ------------------------------------------------------------------------------------------


def roundtrip(model, x: torch.Tensor, n_q: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """encode -> .vqf bytes -> decode through the public codec API: (output (1, T), indices, file bytes)."""
    data = encode_tokens(model.encode_item(x, n_q=n_q))
    tf = decode_tokens(data)
    return model.decode_item(tf), torch.as_tensor(tf.indices), len(data)


def run_model(model, clips: list[torch.Tensor], n_q: int) -> dict:
    """Round trip of every clip (timed as a whole: the per-file real-time factor)."""
    outputs, indices, nbytes = [], [], 0
    start = time.perf_counter()
    for x in clips:
        y, idx, n = roundtrip(model, x, n_q)
        outputs.append(y)
        indices.append(idx)
        nbytes += n
    return {"outputs": outputs, "indices": indices, "bytes": nbytes, "seconds": time.perf_counter() - start}


def time_roundtrips(model, clips: list[torch.Tensor], n_q: int) -> float:
    start = time.perf_counter()
    for x in clips:
        roundtrip(model, x, n_q)
    return time.perf_counter() - start


def stage_usage(indices: list[torch.Tensor], codebook_size: int) -> list[dict[str, float]]:
    """Per residual stage over all clips: fraction of the codes used and perplexity of their use."""
    idx = torch.cat([i.reshape(i.shape[0], -1) for i in indices], dim=1)  # (n_q, frames)
    out = []
    for stage in idx:
        counts = torch.bincount(stage.long(), minlength=codebook_size).double()
        p = counts[counts > 0] / counts.sum()
        out.append({"usage": float((counts > 0).double().mean()), "perplexity": float(torch.exp(-(p * p.log()).sum()))})
    return out


def architecture(model) -> str:
    """One phrase for the report: which autoencoder the model has and its size."""
    ae = model.config.autoencoder
    params = sum(p.numel() for p in model.parameters()) / 1e6
    if getattr(ae, "kind", None) == "spectral":
        return (
            f"spectral: STFT {ae.n_fft}/{ae.hop}, encoder {ae.enc_dim}/{ae.enc_mlp} x {ae.enc_blocks}, decoder "
            f"{ae.dec_dim}/{ae.dec_mlp} x {ae.dec_blocks}, {params:.1f} M parameters"
        )
    return f"waveform convs, {params:.1f} M parameters"


def train_metrics(run: Path) -> dict:
    import json

    for d in (run, run.parent):
        f = d / "metrics.json"
        if f.is_file():
            m = json.loads(f.read_text())
            return {k: m[k] for k in ("steps", "train_items_per_s", "wall_time_s", "model_id") if k in m}
    return {}


def save_wav(x: np.ndarray, path: Path, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1, 1), sample_rate, subtype="PCM_16")


def measure_pyav_opus(
    np_clips: list[np.ndarray], clips: list[torch.Tensor], groups: list[list[int]], sr: int, kbps: float, max_lag: int
) -> dict:
    """Every clip through `opus_at_kbps` on its own, aligned by the same lag search as libsndfile's output and
    scored like it; the payload rate over all clips."""
    start = time.perf_counter()
    coded = [opus_at_kbps(x, sr, kbps) for x in np_clips]
    codec_s = time.perf_counter() - start
    audio_s = sum(len(x) for x in np_clips) / sr
    payload_bits = sum(rate * 1000 * len(x) / sr for (_, rate), x in zip(coded, np_clips))
    aligned = [align(y, x, max_lag) for (y, _), x in zip(coded, np_clips)]
    lags = [lag for _, lag in aligned]
    scores = score_all([torch.from_numpy(y)[None] for y, _ in aligned], clips, groups, sr)
    vbr, frame_ms = opus_settings(kbps)
    return {
        "kbps": kbps,
        "vbr": vbr,
        "frame_ms": frame_ms,
        "payload_kbps": payload_bits / audio_s / 1000,
        "rtf_per_file": audio_s / codec_s,
        "high_band_ratio": high_band_ratio([y for y, _ in aligned], np_clips, sr),
        "lags_samples": {str(v): lags.count(v) for v in sorted(set(lags))},
        "metrics": summarise(scores),
    }


# ---- main -----------------------------------------------------------------------------------------------


def fmt_metric(s: dict, m: str) -> str:
    digits = {"stoi": 3, "si_snr": 1, "log_mel_l1": 3, "mr_stft": 3}[m]
    return f"{s[m]['mean']:.{digits}f} ± {s[m]['ci95']:.{digits}f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="measure this run or model directory (no training)")
    parser.add_argument(
        "--runs", default="runs/bench-audio", help="where to train the preset when --model is not given"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps (preset default)")
    parser.add_argument(
        "--clips", type=int, default=200, help="held-out clips (whole utterances, spread over the test voices)"
    )
    parser.add_argument("--n-q", type=int, nargs="*", default=None, help="residual stages to measure (default: 1..max)")
    parser.add_argument(
        "--opus-kbps", type=float, nargs="*", default=[3.0, 6.0, 12.0], help="Opus payload bitrates to aim for"
    )
    parser.add_argument(
        "--pyav-opus-kbps",
        type=float,
        nargs="*",
        default=list(OPUS_RATES),
        help="bit rates of the PyAV libopus anchor (set exactly, on the same clips)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--timing-repeats", type=int, default=2, help="extra timed full-rate passes (real-time factor)")
    parser.add_argument("--examples", type=int, default=2, help="clips written as WAVs to results/audio-examples")
    parser.add_argument("--results", default=str(RESULTS_DIR), help="where audio.json / audio.md go")
    parser.add_argument("--note", default="", help="where the measured model was trained, or other context")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment({"soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__})
    snap = cpu_snapshot()
    t_start = time.perf_counter()

    if args.model:
        run = Path(args.model)
    else:
        from vqfuse.train.config import load_config
        from vqfuse.train.trainer import train

        run = Path(args.runs)
        train(load_config(PRESET, ([f"steps={args.steps}"] if args.steps else []) + [f"out={run}"]), progress=False)
    model = load_model(run)
    if not model.quantizer.variable_rate or model.modality.rate_unit != "kbit/s":
        raise SystemExit(f"{run}: expected a residual audio model")
    sr = int(model.config.meta.get("sample_rate", 16000))
    max_q = model.quantizer.n_quantizers
    n_qs = sorted(set(args.n_q)) if args.n_q else list(range(1, max_q + 1))
    if any(not 1 <= n <= max_q for n in n_qs):
        raise SystemExit(f"--n-q must be within 1..{max_q}")

    clips, clip_info = held_out_clips(sr, args.clips)
    audio_s = sum(c.shape[-1] for c in clips) / sr
    np_clips = [c[0].numpy() for c in clips]
    print(f"{len(clips)} held-out clips, {audio_s:.1f} s, {len({c['voice'] for c in clip_info})} voices", flush=True)
    groups = stoi_groups(clips, clip_info, sr)
    chosen: list[int] = []  # example clips: the first sentences, from different voices
    for i, c in enumerate(clip_info):
        if (
            len(chosen) < args.examples
            and c["kind"] == "sentences"
            and c["voice"] not in {clip_info[j]["voice"] for j in chosen}
        ):
            chosen.append(i)

    # ---- the model at each bitrate
    roundtrip(model, clips[0], max_q)  # warm-up
    ours: dict[int, dict] = {}
    per_clip_ours: dict[int, list] = {}
    outputs_for_examples: dict[int, list] = {}
    usage = None
    for n_q in n_qs:
        res = run_model(model, clips, n_q)
        per_clip_ours[n_q] = score_all(res["outputs"], clips, groups, sr)
        outputs_for_examples[n_q] = {i: res["outputs"][i][0].numpy() for i in chosen}
        if n_q == n_qs[-1]:  # the highest rate measured
            usage = {"n_q": n_q, "stages": stage_usage(res["indices"], int(model.codebook_size))}
        ours[n_q] = {
            "n_q": n_q,
            "kbps": model.rate(n_q),
            "vqf_file_kbps": res["bytes"] * 8 / audio_s / 1000,
            "rtf_per_file": audio_s / res["seconds"],
            "high_band_ratio": high_band_ratio([y[0].numpy() for y in res["outputs"]], np_clips, sr),
            "metrics": summarise(per_clip_ours[n_q]),
        }
        s = ours[n_q]["metrics"]
        print(
            f"n_q {n_q:2d} {ours[n_q]['kbps']:.2f} kbps: STOI {s['stoi']['mean']:.3f} log-mel {s['log_mel_l1']['mean']:.3f} "
            f"SI-SNR {s['si_snr']['mean']:.1f} RTF {ours[n_q]['rtf_per_file']:.1f}x",
            flush=True,
        )

    # real-time factor at the full rate: the metric pass plus extra passes (median), and one long file
    top = n_qs[-1]
    passes = [audio_s / ours[top]["rtf_per_file"]] + [
        time_roundtrips(model, clips, top) for _ in range(args.timing_repeats)
    ]
    long = torch.cat(clips, dim=-1)
    start = time.perf_counter()
    roundtrip(model, long, top)
    long_s = time.perf_counter() - start
    mkldnn = torch.backends.mkldnn.enabled  # diagnostic: the same per-file pass without oneDNN convolutions
    torch.backends.mkldnn.enabled = False
    try:
        roundtrip(model, clips[0], top)
        no_mkldnn_s = time_roundtrips(model, clips, top)
    finally:
        torch.backends.mkldnn.enabled = mkldnn
    timing = {
        "n_q": top,
        "per_file_seconds": passes,
        "rtf_per_file_median": audio_s / statistics.median(passes),
        "rtf_long_file": audio_s / long_s,
        "long_file_seconds": audio_s,
        "rtf_per_file_without_mkldnn": audio_s / no_mkldnn_s,
    }

    # ---- Opus, calibrated on the same clips
    calib = [calibrate_sndfile_opus(np_clips, sr, k) for k in args.opus_kbps]
    opus: dict[str, dict] = {}
    per_clip_opus: dict[str, list] = {}
    opus_examples: dict[str, list] = {}
    max_lag = round(MAX_LAG_S * sr)
    for c in calib:
        key = f"{c['compression_level']:.6f}"
        if key in opus:  # two targets landed on the same setting (e.g. below libsndfile's lowest bitrate)
            opus[key]["targets"].append(c["target_kbps"])
            continue
        nfile = npay = 0
        lags, outs = [], []
        start = time.perf_counter()
        decoded = []
        for x in np_clips:
            data, pay = sndfile_opus_encode(x, sr, c["compression_level"])
            decoded.append(sndfile_opus_decode(data, sr))
            nfile, npay = nfile + len(data), npay + pay
        codec_s = time.perf_counter() - start
        for y, x in zip(decoded, np_clips):
            y, lag = align(y, x, max_lag)
            lags.append(lag)
            outs.append(y)
        scores = score_all([torch.from_numpy(y)[None] for y in outs], clips, groups, sr)
        per_clip_opus[key] = scores
        opus_examples[key] = {i: outs[i] for i in chosen}
        opus[key] = {
            "targets": [c["target_kbps"]],
            "compression_level": c["compression_level"],
            "nominal_kbps": 6 + (1 - c["compression_level"]) * 250,  # libsndfile's linear mapping (per channel)
            "file_kbps": nfile * 8 / audio_s / 1000,
            "payload_kbps": npay * 8 / audio_s / 1000,
            "rtf_per_file": audio_s / codec_s,
            "high_band_ratio": high_band_ratio(outs, np_clips, sr),
            "lags_samples": {str(v): lags.count(v) for v in sorted(set(lags))},
            "metrics": summarise(scores),
        }
        s = opus[key]["metrics"]
        print(
            f"Opus level {c['compression_level']:.4f}: payload {opus[key]['payload_kbps']:.2f} kbps, file "
            f"{opus[key]['file_kbps']:.2f}: STOI {s['stoi']['mean']:.3f} log-mel {s['log_mel_l1']['mean']:.3f} "
            f"lags {opus[key]['lags_samples']}",
            flush=True,
        )

    # ---- Opus through PyAV's libopus at exactly the bit rates asked, on the same clips
    pyav_opus = {str(k): measure_pyav_opus(np_clips, clips, groups, sr, k, max_lag) for k in args.pyav_opus_kbps}
    for k, o in pyav_opus.items():
        s = o["metrics"]
        print(
            f"Opus (PyAV) {float(k):g} kbps: payload {o['payload_kbps']:.2f} kbps: STOI {s['stoi']['mean']:.3f} "
            f"log-mel {s['log_mel_l1']['mean']:.3f} lags {o['lags_samples']}",
            flush=True,
        )

    def opus_for(target: float) -> str | None:
        for k, o in opus.items():
            if target in o["targets"]:
                return k
        return None

    # ---- targets
    targets, target_data = [], {}
    full_q = max((n for n in n_qs if model.rate(n) <= 6 + 1e-9), default=None)
    q3 = model.n_q_for_rate(3.0) if model.rates()[0] <= 3.0 else None
    q3 = q3 if q3 in n_qs else None
    o6, o12 = opus_for(6.0), opus_for(12.0)

    def beats(q: int | None, ok: str | None, label: str) -> None:
        if q is None or ok is None:
            targets.append([label, "not measured", "n/a"])
            return
        ds, dm = (
            paired(per_clip_ours[q], per_clip_opus[ok], "stoi"),
            paired(per_clip_ours[q], per_clip_opus[ok], "log_mel_l1"),
        )
        a, b = ours[q]["metrics"], opus[ok]["metrics"]
        target_data[label] = {"n_q": q, "opus": ok, "stoi": ds, "log_mel_l1": dm}
        targets.append(
            [
                label,
                f"STOI {a['stoi']['mean']:.3f} vs {b['stoi']['mean']:.3f} ({ds['diff']:+.3f} ± {ds['ci95']:.3f}); "
                f"log-mel L1 {a['log_mel_l1']['mean']:.3f} vs {b['log_mel_l1']['mean']:.3f} ({dm['diff']:+.3f} ± {dm['ci95']:.3f})",
                verdict(min(ds["diff"], -dm["diff"]), 1e-12, True),
            ]
        )

    if o6:
        beats(
            full_q,
            o6,
            f"<= 6 kbps ({model.rate(full_q):g} kbps, n_q {full_q}): higher STOI and lower log-mel L1 than "
            f"Opus at ~6 kbps ({opus[o6]['payload_kbps']:.2f} kbps payload)"
            if full_q
            else "<= 6 kbps vs Opus ~6 kbps",
        )
        beats(
            q3,
            o6,
            f"stretch: 3 kbps (n_q {q3}) better than Opus at ~6 kbps ({opus[o6]['payload_kbps']:.2f} kbps payload)",
        )
    if o12 and full_q:
        ds, dm = (
            paired(per_clip_ours[full_q], per_clip_opus[o12], "stoi"),
            paired(per_clip_ours[full_q], per_clip_opus[o12], "log_mel_l1"),
        )
        a, b = ours[full_q]["metrics"], opus[o12]["metrics"]
        label = (
            f"stretch: {model.rate(full_q):g} kbps matches Opus at ~12 kbps ({opus[o12]['payload_kbps']:.2f} kbps "
            "payload): STOI and log-mel L1 no worse beyond the 95% CI of the paired difference"
        )
        target_data[label] = {"n_q": full_q, "opus": o12, "stoi": ds, "log_mel_l1": dm}
        targets.append(
            [
                label,
                f"STOI {a['stoi']['mean']:.3f} vs {b['stoi']['mean']:.3f} ({ds['diff']:+.3f} ± {ds['ci95']:.3f}); "
                f"log-mel L1 {a['log_mel_l1']['mean']:.3f} vs {b['log_mel_l1']['mean']:.3f} ({dm['diff']:+.3f} ± {dm['ci95']:.3f})",
                verdict(min(ds["diff"] + ds["ci95"], dm["ci95"] - dm["diff"]), 0.0, True),
            ]
        )
    targets.append(
        [
            f"real-time factor >= 50x at {model.rate(top):g} kbps, encode + decode, {args.threads} threads",
            f"{timing['rtf_per_file_median']:.1f}x per file (median of {len(passes)} passes), {timing['rtf_long_file']:.1f}x as one long file",
            verdict(timing["rtf_per_file_median"], 50.0, True),
        ]
    )
    if usage:
        lowest = min(s["usage"] for s in usage["stages"])
        targets.append(
            [
                f"codebook usage >= 90% in every stage (n_q {usage['n_q']}, all {len(clips)} clips)",
                f"lowest stage {100 * lowest:.1f}%",
                verdict(lowest, 0.90, True),
            ]
        )

    # ---- example WAVs: the first clips of kind "sentences", from different voices
    example_files = []
    if chosen:
        ex_q = sorted({min(n_qs, key=lambda n: abs(model.rate(n) - k)) for k in (1.5, 3.0, 6.0)})
        ex_dir = Path(args.results) / EXAMPLES
        ex_dir.mkdir(parents=True, exist_ok=True)
        for old in ex_dir.glob("clip*.wav"):
            old.unlink()
        for j, i in enumerate(chosen):
            files = [(f"clip{j}-original.wav", np_clips[i])]
            files += [(f"clip{j}-vqfuse-{model.rate(q):g}kbps.wav", outputs_for_examples[q][i]) for q in ex_q]
            if o6:
                files.append((f"clip{j}-opus-{opus[o6]['payload_kbps']:.1f}kbps.wav", opus_examples[o6][i]))
            for name, audio in files:
                save_wav(audio, ex_dir / name, sr)
                example_files.append(name)

    env["load_average_end"] = load_average()
    env["contention"] = contention(snap, cpu_snapshot())
    env["wall_s"] = time.perf_counter() - t_start

    # ---- report
    rows = []
    for n_q in n_qs:
        r = ours[n_q]
        rows.append(
            [
                f"vqfuse n_q={n_q}",
                f"{r['kbps']:g}",
                f"{r['vqf_file_kbps']:.2f}",
                *[fmt_metric(r["metrics"], m) for m in METRICS],
                f"{r['high_band_ratio']:.2f}",
                f"{r['rtf_per_file']:.1f}x",
            ]
        )
    for k, o in opus.items():
        rows.append(
            [
                f"Opus level {o['compression_level']:.4f} (aim {', '.join(f'{t:g}' for t in o['targets'])} kbps)",
                f"{o['payload_kbps']:.2f}",
                f"{o['file_kbps']:.2f}",
                *[fmt_metric(o["metrics"], m) for m in METRICS],
                f"{o['high_band_ratio']:.2f}",
                f"{o['rtf_per_file']:.0f}x",
            ]
        )
    for k, o in pyav_opus.items():
        rows.append(
            [
                f"Opus PyAV {float(k):g} kbps ({'VBR' if o['vbr'] else 'CBR'}, {o['frame_ms']} ms)",
                f"{o['payload_kbps']:.2f}",
                "–",
                *[fmt_metric(o["metrics"], m) for m in METRICS],
                f"{o['high_band_ratio']:.2f}",
                f"{o['rtf_per_file']:.0f}x",
            ]
        )
    table = markdown_table(
        [
            "codec",
            "kbps (tokens / Opus payload)",
            "whole-file kbps",
            "STOI",
            "SI-SNR dB",
            "log-mel L1",
            "MR-STFT",
            "> 4 kHz",
            "RTF",
        ],
        rows,
        ["l"] + ["r"] * 8,
    )
    usage_table = (
        markdown_table(
            ["stage"] + [str(i + 1) for i in range(len(usage["stages"]))],
            [
                ["codes used"] + [f"{100 * s['usage']:.1f}%" for s in usage["stages"]],
                ["perplexity"] + [f"{s['perplexity']:.0f}" for s in usage["stages"]],
            ],
            ["l"] + ["r"] * len(usage["stages"]),
        )
        if usage
        else ""
    )
    unreachable = [c["target_kbps"] for c in calib if not c["reachable"]]
    train_info = train_metrics(run)
    lines = [
        "# Speech codec on held-out voices (16 kHz) vs Opus",
        f"Command: `python benchmarks/audio.py {shlex.join(argv if argv is not None else sys.argv[1:])}`".rstrip(),
        environment_line(env) + f", soundfile {sf.__version__} ({sf.__libsndfile_version__})",
        f"Model: `{run}` (id {model.model_id}, {architecture(model)}, {max_q} stages x {model.codebook_size} codes, "
        f"{train_info.get('steps', '?')} training steps). {args.note}".rstrip(),
        f"Clips: {len(clips)} whole utterances ({audio_s:.1f} s, {min(c.shape[-1] for c in clips) / sr:.2f}-"
        f"{max(c.shape[-1] for c in clips) / sr:.2f} s each) of the `speech` test split: "
        f"{len({c['voice'] for c in clip_info})} voices never seen in training, 16 kHz mono.",
        table,
        "Mean ± 95% CI over clips, each clip encoded, decoded and scored on its own with `vqfuse.metrics.audio` (outputs "
        f"clamped to [-1, 1]); STOI over voices instead ({len(groups)} groups: each voice's decoded clips joined end to end "
        f"and scored against its joined originals, a voice with under {MIN_GROUP_S:g} s of clips joined with the next), "
        "since pystoi returns ~0 for signals under about 0.4 s, as many single-digit clips are. "
        "kbps: for vqfuse the token bitrate (stages x 10 bits x 50 frames/s); for Opus the audio packets without the "
        "Ogg/OpusHead/OpusTags overhead. Whole-file kbps: `.vqf` files (bit-packed tokens + JSON header + CRC) and Ogg Opus "
        "files, one per clip; libsndfile pads the OpusTags page to about 800 bytes, which dominates whole-file rates of "
        "sub-second clips. > 4 kHz: share of the energy above 4 kHz in the output over that in the input (all clips; "
        "~0 means band-limited to 4 kHz, which log-mel L1 punishes hard: Opus switches to narrowband at its lowest rates). RTF: seconds of audio per second of encode + decode, one clip at a time "
        f"({args.threads} torch threads for vqfuse; libopus single-threaded, measured once, including the Ogg container).",
        f"Opus: `soundfile.write(buf, x, {sr}, format='OGG', subtype='OPUS', compression_level=L)`; libsndfile maps L in "
        "0..1 linearly to a target of 256..6 kbit/s per channel (the `bitrate_mode` argument is rejected for Opus by "
        f"libsndfile {sf.__libsndfile_version__}, so the encoder runs in libopus's default VBR). L was found by bisection "
        "on these clips for the payload bitrate closest to each aim. Decoded by libsndfile at "
        f"{sr} Hz (pre-skip removed, same length as the input); delays searched within ±{MAX_LAG_S * 1000:.0f} ms by "
        "cross-correlation: "
        + "; ".join(f"level {o['compression_level']:.4f}: {o['lags_samples']}" for o in opus.values())
        + " (lag in samples: clips).",
        "Opus PyAV: `vqfuse.baselines.audio.opus_at_kbps`, libopus through PyAV (CodecContext, no container, so no "
        "whole-file rate) with the bit rate set to exactly the aim: VBR from 6 kbit/s up, CBR below (libopus's VBR does "
        "not go below about 5 kbit/s on speech), 40 ms frames; the pre-skip is removed from the decoded 48 kHz signal, "
        f"which is resampled to {sr} Hz. Delays found by the same search: "
        + "; ".join(f"{float(k):g} kbps: {o['lags_samples']}" for k, o in pyav_opus.items())
        + ".",
    ]
    if unreachable:
        lines.append(
            f"Not reachable through libsndfile: Opus at {', '.join(f'{t:g}' for t in unreachable)} kbps (its lowest "
            f"setting, compression_level 1.0, gives {sndfile_opus_rates(np_clips, sr, 1.0)[1]:.2f} kbps payload here); "
            "those aims use the lowest setting."
        )
    lines += [
        f"Codebook usage per residual stage at n_q = {usage['n_q']} over all {len(clips)} clips "
        f"({sum(c.shape[-1] for c in clips) // model.downsample_factors[0]} frames, {model.codebook_size} codes per stage):"
        if usage
        else "",
        usage_table,
        f"Real-time factor at {model.rate(top):g} kbps: per file {timing['rtf_per_file_median']:.1f}x (median of "
        f"{len(passes)} passes: {', '.join(f'{p:.1f}' for p in passes)} s for {audio_s:.1f} s of audio); the clips as one "
        f"{audio_s:.0f} s file (10 s windows): {timing['rtf_long_file']:.1f}x. Diagnostic, not the target figure: the per-file "
        f"pass with `torch.backends.mkldnn.enabled = False` ran at {timing['rtf_per_file_without_mkldnn']:.1f}x "
        "(oneDNN against the plain convolutions on these short inputs; timings need quiet cores).",
        "## Targets",
        markdown_table(["target", "measured", "verdict"], targets, ["l", "l", "l"]),
        (
            f"Examples (16-bit WAV, `{EXAMPLES}/`; {', '.join(clip_info[i]['voice'] + ': ' + repr(clip_info[i]['text']) for i in chosen)}): "
            + ", ".join(f"`{n}`" for n in example_files)
        )
        if example_files
        else "",
    ]
    md = "\n\n".join(part for part in lines if part)
    data = {
        "environment": env,
        "model": {
            "path": str(run),
            "model_id": model.model_id,
            "architecture": architecture(model),
            "stages": max_q,
            "codebook_size": int(model.codebook_size),
            "train": train_info,
            "note": args.note,
        },
        "clips": {"count": len(clips), "seconds": audio_s, "items": clip_info},
        "ours": {str(k): v for k, v in ours.items()},
        "usage": usage,
        "timing": timing,
        "opus": {"calibration": calib, "settings": opus},
        "opus_pyav": pyav_opus,
        "targets": [{"target": t[0], "measured": t[1], "verdict": t[2]} for t in targets],
        "target_data": target_data,
        "examples": {"clips": [clip_info[i] for i in chosen], "files": example_files},
    }
    write_results("audio", data, md, args.results)
    print(md)
    return data


if __name__ == "__main__":
    main()
