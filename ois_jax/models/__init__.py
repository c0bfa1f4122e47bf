"""Flax modules: DINOv2 ViT, DPT heads, depth model and the OIS model."""
