// medsam2 serve: the annotation page. NiiVue shows the volume (layer 0) and the labels (layer 1);
// prompts go to the server in world millimetres (RAS, as NiiVue reports them); the server answers
// with label slices in the file's index order, patched into layer 1 as they arrive.
import { api, propagate } from "./api.js";

const NV = window.niivue;
const $ = (id) => document.getElementById(id);
const canvas = $("gl");
const state = {
  info: null, objects: [], selected: null, tool: "box", busy: false, overlay: true, opacity: 0.5,
  lastPrompt: null, lastResult: null, lastPropagation: null, running: null, propagations: 0, saved: null, latencies: [], errors: [],
};
window.medsam2 = { state, ready: false }; // read by the browser tests

const nv = new NV.Niivue({
  backColor: [0, 0, 0, 1],
  dragAndDropEnabled: false,
  isColorbar: false,
  logLevel: "warn",
  multiplanarShowRender: NV.SHOW_RENDER.NEVER,
  crosshairColor: [0.3, 0.8, 1, 0.7],
  selectionBoxColor: [1, 1, 0.2, 0.6],
});
// left drag: a box (callback only), right drag: window/level, middle drag: pan
nv.setMouseEventConfig({
  leftButton: { primary: NV.DRAG_MODE.callbackOnly },
  rightButton: NV.DRAG_MODE.contrast,
  centerButton: NV.DRAG_MODE.pan,
});
window.medsam2.nv = nv;

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
  if (isError) state.errors.push(text);
}

function hexRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function labelColormap() {
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (const o of state.objects) {
    const [r, g, b] = hexRgb(o.color);
    cm.R.push(r); cm.G.push(g); cm.B.push(b); cm.A.push(255); cm.I.push(o.id); cm.labels.push(o.name);
  }
  if (cm.I.length === 1) { cm.R.push(0); cm.G.push(0); cm.B.push(0); cm.A.push(0); cm.I.push(1); cm.labels.push(""); }
  return cm;
}

// Redraws are coalesced: at most one per REDRAW_MS while slices stream in (a full upload of the
// overlay is costly with software WebGL and large volumes).
const REDRAW_MS = 150;
let redrawTimer = null;
let lastRedraw = 0;
function redraw() {
  if (redrawTimer !== null) return;
  const wait = Math.max(0, lastRedraw + REDRAW_MS - performance.now());
  redrawTimer = setTimeout(() => {
    redrawTimer = null;
    lastRedraw = performance.now();
    drawLabels();
  }, wait);
}

// Upload only the labels layer (layer 1) and draw: much cheaper than updateGLVolume(), which
// also re-uploads the image.
function drawLabels() {
  nv.refreshLayers(nv.volumes[1], 1);
  nv.drawScene();
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));

function refreshColors() {
  const labels = nv.volumes[1];
  if (!labels) return;
  labels.setColormapLabel(labelColormap());
  nv.setOpacity(1, state.overlay ? state.opacity : 0);
  redraw();
}

// One label slice from the server: `axis` sliced at `slice`, values over `axes` [a, b], a fastest.
function applyPatch(patch) {
  const vol = nv.volumes[1];
  const dims = vol.hdr.dims;
  const stride = [1, dims[1], dims[1] * dims[2]];
  const raw = atob(patch.data);
  const [na, nb] = patch.shape;
  const base = patch.slice * stride[patch.axis];
  const sa = stride[patch.axes[0]];
  const sb = stride[patch.axes[1]];
  let n = 0;
  for (let b = 0; b < nb; b++) {
    const row = base + b * sb;
    for (let a = 0; a < na; a++) vol.img[row + a * sa] = raw.charCodeAt(n++);
  }
}

function clearLabel(id) {
  const img = nv.volumes[1].img;
  for (let i = 0; i < img.length; i++) if (id === null || img[i] === id) img[i] = 0;
  redraw();
}

function renderObjects() {
  const list = $("objects");
  list.replaceChildren();
  for (const o of state.objects) {
    const li = document.createElement("li");
    li.dataset.id = o.id;
    li.className = o.id === state.selected ? "selected" : "";
    const color = document.createElement("input");
    color.type = "color";
    color.value = o.color;
    color.addEventListener("change", () => guard(async () => updateObject(await api.patchObject(o.id, { color: color.value }))));
    const name = document.createElement("input");
    name.className = "name";
    name.value = o.name;
    name.addEventListener("change", () => guard(async () => updateObject(await api.patchObject(o.id, { name: name.value }))));
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = `${o.prompts} prompt${o.prompts === 1 ? "" : "s"}`;
    const del = document.createElement("button");
    del.textContent = "×";
    del.title = "delete object";
    del.addEventListener("click", (e) => { e.stopPropagation(); guard(() => deleteObject(o.id)); });
    li.append(color, name, count, del);
    li.addEventListener("click", () => { state.selected = o.id; renderObjects(); });
    list.append(li);
  }
}

function updateObject(o) {
  const i = state.objects.findIndex((x) => x.id === o.id);
  if (i >= 0) state.objects[i] = o; else state.objects.push(o);
  renderObjects();
  refreshColors();
}

async function addObject() {
  const o = await api.addObject({});
  state.selected = o.id;
  updateObject(o);
  status(`${o.name}: drag a box on a slice, or Shift+click inside the structure`);
  return o;
}

async function deleteObject(id) {
  await api.deleteObject(id);
  state.objects = state.objects.filter((o) => o.id !== id);
  if (state.selected === id) state.selected = state.objects.length ? state.objects[0].id : null;
  clearLabel(id);
  renderObjects();
  refreshColors();
}

async function reloadObjects() {
  state.objects = await api.objects();
  if (!state.objects.some((o) => o.id === state.selected)) state.selected = state.objects.length ? state.objects[0].id : null;
  renderObjects();
  refreshColors();
}

// Run an action; errors become the status line; refused while a propagation runs.
async function guard(action) {
  try {
    await action();
  } catch (err) {
    status(err.message, true);
  }
}

// A running propagation is cancelled first: the new prompt changes what it would produce.
async function stopPropagation() {
  if (!state.busy) return;
  await api.cancel();
  await state.running;
}

// After a correction (or undo) on a volume propagated before, propagate again on our own.
function repropagate() {
  if ($("auto").checked && state.lastPropagation && !state.busy) runPropagation();
}

async function sendPrompt(prompt) {
  const t0 = performance.now();
  await stopPropagation();
  if (state.selected === null) await addObject();
  state.lastPrompt = { object: state.selected, ...prompt };
  const t1 = performance.now();
  const res = await api.prompt(state.selected, prompt);
  const t2 = performance.now();
  applyPatch(res.patch);
  drawLabels();
  await nextFrame();
  const ms = performance.now() - t0;
  state.lastResult = res;
  state.latencies.push({ ms, server_ms: res.ms, request_ms: t2 - t1, draw_ms: performance.now() - t2 });
  status(`slice ${res.slice}: ${res.pixels} pixels in ${ms.toFixed(0)} ms (model ${res.ms.toFixed(0)} ms)`);
  await reloadObjects();
  repropagate();
}

nv.onDragRelease = (p) => {
  if (state.tool !== "box") return;
  const a = Array.from(p.mmStart).slice(0, 3);
  const b = Array.from(p.mmEnd).slice(0, 3);
  if (Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]) < 1) return; // a click, not a box
  guard(() => sendPrompt({ box: [a, b] }));
};

let pointerDown = null;
canvas.addEventListener("pointerdown", (e) => { pointerDown = { x: e.clientX, y: e.clientY, button: e.button }; });
canvas.addEventListener("pointerup", (e) => {
  const down = pointerDown;
  pointerDown = null;
  if (!down || down.button !== 0 || Math.hypot(e.clientX - down.x, e.clientY - down.y) > 3) return;
  const label = e.shiftKey ? 1 : e.altKey ? 0 : { positive: 1, negative: 0 }[state.tool];
  if (label === undefined) return;
  const rect = canvas.getBoundingClientRect();
  const dpr = nv.uiData.dpr || window.devicePixelRatio || 1;
  const frac = nv.canvasPos2frac([(e.clientX - rect.left) * dpr, (e.clientY - rect.top) * dpr]);
  if (!frac || frac[0] < 0) return;
  const mm = Array.from(nv.frac2mm(frac)).slice(0, 3);
  guard(() => sendPrompt({ points: [mm], labels: [label] }));
});

function setBusy(busy) {
  state.busy = busy;
  $("propagate").disabled = busy;
  $("cancel").disabled = !busy;
}

function runPropagation() {
  if (!state.busy) state.running = propagateNow();
  return state.running;
}

async function propagateNow() {
  setBusy(true);
  $("progress").value = 0;
  const t0 = performance.now();
  try {
    const last = await propagate({}, (ev) => {
      if (ev.type !== "slice") return;
      applyPatch(ev.patch);
      redraw();
      $("progress").value = ev.done / ev.total;
      status(`propagating: ${ev.done}/${ev.total} slices`);
    });
    drawLabels(); // the last slices, without waiting for the coalesced redraw
    await nextFrame();
    const ms = performance.now() - t0;
    state.propagations += 1;
    state.lastPropagation = { ...last, browser_ms: ms, browser_ms_per_slice: ms / Math.max(1, last.slices || 0) };
    if (last.type === "error") status(last.error, true);
    else status(`${last.cancelled ? "cancelled after" : "propagated"} ${last.slices} slices in ${(ms / 1000).toFixed(1)} s (${(ms / Math.max(1, last.slices)).toFixed(0)} ms per slice)`);
  } catch (err) {
    status(err.message, true);
  } finally {
    setBusy(false);
  }
}

async function undo() {
  if (state.selected === null) return;
  await stopPropagation();
  const res = await api.undo(state.selected);
  await reloadLabels(); // the object's propagated slices were dropped: take the server's labels
  status(`undone the last prompt of object ${state.selected} (slice ${res.slice})`);
  await reloadObjects();
  repropagate();
}

async function reloadLabels() {
  nv.removeVolumeByIndex(1);
  await nv.addVolumeFromUrl({ url: "/api/labels.nii.gz", name: "labels.nii.gz" });
  refreshColors();
}

async function save() {
  const res = await api.save();
  state.saved = res;
  status(`saved ${res.saved}`);
}

async function reset() {
  if (!window.confirm("Delete every object and prompt?")) return;
  await api.reset();
  clearLabel(null);
  await reloadObjects();
  status("reset: add an object and prompt again");
}

function setTool(tool) {
  state.tool = tool;
  for (const r of document.querySelectorAll("input[name=tool]")) r.checked = r.value === tool;
}

function bindControls() {
  $("add-object").addEventListener("click", () => guard(addObject));
  $("propagate").addEventListener("click", () => runPropagation());
  $("cancel").addEventListener("click", () => guard(() => api.cancel()));
  $("undo").addEventListener("click", () => guard(undo));
  $("save").addEventListener("click", () => guard(save));
  $("reset").addEventListener("click", () => guard(reset));
  $("opacity").addEventListener("input", (e) => { state.opacity = Number(e.target.value); refreshColors(); });
  for (const r of document.querySelectorAll("input[name=tool]")) r.addEventListener("change", () => setTool(r.value));
  for (const b of document.querySelectorAll("button[data-view]")) b.addEventListener("click", () => nv.setSliceType(Number(b.dataset.view)));
  document.addEventListener("keydown", onKey);
}

function cycleObject(step) {
  if (!state.objects.length) return;
  const i = state.objects.findIndex((o) => o.id === state.selected);
  state.selected = state.objects[(i + step + state.objects.length) % state.objects.length].id;
  renderObjects();
}

// One slice up/down along the view shown (axial: z, coronal: y, sagittal: x of NiiVue's RAS grid).
function moveSlice(step) {
  const type = nv.opts.sliceType;
  const d = [0, 0, 0];
  d[type === 1 ? 1 : type === 2 ? 0 : 2] = step;
  nv.moveCrosshairInVox(d[0], d[1], d[2]);
}

function onKey(e) {
  if (e.target instanceof HTMLInputElement && e.target.type === "text") return;
  const ctrl = e.ctrlKey || e.metaKey;
  const actions = {
    z: () => ctrl && guard(undo),
    s: () => ctrl && guard(save),
    b: () => !ctrl && setTool("box"),
    "=": () => setTool("positive"),
    "+": () => setTool("positive"),
    "-": () => setTool("negative"),
    n: () => !ctrl && guard(addObject),
    "]": () => cycleObject(1),
    "[": () => cycleObject(-1),
    Enter: () => runPropagation(),
    Escape: () => state.busy && guard(() => api.cancel()),
    o: () => { state.overlay = !state.overlay; refreshColors(); },
    ArrowUp: () => moveSlice(1), ArrowDown: () => moveSlice(-1),
    PageUp: () => moveSlice(1), PageDown: () => moveSlice(-1),
    1: () => nv.setSliceType(0), 2: () => nv.setSliceType(1), 3: () => nv.setSliceType(2), 4: () => nv.setSliceType(3),
  };
  const action = actions[e.key.length === 1 ? e.key.toLowerCase() : e.key];
  if (action && action() !== false && (ctrl || e.key === "Enter" || e.key.startsWith("Arrow"))) e.preventDefault();
}

async function offerResume(resume) {
  $("resume-info").textContent = `${resume.objects} object(s), saved ${resume.saved_at}`;
  $("resume").hidden = false;
  $("resume-yes").onclick = () => guard(async () => { await api.resume(true); window.location.reload(); });
  $("resume-no").onclick = () => guard(async () => { await api.resume(false); $("resume").hidden = true; });
}

async function start() {
  bindControls();
  state.info = await api.volume();
  $("source").textContent = state.info.source;
  document.title = `medsam2 — ${state.info.source}`;
  await nv.attachToCanvas(canvas);
  await nv.loadVolumes([
    { url: "/api/image.nii.gz", name: "image.nii.gz" },
    { url: "/api/labels.nii.gz", name: "labels.nii.gz" },
  ]);
  nv.setInterpolation(true); // nearest neighbour: voxels as they are, label colours unblended
  nv.setRadiologicalConvention(true); // patient's right on the screen's left, as medsam2's overlays
  nv.setSliceType(state.info.slicing.plane === "coronal" ? 1 : state.info.slicing.plane === "sagittal" ? 2 : 0);
  await reloadObjects();
  if (state.info.resume) await offerResume(state.info.resume);
  else if (!state.objects.length) await addObject(); // ready for the first box
  const tracking = state.info.tracker === "box-chain" ? "propagates by chaining boxes" : "propagates with the memory";
  status(`${state.info.shape.join("×")} voxels, sliced ${state.info.slicing.plane}, ${tracking}; saves to ${state.info.output}. Add an object (N) and drag a box.`);
  window.medsam2.ready = true;
}

start().catch((err) => status(`could not start: ${err.message}`, true));
