"""The gradio page of `ois-jax demo`: `build_app(engine)` -> gr.Blocks, `launch(...)`.

Each browser session has its own `PageState` (gr.State is per session): its `engine.Session`
(image, clicks, masks) and a folder for its downloads, removed when gradio drops the state.
Handlers never raise for bad input: an `OISError` becomes a line in the status box and the
session's state stays as it was.

API (gradio_client): `/upload` (a file), `/scene` (gallery index), `/click` (x, y in image
pixels, mode), `/undo`, `/reset` return (overlay, status, depth); then `/views` returns (order
maps, attention, mask PNG, probabilities .npy, click choices, block choices), as the page
chains it after each action; `/attention` (click, block) redraws the attention picture.
"""

import os
import shutil
import tempfile
import time

import numpy as np

from ois_jax.demo import engine as engine_lib, render
from ois_jax.errors import OISError

POSITIVE, NEGATIVE = "positive", "negative"
MAX_PIXELS = 40_000_000      # uploads above this are refused (header check, before decoding)
MAX_FILE_SIZE = "50mb"       # gradio refuses larger uploads itself
GALLERY_SCENES = 8
DOWNLOAD_PREFIX = "ois-demo-"

# A right click on the image is a negative click: gradio's Image has no right-click event, so a
# listener computes the pixel as gradio does for a left click (the image is letterboxed, never
# upscaled) and hands it to a hidden button's handler.
RIGHT_CLICK_JS = """
<script>
document.addEventListener("contextmenu", (event) => {
  const img = event.target.closest("#ois-image img");
  if (!img) return;
  event.preventDefault();
  const box = img.getBoundingClientRect();
  const r = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight, 1);
  const x = Math.round((event.clientX - box.left - (box.width - img.naturalWidth * r) / 2) / r);
  const y = Math.round((event.clientY - box.top - (box.height - img.naturalHeight * r) / 2) / r);
  if (x < 0 || y < 0 || x >= img.naturalWidth || y >= img.naturalHeight) return;
  window.oisRightClick = [x, y];
  document.querySelector("#ois-right-click").click();
});
</script>
"""

CSS = "#ois-hidden { display: none !important; }"


class PageState:
  """One browser session: the model session and the folder of its downloads."""

  def __init__(self, engine: engine_lib.Engine):
    self.session = engine.new_session()
    self.folder = tempfile.mkdtemp(prefix=DOWNLOAD_PREFIX)
    _FOLDERS.add(self.folder)
    self.notice = ""          # the last image's notice (downscaled, ...)
    self.click_ms = None      # server time of the last click: decode + overlay
    self.view_click = None    # the click whose attention is shown (None: the last one)
    self.view_block = 0
    self.version = 0          # bumped by every change; `views` redraws when it moved
    self.views_version = -1

  def close(self) -> None:
    shutil.rmtree(self.folder, ignore_errors=True)
    _FOLDERS.discard(self.folder)


_FOLDERS: set[str] = set()  # the session folders not yet removed


def remove_session_folders() -> int:
  """Removes every session folder still there (the demo's exit, by any way); returns how many."""
  folders = list(_FOLDERS)
  for folder in folders:
    shutil.rmtree(folder, ignore_errors=True)
    _FOLDERS.discard(folder)
  return len(folders)


def gallery_scenes(count: int = GALLERY_SCENES, seed: int = 0,
                   world: str = "levels") -> list[tuple[np.ndarray, str]]:
  """Held-out procedural scenes for the gallery: (image (120, 160, 3) uint8, caption).
  world: the procedural world; 'levels' is the one the bundled ois-tiny-procedural knows."""
  from ois_jax.data_pipelines.procedural import ProceduralScenes
  scenes = ProceduralScenes(count, seed=seed, split="val", world=world)
  return [(scenes.layout(i)["image"], f"scene {i}") for i in range(count)]


class Page:
  """The handlers, bound to one engine; `build()` wires them into a gr.Blocks."""

  def __init__(self, engine: engine_lib.Engine, scenes=None, max_side: int = engine_lib.MAX_SIDE,
               max_pixels: int = MAX_PIXELS):
    self.engine = engine
    self.scenes = gallery_scenes() if scenes is None else scenes
    self.max_side = int(max_side)
    self.max_pixels = int(max_pixels)

  # --- handlers ------------------------------------------------------------------------
  # Each action returns (state, overlay, status, depth) at once; the slower views (order maps,
  # attention, downloads) follow in `views`, chained after it, so the mask shows first.
  def _state(self, state):
    return state if state is not None else PageState(self.engine)

  def upload(self, path, state):
    state = self._state(state)
    if not path:
      return self._main(state, "no file received", error=True)
    name = os.path.basename(str(path))
    try:
      image = engine_lib.load_image_file(str(path), self.max_pixels)
    except OISError as e:
      return self._main(state, f"{name}: {_strip_path(str(e), str(path))}", error=True)
    return self._set_image(state, image, name)

  def scene(self, index, state):
    state = self._state(state)
    try:
      image, caption = self.scenes[int(index)]
    except (TypeError, ValueError, IndexError):
      return self._main(state, f"no gallery scene {index!r}", error=True)
    return self._set_image(state, image, caption)

  def scene_selected(self, state, evt=None):
    return self.scene(getattr(evt, "index", None), state)

  def click(self, x, y, mode, state):
    """A click at (x, y) in image pixels (mode: positive / negative)."""
    state = self._state(state)
    if not state.session.has_image:
      return self._main(state, "no image yet: upload an image or pick a scene from the gallery "
                        "first", error=True)
    try:
      y, x = float(y), float(x)
    except (TypeError, ValueError):
      return self._main(state, f"click at ({x!r}, {y!r}): not a pixel position", error=True)
    start = time.perf_counter()
    try:
      state.session.click(y, x, mode != NEGATIVE)
    except OISError as e:
      return self._main(state, f"click refused: {e} (undo or reset to go on)", error=True)
    state.view_click = None
    return self._main(state, "", started=start)

  def image_selected(self, mode, state, evt=None):
    """A left click on the shown picture: evt.index is (x, y) in its pixels."""
    return self._shown_click(getattr(evt, "index", None), mode, state)

  def right_click(self, x, y, state):
    """A right click on the shown picture at (x, y) in its pixels: a negative click."""
    return self._shown_click(None if x is None or y is None else (x, y), NEGATIVE, state)

  def _shown_click(self, xy, mode, state):
    state = self._state(state)
    if not state.session.has_image or xy is None:
      return self.click(None, None, mode, state)
    hw = state.session.image.shape[:2]
    y, x = render.to_image_coords(xy[0], xy[1], hw, render.display_size(hw))
    return self.click(x, y, mode, state)

  def undo(self, state):
    state = self._state(state)
    message = "" if state.session.undo() else "nothing to undo"
    state.view_click, state.click_ms = None, None
    return self._main(state, message)

  def reset(self, state):
    state = self._state(state)
    state.session.reset()
    state.view_click, state.click_ms = None, None
    return self._main(state, "clicks cleared" if state.session.has_image else "")

  def attention(self, click_label, block_label, state):
    """Another click's or block's attention (no decode) -> the attention picture."""
    state = self._state(state)
    if state.session.last is None:
      return None
    # The API can send any label: one that names no click or block is a clear error for the
    # caller, without a traceback on the server (the page's dropdowns send only known ones).
    for label, known, what in ((click_label, _click_labels(state.session.clicks), "click"),
                               (block_label, self._block_labels(), "block")):
      if label and str(label) not in known:
        import gradio as gr
        raise gr.Error(f"no {what} {str(label)[:40]!r}: choose one of {', '.join(known)}",
                       print_exception=False)
    state.view_click = _index_of(click_label)
    state.view_block = max(0, _index_of(block_label) or 0)
    return self._attention_view(state)

  def views(self, state):
    """(order maps, attention, mask file, probs file, click choices, block choices) of the
    current clicks; unchanged outputs are skipped."""
    import gradio as gr
    state = self._state(state)
    s = state.session
    if state.views_version == state.version:
      return (gr.skip(),) * 6
    state.views_version = state.version
    blocks = self._block_labels()
    block_choice = gr.Dropdown(choices=blocks, value=blocks[state.view_block] if blocks else None)
    if not s.has_image:
      return None, None, None, None, gr.Dropdown(choices=[], value=None), block_choice
    hw = s.image.shape[:2]
    last = s.last
    labels = _click_labels(s.clicks)
    click_choice = gr.Dropdown(choices=labels, value=labels[-1] if labels else None)
    if last is None:
      waiting = render.placeholder("click on the image", hw)
      return waiting, waiting, None, None, click_choice, block_choice
    order_view = render.order_maps_view(s.depth(), hw, s.clicks, last.order_positive, last.order_negative)
    mask_file, probs_file = self._write_downloads(state, s.mask(), last.probs)
    return order_view, self._attention_view(state), mask_file, probs_file, click_choice, block_choice

  # --- views ---------------------------------------------------------------------------
  def _set_image(self, state, image, name):
    try:
      notice = state.session.set_image(image, name, self.max_side)
    except OISError as e:
      return self._main(state, f"{name}: {e}", error=True)
    state.notice, state.click_ms, state.view_click = notice, None, None
    return self._main(state, "", new_image=True)

  def _main(self, state, message: str, error: bool = False, started: float | None = None,
            new_image: bool = False):
    """(state, overlay, status, depth). After an error the pictures stay as they are."""
    import gradio as gr
    s = state.session
    if error:
      return state, gr.skip(), self._status(state, message, True), gr.skip()
    state.version += 1
    if not s.has_image:
      return state, None, self._status(state, message), None
    shown = render.display_size(s.image.shape[:2])
    overlay = render.overlay(s.image, s.mask(), s.clicks, shown)
    depth = render.depth_view(s.depth(), shown) if new_image else gr.skip()
    if started is not None:
      state.click_ms = (time.perf_counter() - started) * 1e3
    return state, overlay, self._status(state, message), depth

  def _block_labels(self) -> list[str]:
    return [f"block {i + 1}" for i in range(self.engine.num_blocks)]

  def _attention_view(self, state):
    s = state.session
    index = len(s.clicks) - 1 if state.view_click is None else min(state.view_click, len(s.clicks) - 1)
    tf = s.predictor.transform
    block = min(state.view_block, max(self.engine.num_blocks - 1, 0))
    return render.attention_view(s.image, s.last.attention, index, block, s.clicks, self.engine.grid,
                                 tf.size, tf.resized_hw)

  def _write_downloads(self, state, mask, probs):
    """mask PNG (0 / 255) and probabilities .npy at the image's size, named after the clicks."""
    from PIL import Image
    s = state.session
    stem = f"{_file_stem(s.name)}_{len(s.clicks)}clicks"
    mask_path = os.path.join(state.folder, f"{stem}_mask.png")
    probs_path = os.path.join(state.folder, f"{stem}_probs.npy")
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    np.save(probs_path, probs.astype(np.float32))
    return mask_path, probs_path

  def _status(self, state, message: str, error: bool = False) -> str:
    s = state.session
    lines = []
    if s.has_image:
      h, w = s.image.shape[:2]
      n_pos = sum(1 for c in s.clicks if c[2])
      compiled = f" (decode compiled for this size in {s.compile_ms:.0f} ms)" if s.compile_ms else ""
      lines.append(f"**{s.name}** ({w}x{h}), encoded once in {s.encode_ms:.0f} ms{compiled} · "
                   f"clicks: {len(s.clicks)} ({n_pos} positive, {len(s.clicks) - n_pos} negative)")
      if s.last is not None and state.click_ms is not None:
        lines.append(f"last click: {state.click_ms:.0f} ms on the server "
                     f"(decode {s.last.decode_ms:.0f} ms, no re-encode)")
      if state.notice:
        lines.append(f"note: {state.notice}")
    else:
      lines.append("upload an image or pick a scene from the gallery, then click on the object")
    if message:
      lines.append(f"**{'error' if error else 'note'}:** {message}")
    lines.append(f"<small>model: {self.engine.source}</small>")
    return "  \n".join(lines)

  # --- the page ------------------------------------------------------------------------
  def build(self):
    import gradio as gr
    # Views are sent as JPEG: encoding a 480x360 PNG takes ~100x longer, most of a click's time.
    # Gradio keeps every picture it served in its cache: files older than an hour go.
    with gr.Blocks(title="ois-jax demo", analytics_enabled=False, delete_cache=(600, 3600)) as app:
      state = gr.State(None, delete_callback=lambda page_state: page_state and page_state.close())
      gr.Markdown("## ois-jax: order-aware interactive segmentation\n"
                  "Upload an image or pick a scene, then left-click on an object: a click of the "
                  "chosen mode (right-click: negative). Each click refines the mask; the image is "
                  "encoded once.")
      with gr.Row(equal_height=True):
        upload = gr.UploadButton("Upload an image", elem_id="ois-upload", type="filepath", scale=1)
        gallery = gr.Gallery([(image, caption) for image, caption in self.scenes], label="procedural scenes",
                             elem_id="ois-gallery", columns=len(self.scenes), rows=1, height=150,
                             allow_preview=False, object_fit="contain", interactive=False, scale=5)
      with gr.Row():
        with gr.Column(scale=3):
          overlay = gr.Image(label="mask and clicks (click here)", elem_id="ois-image", type="numpy",
                             format="jpeg", interactive=False, buttons=[])
        with gr.Column(scale=2):
          depth = gr.Image(label="depth (the model's own, nearer = warmer)", elem_id="ois-depth",
                           format="jpeg", interactive=False, buttons=[])
          mode = gr.Radio([POSITIVE, NEGATIVE], value=POSITIVE, label="click mode", elem_id="ois-mode")
          with gr.Row():
            undo = gr.Button("Undo last click", elem_id="ois-undo")
            reset = gr.Button("Reset clicks", elem_id="ois-reset")
          status = gr.Markdown(elem_id="ois-status")
      with gr.Row():
        order_maps = gr.Image(label="order maps (darker = nearer in depth to the clicked object)",
                              elem_id="ois-order", format="jpeg", interactive=False, buttons=[])
        with gr.Column():
          attention = gr.Image(label="attention of a click, mean over heads", elem_id="ois-attention",
                               format="jpeg", interactive=False, buttons=[])
          with gr.Row():
            # Custom values reach `attention`, which refuses unknown ones in one line.
            click_choice = gr.Dropdown(choices=[], label="click", elem_id="ois-attention-click",
                                       allow_custom_value=True)
            block_choice = gr.Dropdown(choices=[], label="block", elem_id="ois-attention-block",
                                       allow_custom_value=True)
      with gr.Row():
        mask_file = gr.File(label="mask PNG (0 / 255)", elem_id="ois-mask-file", interactive=False)
        probs_file = gr.File(label="probabilities (.npy)", elem_id="ois-probs-file", interactive=False)
      # Hidden inputs of the API's /click and /scene and of the right-click listener.
      with gr.Row(elem_id="ois-hidden"):
        x_in = gr.Number(label="x", elem_id="ois-x")
        y_in = gr.Number(label="y", elem_id="ois-y")
        index_in = gr.Number(label="scene", elem_id="ois-scene-index")
        click_btn = gr.Button("click", elem_id="ois-click")
        scene_btn = gr.Button("scene", elem_id="ois-scene")
        right_btn = gr.Button("right click", elem_id="ois-right-click")
        views_btn = gr.Button("views", elem_id="ois-views")

      main = [state, overlay, status, depth]
      views = [order_maps, attention, mask_file, probs_file, click_choice, block_choice]

      def chain(event, fn, inputs, api_name=None, **kwargs):
        """An action, then the views of its result (API clients call /views themselves)."""
        name = {"api_name": api_name} if api_name else {"api_visibility": "private"}
        event(fn, inputs, main, show_progress="hidden", **name, **kwargs).then(
            self.views, [state], views, show_progress="hidden", api_visibility="private")

      def on_gallery(state_value, evt: gr.SelectData):
        return self.scene_selected(state_value, evt)

      def on_image(mode_value, state_value, evt: gr.SelectData):
        return self.image_selected(mode_value, state_value, evt)

      views_btn.click(self.views, [state], views, api_name="views")  # first: it takes the name
      chain(upload.upload, self.upload, [upload, state], "upload")
      chain(gallery.select, on_gallery, [state])
      chain(overlay.select, on_image, [mode, state])
      chain(click_btn.click, self.click, [x_in, y_in, mode, state], "click")
      chain(scene_btn.click, self.scene, [index_in, state], "scene")
      chain(right_btn.click, self.right_click, [x_in, y_in, state],
            js="(x, y, state) => [...(window.oisRightClick || [null, null]), state]")
      chain(undo.click, self.undo, [state], "undo")
      chain(reset.click, self.reset, [state], "reset")
      chain(app.load, lambda state_value: self._main(self._state(state_value), ""), [state])
      for choice in (click_choice, block_choice):
        choice.input(self.attention, [click_choice, block_choice, state], attention,
                     api_name="attention" if choice is click_choice else None,
                     api_visibility="public" if choice is click_choice else "private")
    return app


def launch(app, host: str = "127.0.0.1", port: int = 7860, block: bool = True, quiet: bool = True):
  """Serve on host:port, never shared, no analytics, nothing fetched from outside."""
  os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
  return app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
                    max_file_size=MAX_FILE_SIZE, ssr_mode=False, quiet=quiet, head=RIGHT_CLICK_JS, css=CSS,
                    footer_links=[], show_error=False, mcp_server=False, pwa=False)


def _click_labels(clicks) -> list[str]:
  return [f"{i + 1} ({'+' if c[2] else '-'})" for i, c in enumerate(clicks)]


def _index_of(label) -> int | None:
  """'3 (+)' / 'block 2' -> 2 / 1 (zero-based); None for an empty choice."""
  if not label:
    return None
  digits = "".join(ch for ch in str(label).split("(")[0] if ch.isdigit())
  return int(digits) - 1 if digits else None


def _file_stem(name: str) -> str:
  stem = os.path.splitext(os.path.basename(name))[0]
  return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:60] or "image"


def _strip_path(message: str, path: str) -> str:
  """Messages from load_image name the uploaded temp file; the user knows it by its name."""
  return message.replace(f"{path}: ", "").replace(path, os.path.basename(path))
