"""Graded exercises in the notebooks: the check a learner runs, and the student version a teacher hands out.

Every exercise is two cells in nbgrader's format (its metadata marks them, so `nbgrader
generate_assignment` and `nbgrader autograde` work on the notebooks unchanged):

- a solution cell: the learner's function, its answer between `### BEGIN SOLUTION` and
  `### END SOLUTION`, always inside a function body, so that the stub which replaces it
  (`raise NotImplementedError()`) leaves the cell runnable;
- a check cell, locked and worth points, whose assertions run inside `with exercise(...)`:

      with mt.exercise("06-2", hint="count pairs of neighbours, not single characters"):
          assert bigram_counts("abab") == {("a", "b"): 2, ("b", "a"): 1}

For a learner, `exercise` never stops "Run all": an unwritten or wrong answer prints "not yet" and
the hint, a right one prints "correct". When grading (MINITRANSFORMER_GRADING=1, which the course
folder's nbgrader_config.py sets) it re-raises, so nbgrader scores the cell 0.

`write_course(folder)` writes the student version of every notebook (solutions removed, outputs
cleared) and an nbgrader course folder around the instructor versions. Command line:
`python -m minitransformer course OUT`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

GRADING_ENV = "MINITRANSFORMER_GRADING"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
_SOLUTION = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*$(?P<body>.*?)^[ \t]*### END SOLUTION[ \t]*$\n?",
                       re.M | re.S)
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*$.*?^[ \t]*### END HIDDEN TESTS[ \t]*$\n?", re.M | re.S)


def grading() -> bool:
    """Whether checks run for a grade (nbgrader autograde), where a failure must raise."""
    return os.environ.get(GRADING_ENV, "") not in ("", "0")


@contextlib.contextmanager
def exercise(name: str, hint: str = ""):
    """Run an exercise's checks: print "correct" or "not yet" (with the hint); raise only when grading."""
    try:
        yield
    except NotImplementedError:
        _not_yet(name, "your answer is not written yet.", hint)
    except NameError as e:
        _not_yet(name, f"{e}: run your solution cell first.", hint)
    except AssertionError as e:
        _not_yet(name, str(e) or "a check failed.", hint)
    except Exception as e:  # the learner's code crashed: say so, but do not stop the notebook
        _not_yet(name, f"your code raised {type(e).__name__}: {e}", hint)
    else:
        print(f"Exercise {name}: correct.")


def _not_yet(name: str, what: str, hint: str) -> None:
    if grading():
        raise  # noqa: PLE0704 (re-raises the exception being handled by exercise())
    print(f"Exercise {name}: not yet: {what}" + (f" Hint: {hint}" if hint else ""))


# ----------------------------------------------------------------------------- the student version


def student_source(source: str) -> str:
    """A solution cell's source with each solution region replaced by the stub, at the region's indent."""
    def stub(match: re.Match) -> str:
        return "".join(f"{match['indent']}{line}\n" for line in STUB)

    return _SOLUTION.sub(stub, source)


def student_notebook(nb: dict) -> dict:
    """The student version of a notebook (a JSON dict): solutions stubbed, hidden tests and outputs removed.

    A cell tagged "solution" (a worked answer in prose, say) is left out entirely.
    """
    nb = json.loads(json.dumps(nb))  # a deep copy
    nb["cells"] = [c for c in nb["cells"] if "solution" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if meta.get("solution"):
            source = student_source(source) if cell["cell_type"] == "code" else "YOUR ANSWER HERE"
        if meta.get("grade"):
            source = _HIDDEN.sub("", source)
        cell["source"] = source
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def graded_cells(nb: dict) -> list[dict]:
    """The check cells of a notebook: nbgrader's graded code cells."""
    return [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")]


NBGRADER_CONFIG = '''\
# nbgrader settings for the minitransformer course, written by `python -m minitransformer course`.
import os

# exercise checks raise when graded (and only print "not yet" for a learner): see minitransformer/tools/exercises.py
os.environ["{env}"] = "1"

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "minitransformer"
c.Exchange.assignment_dir = "."
'''


def write_course(out, notebooks) -> list[Path]:
    """Write the student notebooks to OUT/student/ and an nbgrader course to OUT/ (source/<name>/<name>.ipynb).

    notebooks: paths of the instructor notebooks. Returns the student notebooks written. Files the
    notebooks read (data/ beside them) are not needed: every notebook loads its data from the package.
    """
    out = Path(out)
    (out / "student").mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(env=GRADING_ENV), encoding="utf-8")
    written = []
    for path in map(Path, notebooks):
        nb = json.loads(path.read_text(encoding="utf-8"))
        source_dir = out / "source" / path.stem
        source_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, source_dir / path.name)
        student = out / "student" / path.name
        student.write_text(json.dumps(student_notebook(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(student)
    return written
