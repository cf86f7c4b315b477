"""The README's Python example runs as written, and its quick start is what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_example_runs(capsys):
    block = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (
        len(
            namespace["generator"](
                "ROMEO:",
                max_length=30,
                num_return_sequences=3,
                do_sample=True,
                top_k=50,
                top_p=0.95,
                num_beams=5,
            )
        )
        == 3
    )
    assert namespace["dates"]("Friday, March 5, 2021") == [{"generated_text": "2021-03-05"}]
    assert capsys.readouterr().out.startswith("ROMEO:")


def test_hugging_face_style_example_runs(capsys):
    block = re.findall(r"```python\n(.*?)```", README, re.S)[1]
    assert "AutoModelForCausalLM" in block
    namespace: dict = {"torch": __import__("torch")}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert capsys.readouterr().out.startswith("ROMEO:")
    assert namespace["outputs"].loss.item() > 0


def test_quick_start_is_two_commands_and_ci_runs_the_test_command():
    quick = re.search(r"## Quick start.*?```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(quick) == 2
    assert quick[1] in (ROOT / ".ci" / "run").read_text()
