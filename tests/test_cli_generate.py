"""`minitransformer generate` does what generating means for each model family."""

import pytest

from minitransformer.tools.cli import main


def run(capsys, *argv):
    assert main(["generate", *argv]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return out.out


def test_a_gpt_continues_the_prompt(capsys):
    assert run(
        capsys, "--model", "shakespeare-char", "--prompt", "ROMEO:", "--max-new-tokens", "5"
    ).startswith("ROMEO:")


def test_a_masked_lm_fills_the_mask(capsys):
    lines = run(capsys, "--model", "shakespeare-mlm", "--prompt", "To be, or not to b[MASK]", "--top-k", "3")
    fills = [line.split("  ") for line in lines.strip().splitlines()]
    assert len(fills) == 3
    assert fills[0][1:] == ["'e'", "To be, or not to be"]  # the likeliest filler, and the text with it
    scores = [float(f[0]) for f in fills]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1


def test_a_masked_lm_fills_each_mask_and_has_a_default_prompt(capsys):
    lines = run(
        capsys, "--model", "shakespeare-mlm", "--prompt", "[MASK]o be, or not to b[MASK]", "--top-k", "1"
    )
    assert lines.splitlines()[0::2] == ["[MASK] 1 of 2:", "[MASK] 2 of 2:"]
    assert len(run(capsys, "--model", "shakespeare-mlm").splitlines()) == 5  # 5 fillers by default


def test_an_encoder_decoder_turns_the_prompt_into_its_output(capsys):
    assert run(capsys, "--model", "dates-seq2seq", "--prompt", "Friday, March 5, 2021") == "2021-03-05\n"
    assert (
        run(capsys, "--model", "dates-seq2seq", "--prompt", "5 March 2021", "--num-beams", "3")
        == "2021-03-05\n"
    )


@pytest.mark.parametrize(
    "argv,expected",
    [
        (
            ["--model", "shakespeare-mlm", "--num-beams", "2"],
            ["argument --num-beams:", "masked LM", "--top-k"],
        ),
        (["--model", "shakespeare-mlm", "--do-sample"], ["argument --do-sample:", "--prompt and --top-k"]),
        (["--model", "shakespeare-mlm", "--prompt", "no mask"], ["argument --prompt:", "[MASK]"]),
        (
            ["--model", "dates-seq2seq", "--prompt", "9" * 60],
            ["argument --prompt:", "60 tokens", "max_len=48"],
        ),
    ],
)
def test_flags_and_prompts_that_do_not_fit_the_family(argv, expected, capsys):
    assert main(["generate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(part in err[0] for part in expected), err
