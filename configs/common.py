"""Shared config schema. Each config file calls `base_config()` and overrides a few keys.

Sections: `model` (the OIS model and its ablation switches), `data` (training input),
`train` (optimiser, schedule, sharding), `eval` (click-loop evaluation). The top-level
keys `data_dir`, `total_steps` and `checkpoint_every` are the ones users override most.
"""

import ml_collections

# The `model` keys that give a DepthAnythingV2's sizes (its ViT, its DPT head, its input). A
# stage-1 depth config uses the same names, so linking its encoder into an OIS config is a copy.
SIZE_KEYS = ("encoder_embed_dim", "encoder_depth", "encoder_num_heads", "encoder_layers",
             "head_features", "head_out_channels", "input_size")


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "ois"
  c.seed = 0
  c.data_dir = ""  # training data root (raw folder, read as tfds manual_dir)
  c.total_steps = 1000
  c.checkpoint_every = 500

  # --- model ---------------------------------------------------------------------------
  m = c.model = ml_collections.ConfigDict()
  m.encoder = "vits"         # vits | vitb | vitl | custom (then the encoder_* keys below)
  m.backbone = "dav2"        # dav2 (DepthAnythingV2 DINOv2 encoder) | plain_vit (ablation)
  m.encoder_embed_dim = 384  # used when encoder == "custom"
  m.encoder_depth = 12
  m.encoder_num_heads = 6
  m.encoder_layers = (2, 5, 8, 11)
  m.head_features = 64       # DPT head sizes (used when encoder == "custom")
  m.head_out_channels = (48, 96, 192, 384)
  m.input_size = 518         # square model input (longest side resized, then padded)
  m.prompt_dim = 128         # C: sparse/dense prompt width; image features projected to C
  m.num_blocks = 3
  m.num_heads = 8
  m.mlp_dim = 512
  m.num_positive_slots = 24
  m.num_negative_slots = 24
  m.disk_radius = 5          # click disk radius in pixels at 1024 input, scaled with input_size
  m.use_order = True
  m.use_object = True
  m.use_sparse = True
  m.use_dense = True
  m.block_order = "object_first"  # object_first | order_first (Table 7)
  m.order_maps = "both"           # both | positive | negative (Table 9)
  m.depth_source = "head"         # head (frozen DAv2 depth head) | external (user depth map)
  m.dtype = "float32"             # compute dtype (float32 | bfloat16); params stay float32
  m.attention = "auto"            # ViT self-attention: auto | xla | cudnn | blocked (vit.self_attention)
  m.order_sigma_init = 5.0        # initial sigma of order-aware attention (learned, softplus)
  m.prev_mask_threshold = 0.49    # previous-round foreground for object-aware attention: prob > this
  # OUR CHOICE: how many of the segmentation head's skip levels (finest first: 4g, 2g, g for a
  # g x g token grid) also get the prompts (models/attention.py SkipPromptFusion); 0: only the
  # token grid, as the paper describes. Small inputs need it: 8 x 8 tokens are too coarse.
  m.fine_prompt_levels = 0
  # OUR CHOICE: with fine_prompt_levels > 0, the fine levels' attention to the click slots is
  # order-aware too (Eq. 3 at the level's grid: logits - sigma * |R - R(click)|), so the depth
  # reaches the mask at the resolution of those levels. Ignored when use_order is False.
  m.fine_order = False
  # DepthAnythingV2 weights to start training from (a converted checkpoint folder, or a .pth /
  # .safetensors file converted on the fly): the encoder, the frozen depth head and the
  # segmentation head's initial values. Empty: random initialisation.
  m.depth_checkpoint = ""

  # --- training data ---------------------------------------------------------------------
  d = c.data = ml_collections.ConfigDict()
  d.dataset = "bsds500"        # bsds500 | hqseg44k | coco_lvis | sbd | procedural
  d.exclude_berkeley = True
  d.min_object_area = 80
  d.max_initial_points = 24
  d.prob_gamma = 0.8
  d.merge_objects_prob = 0.15
  d.max_iterative_rounds = 3
  d.batch_size = 8
  d.worker_count = 0           # grain worker processes (0: threads in this process)
  d.num_threads = 2            # grain read threads
  d.prefetch_buffer = 16       # elements buffered by the read threads
  d.augment = True             # the RITM / SegNext augmentations (off: only resize + pad)
  d.resize_range = (0.75, 1.40)
  d.max_sample_tries = 4       # object/augmentation re-draws before a record is skipped
  d.procedural_num_train = 2000  # procedural depth scenes (dataset == "procedural")
  d.procedural_num_val = 64
  d.procedural_size = (120, 160)  # (H, W) of a procedural scene
  d.procedural_seed = 0
  d.procedural_depth = "true"     # the scenes' depth: true | occlusion (what one image shows)
  d.procedural_world = "camera"   # camera (a pinhole camera over a ground plane) | levels (random depth levels)

  # --- optimisation ----------------------------------------------------------------------
  t = c.train = ml_collections.ConfigDict()
  t.learning_rate = 5e-5
  t.lr_decay_steps = (0.9,)    # fractions of total_steps where lr is multiplied by 0.1
  t.weight_decay = 0.0
  t.log_every = 10
  # The frozen encoder + depth head run once per distinct training image and their outputs are
  # reused (host memory per image; needs data.augment=False): training/frozen_cache.py.
  t.cache_frozen_outputs = False
  t.keep_checkpoints = 3
  t.best_metric = "NoC90"      # retention: also keep the best checkpoint by this (lower is better)
  t.mesh_shape = (-1, 1)       # (data, fsdp); -1 takes the remaining devices
  t.mesh_axes = ("data", "fsdp")
  t.logical_axis_rules = (("batch", ("data", "fsdp")), ("embed", "fsdp"), ("mlp", None),
                          ("heads", None))
  t.fsdp_min_size = 2 ** 14    # params with fewer elements stay replicated (see docs/training.md)
  t.distributed = False        # multi-process training: jax.distributed.initialize() first
  # Unset (""/-1): $JAX_COORDINATOR_ADDRESS / $JAX_NUM_PROCESSES / $JAX_PROCESS_ID, else JAX's
  # cluster detection (SLURM, Open MPI, Kubernetes, Cloud TPU). See docs/training.md.
  t.coordinator_address = ""   # HOST:PORT of process 0
  t.num_processes = -1
  t.process_id = -1
  t.distributed_timeout_s = 300  # how long to wait for all processes to connect

  # --- evaluation ----------------------------------------------------------------------------
  e = c.eval = ml_collections.ConfigDict()
  e.max_clicks = 20
  e.threshold = 0.49
  e.batch_size = 4
  e.every = 0                  # validate every N training steps (0: only at the end)
  e.num_samples = 16           # held-out samples used for validation during training
  return c
