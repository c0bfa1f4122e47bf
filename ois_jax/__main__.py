"""`python -m ois_jax COMMAND ...` is `ois-jax COMMAND ...`."""

import sys

from ois_jax.cli import main

sys.exit(main())
