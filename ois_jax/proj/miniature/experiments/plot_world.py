"""Draws docs/procedural_world.png: procedural scenes of the camera world beside their true
relative inverse depth (white = near; the sky, at infinity, is black).

  python -m ois_jax.proj.miniature.experiments.plot_world [--out docs/procedural_world.png] [--scenes 4]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ois_jax.data_pipelines import procedural  # noqa: E402


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default="docs/procedural_world.png")
  p.add_argument("--scenes", type=int, default=4)
  p.add_argument("--world", default="camera", choices=procedural.WORLDS)
  args = p.parse_args()
  scenes = procedural.ProceduralScenes(args.scenes, seed=0, split="val", world=args.world)
  fig, axes = plt.subplots(2, args.scenes, figsize=(2.6 * args.scenes, 4.2), dpi=100, squeeze=False)
  for i in range(args.scenes):
    lay = scenes.layout(i)
    axes[0, i].imshow(lay["image"])
    axes[1, i].imshow(lay["depth"], cmap="gray", vmin=0)
    if args.world == "camera":
      for ax in axes[:, i]:
        ax.axhline(lay["horizon"], color="tab:orange", lw=0.8, ls="--")
      axes[0, i].set_title(f"horizon {lay['horizon']:.0f}, f h {lay['camera']:.0f} px", fontsize=8)
    for ax in axes[:, i]:
      ax.set_xticks([])
      ax.set_yticks([])
  axes[0, 0].set_ylabel("image")
  axes[1, 0].set_ylabel("inverse depth")
  fig.tight_layout()
  fig.savefig(args.out)
  print(args.out)


if __name__ == "__main__":
  main()
