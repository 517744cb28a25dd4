// The two views of one attention kind: every layer x head as a small heatmap (as BertViz's model
// view), and one of them enlarged with token-to-token lines (as its head view) and its weights.
import { element } from "./forms.js";

const ROW = 22;  // px per token row (style.css: .tokens li)
const SVG_NS = "http://www.w3.org/2000/svg";

function heatColor() {
  return getComputedStyle(document.documentElement).getPropertyValue("--heat").split(",").map(Number);
}

// One matrix as pixels over the page's background: a weight's shade is its square root (a row
// sums to 1, so one token taking all the attention is solid; the root keeps long rows visible).
function drawHeatmap(canvas, group, layer, head) {
  const { queries, keys } = group.shape;
  canvas.width = keys;
  canvas.height = queries;
  const context = canvas.getContext("2d"), image = context.createImageData(keys, queries);
  const [red, green, blue] = heatColor();
  for (let q = 0; q < queries; q++) {
    for (let k = 0; k < keys; k++) {
      const weight = Math.min(1, Math.max(0, group.at(layer, head, q, k)));
      image.data.set([red, green, blue, Math.round(255 * Math.sqrt(weight))], 4 * (q * keys + k));
    }
  }
  context.putImageData(image, 0, 0);
}

// The overview grid; onPick(layerIndex, headIndex) when a cell is chosen. Arrow keys move
// between cells (one tab stop for the whole grid).
export function overview(group, picked, onPick) {
  const columns = group.columns.length;
  const grid = element("div", { className: "overview", role: "group", "aria-label": `${group.kind} attention: every layer and head` });
  grid.style.gridTemplateColumns = `auto repeat(${columns}, minmax(28px, 56px))`;
  grid.append(element("span"), ...group.columns.map(name => element("span", { className: "axis", text: name })));
  const buttons = [];
  group.layers.forEach((layer, l) => {
    grid.append(element("span", { className: "axis", text: `layer ${layer}` }));
    group.columns.forEach((name, h) => {
      const chosen = l === picked[0] && h === picked[1];
      const canvas = element("canvas");
      drawHeatmap(canvas, group, l, h);
      const button = element("button", {
        type: "button", className: "thumb", "aria-label": `Layer ${layer}, ${name}`, "aria-pressed": String(chosen),
        tabindex: chosen ? "0" : "-1", "data-layer": String(layer), "data-column": String(h),
      }, canvas);
      button.addEventListener("click", () => onPick(l, h));
      buttons.push(button);
      grid.append(button);
    });
  });
  grid.addEventListener("keydown", event => {
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns };
    const at = buttons.indexOf(document.activeElement);
    if (at < 0 || !(event.key in moves)) return;
    const next = buttons[at + moves[event.key]];
    if (!next) return;
    event.preventDefault();
    onPick(Math.floor((at + moves[event.key]) / columns), (at + moves[event.key]) % columns, true);
  });
  return grid;
}

function tokenList(tokens, role, onHover) {
  const list = element("ol", { className: `tokens ${role}`, "aria-label": role === "queries" ? "Query tokens" : "Key tokens" });
  tokens.forEach((text, index) => {
    const item = element("li", { tabindex: "0", "data-index": String(index), text });
    for (const on of ["mouseenter", "focus"]) item.addEventListener(on, () => onHover(role, index, item));
    for (const off of ["mouseleave", "blur"]) item.addEventListener(off, () => onHover(null, -1, item));
    list.append(item);
  });
  return list;
}

// Lines from each query token (left) to each key token (right), opacity = weight; hovering or
// focusing a token keeps only its own lines.
function headView(group, layer, head) {
  const { queries, keys } = group.shape;
  const height = Math.max(queries, keys) * ROW;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 180 ${height}`);
  svg.setAttribute("height", String(height));
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Lines from each query token to the key tokens it attends to; darker is more weight");
  for (let q = 0; q < queries; q++) {
    for (let k = 0; k < keys; k++) {
      const weight = group.at(layer, head, q, k);
      if (!(weight >= 0.01)) continue;
      const line = document.createElementNS(SVG_NS, "line");
      for (const [name, value] of Object.entries({ x1: 0, y1: q * ROW + ROW / 2, x2: 180, y2: k * ROW + ROW / 2 })) line.setAttribute(name, String(value));
      line.setAttribute("stroke-opacity", String(Math.min(1, weight)));
      line.setAttribute("stroke-width", "2");
      line.dataset.query = String(q);
      line.dataset.key = String(k);
      svg.append(line);
    }
  }
  const hover = (role, index, item) => {
    item.classList.toggle("active", role !== null);
    for (const line of svg.children) {
      const mine = role === null || (role === "queries" ? line.dataset.query : line.dataset.key) === String(index);
      line.style.display = mine ? "" : "none";
    }
  };
  return element("div", { className: "head-view", "data-lines": String(svg.children.length) },
    tokenList(group.queryTokens, "queries", hover), svg, tokenList(group.keyTokens, "keys", hover));
}

function weightsTable(group, layer, head) {
  const { queries, keys } = group.shape;
  const head_ = element("tr", {}, element("th", { scope: "col", text: "query \\ key" }),
    ...group.keyTokens.map(text => element("th", { scope: "col", text })));
  const rows = [];
  for (let q = 0; q < queries; q++) {
    const cells = [];
    for (let k = 0; k < keys; k++) cells.push(element("td", { text: group.at(layer, head, q, k).toFixed(3) }));
    rows.push(element("tr", {}, element("th", { scope: "row", text: group.queryTokens[q] ?? "" }), ...cells));
  }
  return element("table", { className: "weights" }, element("thead", {}, head_), element("tbody", {}, ...rows));
}

// One layer and head (or aggregate) enlarged: its lines, and its numbers on demand.
export function headDetail(group, l, h) {
  const layer = group.layers[l], name = group.columns[h];
  const details = element("details", { className: "weights-details" }, element("summary", { text: "Weights as a table (rows: query tokens, columns: key tokens)" }));
  details.addEventListener("toggle", () => {
    if (details.open && !details.querySelector("table")) details.append(element("div", { className: "table-wrap" }, weightsTable(group, l, h)));
  });
  return element("section", { className: "head-detail", "data-layer": String(layer), "data-column": name, "aria-label": `Layer ${layer}, ${name}` },
    element("h3", { text: `${group.kind} attention, layer ${layer}, ${name}` }),
    headView(group, l, h), details);
}
