"""Dependencies point one way (docs/architecture.md): the leaves import no other
seqjax module but `errors`; `models` and `tasks` never import each other; nothing
that `train` imports, directly or not, imports `train`. Read from the source
(every import statement, those inside functions included), so a lazy import
that hides a cycle is caught too."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEAVES = ("seqjax.errors", "seqjax.interfaces", "seqjax.configs")


def module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def imports() -> dict[str, set[str]]:
  """{module: the seqjax modules it imports} for every module of the package."""
  graph = {}
  for folder, _, files in os.walk(os.path.join(ROOT, "seqjax")):
    for f in files:
      if not f.endswith(".py"):
        continue
      path = os.path.join(folder, f)
      found = set()
      for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
          found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
          # `from seqjax import train` imports the module seqjax.train.
          found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
      graph[module_name(path)] = {m for m in found if m.startswith("seqjax")}
  return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def within(module: str, package: str) -> bool:
  return module == package or module.startswith(package + ".")


def test_models_and_tasks_never_import_each_other():
  graph = imports()
  for a, b in (("seqjax.models", "seqjax.tasks"), ("seqjax.tasks", "seqjax.models")):
    wrong = sorted(f"{m} imports {d}" for m, deps in graph.items() if within(m, a)
                   for d in deps if within(d, b))
    assert not wrong, wrong


def test_leaves_import_nothing_but_errors():
  graph = imports()
  for leaf in LEAVES:
    assert graph[leaf] <= {"seqjax.errors", "seqjax"}, (leaf, graph[leaf])


def test_nothing_below_train_imports_train():
  graph = imports()
  below, todo = set(), ["seqjax.train"]
  while todo:
    for d in graph[todo.pop()]:
      if d not in below:
        below.add(d)
        todo.append(d)
  wrong = sorted(m for m in below if "seqjax.train" in graph[m])
  assert not wrong, f"imported by train, directly or not, and importing it: {wrong}"
  assert "seqjax.train" not in below
