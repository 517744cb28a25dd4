// Train: pick a module, paste or upload its data, set the main parameters, start; the state is
// polled until the training ends (cancel stops it), and the new model joins the pickers.
import { deleteJson, getJson, postJson } from "./api.js";
import { clearError, element, paramsToQuery, queryToParams, readParams, renderParams, showError } from "./forms.js";
import { describeData, readExamples } from "./train_data.js";
import { findModel, refreshModels, runtime } from "./runtime.js";

// Shown first; every other train parameter is under "More parameters".
const MAIN = ["preset", "epochs", "max_steps", "batch_size", "learning_rate", "max_seconds", "base_model", "encoder_model"];
const FINISHED = ["COMPLETED", "ERRORED", "CANCELED"];
const POLL_MS = 1000;

export class TrainTab {
  constructor() {
    this.name = "train";
    this.panel = document.getElementById("panel-train");
    this.form = document.getElementById("train-form");
    this.moduleSelect = document.getElementById("train-module");
    this.modelName = document.getElementById("train-name");
    this.data = document.getElementById("train-data");
    this.format = document.getElementById("train-format");
    this.main = document.getElementById("train-main");
    this.more = document.getElementById("train-more");
    this.cancelButton = document.getElementById("train-cancel");
    this.output = document.getElementById("train-output");
    this.trainingId = "";
    this.moduleSelect.addEventListener("change", () => this.renderParams());
    document.getElementById("train-file").addEventListener("change", event => this.load(event.target.files[0]));
    this.form.addEventListener("submit", event => {
      event.preventDefault();
      this.run();
    });
    this.cancelButton.addEventListener("click", () => this.cancel());
  }

  accepts() {
    return false;
  }

  get module() {
    return runtime.catalog.modules.find(module => module.name === this.moduleSelect.value && module.train);
  }

  refresh() {
    const off = !runtime.catalog.training;
    const notice = document.getElementById("train-off");
    notice.hidden = !off;
    notice.textContent = off ? "Training is turned off in this runtime (runtime.service_generation.enable_training is false): it serves no train routes." : "";
    this.form.hidden = off;
    this.output.hidden = off;
    if (off || this.moduleSelect.options.length) return;
    const trainable = runtime.catalog.modules.filter(module => module.train);
    this.moduleSelect.replaceChildren(...trainable.map(module => element("option", { value: module.name, text: module.name })));
    this.renderParams();
  }

  renderParams() {
    const parameters = this.module?.train.parameters ?? [];
    renderParams(this.main, parameters.filter(p => MAIN.includes(p.name)), "train");
    renderParams(this.more, parameters.filter(p => !MAIN.includes(p.name)), "train");
    document.getElementById("train-data-hint").textContent = this.module ? describeData(this.module.train.training_data) : "";
  }

  async load(file) {
    if (!file) return;
    clearError(this.form);
    try {
      this.data.value = await file.text();
    } catch (err) {
      showError(this.form, new Error(`${file.name} could not be read: ${err.message}`));
      return;
    }
    const extension = file.name.split(".").pop().toLowerCase();
    this.format.value = { csv: "csv", jsonl: "jsonl", txt: "text" }[extension] ?? "auto";
    this.form.dispatchEvent(new Event("change", { bubbles: true }));
  }

  applyState(query) {
    if (query.has("module")) this.moduleSelect.value = query.get("module");
    this.renderParams();
    if (query.has("model_name")) this.modelName.value = query.get("model_name");
    queryToParams(this.main, query);
    queryToParams(this.more, query);
  }

  stateQuery() {
    const query = new URLSearchParams({ tab: "train" });
    if (this.moduleSelect.value) query.set("module", this.moduleSelect.value);
    if (this.modelName.value) query.set("model_name", this.modelName.value);
    paramsToQuery(this.main, query);
    paramsToQuery(this.more, query);
    return query;
  }

  async run() {
    clearError(this.form);
    try {
      const train = this.module?.train;
      if (!train) throw new Error("This runtime has no train route for that module.");
      const data = readExamples(this.data.value, this.format.value, train.training_data);
      const parameters = { ...readParams(this.main), ...readParams(this.more), training_data: { data_stream: { data } } };
      const answer = await postJson(train.route, { model_name: this.modelName.value, parameters });
      this.trainingId = answer.training_id;
      this.cancelButton.disabled = false;
      this.started = Date.now();
      await this.follow(this.modelName.value);
    } catch (err) {
      showError(this.form, err);
    }
  }

  async follow(modelName) {
    const trainingId = this.trainingId;
    for (;;) {
      const status = await getJson(`${runtime.catalog.training_management}?training_id=${encodeURIComponent(trainingId)}`);
      // The runtime has progress for every training it took (step 0, `started: false`, until the first step).
      const progress = await getJson(runtime.catalog.training_progress.replace("{training_id}", encodeURIComponent(trainingId)));
      this.show(status, modelName, null, progress);
      if (FINISHED.includes(status.state)) break;
      await new Promise(resolve => setTimeout(resolve, POLL_MS));
    }
    this.cancelButton.disabled = true;
    if (this.output.dataset.state === "COMPLETED") await this.waitServed(modelName);
  }

  show(status, modelName, extra = null, progress = null) {
    const seconds = Math.round((Date.now() - this.started) / 1000);
    const running = !FINISHED.includes(status.state);
    const bar = running ? element("progress", { "aria-label": "Training in progress" }) : null;
    if (bar && progress?.started) Object.assign(bar, { max: 100, value: progress.percent });
    this.output.dataset.state = status.state;
    this.output.dataset.trainingId = status.training_id ?? this.trainingId;
    this.output.replaceChildren(element("dl", { className: "card" },
      element("dt", { text: "Model" }), element("dd", { text: modelName }),
      element("dt", { text: "Training" }), element("dd", { text: status.training_id ?? this.trainingId }),
      element("dt", { text: "State" }), element("dd", { className: "training-state", text: status.state }),
      element("dt", { text: "Elapsed" }), element("dd", { text: `${seconds} s` }),
      ...(progress ? [element("dt", { text: "Progress" }), element("dd", { className: "training-progress", text: progressText(progress) })] : []),
      ...(status.reasons?.length ? [element("dt", { text: "Reasons" }), element("dd", { className: "reasons", text: status.reasons.join("\n") })] : [])),
    ...[bar, extra].filter(Boolean));
  }

  // A finished training's model is served once the lazy loader has seen its dir.
  async waitServed(modelName) {
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
      await refreshModels();
      const model = findModel(modelName);
      if (model) {
        const task = model.tasks[0];
        const link = task ? element("a", { href: `?task=${task.route_name}&model=${encodeURIComponent(modelName)}`, text: `Try ${modelName}` }) : null;
        this.output.append(element("p", { className: "status served", text: `${modelName} is served and in the pickers. ` }, link));
        this.output.dataset.served = "true";
        return;
      }
      await new Promise(resolve => setTimeout(resolve, POLL_MS));
    }
    this.output.append(element("p", { className: "error", text: `${modelName} finished training but is not served yet: see the Models tab.` }));
  }

  async cancel() {
    clearError(this.form);
    try {
      await deleteJson(`${runtime.catalog.training_management}?training_id=${encodeURIComponent(this.trainingId)}`);
    } catch (err) {
      showError(this.form, err);
    }
  }
}

// As `caikit-genai train` says it: `step 120/5000, 37%, ETA 41 s, loss 1.9021`.
function progressText(progress) {
  if (!progress.started) return "starting";
  const parts = [`step ${progress.step}/${progress.total_steps}`, `${Math.round(progress.percent)}%`];
  if (progress.eta_seconds != null && !progress.finished) parts.push(`ETA ${Math.round(progress.eta_seconds)} s`);
  for (const [name, value] of Object.entries(progress.losses || {})) if (value != null) parts.push(`${name} ${value.toFixed(4)}`);
  return parts.join(", ");
}
