"""Files under races, faults and hostile input: checkpoints and tokenizer files (issue 17).

- a load reads one consistent snapshot, even while another process saves;
- a save replaces only a regular file, keeps links and permissions, survives a full disk, and
  cleans up the temporary files of killed saves;
- a hostile file (FIFO, /dev/zero, a config far larger than its tensors, wrong dtypes, broken
  header fields) is refused at once with a CheckpointError that names the problem.
"""

import contextlib
import multiprocessing
import os
import resource
import stat
import subprocess
import sys
import threading
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import minitransformer as mt
from minitransformer.tokenizers import CharTokenizer, load_tokenizer
from minitransformer.training.checkpoints import load_checkpoint, read_metadata, save_checkpoint


def small(cls=mt.GPT, **kw):
    return cls(
        mt.TransformerConfig(**(dict(vocab_size=11, d_model=16, n_heads=2, n_layers=1, max_len=8) | kw))
    )


TOKENIZER = CharTokenizer("abcdefghij", special_tokens=("[PAD]",))


def rewrite(path, tensors=None, **meta_changes):
    """Rewrite the checkpoint at `path` with some header fields (and optionally tensors) replaced."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path)) | (tensors or {})
    save_file(tensors, str(path), metadata=meta | meta_changes)


def finishes_within(seconds, fn, unblock=lambda: None):
    """Run fn in a thread; its result or exception, or AssertionError if it is still running after `seconds`."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock()
        raise AssertionError(f"still running after {seconds} s (it hangs)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# ----------------------------------------------------------------------------- one snapshot per load


def _save_all_the_time(path, stop, count):
    """The writer: save a model whose weights all equal the step, with the step in the metrics."""
    torch.set_num_threads(1)
    model = small()
    while not stop.is_set():
        step = count.value + 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(step)
        save_checkpoint(path, model, metrics={"step": step})
        count.value = step


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_load_while_another_process_saves_is_always_one_whole_save(tmp_path):
    path = tmp_path / "live.safetensors"
    save_checkpoint(path, small(), metrics={"step": 0})
    ctx = multiprocessing.get_context("fork")  # the writer starts at once, torch already imported
    stop, count = ctx.Event(), ctx.Value("i", 0)
    writer = ctx.Process(target=_save_all_the_time, args=(path, stop, count), daemon=True)
    writer.start()
    mixed, loads, deadline = [], 0, time.monotonic() + 3
    try:
        while time.monotonic() < deadline:
            model, _, state = load_checkpoint(path, return_state=True)
            values = torch.cat([p.flatten() for p in model.parameters()]).unique().tolist()
            if state["metrics"]["step"] != 0 and values != [state["metrics"]["step"]]:
                mixed.append((state["metrics"]["step"], values[:4]))
            loads += 1
    finally:
        stop.set()
        writer.join(10)
        if writer.is_alive():
            writer.terminate()
    assert count.value > 20 and loads > 20, (count.value, loads)  # the two really overlapped
    assert not mixed, f"{len(mixed)} of {loads} loads mixed two saves (header step, weights): {mixed[:3]}"


# ----------------------------------------------------------------------------- what a save replaces


def _device_node(path):
    """A character device like /dev/null (1, 3), made in the test's folder: needs root."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("making a device node needs root")


@pytest.mark.parametrize("make", [os.mkfifo, os.mkdir, _device_node], ids=["fifo", "folder", "device"])
def test_a_save_never_replaces_something_that_is_not_a_regular_file(tmp_path, make):
    path = tmp_path / "m.safetensors"
    make(path)
    with pytest.raises(
        mt.CheckpointError, match=r"will not save the checkpoint to .*m\.safetensors.*regular file"
    ):
        save_checkpoint(path, small())
    with pytest.raises(mt.CheckpointError, match=r"will not save the tokenizer file to .*m\.safetensors"):
        TOKENIZER.save(path)
    assert not stat.S_ISREG(os.lstat(path).st_mode)  # still what it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary file left


def test_a_save_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "runs").mkdir()
    target, link = tmp_path / "runs" / "v1.safetensors", tmp_path / "latest.safetensors"
    save_checkpoint(target, small())
    link.symlink_to(target)
    save_checkpoint(link, small(d_model=32))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert load_checkpoint(target)[0].config.d_model == 32
    tok_target, tok_link = tmp_path / "runs" / "tok.json", tmp_path / "tok.json"
    TOKENIZER.save(tok_target)
    tok_link.symlink_to(tok_target)
    CharTokenizer("xyz").save(tok_link)
    assert tok_link.is_symlink() and load_tokenizer(tok_target).chars == tuple("xyz")


def test_a_save_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path, tok = tmp_path / "private.safetensors", tmp_path / "private.json"
    save_checkpoint(path, small())
    TOKENIZER.save(tok)
    path.chmod(0o600)
    tok.chmod(0o600)
    save_checkpoint(path, small())
    TOKENIZER.save(tok)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tok.stat().st_mode) == 0o600


def test_a_new_file_gets_the_usual_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        save_checkpoint(tmp_path / "new.safetensors", small())
        TOKENIZER.save(tmp_path / "new.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.safetensors").stat().st_mode) == 0o640  # 0666 less the umask
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640


@pytest.mark.parametrize("saver", ["checkpoint", "tokenizer"])
def test_a_parent_path_that_is_a_file_gets_a_clear_error(tmp_path, saver):
    (tmp_path / "notes").write_text("a file, not a folder")
    path = tmp_path / "notes" / "run" / "m.safetensors"
    with pytest.raises(mt.CheckpointError, match=r"notes' is a file, not a folder"):
        save_checkpoint(path, small()) if saver == "checkpoint" else TOKENIZER.save(path)


# ----------------------------------------------------------------------------- full disk, killed saves


def _with_file_size_limit(limit, fn):
    """Run fn with writes beyond `limit` bytes failing (EFBIG), as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # Python ignores SIGXFSZ: write() fails
    try:
        fn()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_a_tokenizer_save_on_a_full_disk_keeps_the_previous_file(tmp_path):
    path = tmp_path / "tok.json"
    TOKENIZER.save(path)
    before = path.read_bytes()
    big = CharTokenizer("".join(chr(0x4E00 + i) for i in range(3000)))  # a file of ~30 KB
    with pytest.raises(OSError):
        _with_file_size_limit(4096, lambda: big.save(path))
    assert path.read_bytes() == before
    assert load_tokenizer(path).to_dict() == TOKENIZER.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # the partial temporary file is gone


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_a_checkpoint_save_on_a_full_disk_keeps_the_previous_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, small())
    before = path.read_bytes()
    with pytest.raises(OSError):  # EFBIG, as ENOSPC on a full disk
        _with_file_size_limit(len(before), lambda: save_checkpoint(path, small(d_model=64)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_the_next_save_removes_temporary_files_of_killed_saves_only(tmp_path):
    path = tmp_path / "m.safetensors"
    dead = tmp_path / f".m.safetensors.{_dead_pid()}-0123abcd.tmp"  # a save killed mid-write
    live = tmp_path / f".m.safetensors.{os.getppid()}-0123abcd.tmp"  # a save still running elsewhere
    old_style = tmp_path / ".m.safetensors.k2j4_9zq.tmp"  # from an older version, hours ago
    recent_old_style = tmp_path / ".m.safetensors.a1b2c3d4.tmp"  # the same, but it may still be writing
    other = tmp_path / ".other.safetensors.12-0123abcd.tmp"  # a temporary file of another path
    for p in (dead, live, old_style, recent_old_style, other):
        p.write_bytes(b"half a file")
    os.utime(old_style, (time.time() - 7200, time.time() - 7200))
    save_checkpoint(path, small())
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"m.safetensors", live.name, recent_old_style.name, other.name}
    tok_dead = tmp_path / f".tok.json.{_dead_pid()}-99.tmp"
    tok_dead.write_text("{")
    TOKENIZER.save(tmp_path / "tok.json")
    assert not tok_dead.exists()


# ----------------------------------------------------------------------------- only regular files are read


def _unblock_fifo(path):
    """Open the FIFO's writing end, so that a reader blocked in open() returns (the pre-fix hang)."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize(
    "load", [load_checkpoint, read_metadata, load_tokenizer, CharTokenizer.load], ids=lambda f: f.__qualname__
)
def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path, load):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    with pytest.raises(mt.CheckpointError, match="is a FIFO"):
        finishes_within(5, lambda: load(path), unblock=lambda: _unblock_fifo(path))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("load", [load_checkpoint, load_tokenizer], ids=lambda f: f.__qualname__)
def test_a_link_to_dev_zero_is_refused_instead_of_read_forever(tmp_path, load):
    path = tmp_path / "model.json"
    path.symlink_to("/dev/zero")
    with pytest.raises(mt.CheckpointError, match="is a character device"):
        finishes_within(5, lambda: load(path))


def test_an_oversized_tokenizer_file_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "tok.json"
    TOKENIZER.save(path)
    monkeypatch.setattr("minitransformer.files.MAX_JSON_BYTES", 100)
    with pytest.raises(mt.CheckpointError, match="larger than 100 bytes"):
        load_tokenizer(path)


def test_a_header_that_declares_a_huge_size_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes((2**40).to_bytes(8, "little") + b'{"__metadata__": {}}')
    with pytest.raises(mt.CheckpointError, match="a checkpoint header may have at most"):
        load_checkpoint(path)


def test_deeply_nested_json_is_a_checkpoint_error_not_a_recursion_error(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "tok.json").write_text(deep)
    with pytest.raises(mt.CheckpointError, match="nested too deeply"):
        load_tokenizer(tmp_path / "tok.json")
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, small())
    rewrite(path, tokenizer=deep)  # a JSON string field inside the header
    with pytest.raises(mt.CheckpointError, match="'tokenizer'.*nested too deeply"):
        load_checkpoint(path)
    header = (
        '{"__metadata__": {"format": "minitransformer-checkpoint"}, "x": ' + deep + "}"
    )  # the header itself
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode())
    with pytest.raises(mt.CheckpointError, match="nested too deeply"):
        load_checkpoint(path)
