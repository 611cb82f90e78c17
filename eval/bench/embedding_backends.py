"""Embedding backends on this CPU: speed, agreement with fp32 torch, and gold-set retrieval.

    .venv/bin/python eval/bench/embedding_backends.py [--runs 3] [--backends torch,onnx,...]
        [--gold eval/gold.jsonl --corpus corpus] [--gold2 ../shared/bench/squad2/gold-dev.jsonl
        --corpus2 ../shared/bench/squad2/corpus] [--json out.json]

Backends (all all-MiniLM-L6-v2, the same late-chunking pooling):
  torch        sentence-transformers on torch, fp32 (the reference)
  torch-int8   the same model after torch's dynamic int8 quantisation of its Linear layers
  st-onnx      sentence-transformers' own ONNX backend (optimum export, ONNX Runtime)
  onnx         assistant.embedding.OnnxEmbedder: our ONNX export in ONNX Runtime, no torch
  onnx-int8    OnnxEmbedder over ONNX Runtime's dynamic int8 quantisation of that export

Each backend runs in its own process, so that "ready" includes its imports: import + model
load + first vector. "corpus" embeds every chunk of --corpus with its sentence spans (what
indexing does), median of --runs; "cpu" is the process CPU time of that, which other jobs on
the machine disturb less than the wall time. "query" is one short question. Cosines compare
chunk and sentence vectors with torch fp32's. hit_at_k and mrr come from `evaluate` over an
index built with the backend (k=5), on each gold set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("torch", "torch-int8", "st-onnx", "onnx", "onnx-int8")


def make(backend: str, workdir: Path) -> Any:
    """Returns an Embedder for a backend name."""
    from assistant.embedding import OnnxEmbedder, SentenceTransformerEmbedder

    if backend in ("onnx", "onnx-int8"):
        return OnnxEmbedder("all-MiniLM-L6-v2", quantized=backend == "onnx-int8")
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    if backend == "torch-int8":
        import torch

        model = embedder.model
        embedder._model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    elif backend == "st-onnx":
        from sentence_transformers import SentenceTransformer

        folder = workdir / "st-onnx-model"
        if not folder.exists():
            shutil.copytree(embedder.model_dir, folder)
        embedder._model = SentenceTransformer(str(folder), backend="onnx", device="cpu")
    if backend != "torch":
        embedder.model_id = f"all-MiniLM-L6-v2@{backend}"
    return embedder


def chunks_of(corpus: Path) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Returns the embedding texts and sentence spans of a corpus's chunks, as indexing does."""
    from assistant.config import Settings
    from assistant.embedding.base import WindowCounter, model_window, resolve_model_dir
    from assistant.indexing.indexer import sentence_spans
    from assistant.ingest.chunking import Chunker, embedding_text
    from assistant.ingest.documents import load_document, scan_corpus

    settings = Settings()
    model_dir = resolve_model_dir(settings.model)
    window = WindowCounter(model_dir, model_window(model_dir))
    chunker = Chunker(settings.chunk_tokens, settings.chunk_max_tokens, fits=window.fits)
    files, _ = scan_corpus(corpus)
    chunks = [c for f in files for c in chunker.chunk(load_document(f))]
    return [embedding_text(c) for c in chunks], [sentence_spans(c) for c in chunks]


def gold_metrics(embedder: Any, gold: Path, corpus: Path, workdir: Path) -> dict[str, float | None]:
    """Builds an index with the embedder and returns the gold set's hit_at_k and mrr."""
    from assistant import evaluation
    from assistant.config import Settings
    from assistant.pipeline import Assistant

    index_dir = Path(tempfile.mkdtemp(dir=workdir))
    assistant = Assistant(Settings(corpus_dir=corpus, index_dir=index_dir, data_dir=index_dir / "data"), embedder)
    assistant.index()
    report = evaluation.evaluate(
        lambda q, history, depth: assistant.ask(q, history, depth),
        lambda doc: assistant.store.document(doc).text,
        evaluation.load_gold(gold),
        k=5,
    )
    return {key: report.summary[key] for key in ("hit_at_k", "mrr", "source_recall_at_k")}


def worker(args: argparse.Namespace) -> None:
    """Measures one backend and prints one JSON line."""
    started = time.perf_counter()
    workdir = Path(args.workdir)
    embedder = make(args.worker, workdir)
    embedder.embed(["warm up"])
    ready = time.perf_counter() - started
    texts, spans = chunks_of(Path(args.corpus))
    walls, cpus = [], []
    vectors = sentences = None
    for _ in range(args.runs):
        w0, c0 = time.perf_counter(), time.process_time()
        vectors, sentences = embedder.embed_spans(texts, spans)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    np.save(workdir / f"{args.worker}-chunks.npy", vectors)
    np.save(workdir / f"{args.worker}-sentences.npy", np.vstack(sentences))
    queries = []
    for _ in range(50):
        t0 = time.perf_counter()
        embedder.embed(["Which partners hold a Gold label?"])
        queries.append((time.perf_counter() - t0) * 1000)
    row: dict[str, Any] = {
        "backend": args.worker,
        "chunks": len(texts),
        "ready_s": round(ready, 2),
        "corpus_s": round(statistics.median(walls), 2),
        "corpus_s_range": [round(min(walls), 2), round(max(walls), 2)],
        "cpu_s": round(statistics.median(cpus), 2),
        "query_ms": round(statistics.median(queries), 2),
    }
    if args.gold:
        row["gold"] = gold_metrics(embedder, Path(args.gold), Path(args.corpus), workdir)
    if args.gold2:
        row["gold2"] = gold_metrics(embedder, Path(args.gold2), Path(args.corpus2), workdir)
    print("RESULT " + json.dumps(row), flush=True)


def main() -> None:
    """Runs every backend in its own process and prints the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus", default="corpus")
    parser.add_argument("--gold", default="eval/gold.jsonl")
    parser.add_argument("--corpus2", default="../shared/bench/squad2/corpus")
    parser.add_argument("--gold2", default="../shared/bench/squad2/gold-dev.jsonl")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.gold2 and not Path(args.gold2).is_file():
        args.gold2 = ""
    rows = []
    with tempfile.TemporaryDirectory(prefix="backends-") as workdir:
        for backend in args.backends.split(","):
            print(f"measuring {backend}", file=sys.stderr, flush=True)
            command = [
                sys.executable,
                __file__,
                "--worker",
                backend,
                "--workdir",
                workdir,
                "--runs",
                str(args.runs),
                "--corpus",
                args.corpus,
                "--gold",
                args.gold,
                "--corpus2",
                args.corpus2,
                "--gold2",
                args.gold2,
            ]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                print(f"{backend} failed: {done.stderr.strip()[-800:]}", file=sys.stderr)
                continue
            rows.append(json.loads(lines[-1][len("RESULT ") :]))
        reference = Path(workdir) / "torch-chunks.npy"
        for row in rows:
            if reference.is_file():
                for part in ("chunks", "sentences"):
                    ref = np.load(Path(workdir) / f"torch-{part}.npy")
                    mine = np.load(Path(workdir) / f"{row['backend']}-{part}.npy")
                    cosine = (ref * mine).sum(axis=1)
                    row[f"cosine_{part}_mean"] = round(float(cosine.mean()), 5)
                    row[f"cosine_{part}_min"] = round(float(cosine.min()), 5)
                    row[f"max_abs_diff_{part}"] = float(np.abs(ref - mine).max())
    print(f"\n{os.cpu_count()} cores; {rows[0]['chunks'] if rows else 0} chunks of {args.corpus}; runs {args.runs}\n")
    print(
        "| backend | ready s | corpus s (min–max) | cpu s | query ms | cosine vs torch (mean/min) "
        "| seed hit@5 / mrr | SQuAD hit@5 / mrr |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        seed = r.get("gold") or {}
        squad = r.get("gold2") or {}
        print(
            f"| {r['backend']} | {r['ready_s']:.1f} | {r['corpus_s']:.1f} "
            f"({r['corpus_s_range'][0]:.1f}–"
            f"{r['corpus_s_range'][1]:.1f}) | {r['cpu_s']:.1f} | {r['query_ms']:.1f} | "
            f"{r.get('cosine_chunks_mean', float('nan')):.4f} / "
            f"{r.get('cosine_sentences_min', float('nan')):.4f} | "
            f"{seed.get('hit_at_k', float('nan')):.3f} / {seed.get('mrr', float('nan')):.3f} | "
            f"{squad.get('hit_at_k', float('nan')):.3f} / {squad.get('mrr', float('nan')):.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
