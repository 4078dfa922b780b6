import ast
import inspect
import pickle
import struct

import pytest
import torch
from torch import nn

import vqfuse.io.tokenfile as tokenfile_module
import vqfuse.io.weights as weights_module
from vqfuse.errors import InputFileError
from vqfuse.io.weights import load_json, load_weights, load_weights_metadata, save_json, save_weights


def test_round_trip_with_metadata(tmp_path):
    sd = {"w": torch.randn(3, 4), "b": torch.arange(5), "h": torch.randn(2).half(), "e": torch.empty(0, 3)}
    path = tmp_path / "m.safetensors"
    save_weights(sd, path, metadata={"model_id": "vqgan", "step": "10"})
    out = load_weights(path)
    assert out.keys() == sd.keys()
    for k in sd:
        assert out[k].dtype == sd[k].dtype and torch.equal(out[k], sd[k])
    assert load_weights_metadata(path) == {"model_id": "vqgan", "step": "10"}


def test_module_state_dict_round_trip(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    save_weights(model.state_dict(), tmp_path / "m.safetensors")
    clone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    clone.load_state_dict(load_weights(tmp_path / "m.safetensors"))
    for a, b in zip(model.state_dict().values(), clone.state_dict().values()):
        assert torch.equal(a, b)


def test_shared_and_non_contiguous_tensors(tmp_path):
    emb = torch.randn(10, 4)
    base = torch.randn(6, 6)
    sd = {"emb": emb, "tied": emb, "view": emb[2:5], "t": base.t(), "col": base[:, 1]}
    save_weights(sd, tmp_path / "s.safetensors")
    out = load_weights(tmp_path / "s.safetensors")
    for k, v in sd.items():
        assert torch.equal(out[k], v)


def test_rejects_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="not a tensor"):
        save_weights({"x": [1, 2]}, tmp_path / "a.safetensors")
    with pytest.raises(TypeError, match="metadata"):
        save_weights({"x": torch.zeros(1)}, tmp_path / "a.safetensors", metadata={"step": 3})
    assert not (tmp_path / "a.safetensors").exists()


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="no such file") as info:
        load_weights(tmp_path / "nope.safetensors")
    assert str(tmp_path / "nope.safetensors") in str(info.value)
    with pytest.raises(InputFileError, match="directory"):
        load_weights(tmp_path)


@pytest.mark.parametrize("mangle", ["empty", "garbage", "truncate_header", "truncate_data", "pickle", "bad_json"])
def test_corrupt_files_raise_input_file_error(tmp_path, mangle):
    path = tmp_path / "w.safetensors"
    save_weights({"w": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    bad = {
        "empty": b"",
        "garbage": b"hello world, not weights at all",
        "truncate_header": data[:20],
        "truncate_data": data[:-100],
        "pickle": pickle.dumps({"w": [1.0, 2.0]}),
        "bad_json": struct.pack("<Q", 10) + b"{not json}" + data[18:],
    }[mangle]
    path.write_bytes(bad)
    for loader in (load_weights, load_weights_metadata):
        with pytest.raises(InputFileError) as info:
            loader(path)
        assert str(info.value).startswith(f"{path}: ")
        assert "\n" not in str(info.value)


def test_torch_save_checkpoint_is_refused_not_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    torch.save({"w": torch.zeros(2)}, path)

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    with pytest.raises(InputFileError):
        load_weights(path)


def test_valid_load_does_not_unpickle(tmp_path, monkeypatch):
    save_weights({"w": torch.ones(3)}, tmp_path / "w.safetensors")

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    assert torch.equal(load_weights(tmp_path / "w.safetensors")["w"], torch.ones(3))


@pytest.mark.parametrize("module", [weights_module, tokenfile_module])
def test_source_never_uses_pickle_or_torch_load(module):
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] in {"pickle", "dill", "marshal"} for a in node.names)
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in {"pickle", "dill", "marshal"}
            assert not (node.module == "torch" and any(a.name == "load" for a in node.names))
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"load", "loads"} or not (
                isinstance(node.value, ast.Name) and node.value.id in {"torch", "pickle", "np", "numpy"}
            ), ast.unparse(node)


def test_atomic_save_keeps_old_weights_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_weights({"w": torch.ones(2)}, path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(weights_module, "save_file", boom)
    with pytest.raises(RuntimeError):
        save_weights({"w": torch.zeros(2)}, path)
    assert torch.equal(load_weights(path)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_json_round_trip(tmp_path):
    obj = {"name": "vqgan", "dims": [1, 2], "lr": 1e-4, "ok": True, "none": None, "uni": "é"}
    save_json(obj, tmp_path / "c.json")
    assert load_json(tmp_path / "c.json") == obj


def test_invalid_json_reports_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n  "a": 1,\n  "b": ,\n}\n')
    with pytest.raises(InputFileError, match=r"line 3, column 8") as info:
        load_json(path)
    assert str(info.value).startswith(f"{path}: invalid JSON")


def test_json_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_json(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputFileError, match="not UTF-8"):
        load_json(tmp_path / "bin.json")
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(InputFileError, match="invalid JSON at line 1"):
        load_json(tmp_path / "empty.json")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    with pytest.raises(InputFileError):
        load_json(tmp_path / "deep.json")
