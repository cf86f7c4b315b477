"""Graded exercises: mt.exercise's two modes, the student version of every notebook, and nbgrader end to end.

- A learner's "Run all" never stops at an exercise: the student version of every notebook (solutions replaced by
  nbgrader's stub) runs top to bottom, and each of its checks says "not yet".
- The instructor version scores full marks: nbval runs every notebook with MINITRANSFORMER_GRADING=1 (conftest.py),
  so a check that fails raises there; here nbgrader itself grades one notebook, once as the instructor wrote it
  (full marks) and once as released to students (no marks, no crash).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from minitransformer.tools import exercises
from minitransformer.tools.exercises import exercise, graded_cells, student_notebook, student_source

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# nbgrader's own tools: with the venv not activated, its gradebook needs the venv's alembic on PATH
VENV_BIN = str(Path(sys.executable).parent)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- mt.exercise


def test_exercise_says_correct_or_not_yet_without_raising(capsys, monkeypatch):
    monkeypatch.delenv(exercises.GRADING_ENV, raising=False)
    with exercise("00-1"):
        assert 1 + 1 == 2
    with exercise("00-2", hint="look again"):
        raise NotImplementedError()
    with exercise("00-3"):
        assert 1 + 1 == 3, "1 + 1 is not 3"
    with exercise("00-4"):
        undefined_name  # noqa: B018, F821
    with exercise("00-5"):
        [][1]  # noqa: B018
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Exercise")]
    # (pytest rewrites this file's asserts and adds its own lines to their messages; notebooks print one line)
    assert out[0] == "Exercise 00-1: correct."
    assert out[1] == "Exercise 00-2: not yet: your answer is not written yet. Hint: look again"
    assert out[2].startswith("Exercise 00-3: not yet: 1 + 1 is not 3")
    assert out[3].startswith("Exercise 00-4: not yet: name 'undefined_name' is not defined: run your solution cell")
    assert out[4].startswith("Exercise 00-5: not yet: your code raised IndexError")


@pytest.mark.parametrize("error", [NotImplementedError, AssertionError, NameError, IndexError])
def test_exercise_raises_when_graded(monkeypatch, error):
    monkeypatch.setenv(exercises.GRADING_ENV, "1")
    with pytest.raises(error), exercise("00-1"):
        raise error("wrong")


def test_student_source_stubs_each_region_at_its_indent():
    source = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n"
    assert student_source(source) == "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"


def test_student_notebook_removes_solutions_hidden_tests_and_outputs():
    solution = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION\n")
    solution.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "a", "locked": False}
    solution.outputs = [nbformat.v4.new_output("stream", text="42")]
    check = nbformat.v4.new_code_cell("assert f() == 42\n### BEGIN HIDDEN TESTS\nassert f() > 0\n### END HIDDEN TESTS\n")
    check.metadata["nbgrader"] = {"solution": False, "grade": True, "grade_id": "b", "locked": True, "points": 1}
    nb = nbformat.v4.new_notebook(cells=[solution, check])
    student = student_notebook(json.loads(nbformat.writes(nb)))
    assert student["cells"][0]["source"] == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert student["cells"][0]["outputs"] == []
    assert student["cells"][1]["source"] == "assert f() == 42\n"


# ----------------------------------------------------------------------------- the notebooks' exercises


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_graded_exercises_in_nbgrader_format(path):
    nb = load(path)
    checks = graded_cells(nb)
    solutions = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert checks, f"{path.name} has no graded exercise"
    assert len(solutions) >= len(checks) > 0
    ids = [c["metadata"]["nbgrader"]["grade_id"] for c in nb["cells"] if "nbgrader" in c.get("metadata", {})]
    assert len(ids) == len(set(ids)), f"{path.name}: grade_ids repeat"
    for cell in solutions:
        assert "### BEGIN SOLUTION" in "".join(cell["source"]), f"{path.name}: a solution cell without a region"
    for cell in checks:
        source = "".join(cell["source"])
        assert "mt.exercise(" in source and cell["metadata"]["nbgrader"].get("points", 0) > 0
    hidden = [c for c in nb["cells"] if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    assert not hidden, f"{path.name}: a solution hidden only by the editor is still visible to students"


def run_notebook(nb: dict, folder: Path, env: dict) -> nbformat.NotebookNode:
    node = nbformat.reads(json.dumps(nb), as_version=4)
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(node, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return node


def outputs(node) -> str:
    return "".join(o.get("text", "") for c in node.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_version_runs_top_to_bottom_and_says_not_yet(path, tmp_path):
    node = run_notebook(student_notebook(load(path)), path.parent, {"MPLBACKEND": "Agg", exercises.GRADING_ENV: ""})
    printed = outputs(node)
    for cell in graded_cells(load(path)):
        name = "".join(cell["source"]).split('mt.exercise("')[1].split('"')[0]
        assert f"Exercise {name}: not yet: " in printed, (
            f"{path.name}: exercise {name} did not report 'not yet' in the student version"
        )
        assert f"Exercise {name}: correct." not in printed, f"{path.name}: exercise {name} passes unsolved"


@pytest.mark.slow
def test_nbgrader_grades_instructor_full_marks_and_student_zero(tmp_path):
    nbgrader = shutil.which("nbgrader", path=VENV_BIN)
    if nbgrader is None:
        pytest.skip("nbgrader is not installed (pip install -e '.[dev]')")
    course = tmp_path / "course"
    source = NOTEBOOKS[0]  # the shortest notebook: start here
    subprocess.run([sys.executable, "-m", "minitransformer", "course", str(course), "--notebooks", str(ROOT / "notebooks")],
                   check=True, capture_output=True)
    name = source.stem
    for only in (course / "source").iterdir():  # grade one assignment: keep the run short
        if only.name != name:
            shutil.rmtree(only)
    env = os.environ | {"PATH": VENV_BIN + os.pathsep + os.environ["PATH"], "MPLBACKEND": "Agg"}

    def nb(*args):
        return subprocess.run([nbgrader, *args], cwd=course, env=env, capture_output=True, text=True, check=True)

    nb("generate_assignment", name, "--force")
    released = course / "release" / name / source.name
    for student, version in (("teacher", source), ("learner", released)):
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True)
        shutil.copyfile(version, folder / source.name)
    nb("autograde", name, "--force")
    nb("export")
    grades = {row.split(",")[3]: row.split(",") for row in (course / "grades.csv").read_text().splitlines()[1:]}
    header = (course / "grades.csv").read_text().splitlines()[0].split(",")
    score, max_score = header.index("raw_score"), header.index("max_score")
    assert float(grades["teacher"][score]) == float(grades["teacher"][max_score]) > 0
    assert float(grades["learner"][score]) == 0.0
