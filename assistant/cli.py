"""The `assistant` command: index, ask, chat, serve, eval, bench, feedback.

Translates between the terminal and the core: options become settings, records become text
or JSON, and an AssistantError becomes one line that says what to do (exit code 1).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from assistant.errors import AssistantError

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.indexing.indexer import IndexReport
    from assistant.pipeline import Assistant
    from assistant.records import Answer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Ask questions about your documents; every answer cites its sources.",
)
feedback_app = typer.Typer(help="Work with the feedback users gave on answers.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")
# Piped output (CI logs, files) gets a wide fixed width so that tables are not squeezed.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)

T = TypeVar("T")

CorpusOption = Annotated[
    Path | None, typer.Option("--corpus", help="Folder of documents (default: ASSISTANT_CORPUS_DIR or ./corpus).")
]
IndexOption = Annotated[
    Path | None, typer.Option("--index", help="Index folder (default: ASSISTANT_INDEX_DIR or ./index).")
]


def flag(*names: str, help: str) -> Any:
    """Returns a yes/no option that takes no value, shown as such in --help.

    Without a metavar, typer's help prints `<bool>` beside a flag, as if it wanted a value.
    """
    return typer.Option(*names, help=help, metavar="")


def _settings(**overrides: Any) -> Settings:
    from assistant.config import Settings

    values = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)


def _guard(action: Callable[[], T]) -> T:
    try:
        return action()
    except AssistantError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except ValueError as exc:  # invalid settings from the environment or options
        err.print(f"[bold red]error:[/] {escape(str(exc).strip())}")
        raise typer.Exit(1) from None


def _assistant(settings: Settings) -> Assistant:
    from assistant.pipeline import Assistant

    return Assistant.from_settings(settings)


# ----------------------------------------------------------------------------------- index


@app.command()
def index(
    corpus: CorpusOption = None,
    index: IndexOption = None,
    rebuild: Annotated[bool, flag("--rebuild", help="Re-embed every document.")] = False,
    quiet: Annotated[bool, flag("--quiet", "-q", help="No progress bar (or progress lines, off a terminal).")] = False,
    ray: Annotated[
        bool,
        flag(
            "--ray",
            help="Read, chunk and embed with Ray Data: on the Ray cluster at ADDRESS, or on a "
            "local Ray instance started for the run. Needs pip install 'assistant\\[ray]'.",
        ),
    ] = False,
    address: Annotated[
        str | None,
        typer.Argument(
            metavar="[ADDRESS]",
            help="Ray cluster address for --ray (ray://host:10001, auto).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Index the corpus: only added or changed documents are embedded, deleted ones removed."""
    if address is not None and not ray:
        hint = f"{escape(address)!r} is a Ray address: write --ray {escape(address)}"
        err.print(f"[bold red]error:[/] {hint}")
        raise typer.Exit(2)

    def run() -> IndexReport:
        settings = _settings(corpus_dir=corpus, index_dir=index)
        cluster = (address or "") if ray else None
        return build_index(_assistant(settings), rebuild=rebuild, quiet=quiet, ray=cluster)

    report = _guard(run)
    _print_report(report)


STAGE_LABELS = {"read": "Reading documents", "embed": "Embedding chunks", "write": "Writing index"}


def build_index(
    assistant: Assistant, *, rebuild: bool = False, quiet: bool = False, ray: str | None = None
) -> IndexReport:
    """Runs the indexer with a progress bar on the terminal, progress lines elsewhere (on Ray
    when `ray` is an address)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet:
        return assistant.index(rebuild=rebuild, ray=ray)
    if not err.is_terminal and os.environ.get("ASSISTANT_PROGRESS") != "1":
        return assistant.index(rebuild=rebuild, progress=ProgressLines(err), ray=ray)
    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGE_LABELS.get(stage, stage), total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        return assistant.index(rebuild=rebuild, progress=tick, ray=ray)


class ProgressLines:
    """Indexing progress -> a line at each tenth of a stage, and at least every `every_s` seconds.

    For output that is no terminal (a log file, CI, a service manager), where a bar would be
    invisible: "Embedding chunks: 3,400/12,000 (28%), 45 s". Called as the indexer's progress.
    """

    labels: ClassVar[dict[str, str]] = STAGE_LABELS

    def __init__(self, console: Console, every_s: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self._last: dict[str, tuple[int, int, float]] = {}  # stage -> (done, tenth, time) of its last line

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Prints a line for this step of `stage` when it has moved on enough since the last one."""
        now = self.clock()
        tenth = 10 * done // total if total > 0 else 10
        last = self._last.get(stage)
        if last is not None:
            last_done, last_tenth, last_time = last
            moved = tenth > last_tenth or (done >= total and last_done < total) or now - last_time >= self.every_s
            if done == last_done or not moved:
                return
        self._last[stage] = (done, tenth, now)
        elapsed = f"{now - self.started:,.0f} s"
        if stage == "write":
            if done == 0:  # the report line says when it is done
                self.console.print(f"Writing the index, {elapsed}", highlight=False)
            return
        percent = 100 * done // total if total > 0 else 100
        label = self.labels.get(stage, stage)
        self.console.print(f"{label}: {done:,}/{total:,} ({percent}%), {elapsed}", highlight=False)


def _print_report(report: IndexReport) -> None:
    if report.rebuild_reason and report.written and report.rebuild_reason != "no index yet":
        err.print(f"[yellow]Full rebuild:[/] {escape(report.rebuild_reason)}")
    for doc_id, reason in report.skipped:
        err.print(f"[yellow]skipped[/] {escape(doc_id)}: {escape(reason)}")
    if not report.written:
        out.print(
            f"Index is up to date: {report.documents} documents, {report.chunks} chunks ({report.seconds:.2f} s)."
        )
        return
    changes = []
    for label, items in (("added", report.added), ("changed", report.changed), ("removed", report.removed)):
        if items:
            changes.append(f"{len(items)} {label}")
    out.print(
        f"Indexed {report.documents} documents, {report.chunks} chunks "
        f"({', '.join(changes) or 'no document changes'}; {report.unchanged} unchanged; "
        f"{report.embedded} chunks embedded; {len(report.skipped)} skipped) "
        f"in {report.seconds:.1f} s."
    )


# ------------------------------------------------------------------------------------- ask


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    index: IndexOption = None,
    k: Annotated[int | None, typer.Option("--k", min=1, max=100, help="Passages to retrieve.")] = None,
    as_json: Annotated[bool, flag("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Answer one question from the index, with numbered sources."""

    def run() -> Answer:
        assistant = _assistant(_settings(index_dir=index, k=k))
        return assistant.ask(question)

    answer = _guard(run)
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    _print_answer(answer)


def _print_answer(answer: Answer) -> None:
    style = "yellow" if answer.abstained else ""
    out.print(escape(answer.text), style=style, highlight=False)
    if answer.standalone_question and answer.standalone_question != answer.question:
        out.print(f"[dim](searched for: {escape(answer.standalone_question)})[/]")
    if answer.citations:
        out.print("\n[bold]Sources[/]")
    for c in answer.citations:
        where = f" › {c.section}" if c.section else ""
        page = f", page {c.page}" if c.page else ""
        out.print(
            f"[bold][{c.n}][/] {escape(c.title)}{escape(where)}{page}  [dim]{escape(c.doc)}:{c.start}-{c.end}[/]",
            highlight=False,
        )
        snippet = c.quote if len(c.quote) <= 300 else c.quote[:297] + "..."
        out.print(f"    [dim]“{escape(snippet)}”[/]", highlight=False)


@app.command()
def chat(index: IndexOption = None, k: Annotated[int | None, typer.Option("--k", min=1, max=100)] = None) -> None:
    """Ask questions one after another; follow-ups are understood in context."""
    from assistant.records import Turn

    assistant = _guard(lambda: _assistant(_settings(index_dir=index, k=k)))
    _guard(lambda: assistant.store)
    history: list[Turn] = []
    out.print("[dim]Ask a question (empty line or Ctrl-D to quit).[/]")
    while True:
        try:
            question = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        answer = _guard(lambda q=question, h=history: assistant.ask(q, h))  # type: ignore[misc]
        _print_answer(answer)
        history += [Turn("user", question), Turn("assistant", answer.text)]


# ------------------------------------------------------------------------------------ eval


@app.command("eval")
def eval_command(
    gold: Annotated[Path, typer.Option("--gold", help="Gold questions (JSON Lines, see EVAL.md).")],
    index: IndexOption = None,
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Index this folder first (incrementally), then evaluate.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Retrieval depth.")] = 5,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    check: Annotated[Path | None, typer.Option("--check", help="Fail when a metric drops below this baseline.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a Markdown report here; the chart goes beside it.")
    ] = None,
    show_failures: Annotated[int, typer.Option("--failures", help="How many failing questions to list.")] = 15,
    save_baseline: Annotated[
        Path | None, typer.Option("--save-baseline", help="Record this run as the new baseline.")
    ] = None,
) -> None:
    """Run a gold set: retrieval, answer, citation and abstention metrics, by kind."""
    from assistant import evaluation
    from assistant.errors import NotFoundError

    settings = _guard(lambda: _settings(index_dir=index, corpus_dir=corpus))
    assistant = _assistant(settings)
    questions = _guard(lambda: evaluation.load_gold(gold))
    if corpus is None and index is None and not assistant.has_index():
        # A fresh clone: the configured corpus is indexed first, as `assistant serve` does.
        err.print(f"No index in {settings.index_dir}: indexing {settings.corpus_dir} first.")
        corpus = settings.corpus_dir
    if corpus is not None:
        _print_report(_guard(lambda: build_index(assistant)))
    _guard(lambda: assistant.store)
    assistant.embedder.embed(["warm up"])  # load the model now, not in the first timed question

    def document_text(doc_id: str) -> str | None:
        try:
            return assistant.store.document(doc_id).text
        except NotFoundError:
            return None

    def run() -> evaluation.EvalReport:
        return evaluation.evaluate(
            lambda q, history, depth: assistant.ask(q, history, depth),
            document_text,
            questions,
            k=k,
            gold_path=str(gold),
            progress=_progress_bar("Answering gold questions"),
        )

    result = _guard(run)
    result.setup = assistant.setup()
    regressions = []
    changed: list[str] = []
    if check is not None:
        baseline = _guard(lambda: evaluation.load_baseline(check))
        regressions = evaluation.check_baseline(result, baseline)
        changed = evaluation.setup_changes(result, baseline)
    _print_eval(result, show_failures)
    for written in (report, json_out, save_baseline):
        if written is not None:  # a folder named for an output is made, as for the index
            written.parent.mkdir(parents=True, exist_ok=True)
    if report is not None:  # only when asked: a run leaves the tracked tree as it was
        chart = report.with_suffix(".png")
        drawn = evaluation.write_chart(result, chart)  # not without matplotlib (the eval extra)
        evaluation.write_markdown(result, report, chart if drawn else None, regressions)
        out.print(f"Report: {report}" + (f" (chart {chart})" if drawn else ""))
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        out.print(f"JSON report: {json_out}")
    if save_baseline is not None:
        baseline_data = evaluation.baseline_from(result)
        save_baseline.write_text(json.dumps(baseline_data, indent=2) + "\n", encoding="utf-8")
        out.print(f"Baseline written to {save_baseline}.")
    if check is not None:
        for change in changed:
            err.print(f"[bold red]not comparable:[/] {escape(change)}")
        if changed:
            err.print(
                f"{check} was made for another setup: check the figures above, then record them with "
                f"--save-baseline {check}"
            )
        for regression in regressions:
            err.print(f"[bold red]regression:[/] {escape(str(regression))}")
        if regressions or changed:
            raise typer.Exit(1)
        out.print(f"[green]No regression against {check}.[/]")


def _progress_bar(label: str) -> Callable[[int, int], None] | None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not err.is_terminal and os.environ.get("ASSISTANT_PROGRESS") != "1":
        return None
    bar = Progress(TextColumn(f"{label:<26}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err)
    task = bar.add_task(label, total=1)

    def tick(done: int, total: int) -> None:
        if done == 0:
            bar.start()
        bar.update(task, completed=done, total=max(total, 1))
        if done >= total:
            bar.stop()

    return tick


def _print_eval(result: Any, show_failures: int) -> None:
    from rich.table import Table

    from assistant import evaluation

    table = Table(title=f"{result.gold_path}: {len(result.results)} questions, k={result.k}")
    table.add_column("")
    for metric in evaluation.TABLE_METRICS:
        table.add_column(evaluation.SHORT_NAMES[metric], justify="right")
    for name, cells in evaluation.table_rows(result):
        table.add_row(name, *cells, style="bold" if name == "all" else "")
    out.print(table)
    weakest = evaluation.weakest_kind(result)
    if weakest:
        out.print(f"Weakest kind: [bold]{weakest[0]}[/] ({weakest[1]} = {weakest[2]:.3f})")
    tradeoff = evaluation.abstention_tradeoff(result)
    if tradeoff:
        auc = result.summary.get("answerability_auc")
        out.print(f"Answerability AUC {auc:.3f}. Declining below each confidence threshold:" if auc is not None else "")
        out.print("  threshold  answerable answered  unanswerable declined")
        for threshold, answered, declined in tradeoff:
            out.print(f"  {threshold:9.2f}  {answered:19.3f}  {declined:21.3f}")
    failures = result.failures
    if not failures:
        out.print("[green]Every question passes.[/]")
        return
    out.print(f"\n[bold]{len(failures)} failing questions[/] (first {min(show_failures, len(failures))}):")
    for r in failures[:show_failures]:
        answer = r.answer.text.replace("\n", " ")
        hits = "; ".join(f"{h.chunk.doc_id} › {h.chunk.section or '–'}" for h in r.answer.hits[:3])
        out.print(f"[bold]{r.gold.id}[/] ({r.gold.kind}) {escape(r.gold.question)}")
        out.print(f"   why: [red]{escape(r.failure)}[/]")
        out.print(f"   expected: {escape(', '.join(r.gold.key_facts) or '(abstain)')}")
        out.print(f"   answered: [dim]{escape(answer[:240])}[/]")
        out.print(f"   retrieved: [dim]{escape(hits or '(nothing)')}[/]")


# ----------------------------------------------------------------------------------- bench


@app.command()
def bench(
    corpus: CorpusOption = None,
    gold: Annotated[
        Path | None, typer.Option("--gold", help="Questions for ask/chat (default: eval/gold.jsonl).")
    ] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Runs per figure (median, min, max).")] = 5,
    quick: Annotated[
        bool,
        flag("--quick", help="Skip or shrink the slow parts: 1M vectors, peers, 0.5 MB scaling, 3 s worker runs."),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", help="Run only this section (repeatable): index, ask, chat, workers, scaling, ann, peers."
        ),
    ] = None,
    as_json: Annotated[bool, flag("--json", help="Print the report as JSON.")] = False,
    markdown: Annotated[bool, flag("--markdown", help="Print Markdown tables (for the README).")] = False,
    ann_sizes: Annotated[
        list[int] | None,
        typer.Option("--ann-size", min=1000, help="Synthetic chunk counts for ann (repeatable; default 100k and 1M)."),
    ] = None,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            help="milvus: also measure the Milvus store (ASSISTANT_MILVUS_URI, or Milvus Lite) in the ann section.",
        ),
    ] = "faiss",
    workers_baseline: Annotated[
        str | None,
        typer.Option(
            "--workers-baseline",
            help="A commit whose single server process the workers section also measures, as the baseline "
            "of the throughput ratio (f9ee643: before workers existed).",
        ),
    ] = None,
) -> None:
    """Measure this machine: index times, ask and chat latency, memory, index size, scale, peers."""
    from assistant.bench import benchmark

    unknown = sorted(set(only or []) - set(benchmark.SECTIONS))
    if unknown:
        err.print(
            f"[bold red]error:[/] unknown section {', '.join(unknown)}: choose from {', '.join(benchmark.SECTIONS)}"
        )
        raise typer.Exit(2)
    if store not in {"faiss", "milvus"}:
        err.print(f"[bold red]error:[/] --store {escape(store)}: choose faiss or milvus")
        raise typer.Exit(2)
    settings = _guard(lambda: _settings(corpus_dir=corpus))
    default_gold = Path("eval/gold.jsonl")
    options = benchmark.BenchOptions(
        corpus_dir=settings.corpus_dir,
        gold=gold or (default_gold if default_gold.is_file() else None),
        runs=runs,
        quick=quick,
        only=tuple(only or ()),
        ann_sizes=tuple(ann_sizes or ()),
        store=store,
        milvus_uri=settings.milvus_uri if store == "milvus" else None,
        workers_baseline=workers_baseline,
    )
    report = _guard(lambda: benchmark.run_benchmark(options, log=lambda m: err.print(f"[dim]{escape(m)}[/]")))
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    for line in benchmark.markdown_report(report) if markdown else []:
        print(line)
    if not markdown:
        _print_bench(report)


def _print_bench(report: Any) -> None:
    from rich.table import Table

    from assistant.bench import benchmark

    m = report.machine
    out.print(
        f"[bold]{m['cores']} cores, {m['memory_gib']} GiB[/], {escape(m['cpu'])}, Python {m['python']}; "
        f"load average {m['load_average_start'][0]} at start, {m['load_average_end'][0]} at end; "
        f"{m['runs']} runs a figure"
    )
    if "corpus" in m:
        c = m["corpus"]
        out.print(
            f"Corpus: {c['documents']} documents, {c['chunks']} chunks; "
            f"model {escape(c['model'])}, {c['vector_index']} index"
        )
    table = Table(title="assistant bench")
    for column in ("section", "figure", "median", "min–max", "runs", "target", ""):
        table.add_column(column, justify="right" if column in {"median", "min–max", "runs", "target"} else "left")
    for f in report.figures:
        status = {True: "[green]ok[/]", False: "[red]missed[/]", None: ""}[f.meets]
        table.add_row(
            f.section,
            f.name,
            f"{f.median:.3g} {f.unit}" if f.median < 1000 else f"{f.median:.0f} {f.unit}",
            f"{min(f.values):.3g}–{max(f.values):.3g}",
            str(len(f.values)),
            f.target_text,
            status,
        )
    out.print(table)
    for name, rows in report.tables.items():
        if not rows:
            continue
        sub = Table(title=name)
        keys = [k for k in rows[0] if k not in {"note", "threads", "query_ms_p50_range"}]
        for key in keys:
            sub.add_column(key)
        for row in rows:
            sub.add_row(*(benchmark.table_cell(row.get(k)) for k in keys))
        out.print(sub)
    for section, reason in report.skipped.items():
        out.print(f"[yellow]skipped {section}:[/] {escape(reason)}")
    out.print(f"[dim]{report.seconds:.0f} s in all[/]")


# ----------------------------------------------------------------------------------- serve


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    index: IndexOption = None,
    corpus: CorpusOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes, each answering with its own copy of the model over the one index "
            "(default: ASSISTANT_WORKERS, or one per core).",
        ),
    ] = None,
) -> None:
    """Serve the chat API, the OpenAI-compatible API, the Slack bot and the widget."""
    from assistant.service.app import create_app
    from assistant.service.server import run_server, run_workers, serve_workers

    settings = _guard(lambda: _settings(index_dir=index, corpus_dir=corpus, workers=workers))
    assistant = _assistant(settings)
    if not assistant.has_index():
        err.print(f"No index yet: it is built in the background; /readyz says when it is ready ({settings.index_dir}).")
    # The server listens at once; the index is brought up to date (built when missing) in the
    # background while the version on disk answers, and /readyz says which version that is.
    count = _guard(lambda: serve_workers(settings))
    if count == 1:
        _guard(lambda: run_server(assistant, host=host, port=port))
        return
    # Settings that stop a worker at start-up (a watched corpus that is missing, a Slack bot
    # without its packages) are said here once, before any worker starts.
    _guard(lambda: create_app(assistant, settings, update_index=True))
    err.print(f"Serving with {count} worker processes.")
    _guard(lambda: run_workers(settings, count, host=host, port=port))


# -------------------------------------------------------------------------------- feedback


@feedback_app.command("export")
def feedback_export(
    out_file: Annotated[Path, typer.Option("--out", help="JSON Lines file to write.")],
) -> None:
    """Write thumbs-down answers as candidate gold questions (key facts left to fill in)."""
    from assistant.conversation.history import ConversationStore

    def run() -> int:
        store = ConversationStore(_settings().data_dir)
        return store.export_feedback(out_file)

    count = _guard(run)
    out.print(f"Wrote {count} candidate gold questions to {out_file}.")


@app.command("train-reader")
def train_reader(
    squad: Annotated[Path, typer.Option("--squad", help="Folder with the SQuAD training files.")] = Path(
        "../shared/data/squad"
    ),
    out: Annotated[Path, typer.Option("--out", help="Where the trained reader goes.")] = Path(
        "assistant/answering/models/reader"
    ),
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch threads.")] = 2,
    precision: Annotated[
        Literal["bf16", "fp32"],
        typer.Option(
            "--precision", help="bf16: matrix products in bfloat16, where the CPU has it natively (else fp32)."
        ),
    ] = "bf16",
    calibrate_only: Annotated[
        bool, flag("--calibrate-only", help="Only refit the answer threshold of the reader in --out.")
    ] = False,
) -> None:
    """Train the answer reader on SQuAD (resumable), export it to int8 ONNX and calibrate it.

    Needs the train extra: pip install -e '.[train]'. About 1 h 45 min on 2 cores with native bfloat16
    (AVX512-BF16 or AMX), about 3 h in float32.
    """
    from assistant.training.calibrate import calibrate

    if not calibrate_only:
        from assistant.training.reader_trainer import TrainingConfig, train

        result = _guard(lambda: train(squad, out, TrainingConfig(threads=threads, precision=precision)))
        print(json.dumps(result["validation"], indent=2))
    data = _guard(lambda: calibrate(out, squad))
    shown = ("answer_threshold", "span_threshold", "gate_threshold", "in_line")
    print(json.dumps({k: data[k] for k in shown}, indent=2))


@app.command("export-embedder")
def export_embedder(
    model: Annotated[str, typer.Option("--model", help="A packaged model name, or a model folder.")] = (
        "all-MiniLM-L6-v2"
    ),
    out: Annotated[Path, typer.Option("--out", help="Where the int8 ONNX model and its files go.")] = Path(
        "assistant/embedding_models/all-MiniLM-L6-v2"
    ),
) -> None:
    """Export an embedding model to int8 ONNX, as shipped in assistant/embedding_models/.

    Needs the torch extra: pip install -e '.[torch]'. Prints the file's sha256 for MODEL_CARD.md.
    """
    import hashlib

    from assistant.embedding.onnx_backend import export_embedder as export

    path = _guard(lambda: export(model, out))
    print(f"{path} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


def main() -> None:
    """Entry point of the `assistant` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Indexing reports skipped files itself; the log would say it twice.
    logging.getLogger("assistant.indexing.indexer").setLevel(logging.ERROR)
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
