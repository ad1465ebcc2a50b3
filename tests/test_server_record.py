"""The server file: the user's alone, and trusted only when it could not have been written by anyone else."""

import os

from engine.project.server_record import SERVER_FILE, read_server_record, remove_server_record, write_server_record


def test_a_server_bound_to_every_address_is_reached_on_loopback(tmp_path):
    record = write_server_record(tmp_path, host="0.0.0.0", port=7860, token="t")
    assert read_server_record(tmp_path) == record and record.url == "http://127.0.0.1:7860"
    assert os.stat(tmp_path / SERVER_FILE).st_mode & 0o777 == 0o600


def test_a_server_file_others_could_write_is_ignored(tmp_path):
    write_server_record(tmp_path, host="127.0.0.1", port=7860, token="t")
    os.chmod(tmp_path / SERVER_FILE, 0o620)
    assert read_server_record(tmp_path) is None


def test_a_malformed_server_file_is_ignored(tmp_path):
    for text in ("", "{", '{"pid": 0, "host": "127.0.0.1", "port": 1, "token": "t"}', '{"pid": "1"}', "[]"):
        (tmp_path / SERVER_FILE).write_text(text)
        os.chmod(tmp_path / SERVER_FILE, 0o600)
        assert read_server_record(tmp_path) is None, text


def test_a_server_removes_only_its_own_file(tmp_path):
    first = write_server_record(tmp_path, host="127.0.0.1", port=7860, token="first")
    second = write_server_record(tmp_path, host="127.0.0.1", port=7861, token="second")
    remove_server_record(tmp_path, first)
    assert read_server_record(tmp_path) == second
    remove_server_record(tmp_path, second)
    assert not (tmp_path / SERVER_FILE).exists()
