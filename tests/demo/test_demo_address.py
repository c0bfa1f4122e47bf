"""`ois-jax demo` on a port in use or an address the machine lacks: one line, before the model
compiles and before "serving http://..." (ois_jax.cli.demo.check_address)."""

import pathlib
import socket

import pytest

from ois_jax import cli
from ois_jax.cli import demo
from ois_jax.demo import engine
from ois_jax.errors import ConfigError

TINY = str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "ois_tiny.py")


@pytest.fixture
def no_model(monkeypatch):
  monkeypatch.setattr(engine.Engine, "from_weights",
                      classmethod(lambda *a, **k: pytest.fail("the model was built")))


def test_a_port_in_use_is_one_line(capsys, no_model):
  with socket.socket() as holder:
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    assert cli.main(["demo", "--config", TINY, "--port", str(port)]) == 1
  captured = capsys.readouterr()
  lines = [s for s in captured.err.strip().splitlines() if not s.startswith("[")]
  assert lines == [f"ois-jax demo: error: --port {port}: already in use on 127.0.0.1 (another demo "
                   "or program listens there); stop it or pass another --port"], captured.err
  assert "serving" not in captured.out


@pytest.mark.parametrize("host,needle", [("192.0.2.77", "not an address of this machine"),
                                         ("no-such-host.invalid", "not a known address or name")])
def test_an_address_the_machine_lacks_is_one_line(capsys, no_model, host, needle):
  assert cli.main(["demo", "--config", TINY, "--host", host]) == 1
  captured = capsys.readouterr()
  assert needle in captured.err and "Traceback" not in captured.err and "serving" not in captured.out


def test_a_free_port_passes():
  demo.check_address("127.0.0.1", 0)
  with pytest.raises(ConfigError):
    demo.check_address("192.0.2.77", 0)
