// Attention: tokens and every layer x head of each attention kind the model has (encoder;
// decoder and cross for encoder-decoder models, given a target text), rollout as an aggregate.
import { postJson } from "./api.js";
import { TaskTab, element } from "./forms.js";
import { decodeGroups } from "./attention_data.js";
import { headDetail, overview } from "./attention_views.js";

export class AttentionTab extends TaskTab {
  constructor() {
    super("attention", ["attention-inspection"]);
    this.output = document.getElementById("attention-output");
    this.groups = [];
    this.view = { group: 0, layer: 0, head: 0 };
  }

  async run() {
    await this.guarded(async () => {
      const result = await postJson(this.route(), this.request());
      this.groups = decodeGroups(result);
      this.view = { group: 0, layer: 0, head: 0 };
      this.result = result;
      this.draw();
    });
  }

  pick(layer, head, focus = false) {
    this.view.layer = layer;
    this.view.head = head;
    this.draw();
    if (focus) this.output.querySelector(".thumb[aria-pressed=true]")?.focus();
  }

  draw() {
    const group = this.groups[this.view.group];
    const parts = [element("p", { className: "note", text: this.result.note + (this.result.truncated ? " The input was cut to max_tokens." : "") })];
    if (this.groups.length > 1) {
      const select = element("select", { id: "attention-kind" },
        ...this.groups.map((g, index) => element("option", { value: String(index), text: g.kind + (g.aggregate === "none" ? "" : ` (${g.aggregate})`) })));
      select.value = String(this.view.group);
      select.addEventListener("change", () => {
        this.view = { group: Number(select.value), layer: 0, head: 0 };
        this.draw();
        document.getElementById("attention-kind").focus();
      });
      parts.push(element("div", { className: "field" }, element("label", { for: "attention-kind", text: "Attention kind" }), select));
    }
    if (group) {
      parts.push(element("div", { className: "attention-views" },
        element("div", { className: "overview-wrap" }, overview(group, [this.view.layer, this.view.head], (l, h, focus) => this.pick(l, h, focus))),
        headDetail(group, this.view.layer, this.view.head)));
    }
    if (this.result.heatmap?.image_data) {
      parts.push(element("img", { className: "heatmap-image", src: `data:image/png;base64,${this.result.heatmap.image_data}`, alt: "The server's heatmap of every returned matrix" }));
    }
    const data = this.output.dataset;
    data.kinds = this.groups.map(g => g.kind).join(",");
    data.kind = group?.kind ?? "";
    data.layers = String(group?.layers.length ?? 0);
    data.columns = String(group?.columns.length ?? 0);
    this.output.replaceChildren(...parts);
  }
}
