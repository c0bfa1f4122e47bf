"""The ablations of the paper (Tables 4, 5, 7, 9, 11) as configs: `get_config("ABLATION[,BASE]")`.

BASE is tiny | vits_518 | vitb_1024 (default). With ml_collections config_flags:
`--config=configs/ois_ablation.py:no_order,tiny`. Any single switch can also be overridden
directly, e.g. `--config.model.use_order=False` (config_flags) or
`ois-jax segment ... --set model.use_order=False`.
"""

from ois_jax.configs import ois_tiny, ois_vitb_1024, ois_vits_518

BASES = {"tiny": ois_tiny, "vits_518": ois_vits_518, "vitb_1024": ois_vitb_1024}

ABLATIONS = {
    "full": {},
    "no_order": {"use_order": False},                       # Table 4 row 2
    "no_object": {"use_object": False},                     # Table 4 row 3
    "no_sparse": {"use_sparse": False},                     # Table 4 row 4 (removes both attentions)
    "no_dense": {"use_dense": False},                       # Table 4 row 5
    "no_order_no_object": {"use_order": False, "use_object": False},  # Table 11
    "order_first": {"block_order": "order_first"},          # Table 7
    "order_pos_only": {"order_maps": "positive"},           # Table 9
    "order_neg_only": {"order_maps": "negative"},           # Table 9
    "external_depth": {"depth_source": "external"},         # any H x W depth map as input
    "plain_vit": {"backbone": "plain_vit", "depth_source": "external"},  # Tables 10-11 (MAE-style ViT)
}


def get_config(arg: str = "full"):
  name, _, base = arg.partition(",")
  base = base or "vitb_1024"
  if name not in ABLATIONS:
    raise ValueError(f"unknown ablation {name!r}; choose from {sorted(ABLATIONS)}")
  if base not in BASES:
    raise ValueError(f"unknown base {base!r}; choose from {sorted(BASES)}")
  c = BASES[base].get_config()
  c.name = f"{c.name}_{name}"
  for key, value in ABLATIONS[name].items():
    c.model[key] = value
  return c
