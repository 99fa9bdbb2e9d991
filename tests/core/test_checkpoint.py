import pickle

import pytest
import torch

from genmotion.checkpoint import is_checkpoint_dir, load_foreign, load_weights, read_checkpoint_config, save_pretrained
from genmotion.errors import InputError, UsageError
from genmotion.registry import resolve


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))


def test_save_load_round_trip(tmp_path):
    m = _model()
    d = save_pretrained(tmp_path / "ck", m, {"kind": "test", "model": {"width": 4}}, card="# card\nhello")
    assert is_checkpoint_dir(d) and (d / "card.md").read_text().endswith("hello")
    assert read_checkpoint_config(d) == {"kind": "test", "model": {"width": 4}}
    m2 = load_weights(_model(), d)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_bf16_storage_loads_into_fp32(tmp_path):
    m = _model()
    d = save_pretrained(tmp_path / "ck", m, {"kind": "test"}, dtype=torch.bfloat16)
    m2 = load_weights(_model(), d)
    w = m2[0].weight
    assert w.dtype == torch.float32
    assert torch.equal(w, m[0].weight.detach().to(torch.bfloat16).float())


def test_overwrite_is_atomic_and_leaves_no_temp(tmp_path):
    save_pretrained(tmp_path / "ck", _model(), {"kind": "a"})
    save_pretrained(tmp_path / "ck", _model(), {"kind": "b"})
    assert read_checkpoint_config(tmp_path / "ck")["kind"] == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_mismatched_weights_name_keys(tmp_path):
    d = save_pretrained(tmp_path / "ck", _model(), {"kind": "test"})
    with pytest.raises(InputError, match="missing keys"):
        load_weights(torch.nn.Linear(4, 3), d)


def test_foreign_loading_is_weights_only(tmp_path):
    sd = {"trainer": {"var_wo_ddp": {"module.blocks.0.w": torch.ones(2), "_orig_mod.x": torch.zeros(1)}}}
    torch.save(sd, tmp_path / "ok.pth")
    out = load_foreign(tmp_path / "ok.pth", unwrap=("trainer", "var_wo_ddp"))
    assert sorted(out) == ["blocks.0.w", "x"]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(InputError, match="weights-only"):
        load_foreign(tmp_path / "evil.pth")


def test_registry_errors_list_the_names(tmp_path):
    with pytest.raises(UsageError, match="no model named 'nope'"):
        resolve("nope")
    with pytest.raises(InputError, match="not a genmotion checkpoint"):
        read_checkpoint_config(tmp_path)


@pytest.mark.parametrize(("umask", "folder", "file"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_exported_checkpoints_follow_the_umask(tmp_path, umask, folder, file):
    import os

    old = os.umask(umask)
    try:
        d = save_pretrained(tmp_path / "ck", _model(), {"kind": "test"}, card="# c")
    finally:
        os.umask(old)
    assert d.stat().st_mode & 0o777 == folder
    assert {p.name: p.stat().st_mode & 0o777 for p in d.iterdir()} == {
        n: file for n in ("model.safetensors", "config.yaml", "card.md", ".genmotion-output")
    }


def test_save_pretrained_never_deletes_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "ck"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="already exists"):
        save_pretrained(out, _model(), {"kind": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"] and (out / "notes.txt").read_text() == "mine"
    save_pretrained(out, _model(), {"kind": "test"}, force=True)
    assert (tmp_path / "ck.old-1" / "notes.txt").read_text() == "mine" and is_checkpoint_dir(out)


def test_save_pretrained_replaces_a_previous_checkpoint_even_without_the_marker(tmp_path):
    d = save_pretrained(tmp_path / "ck", _model(), {"kind": "test"}, card="# old")
    (d / ".genmotion-output").unlink()  # written by an older version
    save_pretrained(d, _model(), {"kind": "test"}, card="# new")
    assert (d / "card.md").read_text() == "# new" and sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_a_failed_save_leaves_nothing(tmp_path):
    class Broken(torch.nn.Linear):
        def state_dict(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_pretrained(tmp_path / "ck", Broken(2, 2), {"kind": "test"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", b"\xff" * 64])
def test_unreadable_weights_are_input_errors(tmp_path, data):
    from genmotion.checkpoint import check_weights

    d = save_pretrained(tmp_path / "ck", _model(), {"kind": "test"})
    (d / "model.safetensors").write_bytes(data)
    with pytest.raises(InputError, match="cannot read"):
        check_weights(d)
    with pytest.raises(InputError, match="cannot read"):
        load_weights(_model(), d)


def test_wrong_shapes_are_input_errors(tmp_path):
    d = save_pretrained(
        tmp_path / "ck", torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.LayerNorm(5)), {"kind": "t"}
    )
    with pytest.raises(InputError, match="shape"):
        load_weights(_model(), d)
