// Forms built from the catalog: one labelled field per parameter of the chosen model's call (its
// own defaults and docstring line), read back as the API's `parameters`, and written to and
// from the page's URL (parameters by their API names).
import { findModel, modelsFor, runtime, taskEntry } from "./runtime.js";

// Values a parameter's docstring names; offered as suggestions, any other value may be typed.
const SUGGESTIONS = {
  decoding_method: ["SAMPLING", "GREEDY"],
  unknown_characters: ["REJECT", "DROP"],
  aggregate: ["none", "rollout", "mean", "max"],
  precision: ["float16", "uint8", "float32"],
  image_format: ["png", "jpeg"],
  kinds: ["encoder", "decoder", "cross"],
  cell: ["lstm", "gru"],
  device: ["auto", "cpu", "cuda"],
};
const SHOWN_TYPES = /^(boolean|integer|number|string|array:(string|integer|number))$/;

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter(child => child !== null && child !== undefined));
  return node;
}

function shownDefault(value) {
  if (value === null || value === undefined || value === "") return "";
  return Array.isArray(value) ? value.join(", ") : String(value);
}

function parameterField(parameter, idPrefix) {
  const id = `${idPrefix}-${parameter.name}`;
  const hintText = [parameter.description, shownDefault(parameter.default) && `Default: ${shownDefault(parameter.default)}.`]
    .filter(Boolean).join(" ");
  const hint = hintText ? element("span", { className: "hint", id: `${id}-hint`, text: hintText }) : null;
  const common = { id, "data-param": parameter.name, "data-type": parameter.type, "aria-describedby": hint && `${id}-hint` };
  const label = element("label", { for: id, text: parameter.name });
  if (parameter.type === "boolean") {
    const input = element("input", { ...common, type: "checkbox", checked: parameter.default === true });
    input.dataset.default = String(parameter.default === true);
    return element("div", { className: "field" }, element("div", { className: "field check" }, input, label), hint);
  }
  let input;
  if (parameter.type === "array:string") {
    input = element("textarea", { ...common, rows: 2, placeholder: "one per line" });
  } else if (parameter.type === "integer" || parameter.type === "number") {
    input = element("input", { ...common, type: "number", step: parameter.type === "integer" ? "1" : "any", placeholder: shownDefault(parameter.default) });
  } else {
    const list = SUGGESTIONS[parameter.name] ? `${id}-choices` : null;
    const placeholder = parameter.type.startsWith("array:") ? "comma-separated" : shownDefault(parameter.default);
    input = element("input", { ...common, type: "text", list, placeholder, autocomplete: "off" });
  }
  const suggestions = input.getAttribute("list")
    ? element("datalist", { id: input.getAttribute("list") }, ...SUGGESTIONS[parameter.name].map(value => element("option", { value })))
    : null;
  return element("div", { className: "field" }, label, input, suggestions, hint);
}

// Fields for `parameters` in `container`; values of fields of the same name are kept.
export function renderParams(container, parameters, idPrefix) {
  const kept = fieldValues(container);
  container.replaceChildren(...parameters.filter(p => SHOWN_TYPES.test(p.type)).map(p => parameterField(p, idPrefix)));
  setFieldValues(container, kept);
}

function fields(container) {
  return [...container.querySelectorAll("[data-param]")];
}

// Each field's raw value ({name: string | boolean}), to carry over or write to the URL.
function fieldValues(container) {
  const values = new Map();
  for (const input of fields(container)) values.set(input.dataset.param, input.type === "checkbox" ? input.checked : input.value);
  return values;
}

function setFieldValues(container, values) {
  for (const input of fields(container)) {
    if (!values.has(input.dataset.param)) continue;
    const value = values.get(input.dataset.param);
    if (input.type === "checkbox") input.checked = value === true || value === "true" || value === "1" || value === "on";
    else input.value = value;
  }
}

function numberOrText(text) {
  const value = Number(text);
  return text.trim() !== "" && Number.isFinite(value) ? value : text;  // not a number: the server says why
}

// The `parameters` object of a request: only what the user set (the model's defaults apply to the rest).
export function readParams(container) {
  const parameters = {};
  for (const input of fields(container)) {
    const name = input.dataset.param, type = input.dataset.type;
    if (type === "boolean") {
      if (input.checked !== (input.dataset.default === "true")) parameters[name] = input.checked;
      continue;
    }
    const text = input.value;
    if (!text.trim()) continue;
    if (type === "array:string") parameters[name] = text.split(/\r?\n/).filter(line => line !== "");
    else if (type.startsWith("array:")) parameters[name] = text.split(/[\s,]+/).filter(Boolean).map(numberOrText);
    else if (type === "integer" || type === "number") parameters[name] = numberOrText(text);
    else parameters[name] = text;
  }
  return parameters;
}

// URL query <-> fields: a list as repeated keys (or one comma-separated value for numbers).
export function paramsToQuery(container, query) {
  for (const input of fields(container)) {
    const name = input.dataset.param, type = input.dataset.type;
    if (type === "boolean") {
      if (input.checked !== (input.dataset.default === "true")) query.set(name, String(input.checked));
    } else if (type === "array:string") {
      for (const line of input.value.split(/\r?\n/).filter(line => line !== "")) query.append(name, line);
    } else if (input.value.trim()) {
      query.set(name, input.value);
    }
  }
}

export function queryToParams(container, query) {
  const values = new Map();
  for (const input of fields(container)) {
    const name = input.dataset.param;
    if (!query.has(name)) continue;
    const all = query.getAll(name);
    values.set(name, input.dataset.type === "array:string" ? all.join("\n") : input.dataset.type.startsWith("array:") ? all.join(", ") : all[0]);
  }
  setFieldValues(container, values);
}

export function showError(form, err) {
  const box = form.querySelector(".error");
  box.textContent = err.shown ?? err.message ?? String(err);
  box.hidden = false;
}

export function clearError(form) {
  const box = form.querySelector(".error");
  box.textContent = "";
  box.hidden = true;
}

// A <select> of model ids; keeps the chosen one, and lists `wanted` even when the runtime does
// not (a shared link to a model not served yet: the server's answer says so).
export function fillModelSelect(select, models, wanted) {
  const chosen = wanted ?? select.value;
  const options = models.map(model => element("option", { value: model.id, text: model.state === "loading" ? `${model.id} (loading)` : model.id }));
  if (chosen && !models.some(model => model.id === chosen)) options.push(element("option", { value: chosen, text: `${chosen} (not served)` }));
  if (!options.length) options.push(element("option", { value: "", text: "No model serves this task", disabled: true }));
  select.replaceChildren(...options);
  if (chosen && options.some(option => option.value === chosen)) select.value = chosen;
}

// A tab that calls task routes: its model picker, its input, its parameter fields and its URL state.
export class TaskTab {
  constructor(name, routeNames) {
    this.name = name;
    this.routeNames = routeNames;
    this.panel = document.getElementById(`panel-${name}`);
    this.form = document.getElementById(`${name}-form`);
    this.modelSelect = document.getElementById(`${name}-model`);
    this.inputs = document.getElementById(`${name}-inputs`);
    this.paramBox = this.form.querySelector(".param-fields");
    this.modelSelect.addEventListener("change", () => this.renderParams());
    this.form.addEventListener("submit", event => {
      event.preventDefault();
      this.run();
    });
    this.inputs.addEventListener("keydown", event => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) this.form.requestSubmit();
    });
  }

  get routeName() {
    return this.routeNames[0];
  }

  accepts(task) {
    return this.routeNames.includes(task);
  }

  get model() {
    return findModel(this.modelSelect.value);
  }

  // The chosen model's entry for a route; for a model the runtime does not list (a shared link),
  // any module's: the route is the task's, and the server's answer names the problem.
  entry(routeName = this.routeName) {
    return taskEntry(this.model, routeName)
      ?? runtime.catalog.modules.flatMap(module => module.tasks).find(task => task.route_name === routeName);
  }

  refresh() {
    fillModelSelect(this.modelSelect, modelsFor(this.routeNames));
    this.renderParams();
  }

  renderParams() {
    renderParams(this.paramBox, this.entry()?.parameters ?? [], this.name);
  }

  inputValue() {
    return this.inputs.value;
  }

  setInput(query) {
    if (query.has("inputs")) this.inputs.value = query.getAll("inputs").join("\n");
  }

  applyState(query) {
    if (query.has("model")) fillModelSelect(this.modelSelect, modelsFor(this.routeNames), query.get("model"));
    this.renderParams();
    this.setInput(query);
    queryToParams(this.paramBox, query);
  }

  stateQuery() {
    const query = new URLSearchParams({ task: this.routeName });
    if (this.modelSelect.value) query.set("model", this.modelSelect.value);
    if (this.inputValue() !== "") query.set("inputs", this.inputValue());
    paramsToQuery(this.paramBox, query);
    return query;
  }

  request(inputs = this.inputValue()) {
    return { model_id: this.modelSelect.value, inputs, parameters: readParams(this.paramBox) };
  }

  // The route of one of this tab's tasks (the same for every model of the task).
  route(routeName = this.routeName, streaming = false) {
    const entry = this.entry(routeName);
    if (!entry) throw new Error(`No model of this runtime serves ${routeName}.`);
    return streaming ? entry.streaming_route : entry.route;
  }

  // Runs `work` with the form's error box cleared before and filled on failure (never thrown
  // on); the panel's data-runs counts finished runs (tests wait on it).
  async guarded(work) {
    clearError(this.form);
    this.panel.dataset.busy = "true";
    try {
      await work();
    } catch (err) {
      showError(this.form, err);
    } finally {
      this.panel.dataset.busy = "false";
      this.panel.dataset.runs = String(Number(this.panel.dataset.runs || 0) + 1);
    }
  }
}
