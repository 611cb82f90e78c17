"""Synthetic corpora at scale: exact vs approximate vector search, and BM25, at 100k and 1M chunks.

Vectors: unit vectors shaped like sentence embeddings (a shared direction, a power-law
variance spectrum, topics; see `assistant.bench.benchmark.SyntheticSpace`). Keyword text: chunks of
pseudo-words whose frequencies follow Zipf's law, indexed with the project's KeywordIndex
(phrases included), so that postings are as long-tailed as real text.

    .venv/bin/python eval/bench/synthetic.py                      # 100k and 1M (long: ~30 min)
    .venv/bin/python eval/bench/synthetic.py --quick              # 20k, for a smoke run
    .venv/bin/python eval/bench/synthetic.py --sizes 1000000 --sweep 64,96,128,192,256
    .venv/bin/python eval/bench/synthetic.py --sizes 1000000 --keyword-only   # BM25 alone
    .venv/bin/python eval/bench/synthetic.py --write-vectors out.npy --sizes 100000

`--sweep` builds the store's HNSW graph once and measures recall@10 and latency at several
efSearch values (to choose the default in `FaissIndex.build`). `--write-vectors` saves the
vectors instead (for other engines); `--write-corpus DIR` writes Zipf text files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from assistant.bench.benchmark import (
    SyntheticSpace,
    measure_ann,
    measure_keyword,
    percentile,
    recall_at,
    synthetic_vocabulary,
    timed_searches,
    zipf_documents,
)


def sweep(n: int, ef_values: list[int], queries: int, k: int = 10) -> list[dict[str, float]]:
    """Builds the store's HNSW index once and measures recall@10 and latency per efSearch."""
    import faiss

    from assistant.store.index_store import FaissIndex

    space = SyntheticSpace()
    vectors = space.sample(n, seed=1)
    probe = space.sample(queries, seed=2)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    truth = exact.search(probe, k)[1]
    del exact
    started = time.perf_counter()
    index = FaissIndex.build(vectors, approximate_threshold=0)
    build = time.perf_counter() - started
    print(f"HNSW over {n:,} vectors built in {build:.1f} s", file=sys.stderr)
    rows = []
    for ef in ef_values:
        index.index.hnsw.efSearch = ef
        latencies, found = timed_searches(index, probe, k)
        recall = recall_at(found, truth, k)
        rows.append(
            {
                "n": n,
                "efSearch": ef,
                "recall_at_10": round(recall, 4),
                "query_ms_p50": round(percentile(latencies, 50), 3),
                "query_ms_p95": round(percentile(latencies, 95), 3),
                "build_s": round(build, 1),
            }
        )
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    """Runs the chosen measurements and prints a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated chunk counts")
    parser.add_argument("--quick", action="store_true", help="20k only")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sweep", default="", help="efSearch values to sweep (HNSW built once)")
    parser.add_argument("--ef", default="", help="with the full run: extra efSearch values to report")
    parser.add_argument("--no-keyword", action="store_true", help="vectors only")
    parser.add_argument("--keyword-only", action="store_true", help="BM25 only")
    parser.add_argument("--keyword-max", type=int, default=1_000_000, help="largest BM25 corpus")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--write-vectors", type=Path, default=None)
    parser.add_argument("--write-corpus", type=Path, default=None)
    args = parser.parse_args()
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]

    if args.write_vectors:
        np.save(args.write_vectors, SyntheticSpace().sample(sizes[0], seed=1))
        print(f"wrote {sizes[0]:,} vectors to {args.write_vectors}")
        return
    if args.write_corpus:
        args.write_corpus.mkdir(parents=True, exist_ok=True)
        vocabulary = synthetic_vocabulary()
        for i, words in enumerate(zipf_documents(sizes[0], vocabulary)):
            (args.write_corpus / f"doc-{i:07d}.txt").write_text(" ".join(words) + ".\n")
        print(f"wrote {sizes[0]:,} documents to {args.write_corpus}")
        return
    if args.sweep:
        rows = [r for n in sizes for r in sweep(n, [int(v) for v in args.sweep.split(",")], args.queries)]
    else:
        rows = []
        for n in sizes:
            log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
            extra = [int(v) for v in args.ef.split(",") if v]
            if not args.keyword_only:
                rows.extend(measure_ann(n, queries=args.queries, runs=args.runs, log=log, ef_sweep=extra))
            if not args.no_keyword and n <= args.keyword_max:
                rows.append(measure_keyword(n, queries=max(50, args.queries // 5), runs=args.runs, log=log))
            for row in rows:
                if row["n"] == n:
                    print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
