"""One Predictor shared by two threads never answers for the other thread's image: predict from a
thread that did not set the image raises ClickError; a Predictor per thread
(`for_another_thread`) gives each thread the mask of its own image."""

import threading

import numpy as np
import pytest

from ois_jax import Predictor
from ois_jax.configs import ois_tiny
from ois_jax.errors import ClickError


@pytest.fixture(scope="module")
def predictor():
  config = ois_tiny.get_config()
  config.model.input_size = 56
  return Predictor.from_config(config, seed=0)


def images():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
  b = 255 - a[:, ::-1]
  return a, b


def in_thread(fn):
  result = {}

  def run():
    try:
      result["value"] = fn()
    except Exception as e:  # noqa: BLE001 - the test reads it
      result["error"] = e
  t = threading.Thread(target=run)
  t.start()
  t.join(120)
  return result


def test_predict_from_another_thread_than_set_image_raises(predictor):
  a, b = images()
  predictor.set_image(a)
  expected_a = predictor.predict([(10, 10, True)])
  other = in_thread(lambda: (predictor.set_image(b), predictor.predict([(10, 10, True)]))[1])
  assert "error" not in other, other
  # The image is now the other thread's: this thread is refused, not given b's mask.
  with pytest.raises(ClickError, match="another thread"):
    predictor.predict([(10, 10, True)])
  with pytest.raises(ValueError):
    predictor.model_clicks([(10, 10, True)])
  predictor.set_image(a)  # set again in this thread: its own image, its own mask
  np.testing.assert_array_equal(predictor.predict([(10, 10, True)]), expected_a)
  assert not np.array_equal(other["value"], expected_a)


def test_a_predictor_per_thread_gives_each_thread_its_own_image(predictor):
  a, b = images()
  reference = {}
  for name, image in (("a", a), ("b", b)):
    predictor.set_image(image)
    reference[name] = predictor.predict([(10, 10, True)])
  results, barrier = {}, threading.Barrier(2)

  def work(name, image):
    mine = predictor.for_another_thread()
    assert mine._compiled is predictor._compiled and mine.params is predictor.params
    for _ in range(5):  # interleaved set_image / predict in both threads
      mine.set_image(image)
      barrier.wait(60)
      results.setdefault(name, []).append(mine.predict([(10, 10, True)]))
  threads = [threading.Thread(target=work, args=item) for item in (("a", a), ("b", b))]
  for t in threads:
    t.start()
  for t in threads:
    t.join(120)
  for name in ("a", "b"):
    assert len(results[name]) == 5
    for prob in results[name]:
      np.testing.assert_array_equal(prob, reference[name])


def test_check_thread_false_lets_threads_take_turns(predictor):
  a, _ = images()
  shared = Predictor(predictor.model, predictor.params, predictor.config, check_thread=False)
  shared.set_image(a)
  result = in_thread(lambda: shared.predict([(10, 10, True)]))
  assert "error" not in result, result
