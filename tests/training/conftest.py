import importlib.util
import pathlib

import pytest

STANDIN_PATH = pathlib.Path(__file__).with_name("standin_model.py")


def load_standin():
  spec = importlib.util.spec_from_file_location("training_standin_model", STANDIN_PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="session")
def standin():
  return load_standin()


@pytest.fixture
def tiny_standin_config(standin):
  return standin.config()
