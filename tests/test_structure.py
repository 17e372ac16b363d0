"""The package's seams: every module imports on its own, the import graph has no cycle, schedulers stay free of
trainer, no private Hydra import at module level, and a metric added to EpochRow alone reaches every place
that shows a metric (metrics.jsonl, summary.json, the sweep objective, TensorBoard, the report)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import FAST, ROOT, compose_config

PACKAGES = ("trainer", "schedulers", "experiments", "benchmarks", "hydra_plugins")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    """Every module of the packages, found by walking their folders: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = package_modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(tree: ast.Module, runtime_only: bool = True) -> list[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is imported: its body and the if/try/with blocks in it, not function
    or class bodies; `runtime_only` leaves out `if TYPE_CHECKING:` blocks (they never run)."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(statements):
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out.append(node)
            elif isinstance(node, ast.If):
                if not (runtime_only and _is_type_checking(node.test)):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                visit(node.body)

    visit(tree.body)
    return out


def all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module name of a (possibly relative) `from X import ...`."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Every dotted name an import statement may load: `import a.b` -> a.b; `from a import b` -> a, a.b."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _absolute(node, module, is_package)
    return [base, *(f"{base}.{alias.name}" if base else alias.name for alias in node.names)]


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def import_graph(modules: dict[str, Path] = MODULES) -> dict[str, set[str]]:
    """module -> the modules of the packages it imports when it is imported (the most specific one per name)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in module_level_imports(_parse(path)):
            for target in imported_names(node, name, is_package):
                if target in modules and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path a -> ... -> a, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def run_py_imports() -> list[str]:
    """The modules run.py imports from the packages, and run itself."""
    names = [t for node in module_level_imports(_parse(ROOT / "run.py")) for t in imported_names(node, "run", False)]
    return ["run", *dict.fromkeys(n for n in names if n in MODULES)]


# ------------------------------------------------------------------------------------------------ imports


def test_the_walk_finds_the_packages_modules():
    for expected in (
        "trainer.records",
        "trainer.engine.fit",
        "trainer.tracking",
        "schedulers",
        "experiments.report",
        "benchmarks.epoch",
    ):
        assert expected in MODULES
    assert {"trainer.cli", "trainer.config"} <= set(run_py_imports())


IMPORTED = [*MODULES, *[m for m in run_py_imports() if m not in MODULES]]
# Third-party packages loaded once, before the forks below: only the project's own modules must be new to the
# interpreter for an import that works only after another of them to show (and torch alone takes seconds).
PRELOAD = (
    *("torch", "torchvision", "numpy", "scipy.stats", "scipy.integrate", "yaml", "omegaconf", "hydra", "tqdm", "wandb"),
    *("matplotlib.figure", "matplotlib.ticker", "plotly.io", "plotly.subplots", "plotly.offline"),
)
FORK_IMPORTS = """
import importlib, json, os, sys, traceback
preload, modules, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
for name in preload:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
import torch
torch.set_num_threads(1)  # no thread pool in the parent that a forked child would inherit half of
failures = {}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child that has loaded none of the project's modules
        os.close(read)
        try:
            importlib.import_module(module)
            message = b""
        except BaseException:
            message = traceback.format_exc().encode()
        os.write(write, message[-3000:])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    failures[module] = message
with open(out, "w") as f:
    json.dump(failures, f)
"""


@pytest.fixture(scope="session")
def fresh_imports(tmp_path_factory) -> dict[str, str]:
    """Each module imported by a child forked from one interpreter that holds only PRELOAD: module -> the
    traceback of its import ("" where it imported)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    out = tmp_path_factory.mktemp("imports") / "failures.json"
    args = [json.dumps(PRELOAD), json.dumps(IMPORTED), str(out)]
    result = subprocess.run(
        [sys.executable, "-c", FORK_IMPORTS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("module", IMPORTED)
def test_module_imports_in_a_fresh_interpreter(module, fresh_imports):
    assert fresh_imports[module] == "", f"import {module} failed:\n{fresh_imports[module]}"


def test_a_module_whose_import_fails_is_named_with_its_traceback(tmp_path):
    """The forking check itself: a module that raises on import is reported, one that imports is not."""
    (tmp_path / "good_mod.py").write_text("X = 1\n")
    (tmp_path / "bad_mod.py").write_text("import good_mod\nraise RuntimeError('broken on import')\n")
    out = tmp_path / "failures.json"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    args = [json.dumps([]), json.dumps(["good_mod", "bad_mod"]), str(out)]
    subprocess.run([sys.executable, "-c", FORK_IMPORTS, *args], env=env, check=True, timeout=120)
    failures = json.loads(out.read_text())
    assert failures["good_mod"] == "" and "RuntimeError: broken on import" in failures["bad_mod"]


def test_find_cycle_reports_a_cycle():
    # the checker itself: a cycle is found and named, an acyclic graph passes
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    tree = ast.parse(
        "import os\nfrom . import sibling\nif TYPE_CHECKING:\n    import typed_only\ndef f():\n    import lazy\n"
    )
    names = [t for n in module_level_imports(tree) for t in imported_names(n, "pkg.mod", False)]
    assert names == ["os", "pkg", "pkg.sibling"]


def test_module_level_import_graph_has_no_cycle():
    graph = import_graph()
    assert any(graph.values()), "the graph found no import between the packages' modules"
    assert (
        "trainer.records" in graph["trainer.engine.fit"] and "trainer.engine.checkpoint" in graph["trainer.engine.fit"]
    )
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle at module level: " + " -> ".join(cycle)


def test_schedulers_never_import_trainer():
    offenders = []
    for name, path in MODULES.items():
        if name.split(".")[0] != "schedulers":
            continue
        for node in all_imports(_parse(path)):  # lazy imports inside functions count too
            for target in imported_names(node, name, path.name == "__init__.py"):
                if target == "trainer" or target.startswith("trainer."):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert not offenders, "schedulers must stand without trainer:\n" + "\n".join(offenders)


# The architecture, lowest layer first: a module imports from its own layer and the layers below, never from one
# above it, function-level (lazy) imports included. A name is a package (all its modules) or a module.
LAYERS = (
    ("schedulers",),  # the schedule library: pure functions of the position, no trainer
    ("=trainer", "trainer.errors", "trainer.records"),  # the run folder's records, no torch ("=": that module only)
    ("trainer.data", "trainer.models"),  # the building blocks
    ("trainer.config",),  # typed schemas, the checks before any work, sweep expansion
    ("trainer.tracking",),  # W&B, TensorBoard, none
    ("trainer.engine",),  # setup, loop, checkpoint, fit, stack, LR range test
    ("trainer.tasks",),  # task=train, lr_find, schedule, eval, toy (one registry)
    ("trainer.cli", "trainer.api"),  # argv, precheck, one-line errors, the closing line; the Python API
    ("hydra_plugins", "run"),  # Hydra's entry points: the stacked launcher, run.py
    ("experiments", "benchmarks"),  # the report and the studies, the benchmarks: they read runs and drive everything
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the most specific name that holds `module`; None for a module outside them."""
    best = None
    for i, names in enumerate(LAYERS):
        for name in names:
            exact = name.startswith("=")
            name = name.lstrip("=")
            holds = module == name or (not exact and module.startswith(name + "."))
            if holds and (best is None or len(name) > len(best[1])):
                best = (i, name)
    return None if best is None else best[0]


def upward_imports(files: dict[str, Path]) -> list[str]:
    """Every import, at any depth of a module, of a module in a higher layer than its own."""
    offenders = []
    for name, path in files.items():
        own = layer_of(name)
        for node in all_imports(_parse(path)):
            above = [
                t for t in imported_names(node, name, path.name == "__init__.py") if (layer_of(t) or 0) > (own or 0)
            ]
            if own is not None and above:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                offenders.append(f"{where}:{node.lineno} ({LAYERS[own][0]}) imports {above[0]}")
    return offenders


def test_every_module_is_in_a_layer():
    assert [m for m in [*MODULES, "run"] if layer_of(m) is None] == []
    assert layer_of("trainer.engine.fit") > layer_of("trainer.config.schema") > layer_of("trainer.records")


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports({**MODULES, "run": ROOT / "run.py"}) == []


def test_the_layer_check_sees_a_lazy_upward_import(tmp_path):
    # the checker itself: an import of the engine inside a function of the config layer is found
    fake = tmp_path / "checks.py"
    fake.write_text("def f():\n    from trainer.engine.fit import fit\n    import trainer.records\n")
    found = upward_imports({"trainer.config.fake": fake})
    assert len(found) == 1 and "imports trainer.engine.fit" in found[0]


def _private_hydra(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> bool:
    return any(
        t == "hydra._internal" or t.startswith("hydra._internal.") for t in imported_names(node, module, is_package)
    )


def test_no_private_hydra_import_at_module_level():
    files = {**MODULES, "run": ROOT / "run.py"}
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for name, path in files.items()
        for node in module_level_imports(_parse(path), runtime_only=False)
        if _private_hydra(node, name, path.name == "__init__.py")
    ]
    assert not offenders, "module-level imports of hydra._internal: " + ", ".join(offenders)
    # the check sees both spellings
    tree = ast.parse("from hydra import _internal\nimport hydra._internal.utils\n")
    assert all(_private_hydra(n, "m", False) for n in module_level_imports(tree))


# --------------------------------------------------------------------------- a metric added in one place

NEW_FIELD = "train_loss_x2"
NEW_FIELD_LINE = f'    {NEW_FIELD}: float | None = metric("train loss x2", decimals=3, better="min", default=None)'

# Run in a fresh interpreter: trainer/records.py is loaded from its own source with one line added to EpochRow
# (the one place a metric is declared), before any other module imports it; fit is given the value to fill
# (what the line computing it in fit.py would do); then a short run and the report read it everywhere.
ADDED_METRIC_SCRIPT = textwrap.dedent(
    """
    import ast, json, sys, types
    from pathlib import Path

    root, out, new_line, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    sys.path[:0] = [str(root), str(root / "tests")]
    import trainer

    path = root / "trainer" / "records.py"
    lines = path.read_text().splitlines(keepends=True)
    epoch_row = next(n for n in ast.parse("".join(lines)).body if isinstance(n, ast.ClassDef) and n.name == "EpochRow")
    last_field = [n for n in epoch_row.body if isinstance(n, ast.AnnAssign)][-1]
    lines.insert(last_field.end_lineno, new_line + "\\n")
    records = types.ModuleType("trainer.records")
    records.__file__ = str(path)
    sys.modules["trainer.records"] = records
    trainer.records = records
    exec(compile("".join(lines), str(path), "exec"), records.__dict__)

    import trainer.engine.fit
    from helpers import FAST
    from trainer import config as config_module
    from trainer.cli import compose_config, objective

    real_row = records.EpochRow

    def filled_row(**values):
        return real_row(**values, **{name: 2 * values["train_loss"]})

    filled_row.from_dict = real_row.from_dict
    trainer.engine.fit.EpochRow = filled_row

    seen = {"metrics": name in records.METRICS, "metric_key": records.METRICS[name].key,
            "objectives": list(records.OBJECTIVES), "config_objectives": list(config_module.OBJECTIVES)}
    overrides = [*FAST, "logger=tensorboard", "trainer.epochs=1", "trainer.max_steps_per_epoch=3",
                 f"objective=final_{name}"]
    cfg = compose_config(overrides, check=True)  # the config checks accept the new objective
    run = out / "runs" / "run"
    summary = trainer.engine.fit.fit(cfg, run, {"overrides": overrides})
    seen["objective_value"] = objective(summary, cfg.objective)
    seen["metrics_jsonl"] = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    seen["summary_json"] = json.loads((run / "summary.json").read_text())

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    seen["tensorboard"] = {tag: [[e.step, e.value] for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}

    from experiments import report

    seen["report_rc"] = report.main([str(out / "runs"), "--metrics", f"train_loss,{name}", "--out", str(out / "report")])
    seen["table_md"] = (out / "report" / "table.md").read_text()
    seen["results_csv"] = (out / "report" / "results.csv").read_text()
    seen["groups_csv"] = (out / "report" / "groups.csv").read_text()
    print("SEEN " + json.dumps(seen))
    """
)


def test_a_metric_is_not_there_before_it_is_added():
    # the control: the field the next test adds is new, so what that test sees comes from the one added line
    from trainer.errors import ConfigError
    from trainer.records import METRICS, OBJECTIVES, EpochRow

    assert NEW_FIELD not in {f for f in EpochRow.__dataclass_fields__}
    assert NEW_FIELD not in METRICS and f"final_{NEW_FIELD}" not in OBJECTIVES
    from trainer.config import validate

    with pytest.raises(ConfigError, match="objective"):
        validate(compose_config([*FAST, f"objective=final_{NEW_FIELD}"]))


@pytest.mark.slow
def test_a_metric_added_to_epoch_row_shows_up_everywhere(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", ADDED_METRIC_SCRIPT, str(ROOT), str(tmp_path), NEW_FIELD_LINE, NEW_FIELD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    seen = json.loads(next(line[5:] for line in result.stdout.splitlines() if line.startswith("SEEN ")))
    key = f"final_{NEW_FIELD}"

    # records: a summarized figure, hence a sweep objective, in records and in the config checks
    assert seen["metrics"] and seen["metric_key"] == key
    assert key in seen["objectives"] and key in seen["config_objectives"]

    # metrics.jsonl: every row has it, with the value fit filled in
    rows = seen["metrics_jsonl"]
    assert [r["epoch"] for r in rows] == [1]
    assert rows[0][NEW_FIELD] == pytest.approx(2 * rows[0]["train_loss"])

    # summary.json: final_<name>, and the sweep objective reads it
    summary = seen["summary_json"]
    assert summary["status"] == "completed"
    assert summary[key] == pytest.approx(rows[-1][NEW_FIELD])
    assert seen["objective_value"] == pytest.approx(summary[key])

    # TensorBoard: the epoch scalar and the summary figure
    tb = seen["tensorboard"]
    assert f"epoch/{NEW_FIELD}" in tb, sorted(tb)
    assert tb[f"epoch/{NEW_FIELD}"] == [[1, pytest.approx(rows[0][NEW_FIELD], rel=1e-6)]]
    assert tb[f"summary/{key}"][-1][1] == pytest.approx(summary[key], rel=1e-6)

    # the report: a column of the table under its title, with the run's value, and in the csv files
    assert seen["report_rc"] == 0
    table = seen["table_md"]
    header = next(line for line in table.splitlines() if line.startswith("| ") and "train loss x2" in line)
    cells = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in table.splitlines() if line.startswith("| ") and line != header and "---" not in line)
    value = [c.strip() for c in row.strip("|").split("|")][cells.index("train loss x2")]
    assert value.startswith(f"{summary[key]:.3f}"), table
    assert key in seen["results_csv"].splitlines()[0].split(",")
    assert f"{NEW_FIELD}_mean" in seen["groups_csv"].splitlines()[0].split(",")
