"""`key.sub=value` overrides shared by `ois-jax segment --config.KEY=VALUE` and the experiment scripts."""

import pytest

from ois_jax.configs import ois_tiny
from ois_jax.config import apply_overrides, split_overrides
from ois_jax.errors import OISError


def test_overrides_parse_literals_and_keep_strings():
  config = apply_overrides(ois_tiny.get_config(),
                           ["model.use_order=False", "train.learning_rate=3e-4", "data.dataset=bsds500"])
  assert config.model.use_order is False
  assert config.train.learning_rate == pytest.approx(3e-4)
  assert config.data.dataset == "bsds500"


@pytest.mark.parametrize("item,message", [("model.no_such_key=1", "no such config key"),
                                          ("model.use_order", "expected key=value")])
def test_bad_override_names_the_problem(item, message):
  with pytest.raises(OISError, match=message):
    apply_overrides(ois_tiny.get_config(), [item])


def test_one_override_spelling_with_a_prefix_per_config():
  argv = ["--workdir", "w", "--config.model.use_order=False", "--depth-config.total_steps", "5",
          "--config.data.batch_size=2", "--quiet"]
  rest, found = split_overrides(argv, ("--depth-config.", "--config."))
  assert rest == ["--workdir", "w", "--quiet"]
  assert found == {"--config.": ["model.use_order=False", "data.batch_size=2"],
                   "--depth-config.": ["total_steps=5"]}
  with pytest.raises(ValueError, match="needs a value"):
    split_overrides(["--config.total_steps"])
