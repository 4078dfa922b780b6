import pickle

from vqfuse.errors import ConfigError, InputFileError, ModelMismatchError, TokenFileError, VqfuseError


def test_hierarchy():
    assert issubclass(InputFileError, VqfuseError)
    assert issubclass(TokenFileError, InputFileError)
    assert issubclass(ModelMismatchError, VqfuseError)
    assert issubclass(ConfigError, VqfuseError)


def test_input_file_error_message_names_path_on_one_line(tmp_path):
    err = TokenFileError(tmp_path / "x.vqf", "corrupt\n(CRC mismatch)")
    assert str(err) == f"{tmp_path / 'x.vqf'}: corrupt (CRC mismatch)"
    assert err.path == str(tmp_path / "x.vqf")
    assert err.problem == "corrupt (CRC mismatch)"


def test_errors_survive_pickling():
    # multiprocessing data loaders re-raise worker errors via pickle
    err = pickle.loads(pickle.dumps(TokenFileError("a.vqf", "truncated")))
    assert isinstance(err, TokenFileError) and str(err) == "a.vqf: truncated"
