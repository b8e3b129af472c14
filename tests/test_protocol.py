"""The messages across the worker pipe: typed both ways, and another version or a malformed
line is one clear error, never a guess."""

from __future__ import annotations

import json

import pytest

from eagerbench.records import protocol
from eagerbench.records.model import CellResult, CellSpec, Sample
from eagerbench.records.why import Why


def test_every_message_survives_the_wire():
    cell = CellSpec("matmul", {"size": 8}, "torch", why=False, repeat=3)
    result = CellResult("ok", timed=(Sample(10, 2, 0, 0, {"loss": 1.5}, 4),),
                        why=Why(ops=3.0, op_sizes={"8": 3}, notes=["a note"]))
    for message in (protocol.Job("measure", (cell,)), protocol.Hello(41),
                    protocol.Start((0, 1)), protocol.Progress("timed", 3, 10),
                    protocol.Result(1, (result, CellResult("failed", reason="boom")))):
        assert protocol.decode(protocol.encode(message)) == message


def test_another_version_is_one_clear_error():
    line = json.loads(protocol.encode(protocol.Hello(1)))
    for version in (protocol.PROTOCOL_VERSION + 1, 3, None):
        with pytest.raises(protocol.ProtocolError, match=f"speaks protocol {version}, this one"):
            protocol.decode(json.dumps({**line, "protocol": version}))


@pytest.mark.parametrize("line, says", [
    ("not json", "not a message"),
    ('["a list"]', "not a message"),
    (json.dumps({"type": "shout", "protocol": protocol.PROTOCOL_VERSION}), "unknown message"),
    (json.dumps({"type": "start", "protocol": protocol.PROTOCOL_VERSION}), "malformed start"),
    (json.dumps({"type": "result", "protocol": protocol.PROTOCOL_VERSION, "index": 0,
                 "results": [{"status": "perhaps"}]}), "malformed result"),
])
def test_a_malformed_message_is_named(line, says):
    with pytest.raises(protocol.ProtocolError, match=says):
        protocol.decode(line)


def test_a_why_record_with_a_renamed_field_is_refused_when_read():
    """A renamed key was found at run time, by a user: now it is found where it is read."""
    with pytest.raises(ValueError, match="unknown fields: op_count"):
        Why.from_json({"op_count": 3})
    assert Why.from_json(Why(ops=2.0).to_json()) == Why(ops=2.0)
    assert not Why().taken and Why(ops=0.0).taken
