// Images: number, seed, class label, grid and latent walk (when the model's task takes them);
// each image downloadable. The same seed gives the same image bytes.
import { getJson, postJson } from "./api.js";
import { TaskTab, element } from "./forms.js";

const classNames = new Map();  // model id -> its class names (from its metrics.json), or []

export class ImagesTab extends TaskTab {
  constructor() {
    super("images", ["image-generation"]);
    this.output = document.getElementById("images-output");
  }

  inputValue() {
    return this.inputs.value;
  }

  request() {
    const request = super.request();
    const count = Number(request.inputs);
    if (request.inputs.trim() !== "" && Number.isFinite(count)) request.inputs = count;  // else: the server says why
    return request;
  }

  renderParams() {
    super.renderParams();
    this.offerLabels();
  }

  // The label field suggests the chosen model's class names, read from its card.
  async offerLabels() {
    const modelId = this.modelSelect.value, field = this.paramBox.querySelector("[data-param=label]");
    if (!modelId || !field) return;
    if (!classNames.has(modelId)) {
      try {
        classNames.set(modelId, (await getJson(`playground/api/models/${encodeURIComponent(modelId)}/metrics`)).class_names ?? []);
      } catch {
        classNames.set(modelId, []);  // no card: the label field stays free text
      }
    }
    const names = classNames.get(modelId);
    if (!names.length || !field.isConnected) return;
    const list = element("datalist", { id: "images-labels" }, ...names.map(value => element("option", { value })));
    document.getElementById("images-labels")?.remove();
    field.after(list);
    field.setAttribute("list", "images-labels");
    field.placeholder = `one of ${names.join(", ")}`;
  }

  async run() {
    await this.guarded(async () => {
      const request = this.request();
      const result = await postJson(this.route(), request);
      this.output.replaceChildren(gallery(result, request));
    });
  }
}

function mimeOf(base64) {
  return base64.startsWith("/9j/") ? "image/jpeg" : "image/png";
}

function caption(result, request, index) {
  const seeds = result.seeds || [], labels = result.labels || [];
  const label = (walk) => (labels[walk] ? `, ${labels[walk]}` : "");
  if (request.parameters.as_grid) return `grid of ${seeds.length} (seeds ${seeds[0]}–${seeds[seeds.length - 1]})`;
  if (result.columns > 1) {
    const walk = Math.floor(index / result.columns);
    return `walk seed ${seeds[walk]} → ${seeds[walk] + 1}, step ${(index % result.columns) + 1}${label(walk)}`;
  }
  return `seed ${seeds[index]}${label(index)}`;
}

function gallery(result, request) {
  const images = result.images || [];
  const columns = result.columns > 1 ? result.columns : Math.min(Math.max(images.length, 1), 4);
  const grid = element("div", { className: "images", "data-count": String(images.length), "data-columns": String(result.columns ?? 1) });
  grid.style.setProperty("--columns", String(columns));
  images.forEach((image, index) => {
    const data = image.image_data, mime = mimeOf(data), text = caption(result, request, index);
    const name = `${request.model_id}-${text.replace(/[^\w]+/g, "-").replace(/^-|-$/g, "")}.${mime === "image/jpeg" ? "jpg" : "png"}`;
    grid.append(element("figure", { "data-index": String(index) },
      element("img", { src: `data:${mime};base64,${data}`, alt: `Generated image: ${text}` }),
      element("figcaption", {}, element("span", { text }),
        element("a", { href: `data:${mime};base64,${data}`, download: name, "aria-label": `Download ${text}`, text: "Download" }))));
  });
  return grid;
}
