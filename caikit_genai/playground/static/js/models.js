// Models: what the runtime serves, is loading or failed to load (with the reason from
// /info/models), and each model's card from its metrics.json.
import { getJson } from "./api.js";
import { element } from "./forms.js";
import { refreshModels, runtime } from "./runtime.js";

export class ModelsTab {
  constructor() {
    this.name = "models";
    this.panel = document.getElementById("panel-models");
    this.table = document.getElementById("models-table");
    this.card = document.getElementById("models-card");
    this.status = document.getElementById("models-status");
    this.error = document.getElementById("models-error");
    this.cardModel = "";
    document.getElementById("models-refresh").addEventListener("click", () => this.run());
  }

  accepts() {
    return false;
  }

  async run() {
    this.error.hidden = true;
    try {
      await refreshModels();
    } catch (err) {
      this.error.textContent = err.shown ?? err.message;
      this.error.hidden = false;
    }
    this.panel.dataset.runs = String(Number(this.panel.dataset.runs || 0) + 1);
  }

  refresh() {
    const counts = { served: 0, loading: 0, failed: 0 };
    for (const model of runtime.models) counts[model.state] += 1;
    this.status.textContent = `${counts.served} served, ${counts.loading} loading, ${counts.failed} failed`;
    const head = element("tr", {}, ...["Model", "Module", "State", "Tasks (try it)", "Card"].map(text => element("th", { scope: "col", text })));
    const rows = runtime.models.map(model => element("tr", { "data-model": model.id, "data-state": model.state },
      element("td", { text: model.id }),
      element("td", { text: model.moduleName }),
      stateCell(model),
      element("td", {}, ...model.tasks.map((task, index) => [index ? ", " : "", element("a", { href: `?task=${task.route_name}&model=${encodeURIComponent(model.id)}`, text: task.route_name })]).flat()),
      element("td", {}, model.state === "failed" ? null : element("button", {
        type: "button", className: "secondary", "aria-label": `Show the card of ${model.id}`, text: "Card",
      }))));
    rows.forEach(row => row.querySelector("button")?.addEventListener("click", () => this.openCard(row.dataset.model)));
    this.table.replaceChildren(element("table", { className: "models" }, element("thead", {}, head), element("tbody", {}, ...rows)));
  }

  applyState(query) {
    if (query.has("model")) this.openCard(query.get("model"));
  }

  stateQuery() {
    const query = new URLSearchParams({ tab: "models" });
    if (this.cardModel) query.set("model", this.cardModel);
    return query;
  }

  async openCard(modelId) {
    this.cardModel = modelId;
    this.card.replaceChildren(element("p", { className: "status", text: `Reading the card of ${modelId}…` }));
    let content;
    try {
      const metrics = await getJson(`playground/api/models/${encodeURIComponent(modelId)}/metrics`);
      content = element("dl", {}, ...entries(metrics, 0));
    } catch (err) {
      content = element("p", { className: "error", role: "alert", text: err.shown ?? err.message });
    }
    this.card.replaceChildren(element("section", { className: "card", "data-model": modelId, "aria-label": `Card of ${modelId}` },
      element("h3", { text: `${modelId}: metrics.json` }), content));
    this.card.dispatchEvent(new Event("change", { bubbles: true }));  // the URL follows the open card
  }
}

function stateCell(model) {
  const cell = element("td", {}, element("span", { className: `state-${model.state}`, text: model.state }));
  if (model.state === "loading") cell.append(element("div", { className: "hint", text: "caikit loads it when its first request comes" }));
  if (model.quick) cell.append(element("div", { className: "hint quick", text: "quick build: its full build replaces it live" }));
  if (model.reason) cell.append(element("div", { className: "reason", text: model.reason }));
  if (model.retryAfter) cell.append(element("div", { className: "hint", text: `next try after ${model.retryAfter}` }));
  return cell;
}

function entries(object, depth) {
  return Object.entries(object).flatMap(([key, value]) => [element("dt", { text: key }), element("dd", {}, shown(value, depth + 1))]);
}

function shown(value, depth) {
  if (value === null || value === undefined) return "–";
  if (Array.isArray(value)) {
    if (value.length && value.every(item => item && typeof item === "object" && !Array.isArray(item)) && depth < 3) return rowsTable(value);
    return value.map(item => (typeof item === "object" ? JSON.stringify(item) : String(item))).join(", ");
  }
  if (typeof value === "object") return depth < 3 ? element("dl", {}, ...entries(value, depth)) : JSON.stringify(value);
  return String(value);
}

function rowsTable(items) {
  const columns = [...new Set(items.flatMap(item => Object.keys(item)))];
  const head = element("tr", {}, ...columns.map(text => element("th", { scope: "col", text })));
  const rows = items.map(item => element("tr", {}, ...columns.map(column => element("td", {},
    typeof item[column] === "object" && item[column] !== null ? JSON.stringify(item[column]) : String(item[column] ?? "")))));
  return element("div", { className: "table-wrap" }, element("table", {}, element("thead", {}, head), element("tbody", {}, ...rows)));
}
