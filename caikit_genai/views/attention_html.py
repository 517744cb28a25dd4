"""A self-contained HTML page of attention weights: a head view and a model view, offline.

BertViz's views load require.js, d3 and jQuery from a CDN, so they are blank offline (bertviz
#53, #63, #99, #110), and they embed every weight as JSON floats, so long inputs are slow
(#74, #82, #121). This page has its script and style inline and nothing to fetch; the weights
ride along as base64 uint8 (each row scaled by its maximum, with float32 row scales), about a
fifth of their float32 JSON, and are drawn on canvases.

- Head view (as BertViz's): one layer; query tokens on the left, key tokens on the right, a line
  per (head, query, key) whose opacity is the weight, one colour per head; click heads to show
  or hide them, hover a token to see only its lines.
- Model view: every layer x head as a small heatmap; click one to open it in the head view.

After drawing, the page writes what it drew on <body> (data-kinds, data-layers, data-heads,
data-tokens, data-thumbs, data-lines), which tests read back from a headless browser's DOM.
"""

import base64
import html
import json
from typing import Dict, List

import numpy as np

from ..toolkit.serving.packing import pack_matrices

HEAD_COLORS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
]


def page_data(tokens: List[str], segments: List[int], target_tokens: List[str], groups: List[Dict]) -> Dict:
    """The JSON the page script reads. Each group: kind, layers, heads, aggregate and its float32
    matrices [layers, heads or 1, queries, keys], packed here as uint8 rows plus row scales."""
    packed = []
    for group in groups:
        matrices = np.asarray(group["matrices"], dtype=np.float32)
        _, weights, scales = pack_matrices(matrices, "uint8")
        packed.append(
            {
                "kind": group["kind"],
                "layers": [int(layer) for layer in group["layers"]],
                "heads": [int(head) for head in group["heads"]],
                "aggregate": group["aggregate"],
                "shape": list(matrices.shape),
                "weights": base64.b64encode(weights).decode(),
                "scales": base64.b64encode(scales).decode(),
            }
        )
    return {"tokens": tokens, "segments": segments, "target_tokens": target_tokens, "groups": packed}


def render_page(data: Dict, title: str, note: str) -> str:
    """The whole page as one string: style, data and script inline."""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (
        PAGE.replace("__TITLE__", html.escape(title))
        .replace("__NOTE__", html.escape(note))
        .replace("__COLORS__", json.dumps(HEAD_COLORS))
        .replace("__DATA__", payload)
    )


PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
  h1 { font-size: 18px; margin: 0 0 4px; }
  .note { color: #555; margin: 0 0 12px; max-width: 70em; }
  section { margin-bottom: 24px; }
  h2 { font-size: 15px; margin: 12px 0 6px; }
  .controls { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
  .head-toggle { width: 22px; height: 18px; border: 2px solid #333; border-radius: 3px; cursor: pointer;
                 font-size: 10px; color: #fff; text-align: center; line-height: 18px; user-select: none; }
  .head-toggle.off { opacity: 0.2; }
  #head-view { position: relative; display: flex; gap: 0; }
  .column { display: flex; flex-direction: column; }
  .token { height: 18px; line-height: 18px; padding: 0 6px; white-space: pre; cursor: default; }
  .query { text-align: right; }
  .token.segment-1 { color: #7a3e00; }
  .token.active { background: #ffe9a8; }
  #model-view { display: grid; gap: 6px; align-items: start; }
  #model-view .label { font-size: 12px; color: #444; align-self: center; }
  canvas.thumb { width: 96px; height: 96px; image-rendering: pixelated; border: 1px solid #bbb; cursor: pointer; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<p class="note">__NOTE__</p>
<section>
  <h2>Head view</h2>
  <div class="controls">
    <label>Attention <select id="kind"></select></label>
    <label>Layer <select id="layer"></select></label>
    <span>Heads:</span><span id="head-toggles" class="controls"></span>
  </div>
  <div id="head-view">
    <div id="queries" class="column"></div>
    <canvas id="lines" width="260" height="10"></canvas>
    <div id="keys" class="column"></div>
  </div>
</section>
<section>
  <h2>Model view <small>(every layer x head, each scaled to its own maximum; click one to open it above)</small></h2>
  <div id="model-view"></div>
</section>
<script>
"use strict";
const DATA = __DATA__;
const COLORS = __COLORS__;
const ROW = 18;

function decode(group) {
  const bytes = Uint8Array.from(atob(group.weights), c => c.charCodeAt(0));
  const scaleBytes = Uint8Array.from(atob(group.scales), c => c.charCodeAt(0));
  const scales = new Float32Array(scaleBytes.buffer);
  const [, , q, k] = group.shape;
  group.q = q; group.k = k; group.heads_axis = group.shape[1];
  group.at = (l, h, i, j) => bytes[((l * group.heads_axis + h) * q + i) * k + j] * scales[(l * group.heads_axis + h) * q + i];
  group.headNames = group.aggregate === "none" ? group.heads.map(h => "H" + h) : [group.aggregate];
  return group;
}
const GROUPS = DATA.groups.map(decode);
const state = { group: 0, layer: 0, heads: new Set(), hover: null };

function sideTokens(group) {
  const enc = DATA.tokens, dec = DATA.target_tokens;
  if (group.kind === "decoder") return [dec, dec];
  if (group.kind === "cross") return [dec, enc];
  return [enc, enc];
}

function option(select, value, text) {
  const o = document.createElement("option"); o.value = value; o.textContent = text; select.appendChild(o);
}

function setGroup(index) {
  state.group = index; state.layer = 0;
  const group = GROUPS[index];
  state.heads = new Set(group.headNames.map((_, h) => h));
  const layer = document.getElementById("layer"); layer.innerHTML = "";
  group.layers.forEach((l, i) => option(layer, i, String(l)));
  const toggles = document.getElementById("head-toggles"); toggles.innerHTML = "";
  group.headNames.forEach((name, h) => {
    const t = document.createElement("div");
    t.className = "head-toggle"; t.title = name; t.textContent = name.replace("H", "");
    t.style.background = COLORS[h % COLORS.length];
    t.onclick = () => { state.heads.has(h) ? state.heads.delete(h) : state.heads.add(h); t.classList.toggle("off"); drawLines(); };
    toggles.appendChild(t);
  });
  const [queries, keys] = sideTokens(group);
  fillTokens("queries", queries, "query", group.kind === "encoder");
  fillTokens("keys", keys, "key", group.kind !== "decoder");
  drawLines(); drawModel();
}

function fillTokens(id, tokens, role, showSegments) {
  const column = document.getElementById(id); column.innerHTML = "";
  tokens.forEach((text, i) => {
    const d = document.createElement("div");
    d.className = "token " + role + (showSegments && DATA.segments[i] === 1 ? " segment-1" : "");
    d.dataset.index = i; d.textContent = text;
    d.onmouseenter = () => { state.hover = { role, i }; d.classList.add("active"); drawLines(); };
    d.onmouseleave = () => { state.hover = null; d.classList.remove("active"); drawLines(); };
    column.appendChild(d);
  });
}

function drawLines() {
  const group = GROUPS[state.group], canvas = document.getElementById("lines");
  const rows = Math.max(group.q, group.k);
  canvas.height = rows * ROW;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  let drawn = 0;
  for (const h of state.heads) {
    ctx.strokeStyle = COLORS[h % COLORS.length];
    for (let i = 0; i < group.q; i++) {
      if (state.hover && state.hover.role === "query" && state.hover.i !== i) continue;
      for (let j = 0; j < group.k; j++) {
        if (state.hover && state.hover.role === "key" && state.hover.i !== j) continue;
        const w = group.at(state.layer, h, i, j);
        if (w < 0.01) continue;
        ctx.globalAlpha = Math.min(1, w);
        ctx.lineWidth = 2;
        ctx.beginPath(); ctx.moveTo(0, i * ROW + ROW / 2); ctx.lineTo(canvas.width, j * ROW + ROW / 2); ctx.stroke();
        drawn++;
      }
    }
  }
  ctx.globalAlpha = 1;
  document.body.dataset.lines = drawn;
}

function heatmap(canvas, group, l, h) {
  canvas.width = group.k; canvas.height = group.q;
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(group.k, group.q);
  let top = 0;
  for (let i = 0; i < group.q; i++) for (let j = 0; j < group.k; j++) top = Math.max(top, group.at(l, h, i, j));
  for (let i = 0; i < group.q; i++) for (let j = 0; j < group.k; j++) {
    const v = top > 0 ? group.at(l, h, i, j) / top : 0, p = 4 * (i * group.k + j);
    image.data[p] = 255 - v * 247; image.data[p + 1] = 255 - v * 207; image.data[p + 2] = 255 - v * 148; image.data[p + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function drawModel() {
  const group = GROUPS[state.group], grid = document.getElementById("model-view");
  grid.innerHTML = "";
  grid.style.gridTemplateColumns = "auto repeat(" + group.headNames.length + ", 98px)";
  grid.appendChild(document.createElement("span"));
  group.headNames.forEach(name => { const s = document.createElement("span"); s.className = "label head-label"; s.textContent = name; grid.appendChild(s); });
  let thumbs = 0;
  group.layers.forEach((layer, l) => {
    const label = document.createElement("span"); label.className = "label layer-label"; label.textContent = "Layer " + layer;
    grid.appendChild(label);
    group.headNames.forEach((name, h) => {
      const c = document.createElement("canvas"); c.className = "thumb"; c.title = "layer " + layer + " " + name;
      c.dataset.layer = layer; c.dataset.head = name;
      heatmap(c, group, l, h);
      c.onclick = () => { pickLayer(l); soloHead(h); window.scrollTo(0, 0); };
      grid.appendChild(c); thumbs++;
    });
  });
  const b = document.body.dataset;
  b.kind = group.kind; b.layers = group.layers.length; b.heads = group.headNames.length; b.thumbs = thumbs;
  b.tokens = JSON.stringify(sideTokens(group)[0]);
  b.kinds = GROUPS.map(g => g.kind).join(",");
  b.drawn = "true";
}

function pickLayer(l) { state.layer = l; document.getElementById("layer").value = l; drawLines(); }
function soloHead(h) {
  state.heads = new Set([h]);
  document.querySelectorAll(".head-toggle").forEach((t, i) => t.classList.toggle("off", i !== h));
  drawLines();
}

const kind = document.getElementById("kind");
GROUPS.forEach((g, i) => option(kind, i, g.kind + (g.aggregate === "none" ? "" : " (" + g.aggregate + ")")));
kind.onchange = () => setGroup(Number(kind.value));
document.getElementById("layer").onchange = e => pickLayer(Number(e.target.value));
setGroup(0);
</script>
</body>
</html>
"""
