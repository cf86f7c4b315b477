"""A checkpoint is untrusted input: it is checked before any work, and every defect gets a clear error (issue 17).

Also the matching checks on the way out: save_checkpoint refuses what it would store wrongly.
"""

import json
import math
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import minitransformer as mt
from minitransformer.tokenizers import CharTokenizer, load_tokenizer
from minitransformer.tools.pretrained import load_model
from minitransformer.tools.training_tasks import CausalLMTask
from minitransformer.training import TrainConfig, Trainer
from minitransformer.training.checkpoints import load_checkpoint, read_metadata, save_checkpoint

TOKENIZER = CharTokenizer("abcdefghij", special_tokens=("[PAD]",))


def small(cls=mt.GPT, **kw):
    return cls(
        mt.TransformerConfig(**(dict(vocab_size=11, d_model=16, n_heads=2, n_layers=1, max_len=8) | kw))
    )


def saved(tmp_path, model=None, **kw):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model if model is not None else small(), TOKENIZER, **kw)
    return path


def rewrite(path, tensors=None, config_changes=None, **meta_changes):
    """Rewrite the checkpoint at `path`: header fields replaced, config fields changed, tensors added."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    if config_changes:
        meta["config"] = json.dumps(json.loads(meta["config"]) | config_changes)
    save_file(load_file(str(path)) | (tensors or {}), str(path), metadata=meta | meta_changes)


# ----------------------------------------------------------------------------- sizes before work


@pytest.mark.parametrize(
    "config, match",
    [
        # ~300 GB of weights asked for by a 17 KB file
        (
            dict(vocab_size=2**22, d_model=2**14, n_heads=2, d_ff=2**16),
            r"'embed.tokens.weight' has shape \(11, 16\)",
        ),
        (dict(n_layers=10**7), "n_layers=10000000, but the file holds only"),
        (dict(d_ff=10**6), r"has shape \(64, 16\).*needs \(1000000, 16\)"),
        (dict(vocab_size=2**70), "no GPT fits its config"),  # beyond what torch can even index
    ],
    ids=["300-GB", "10M-layers", "wide-d_ff", "2**70-vocab"],
)
def test_a_small_file_asking_for_a_huge_model_fails_fast_naming_the_mismatch(tmp_path, config, match):
    path = saved(tmp_path)
    rewrite(path, config_changes=config)
    start = time.perf_counter()
    with pytest.raises(mt.CheckpointError, match=match):
        load_checkpoint(path)
    assert time.perf_counter() - start < 10  # nothing of the asked-for size was built


@pytest.mark.parametrize("encoding", ["sinusoidal", "rope"])
def test_position_tables_far_beyond_the_weights_are_refused(tmp_path, encoding):
    path = saved(tmp_path, small(pos_encoding=encoding))
    rewrite(
        path, config_changes=dict(max_len=10**9)
    )  # the tables are computed, not stored: no shape shows them
    with pytest.raises(mt.CheckpointError, match="max_len=1000000000.*bytes of position tables"):
        load_checkpoint(path)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.int8])
def test_only_floating_point_tensors_load_as_weights(tmp_path, dtype):
    path = saved(tmp_path)
    rewrite(path, tensors={"model.norm_f.weight": torch.ones(16, dtype=dtype)})
    with pytest.raises(mt.CheckpointError, match=f"'norm_f.weight' has dtype {dtype}"):
        load_checkpoint(path)


def test_a_wrong_tensor_shape_names_the_tensor_and_both_shapes(tmp_path):
    path = saved(tmp_path)
    rewrite(path, tensors={"model.norm_f.weight": torch.ones(17)})
    with pytest.raises(mt.CheckpointError, match=r"'norm_f.weight' has shape \(17,\).*needs \(16,\)"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- header fields


@pytest.mark.parametrize(
    "field", ["tokenizer", "metrics", "config", "training_state", "optimizer_param_groups"]
)
def test_a_header_field_that_is_not_json_is_named(tmp_path, field):
    path = saved(tmp_path)
    rewrite(path, **{field: "{not json"})
    with pytest.raises(mt.CheckpointError, match=f"header field '{field}' is not valid JSON"):
        load_checkpoint(path, return_state=True)
    if field != "optimizer_param_groups":  # read_metadata leaves that one as text
        with pytest.raises(mt.CheckpointError, match=f"header field '{field}'"):
            read_metadata(path)


def test_a_header_field_of_the_wrong_json_type_is_named(tmp_path):
    path = saved(tmp_path)
    rewrite(path, metrics="[1, 2]")
    with pytest.raises(mt.CheckpointError, match="'metrics' must hold a JSON object, got \\[1, 2\\]"):
        load_checkpoint(path, return_state=True)


@pytest.mark.parametrize("version", ["1.0", "one", "", "-1", " 1"])
def test_format_version_must_be_a_whole_number(tmp_path, version):
    path = saved(tmp_path)
    rewrite(path, format_version=version)
    with pytest.raises(mt.CheckpointError, match="format_version=.*must be a whole number"):
        load_checkpoint(path)


@pytest.mark.parametrize("key", ["optimizer.x.exp_avg", "optimizer.0", "optimizer.-1.step"])
def test_a_malformed_optimizer_key_is_a_checkpoint_error(tmp_path, key):
    model = small()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 3, dtype=torch.long)).sum().backward()
    optimizer.step()
    path = saved(tmp_path, model, optimizer=optimizer)
    rewrite(path, tensors={key: torch.zeros(2)})
    with pytest.raises(mt.CheckpointError, match=f"{key!r} is not a valid optimizer entry"):
        load_checkpoint(path, return_state=True)


@pytest.mark.parametrize("change", [dict(layer_norm_eps=math.inf), dict(rope_base=math.nan), dict(extra=[1])])
def test_a_non_finite_config_value_in_a_header_is_refused(tmp_path, change):
    path = saved(tmp_path)
    rewrite(path, config_changes=change)
    with pytest.raises(mt.CheckpointError, match=f"damaged header.*{next(iter(change))} must be"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "change", [dict(layer_norm_eps=math.inf), dict(layer_norm_eps=math.nan), dict(rope_base=-1.0)]
)
def test_transformer_config_refuses_non_finite_floats(change):
    with pytest.raises(mt.ConfigError, match=f"{next(iter(change))} must be > 0 and finite"):
        mt.TransformerConfig(**change)


def test_a_broken_tokenizer_in_a_header_names_the_file(tmp_path):
    path = saved(tmp_path)
    rewrite(path, tokenizer=json.dumps({"type": "wordpiece"}))
    with pytest.raises(mt.CheckpointError, match=r"m\.safetensors'.*wordpiece"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- arguments


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_map_location_cuda_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="map_location='cuda' is not a device this machine can use"):
        load_checkpoint(saved(tmp_path), map_location="cuda")


@pytest.mark.parametrize("location, match", [("nonsense", "not a device"), ("meta", "would load no weights")])
def test_map_location_must_be_a_usable_device(tmp_path, location, match):
    with pytest.raises(ValueError, match=f"map_location='{location}'.*{match}"):
        load_checkpoint(saved(tmp_path), map_location=location)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: mt.load_pretrained(["x"]), "name must be the str name of a bundled model"),
        (lambda: load_model(["x"]), "name_or_path must be a bundled model name or a checkpoint path"),
        (lambda: load_checkpoint(123), "path must be a file path"),
        (lambda: read_metadata(None), "path must be a file path"),
        (lambda: load_tokenizer(["tok.json"]), "path must be a file path"),
        (lambda: save_checkpoint(3.5, small()), "path must be a file path"),
    ],
)
def test_a_path_argument_of_the_wrong_type_is_a_type_error(call, match):
    with pytest.raises(TypeError, match=match):
        call()


# ----------------------------------------------------------------------------- what a save refuses


@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.float64, "float16"])
def test_save_dtype_must_be_a_float_type_the_file_can_hold(tmp_path, dtype):
    with pytest.raises(
        ValueError, match="dtype must be None, torch.float32, torch.float16 or torch.bfloat16"
    ):
        save_checkpoint(tmp_path / "m.safetensors", small(), dtype=dtype)
    assert not list(tmp_path.iterdir())


def test_saving_in_float16_refuses_a_weight_that_would_become_inf(tmp_path):
    model = small()
    with torch.no_grad():
        model.norm_f.weight[3] = 1e5
    with pytest.raises(ValueError, match=r"'norm_f.weight' in dtype=torch.float16: it holds 100000.*inf"):
        save_checkpoint(tmp_path / "m.safetensors", model, dtype=torch.float16)
    save_checkpoint(tmp_path / "m.safetensors", model, dtype=torch.bfloat16)  # bfloat16 has the range
    assert load_checkpoint(tmp_path / "m.safetensors")[0].norm_f.weight[3].item() == pytest.approx(
        1e5, rel=0.01
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(metrics={"loss": torch.tensor(1.0)}), ValueError, "metrics must hold only JSON values"),
        (dict(metrics=[1.0]), TypeError, "metrics must be a dict"),
        (dict(training_state={"when": object()}), ValueError, "training_state must hold only JSON values"),
        (dict(training_state="step 3"), TypeError, "training_state must be a dict"),
    ],
)
def test_save_refuses_metrics_and_state_it_cannot_write_as_json(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_checkpoint(tmp_path / "m.safetensors", small(), **kwargs)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- resuming


def test_resume_from_a_damaged_training_state_is_a_checkpoint_error(tmp_path):
    ids = torch.randint(0, 11, (400,))
    task = CausalLMTask(ids, ids, context=8, batch_size=2)
    trainer = Trainer(small(), task, TrainConfig(steps=2, eval_interval=2, eval_batches=1, progress=False))
    trainer.fit()
    path = tmp_path / "run.safetensors"
    trainer.save(path)
    state = read_metadata(path)["training_state"]
    rewrite(path, training_state=json.dumps(state | {"step": "two"}))
    with pytest.raises(mt.CheckpointError, match="training state this run cannot resume from.*step"):
        Trainer.resume(path, task)
